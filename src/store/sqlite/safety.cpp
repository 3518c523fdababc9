// Safety rules (incident groups, escalation timers, the safety timeline) and
// acknowledgements. Tables: incident_groups, escalations, safety_events,
// acknowledgements.
#include "store/sqlite/sqlite_store.h"

#include <algorithm>

namespace tocsin::store::sqlite {

std::optional<std::string> SqliteStore::last_sms_incident(int64_t subscriber_id, UnixMs since) {
  auto& s = stmt(
      "SELECT d.incident_id FROM deliveries d JOIN incidents i ON i.id = d.incident_id "
      "WHERE d.subscriber_id = ? AND d.channel = 0 AND i.last_report_at >= ? "
      "ORDER BY d.id DESC LIMIT 1");
  s.reset().bind(subscriber_id).bind(since);
  if (!s.step()) return std::nullopt;
  auto id = s.text(0);
  s.reset();
  return id;
}

bool SqliteStore::insert_ack(const Acknowledgement& a) {
  stmt("INSERT INTO acknowledgements (incident_id, subscriber_id, kind, received_at) "
       "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM acknowledgements WHERE "
       "incident_id = ?1 AND subscriber_id = ?2 AND kind = ?3 AND ?2 <> 0)")
      .reset()
      .bind(a.incident_id)
      .bind(a.subscriber_id)
      .bind(a.kind)
      .bind(a.received_at)
      .run();
  return db_.changes() > 0;
}

std::vector<Acknowledgement> SqliteStore::incident_acks(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT incident_id, subscriber_id, kind, received_at FROM acknowledgements "
      "WHERE incident_id = ? ORDER BY id");
  s.reset().bind(incident_id);
  return all_rows(s, [](Stmt& r) {
    return Acknowledgement{r.text(0), r.i64(1), r.text(2), r.i64(3)};
  });
}

std::vector<IncidentGroup> SqliteStore::incident_groups(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT incident_id, group_name, state, via, waiting, held_at, sent_at, covered_at FROM "
      "incident_groups WHERE incident_id = ? ORDER BY group_name");
  s.reset().bind(incident_id);
  std::vector<IncidentGroup> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6),
                   s.i64(7)});
  return out;
}

void SqliteStore::put_incident_group(const IncidentGroup& g) {
  stmt("INSERT OR REPLACE INTO incident_groups (incident_id, group_name, state, via, waiting, "
       "held_at, sent_at, covered_at) VALUES (?,?,?,?,?,?,?,?)")
      .reset()
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

std::vector<int64_t> SqliteStore::group_recipients(const std::string& incident_id,
                                      const std::string& group) {
  auto& s = stmt(
      "SELECT g.subscriber_id FROM subscriber_groups g WHERE g.group_name = ?2 AND EXISTS "
      "(SELECT 1 FROM deliveries d WHERE d.subscriber_id = g.subscriber_id AND d.incident_id = "
      "?1) ORDER BY g.subscriber_id");
  s.reset().bind(incident_id).bind(group);
  return all_rows(s, [](Stmt& r) { return r.i64(0); });
}

std::vector<std::string> SqliteStore::subscriber_languages(const std::vector<int64_t>& subscribers) {
  auto& s = stmt("SELECT language FROM subscribers WHERE id = ?");
  std::vector<std::string> out;
  for (int64_t id : subscribers) {
    s.reset().bind(id);
    if (s.step()) {
      auto lang = s.text(0);
      if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
    }
    s.reset();
  }
  return out;
}

void SqliteStore::insert_escalation(const std::string& incident_id, const std::string& group, UnixMs sent_at,
                       UnixMs due_at) {
  stmt("INSERT OR IGNORE INTO escalations (incident_id, group_name, sent_at, due_at) VALUES "
       "(?,?,?,?)")
      .reset()
      .bind(incident_id)
      .bind(group)
      .bind(sent_at)
      .bind(due_at)
      .run();
}

std::vector<EscalationTimer> SqliteStore::due_escalations(UnixMs now, int limit) {
  auto& s = stmt(
      "SELECT incident_id, group_name, due_at, sent_at FROM escalations WHERE state = 0 AND "
      "due_at <= ? ORDER BY due_at LIMIT ?");
  s.reset().bind(now).bind(limit);
  return all_rows(s, [](Stmt& r) {
    return EscalationTimer{r.text(0), r.text(1), r.i64(2), r.i64(3)};
  });
}

void SqliteStore::end_escalation(const std::string& incident_id, const std::string& group, TimerEnd how,
                    UnixMs now) {
  stmt("UPDATE escalations SET state = ?, ended_at = ? WHERE incident_id = ? AND group_name = ? "
       "AND state = 0")
      .reset()
      .bind(static_cast<int>(how))
      .bind(now)
      .bind(incident_id)
      .bind(group)
      .run();
}

std::vector<std::string> SqliteStore::cancel_escalations(const std::string& incident_id, UnixMs now) {
  auto& s = stmt(
      "SELECT group_name FROM escalations WHERE incident_id = ? AND state = 0 ORDER BY 1");
  s.reset().bind(incident_id);
  std::vector<std::string> groups;
  while (s.step()) groups.push_back(s.text(0));
  s.reset();
  stmt("UPDATE escalations SET state = 3, ended_at = ? WHERE incident_id = ? AND state = 0")
      .reset()
      .bind(now)
      .bind(incident_id)
      .run();
  return groups;
}

void SqliteStore::insert_safety_event(const std::string& incident_id, const SafetyEvent& e) {
  stmt("INSERT INTO safety_events (incident_id, at, what, group_name, detail, recipients) "
       "VALUES (?,?,?,?,?,?)")
      .reset()
      .bind(incident_id)
      .bind(e.at)
      .bind(e.what)
      .bind(e.group)
      .bind(e.detail)
      .bind(e.recipients)
      .run();
}

std::vector<SafetyEvent> SqliteStore::safety_events(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT at, what, group_name, detail, recipients FROM safety_events WHERE incident_id = ? "
      "ORDER BY id");
  s.reset().bind(incident_id);
  return all_rows(s, [](Stmt& r) {
    return SafetyEvent{r.i64(0), r.text(1), r.text(2), r.text(3), r.i64(4)};
  });
}

}  // namespace tocsin::store::sqlite
