// Provider events (each callback applied once) and retention: the purges of
// answers, deliveries, texts, join requests, events and audit entries.
#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

int64_t PgStore::purge_answers(UnixMs before) {
  return q("DELETE FROM idempotency WHERE created_at < $1").bind(before).run();
}

int64_t PgStore::purge_deliveries(UnixMs before, int limit) {
  // Two instances purging at once would both count the same rows into
  // delivery_totals before either deleted them: one at a time.
  db_.xact_lock(lock_key("purge deliveries"));
  auto last = q("SELECT max(id) FROM (SELECT id FROM deliveries WHERE created_at < $1 AND "
                "state <> 0 ORDER BY id LIMIT $2) AS batch")
                  .bind(before)
                  .bind(limit)
                  .rows();
  int64_t upto = last.i64(0, 0);  // NULL (none) reads 0
  int64_t deleted = 0;
  if (upto > 0) {
    q("INSERT INTO delivery_totals (incident_id, gateway, channel, state, n) "
      "SELECT incident_id, gateway, channel, state, count(*) FROM deliveries "
      "WHERE id <= $1 AND created_at < $2 AND state <> 0 "
      "GROUP BY incident_id, gateway, channel, state "
      "ON CONFLICT (incident_id, gateway, channel, state) "
      "DO UPDATE SET n = delivery_totals.n + excluded.n")
        .bind(upto)
        .bind(before)
        .run();
    deleted = q("DELETE FROM deliveries WHERE id <= $1 AND created_at < $2 AND state <> 0")
                  .bind(upto)
                  .bind(before)
                  .run();
  }
  // Texts still needed by a pending delivery stay until it ends.
  q("DELETE FROM messages WHERE report_id IN (SELECT id FROM reports WHERE received_at < $1) "
    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.report_id = messages.report_id "
    "AND d.state = 0)")
      .bind(before)
      .run();
  q("UPDATE reports SET body = '' WHERE received_at < $1 AND body <> ''").bind(before).run();
  q("UPDATE acknowledgements SET subscriber_id = 0 WHERE received_at < $1 AND subscriber_id <> 0")
      .bind(before)
      .run();
  return deleted;
}

int64_t PgStore::purge_join_requests(UnixMs before) {
  return q("DELETE FROM join_requests WHERE created_at < $1").bind(before).run();
}

bool PgStore::first_event(std::string_view provider, std::string_view event_id, UnixMs now) {
  // The same callback at two instances at once: the second waits on the
  // key until the first commits, then inserts nothing.
  return q("INSERT INTO provider_events (provider, event_id, received_at) VALUES ($1, $2, $3) "
           "ON CONFLICT (provider, event_id) DO NOTHING")
             .bind(provider)
             .bind(event_id)
             .bind(now)
             .run() > 0;
}

int64_t PgStore::purge_events(UnixMs before) {
  return q("DELETE FROM provider_events WHERE received_at < $1").bind(before).run();
}

int64_t PgStore::purge_audit(UnixMs before) {
  return q("DELETE FROM audit WHERE at < $1").bind(before).run();
}

}  // namespace tocsin::store::postgresql
