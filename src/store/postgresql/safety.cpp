// Safety rules (incident groups, escalation timers, the safety timeline) and
// acknowledgements. Tables: incident_groups, escalations, safety_events,
// acknowledgements.
#include <algorithm>

#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

std::optional<std::string> PgStore::last_sms_incident(int64_t subscriber_id, UnixMs since) {
  auto r = q("SELECT d.incident_id FROM deliveries d JOIN incidents i ON i.id = d.incident_id "
             "WHERE d.subscriber_id = $1 AND d.channel = 0 AND i.last_report_at >= $2 "
             "ORDER BY d.id DESC LIMIT 1")
               .bind(subscriber_id)
               .bind(since)
               .rows();
  if (!r.rows()) return std::nullopt;
  return r.text(0, 0);
}

bool PgStore::insert_ack(const Acknowledgement& a) {
  // Once per (incident, person, kind): acknowledgements_once, which an
  // erased person (subscriber 0) is outside of.
  return q("INSERT INTO acknowledgements (incident_id, subscriber_id, kind, received_at) "
           "VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, subscriber_id, kind) "
           "WHERE subscriber_id <> 0 DO NOTHING")
             .bind(a.incident_id)
             .bind(a.subscriber_id)
             .bind(a.kind)
             .bind(a.received_at)
             .run() > 0;
}

std::vector<Acknowledgement> PgStore::incident_acks(const std::string& incident_id) {
  auto r = q("SELECT incident_id, subscriber_id, kind, received_at FROM acknowledgements "
             "WHERE incident_id = $1 ORDER BY id")
               .bind(incident_id)
               .rows();
  std::vector<Acknowledgement> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(Acknowledgement{r.text(i, 0), r.i64(i, 1), r.text(i, 2), r.i64(i, 3)});
  return out;
}

std::vector<IncidentGroup> PgStore::incident_groups(const std::string& incident_id) {
  auto r = q("SELECT incident_id, group_name, state, via, waiting, held_at, sent_at, covered_at "
             "FROM incident_groups WHERE incident_id = $1 ORDER BY group_name COLLATE \"C\"")
               .bind(incident_id)
               .rows();
  std::vector<IncidentGroup> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                   r.i64(i, 5), r.i64(i, 6), r.i64(i, 7)});
  return out;
}

void PgStore::put_incident_group(const IncidentGroup& g) {
  q("INSERT INTO incident_groups (incident_id, group_name, state, via, waiting, held_at, "
    "sent_at, covered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (incident_id, group_name) DO UPDATE SET state = excluded.state, "
    "via = excluded.via, waiting = excluded.waiting, held_at = excluded.held_at, "
    "sent_at = excluded.sent_at, covered_at = excluded.covered_at")
      .bind(g.incident_id)
      .bind(g.group)
      .bind(g.state)
      .bind(g.via)
      .bind(g.waiting)
      .bind(g.held_at)
      .bind(g.sent_at)
      .bind(g.covered_at)
      .run();
}

std::vector<int64_t> PgStore::group_recipients(const std::string& incident_id,
                                               const std::string& group) {
  auto r = q("SELECT g.subscriber_id FROM subscriber_groups g WHERE g.group_name = $2 AND "
             "EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = g.subscriber_id AND "
             "d.incident_id = $1) ORDER BY g.subscriber_id")
               .bind(incident_id)
               .bind(group)
               .rows();
  std::vector<int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.i64(i, 0));
  return out;
}

std::vector<std::string> PgStore::subscriber_languages(const std::vector<int64_t>& subscribers) {
  std::vector<std::string> out;
  for (int64_t id : subscribers) {
    auto r = q("SELECT language FROM subscribers WHERE id = $1").bind(id).rows();
    if (!r.rows()) continue;
    auto lang = r.text(0, 0);
    if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
  }
  return out;
}

void PgStore::insert_escalation(const std::string& incident_id, const std::string& group,
                                UnixMs sent_at, UnixMs due_at) {
  q("INSERT INTO escalations (incident_id, group_name, sent_at, due_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (incident_id, group_name) DO NOTHING")
      .bind(incident_id)
      .bind(group)
      .bind(sent_at)
      .bind(due_at)
      .run();
}

std::vector<EscalationTimer> PgStore::due_escalations(UnixMs now, int limit) {
  // In a transaction the timers read are locked until it ends, and another
  // instance's read passes them by: two leaders for a moment (one's
  // heartbeat ran out while it still worked) never fire one timer twice,
  // since the firing job ends the timer in the same transaction.
  auto r = q(lock_reads() ? "SELECT incident_id, group_name, due_at, sent_at FROM escalations "
                            "WHERE state = 0 AND due_at <= $1 ORDER BY due_at LIMIT $2 "
                            "FOR UPDATE SKIP LOCKED"
                          : "SELECT incident_id, group_name, due_at, sent_at FROM escalations "
                            "WHERE state = 0 AND due_at <= $1 ORDER BY due_at LIMIT $2")
               .bind(now)
               .bind(limit)
               .rows();
  std::vector<EscalationTimer> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(EscalationTimer{r.text(i, 0), r.text(i, 1), r.i64(i, 2), r.i64(i, 3)});
  return out;
}

void PgStore::end_escalation(const std::string& incident_id, const std::string& group,
                             TimerEnd how, UnixMs now) {
  q("UPDATE escalations SET state = $1, ended_at = $2 WHERE incident_id = $3 AND "
    "group_name = $4 AND state = 0")
      .bind(static_cast<int>(how))
      .bind(now)
      .bind(incident_id)
      .bind(group)
      .run();
}

std::vector<std::string> PgStore::cancel_escalations(const std::string& incident_id, UnixMs now) {
  // One statement: the groups it ended are the ones it returns, whatever
  // another instance does meanwhile.
  auto r = q("UPDATE escalations SET state = 3, ended_at = $1 WHERE incident_id = $2 AND "
             "state = 0 RETURNING group_name")
               .bind(now)
               .bind(incident_id)
               .rows();
  std::vector<std::string> groups;
  for (int i = 0; i < r.rows(); ++i) groups.push_back(r.text(i, 0));
  std::sort(groups.begin(), groups.end());
  return groups;
}

void PgStore::insert_safety_event(const std::string& incident_id, const SafetyEvent& e) {
  q("INSERT INTO safety_events (incident_id, at, what, group_name, detail, recipients) "
    "VALUES ($1, $2, $3, $4, $5, $6)")
      .bind(incident_id)
      .bind(e.at)
      .bind(e.what)
      .bind(e.group)
      .bind(e.detail)
      .bind(e.recipients)
      .run();
}

std::vector<SafetyEvent> PgStore::safety_events(const std::string& incident_id) {
  auto r = q("SELECT at, what, group_name, detail, recipients FROM safety_events WHERE "
             "incident_id = $1 ORDER BY id")
               .bind(incident_id)
               .rows();
  std::vector<SafetyEvent> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(SafetyEvent{r.i64(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.i64(i, 4)});
  return out;
}

}  // namespace tocsin::store::postgresql
