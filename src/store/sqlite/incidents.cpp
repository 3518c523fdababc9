// Idempotency answers, incidents (dedup candidates, lookups, counts), reports,
// the rendered texts and the audiences they are rendered for. Tables:
// idempotency, incidents, reports, messages (reads subscribers).
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/dedup.h"

namespace tocsin::store::sqlite {

namespace {

// Outcomes of the reports a coordinator sent (the others are rows tocsin
// adds to carry the texts of a release, an escalation or a "covered").
#define COORDINATOR_OUTCOMES "('new_incident', 'merged', 'update', 'cancel')"

// The 0.01-degree (1.1 km) band of latitude an incident's place lies in, as
// the incidents_open_place index has it (the expression must match verbatim).
#define LAT_BAND "CAST((lat + 90) * 100 AS INTEGER)"

#define INCIDENT_COLUMNS                                                                \
  "id, event, area, lat, lon, location, dedup_key, severity, status, open, opened_at, " \
  "last_report_at, closed_at, report_count, spread_m"

IncidentRecord read_incident(Stmt& s) {
  IncidentRecord i;
  i.id = s.text(0);
  i.event = s.text(1);
  i.area = s.text(2);
  if (!s.is_null(3)) i.location = Location{s.f64(3), s.f64(4), s.text(5)};
  i.dedup_key = s.text(6);
  i.severity = static_cast<Severity>(s.i64(7));
  i.status = parse_report_status(s.text(8)).value_or(ReportStatus::kActual);
  i.open = s.i64(9) != 0;
  i.opened_at = s.i64(10);
  i.last_report_at = s.i64(11);
  i.closed_at = s.i64(12);
  i.report_count = s.i64(13);
  i.spread_m = s.f64(14);
  return i;
}

}  // namespace

std::optional<StoredAnswer> SqliteStore::find_answer(const std::string& coordinator,
                                        const std::string& webhook_id) {
  auto& s = stmt("SELECT status, answer FROM idempotency WHERE coordinator=? AND webhook_id=?");
  s.reset().bind(coordinator).bind(webhook_id);
  if (!s.step()) return std::nullopt;
  return StoredAnswer{static_cast<int>(s.i64(0)), s.text(1)};
}

void SqliteStore::save_answer(const std::string& coordinator, const std::string& webhook_id,
                 const StoredAnswer& answer, UnixMs now) {
  stmt("INSERT INTO idempotency (coordinator, webhook_id, status, answer, created_at) "
       "VALUES (?,?,?,?,?)")
      .reset()
      .bind(coordinator)
      .bind(webhook_id)
      .bind(answer.status)
      .bind(answer.body)
      .bind(now)
      .run();
}

std::vector<IncidentRecord> SqliteStore::dedup_candidates(const Report& report, double radius_m,
                                             UnixMs since) {
  std::vector<IncidentRecord> out;
  std::set<std::string> seen;
  auto collect = [&](Stmt& s) {
    while (s.step())
      if (seen.insert(s.text(0)).second) out.push_back(read_incident(s));
  };
  if (!report.dedup_key.empty()) {
    auto& s = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                   "dedup_key = ?1 AND dedup_key <> '' AND last_report_at >= ?2");
    s.reset().bind(report.dedup_key).bind(since);
    collect(s);
  }
  // Same area: all of them for an unlocated report, the unlocated ones for
  // a located report (two located places are compared by distance only).
  auto& area = report.location
                   ? stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                          "event = ?1 AND area = ?2 AND lat IS NULL AND last_report_at >= ?3")
                   : stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                          "event = ?1 AND area = ?2 AND last_report_at >= ?3");
  area.reset().bind(report.event).bind(report.area).bind(since);
  collect(area);
  if (!report.location) return out;
  // Within the radius: each latitude band the box touches, by longitude
  // range. No band of slack is needed (each costs a query per report): the
  // band below is the index's expression computed the same way, IEEE
  // double add and multiply then truncation, as SQLite does (OP_Add,
  // OP_Multiply, CAST AS INTEGER), and it never decreases as the latitude
  // grows, so an incident between lat_min and lat_max lies in a band
  // between theirs. The property test in ingest_store_test checks it on
  // band edges.
  GeoBox box = bounding_box(*report.location, radius_m);
  auto band = [](double lat) { return static_cast<int64_t>((lat + 90) * 100); };
  auto& place = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                     "lat IS NOT NULL AND event = ?1 AND " LAT_BAND " = ?2 AND lon BETWEEN ?3 "
                     "AND ?4 AND lat BETWEEN ?5 AND ?6 AND last_report_at >= ?7");
  for (int64_t b = band(box.lat_min); b <= band(box.lat_max); ++b) {
    place.reset()
        .bind(report.event)
        .bind(b)
        .bind(box.lon_min)
        .bind(box.lon_max)
        .bind(box.lat_min)
        .bind(box.lat_max)
        .bind(since);
    collect(place);
  }
  return out;
}

std::optional<IncidentRecord> SqliteStore::incident(const std::string& id) {
  auto& s = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE id = ?");
  s.reset().bind(id);
  if (!s.step()) return std::nullopt;
  return read_incident(s);
}

bool SqliteStore::insert_incident(const IncidentRecord& i) {
  if (incident(i.id)) return false;
  auto& s = stmt(
      "INSERT INTO incidents (id, event, area, lat, lon, location, dedup_key, severity, status, "
      "open, opened_at, last_report_at, closed_at, report_count) "
      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.reset().bind(i.id).bind(i.event).bind(i.area);
  if (i.location) s.bind(i.location->lat).bind(i.location->lon).bind(i.location->description);
  else s.bind_null().bind_null().bind("");
  s.bind(i.dedup_key)
      .bind(static_cast<int>(i.severity))
      .bind(to_string(i.status))
      .bind(i.open ? 1 : 0)
      .bind(i.opened_at)
      .bind(i.last_report_at)
      .bind(i.closed_at)
      .bind(i.report_count)
      .run();
  return true;
}

void SqliteStore::update_incident(const IncidentRecord& i) {
  // An incident that stays open (every merged report, every update) keeps
  // open = 1 and closed_at = 0: leaving them out of SET spares SQLite the
  // indexes that only depend on them (the place index, whose WHERE names
  // `open`): a tenth of a merged report's store work. When the row is not
  // open (a reopen) nothing matches, and the full update below runs.
  if (i.open && i.closed_at == 0) {
    stmt("UPDATE incidents SET severity=?, last_report_at=?, report_count=?, spread_m=? "
         "WHERE id=? AND open = 1 AND closed_at = 0")
        .reset()
        .bind(static_cast<int>(i.severity))
        .bind(i.last_report_at)
        .bind(i.report_count)
        .bind(i.spread_m)
        .bind(i.id)
        .run();
    if (db_.changes() > 0) return;
  }
  stmt("UPDATE incidents SET severity=?, open=?, last_report_at=?, closed_at=?, report_count=?, "
       "spread_m=? WHERE id=?")
      .reset()
      .bind(static_cast<int>(i.severity))
      .bind(i.open ? 1 : 0)
      .bind(i.last_report_at)
      .bind(i.closed_at)
      .bind(i.report_count)
      .bind(i.spread_m)
      .bind(i.id)
      .run();
}

std::vector<IncidentRecord> SqliteStore::list_incidents(bool open_only, int limit) {
  auto& s = stmt("SELECT " INCIDENT_COLUMNS
                 " FROM incidents WHERE (?1 = 0 OR open = 1) ORDER BY opened_at DESC LIMIT ?2");
  s.reset().bind(open_only ? 1 : 0).bind(limit);
  return all_rows(s, read_incident);
}

std::vector<ReportSummary> SqliteStore::incident_reports(const std::string& id) {
  auto& s = stmt(
      "SELECT id, coordinator, msg_type, outcome, severity, received_at, recipients FROM reports "
      "WHERE incident_id = ? AND outcome IN " COORDINATOR_OUTCOMES " ORDER BY id");
  s.reset().bind(id);
  std::vector<ReportSummary> out;
  while (s.step())
    out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
  return out;
}

std::vector<DeliveryCount> SqliteStore::incident_delivery_counts(const std::string& id) {
  // Live rows plus the counts of rows deleted by retention.
  auto& s = stmt(
      "SELECT channel, state, sum(n) FROM (SELECT channel, state, count(*) AS n FROM deliveries "
      "WHERE incident_id = ?1 GROUP BY channel, state UNION ALL SELECT channel, state, n FROM "
      "delivery_totals WHERE incident_id = ?1) GROUP BY channel, state ORDER BY channel, state");
  s.reset().bind(id);
  std::vector<DeliveryCount> out;
  while (s.step())
    out.push_back({static_cast<Channel>(s.i64(0)), static_cast<DeliveryState>(s.i64(1)),
                   s.i64(2)});
  return out;
}

std::vector<std::pair<std::string, DeliveryCount>> SqliteStore::incident_gateway_counts(
    const std::string& id) {
  auto& s = stmt(
      "SELECT gateway, channel, state, sum(n) FROM (SELECT gateway, channel, state, count(*) AS n "
      "FROM deliveries WHERE incident_id = ?1 GROUP BY gateway, channel, state UNION ALL SELECT "
      "gateway, channel, state, n FROM delivery_totals WHERE incident_id = ?1) "
      "GROUP BY gateway, channel, state ORDER BY gateway, channel, state");
  s.reset().bind(id);
  std::vector<std::pair<std::string, DeliveryCount>> out;
  while (s.step())
    out.emplace_back(s.text(0), DeliveryCount{static_cast<Channel>(s.i64(1)),
                                              static_cast<DeliveryState>(s.i64(2)), s.i64(3)});
  return out;
}

int64_t SqliteStore::insert_report(const ReportRecord& r) {
  const Report& rep = *r.report;
  stmt("INSERT INTO reports (incident_id, coordinator, webhook_id, msg_type, outcome, status, "
       "event, severity, area, body, received_at, recipients, certainty, person) "
       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
      .reset()
      .bind(r.incident_id)
      .bind(r.coordinator)
      .bind(r.webhook_id)
      .bind(to_string(rep.msg_type))
      .bind(r.outcome)
      .bind(to_string(rep.status))
      .bind(rep.event)
      .bind(to_string(rep.severity))
      .bind(rep.area)
      .bind(r.raw_json)
      .bind(r.received_at)
      .bind(r.recipients)
      .bind(static_cast<int>(rep.certainty))
      .bind(r.person)
      .run();
  return db_.last_insert_id();
}

void SqliteStore::set_report_recipients(int64_t report_id, int64_t recipients) {
  stmt("UPDATE reports SET recipients = ? WHERE id = ?").reset().bind(recipients).bind(report_id).run();
}

std::vector<std::string> SqliteStore::group_languages(const std::vector<std::string>& groups,
                                         Channel channel) {
  std::vector<std::string> out;
  auto& s = stmt(
      "SELECT DISTINCT s.language FROM subscriber_groups g JOIN subscribers s ON s.id = "
      "g.subscriber_id WHERE g.group_name = ?1 AND " REACHABLE_ON("?2"));
  for (const auto& g : groups) {
    s.reset().bind(g).bind(static_cast<int>(channel));
    while (s.step()) {
      auto lang = s.text(0);
      if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
    }
  }
  return out;
}

std::vector<std::pair<std::string, int64_t>> SqliteStore::group_audience(const std::vector<std::string>& groups,
                                                            Channel channel) {
  // Subscribers in several of the groups count once: a temporary set of ids.
  std::map<std::string, int64_t> by_language;
  std::set<int64_t> seen;
  auto& s = stmt(
      "SELECT s.id, s.language FROM subscriber_groups g JOIN subscribers s ON s.id = "
      "g.subscriber_id WHERE g.group_name = ?1 AND " REACHABLE_ON("?2"));
  for (const auto& g : groups) {
    s.reset().bind(g).bind(static_cast<int>(channel));
    while (s.step())
      if (seen.insert(s.i64(0)).second) ++by_language[s.text(1)];
  }
  return {by_language.begin(), by_language.end()};
}

std::vector<std::string> SqliteStore::recipient_languages(const std::string& incident_id,
                                             Channel channel) {
  auto& s = stmt(
      "SELECT DISTINCT s.language FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
      "WHERE d.incident_id = ?1 AND d.channel = ?2 AND " REACHABLE_ON("?2"));
  s.reset().bind(incident_id).bind(static_cast<int>(channel));
  return all_rows(s, [](Stmt& r) { return r.text(0); });
}

FollowupReach SqliteStore::followup_reach(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT DISTINCT d.channel, s.id FROM deliveries d JOIN subscribers s ON s.id = "
      "d.subscriber_id WHERE d.incident_id = ?1 AND " REACHABLE_ON("d.channel"));
  s.reset().bind(incident_id);
  std::map<int, int64_t> by_channel;
  std::set<int64_t> people;
  while (s.step()) {
    ++by_channel[static_cast<int>(s.i64(0))];
    people.insert(s.i64(1));
  }
  FollowupReach out;
  out.people = static_cast<int64_t>(people.size());
  for (const auto& [ch, n] : by_channel) out.by_channel.emplace_back(static_cast<Channel>(ch), n);
  return out;
}

void SqliteStore::insert_message(int64_t report_id, Channel channel, const std::string& language,
                    const std::string& subject, const std::string& body) {
  stmt("INSERT OR REPLACE INTO messages (report_id, channel, language, subject, body) "
       "VALUES (?,?,?,?,?)")
      .reset()
      .bind(report_id)
      .bind(static_cast<int>(channel))
      .bind(language)
      .bind(subject)
      .bind(body)
      .run();
}

std::vector<ReportEvidence> SqliteStore::incident_evidence(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT coordinator, person, certainty FROM reports WHERE incident_id = ? AND outcome IN "
      "('new_incident', 'merged', 'update') ORDER BY id");
  s.reset().bind(incident_id);
  std::vector<ReportEvidence> out;
  while (s.step())
    out.push_back(
        {s.text(0), s.text(1), static_cast<Certainty>(std::clamp<int64_t>(s.i64(2), 0, 4))});
  return out;
}

std::string SqliteStore::latest_report_body(const std::string& incident_id) {
  auto& s = stmt(
      "SELECT body FROM reports WHERE incident_id = ? AND outcome IN ('new_incident', 'merged', "
      "'update') ORDER BY id DESC LIMIT 1");
  s.reset().bind(incident_id);
  std::string body = s.step() ? s.text(0) : std::string();
  s.reset();
  return body;
}

}  // namespace tocsin::store::sqlite
