// Idempotency answers, incidents (dedup candidates, lookups, counts), reports,
// the rendered texts and the audiences they are rendered for. Tables:
// idempotency, incidents, reports, messages (reads subscribers).
#include <algorithm>
#include <map>
#include <set>

#include "core/dedup.h"
#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

namespace {

#define COORDINATOR_OUTCOMES "('new_incident', 'merged', 'update', 'cancel')"

#define INCIDENT_COLUMNS                                                                \
  "id, event, area, lat, lon, location, dedup_key, severity, status, open, opened_at, " \
  "last_report_at, closed_at, report_count, spread_m"

// The dedup candidates' queries (dedup_candidates adds FOR UPDATE in a transaction).
#define AREA_ANY                                                         \
  "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND event = $1 " \
  "AND area = $2 AND last_report_at >= $3"
// A located report's candidates in one statement (one round trip): the
// unlocated incidents of its area, and the located ones within the radius's
// bounding box (incidents_open_area and incidents_open_place, OR-ed).
#define LOCATED                                                                               \
  "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND event = $1 AND "              \
  "last_report_at >= $2 AND ((area = $3 AND lat IS NULL) OR (lat IS NOT NULL AND lat BETWEEN " \
  "$4 AND $5 AND lon BETWEEN $6 AND $7))"

IncidentRecord read_incident(const Result& r, int i) {
  IncidentRecord rec;
  rec.id = r.text(i, 0);
  rec.event = r.text(i, 1);
  rec.area = r.text(i, 2);
  if (!r.is_null(i, 3)) rec.location = Location{r.f64(i, 3), r.f64(i, 4), r.text(i, 5)};
  rec.dedup_key = r.text(i, 6);
  rec.severity = static_cast<Severity>(r.i64(i, 7));
  rec.status = parse_report_status(r.text(i, 8)).value_or(ReportStatus::kActual);
  rec.open = r.i64(i, 9) != 0;
  rec.opened_at = r.i64(i, 10);
  rec.last_report_at = r.i64(i, 11);
  rec.closed_at = r.i64(i, 12);
  rec.report_count = r.i64(i, 13);
  rec.spread_m = r.f64(i, 14);
  return rec;
}

}  // namespace

std::optional<StoredAnswer> PgStore::find_answer(const std::string& coordinator,
                                                 const std::string& webhook_id) {
  // The same webhook-id at two instances at once: the second waits here
  // until the first commits (the lock lasts the transaction), then finds
  // its answer and replays it, so one report is made and both get the
  // same answer. The unique key in save_answer backs this up.
  db_.xact_lock(lock_key("answer\n" + coordinator + "\n" + webhook_id));
  auto r = q("SELECT status, answer FROM idempotency WHERE coordinator = $1 AND webhook_id = $2")
               .bind(coordinator)
               .bind(webhook_id)
               .rows();
  if (!r.rows()) return std::nullopt;
  return StoredAnswer{static_cast<int>(r.i64(0, 0)), r.text(0, 1)};
}

void PgStore::save_answer(const std::string& coordinator, const std::string& webhook_id,
                          const StoredAnswer& answer, UnixMs now) {
  q("INSERT INTO idempotency (coordinator, webhook_id, status, answer, created_at) "
    "VALUES ($1, $2, $3, $4, $5)")
      .bind(coordinator)
      .bind(webhook_id)
      .bind(answer.status)
      .bind(answer.body)
      .bind(now)
      .send();
}

std::vector<IncidentRecord> PgStore::dedup_candidates(const Report& report, double radius_m,
                                                      UnixMs since) {
  // Read, decide, insert must not interleave with another instance doing
  // the same for a report that could join the same incident, or two
  // reports of one event would open two incidents. The lock is on the
  // event: every candidate below has the report's event (or its
  // dedup_key, locked first when there is one: always in that order, so
  // two reports never wait for each other). A lock per area or grid cell
  // would let more through at once, but a report's radius crosses cells
  // and areas, and locking several cells is where deadlocks start;
  // reports of one event are few per second, so one lock is enough.
  if (!report.dedup_key.empty()) db_.xact_lock(lock_key("dedup key\n" + report.dedup_key));
  db_.xact_lock(lock_key("dedup event\n" + report.event));
  // The candidates' rows are locked too: an update or cancel of one of
  // them (which takes no dedup lock) waits for this transaction, and this
  // one reads what such a change committed, so neither loses the other's
  // report count.
  const bool lock = lock_reads();
  std::vector<IncidentRecord> out;
  std::set<std::string> seen;
  auto collect = [&](const Result& r) {
    for (int i = 0; i < r.rows(); ++i)
      if (seen.insert(r.text(i, 0)).second) out.push_back(read_incident(r, i));
  };
  if (!report.dedup_key.empty())
    collect(q(lock ? "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                     "dedup_key = $1 AND dedup_key <> '' AND last_report_at >= $2 FOR UPDATE"
                   : "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                     "dedup_key = $1 AND dedup_key <> '' AND last_report_at >= $2")
                .bind(report.dedup_key)
                .bind(since)
                .rows());
  // Same area: all of them for an unlocated report; for a located one the
  // unlocated ones of its area (two located places are compared by
  // distance only) and the located ones within the radius's bounding box.
  if (!report.location) {
    collect(q(lock ? AREA_ANY " FOR UPDATE" : AREA_ANY)
                .bind(report.event)
                .bind(report.area)
                .bind(since)
                .rows());
    return out;
  }
  GeoBox box = bounding_box(*report.location, radius_m);
  collect(q(lock ? LOCATED " FOR UPDATE" : LOCATED)
              .bind(report.event)
              .bind(since)
              .bind(report.area)
              .bind(box.lat_min)
              .bind(box.lat_max)
              .bind(box.lon_min)
              .bind(box.lon_max)
              .rows());
  return out;
}

std::optional<IncidentRecord> PgStore::incident(const std::string& id) {
  // In a transaction the row is locked until it ends: an update or cancel
  // reads, changes and writes the incident, and must not interleave with
  // another instance's change of it (see dedup_candidates).
  auto r = q(lock_reads() ? "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE id = $1 FOR UPDATE"
                          : "SELECT " INCIDENT_COLUMNS " FROM incidents WHERE id = $1")
               .bind(id)
               .rows();
  if (!r.rows()) return std::nullopt;
  return read_incident(r, 0);
}

bool PgStore::insert_incident(const IncidentRecord& i) {
  // The id is the key: a taken one (another instance's) inserts nothing.
  auto query = q("INSERT INTO incidents (id, event, area, lat, lon, location, dedup_key, "
                 "severity, status, open, opened_at, last_report_at, closed_at, report_count) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
                 "ON CONFLICT (id) DO NOTHING");
  query.bind(i.id).bind(i.event).bind(i.area);
  if (i.location) query.bind(i.location->lat).bind(i.location->lon).bind(i.location->description);
  else query.bind_null().bind_null().bind("");
  return query.bind(i.dedup_key)
             .bind(static_cast<int>(i.severity))
             .bind(to_string(i.status))
             .bind(i.open ? 1 : 0)
             .bind(i.opened_at)
             .bind(i.last_report_at)
             .bind(i.closed_at)
             .bind(i.report_count)
             .run() > 0;
}

void PgStore::update_incident(const IncidentRecord& i) {
  q("UPDATE incidents SET severity = $1, open = $2, last_report_at = $3, closed_at = $4, "
    "report_count = $5, spread_m = $6 WHERE id = $7")
      .bind(static_cast<int>(i.severity))
      .bind(i.open ? 1 : 0)
      .bind(i.last_report_at)
      .bind(i.closed_at)
      .bind(i.report_count)
      .bind(i.spread_m)
      .bind(i.id)
      .send();
}

std::vector<IncidentRecord> PgStore::list_incidents(bool open_only, int limit) {
  auto r = q("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE ($1 = 0 OR open = 1) "
             "ORDER BY opened_at DESC LIMIT $2")
               .bind(open_only ? 1 : 0)
               .bind(limit)
               .rows();
  std::vector<IncidentRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_incident(r, i));
  return out;
}

std::vector<ReportSummary> PgStore::incident_reports(const std::string& id) {
  auto r = q("SELECT id, coordinator, msg_type, outcome, severity, received_at, recipients "
             "FROM reports WHERE incident_id = $1 AND outcome IN " COORDINATOR_OUTCOMES
             " ORDER BY id")
               .bind(id)
               .rows();
  std::vector<ReportSummary> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.i64(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                   r.i64(i, 5), r.i64(i, 6)});
  return out;
}

std::vector<DeliveryCount> PgStore::incident_delivery_counts(const std::string& id) {
  // Live rows plus the counts of rows deleted by retention.
  auto r = q("SELECT channel, state, sum(n) FROM (SELECT channel, state, count(*) AS n FROM "
             "deliveries WHERE incident_id = $1 GROUP BY channel, state UNION ALL SELECT "
             "channel, state, n FROM delivery_totals WHERE incident_id = $1) AS t "
             "GROUP BY channel, state ORDER BY channel, state")
               .bind(id)
               .rows();
  std::vector<DeliveryCount> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({static_cast<Channel>(r.i64(i, 0)), static_cast<DeliveryState>(r.i64(i, 1)),
                   r.i64(i, 2)});
  return out;
}

std::vector<std::pair<std::string, DeliveryCount>> PgStore::incident_gateway_counts(
    const std::string& id) {
  auto r = q("SELECT gateway, channel, state, sum(n) FROM (SELECT gateway, channel, state, "
             "count(*) AS n FROM deliveries WHERE incident_id = $1 GROUP BY gateway, channel, "
             "state UNION ALL SELECT gateway, channel, state, n FROM delivery_totals WHERE "
             "incident_id = $1) AS t GROUP BY gateway, channel, state "
             "ORDER BY gateway, channel, state")
               .bind(id)
               .rows();
  std::vector<std::pair<std::string, DeliveryCount>> out;
  for (int i = 0; i < r.rows(); ++i)
    out.emplace_back(r.text(i, 0),
                     DeliveryCount{static_cast<Channel>(r.i64(i, 1)),
                                   static_cast<DeliveryState>(r.i64(i, 2)), r.i64(i, 3)});
  return out;
}

int64_t PgStore::insert_report(const ReportRecord& rec) {
  const Report& rep = *rec.report;
  auto r = q("INSERT INTO reports (incident_id, coordinator, webhook_id, msg_type, outcome, "
             "status, event, severity, area, body, received_at, recipients, certainty, person) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id")
               .bind(rec.incident_id)
               .bind(rec.coordinator)
               .bind(rec.webhook_id)
               .bind(to_string(rep.msg_type))
               .bind(rec.outcome)
               .bind(to_string(rep.status))
               .bind(rep.event)
               .bind(to_string(rep.severity))
               .bind(rep.area)
               .bind(rec.raw_json)
               .bind(rec.received_at)
               .bind(rec.recipients)
               .bind(static_cast<int>(rep.certainty))
               .bind(rec.person)
               .rows();
  return r.i64(0, 0);
}

void PgStore::set_report_recipients(int64_t report_id, int64_t recipients) {
  q("UPDATE reports SET recipients = $1 WHERE id = $2").bind(recipients).bind(report_id).send();
}

std::vector<std::string> PgStore::group_languages(const std::vector<std::string>& groups,
                                                  Channel channel) {
  std::vector<std::string> out;
  for (const auto& g : groups) {
    auto r = q("SELECT DISTINCT s.language FROM subscriber_groups g JOIN subscribers s ON "
               "s.id = g.subscriber_id WHERE g.group_name = $1 AND " PG_REACHABLE_ON("$2"))
                 .bind(g)
                 .bind(static_cast<int>(channel))
                 .rows();
    for (int i = 0; i < r.rows(); ++i) {
      auto lang = r.text(i, 0);
      if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
    }
  }
  return out;
}

std::vector<std::pair<std::string, int64_t>> PgStore::group_audience(
    const std::vector<std::string>& groups, Channel channel) {
  std::map<std::string, int64_t> by_language;
  std::set<int64_t> seen;
  for (const auto& g : groups) {
    auto r = q("SELECT s.id, s.language FROM subscriber_groups g JOIN subscribers s ON s.id = "
               "g.subscriber_id WHERE g.group_name = $1 AND " PG_REACHABLE_ON("$2"))
                 .bind(g)
                 .bind(static_cast<int>(channel))
                 .rows();
    for (int i = 0; i < r.rows(); ++i)
      if (seen.insert(r.i64(i, 0)).second) ++by_language[r.text(i, 1)];
  }
  return {by_language.begin(), by_language.end()};
}

std::vector<std::string> PgStore::recipient_languages(const std::string& incident_id,
                                                      Channel channel) {
  auto r = q("SELECT DISTINCT s.language FROM deliveries d JOIN subscribers s ON s.id = "
             "d.subscriber_id WHERE d.incident_id = $1 AND d.channel = $2 AND " PG_REACHABLE_ON("$2"))
               .bind(incident_id)
               .bind(static_cast<int>(channel))
               .rows();
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

FollowupReach PgStore::followup_reach(const std::string& incident_id) {
  auto r = q("SELECT DISTINCT d.channel, s.id FROM deliveries d JOIN subscribers s ON s.id = "
             "d.subscriber_id WHERE d.incident_id = $1 AND " PG_REACHABLE_ON("d.channel"))
               .bind(incident_id)
               .rows();
  std::map<int, int64_t> by_channel;
  std::set<int64_t> people;
  for (int i = 0; i < r.rows(); ++i) {
    ++by_channel[static_cast<int>(r.i64(i, 0))];
    people.insert(r.i64(i, 1));
  }
  FollowupReach out;
  out.people = static_cast<int64_t>(people.size());
  for (const auto& [ch, n] : by_channel) out.by_channel.emplace_back(static_cast<Channel>(ch), n);
  return out;
}

void PgStore::insert_message(int64_t report_id, Channel channel, const std::string& language,
                             const std::string& subject, const std::string& body) {
  q("INSERT INTO messages (report_id, channel, language, subject, body) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (report_id, channel, language) "
    "DO UPDATE SET subject = excluded.subject, body = excluded.body")
      .bind(report_id)
      .bind(static_cast<int>(channel))
      .bind(language)
      .bind(subject)
      .bind(body)
      .send();
}

std::vector<ReportEvidence> PgStore::incident_evidence(const std::string& incident_id) {
  auto r = q("SELECT coordinator, person, certainty FROM reports WHERE incident_id = $1 AND "
             "outcome IN ('new_incident', 'merged', 'update') ORDER BY id")
               .bind(incident_id)
               .rows();
  std::vector<ReportEvidence> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), r.text(i, 1),
                   static_cast<Certainty>(std::clamp<int64_t>(r.i64(i, 2), 0, 4))});
  return out;
}

std::string PgStore::latest_report_body(const std::string& incident_id) {
  auto r = q("SELECT body FROM reports WHERE incident_id = $1 AND outcome IN ('new_incident', "
             "'merged', 'update') ORDER BY id DESC LIMIT 1")
               .bind(incident_id)
               .rows();
  return r.rows() ? r.text(0, 0) : std::string();
}

}  // namespace tocsin::store::postgresql
