// Provider events (each callback applied once) and retention: the purges of
// answers, deliveries, texts, join requests, events and audit entries.
#include "store/sqlite/sqlite_store.h"

namespace tocsin::store::sqlite {

int64_t SqliteStore::purge_answers(UnixMs before) {
  stmt("DELETE FROM idempotency WHERE created_at < ?").reset().bind(before).run();
  return db_.changes();
}

int64_t SqliteStore::purge_deliveries(UnixMs before, int limit) {
  // Old rows have low ids: the batch is the first `limit` ended deliveries
  // created before `before`, found by a rowid scan (no index to maintain
  // on the hot insert path).
  auto& last = stmt(
      "SELECT max(id) FROM (SELECT id FROM deliveries WHERE created_at < ?1 AND state <> 0 "
      "ORDER BY id LIMIT ?2)");
  last.reset().bind(before).bind(limit);
  int64_t upto = last.step() && !last.is_null(0) ? last.i64(0) : 0;
  last.reset();
  int64_t deleted = 0;
  if (upto > 0) {
    stmt("INSERT INTO delivery_totals (incident_id, gateway, channel, state, n) "
         "SELECT incident_id, gateway, channel, state, count(*) FROM deliveries "
         "WHERE id <= ?1 AND created_at < ?2 AND state <> 0 "
         "GROUP BY incident_id, gateway, channel, state "
         "ON CONFLICT (incident_id, gateway, channel, state) DO UPDATE SET n = n + excluded.n")
        .reset()
        .bind(upto)
        .bind(before)
        .run();
    stmt("DELETE FROM deliveries WHERE id <= ?1 AND created_at < ?2 AND state <> 0")
        .reset()
        .bind(upto)
        .bind(before)
        .run();
    deleted = db_.changes();
  }
  // Texts still needed by a pending delivery stay until it ends.
  stmt("DELETE FROM messages WHERE report_id IN (SELECT id FROM reports WHERE received_at < ?1) "
       "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.report_id = messages.report_id "
       "AND d.state = 0)")
      .reset()
      .bind(before)
      .run();
  int64_t other = db_.changes();
  stmt("UPDATE reports SET body = '' WHERE received_at < ? AND body <> ''").reset().bind(before).run();
  other += db_.changes();
  stmt("UPDATE acknowledgements SET subscriber_id = 0 WHERE received_at < ? AND subscriber_id <> 0")
      .reset()
      .bind(before)
      .run();
  other += db_.changes();
  scrub_pending_ = scrub_pending_ || deleted > 0 || other > 0;
  return deleted;
}

int64_t SqliteStore::purge_join_requests(UnixMs before) {
  stmt("DELETE FROM join_requests WHERE created_at < ?").reset().bind(before).run();
  return db_.changes();
}

bool SqliteStore::first_event(std::string_view provider, std::string_view event_id, UnixMs now) {
  stmt("INSERT INTO provider_events (provider, event_id, received_at) VALUES (?,?,?) "
       "ON CONFLICT (provider, event_id) DO NOTHING")
      .reset()
      .bind(provider)
      .bind(event_id)
      .bind(now)
      .run();
  return db_.changes() > 0;
}

int64_t SqliteStore::purge_events(UnixMs before) {
  stmt("DELETE FROM provider_events WHERE received_at < ?").reset().bind(before).run();
  return db_.changes();
}

int64_t SqliteStore::purge_audit(UnixMs before) {
  stmt("DELETE FROM audit WHERE at < ?").reset().bind(before).run();
  return db_.changes();
}

}  // namespace tocsin::store::sqlite
