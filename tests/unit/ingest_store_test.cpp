// Ingest and the delivery queue against a real SQLite store in memory: no
// sockets, no clock.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "app/ingest.h"
#include "app/route.h"
#include "core/dedup.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/daemon.h"
#include "support/keys.h"

using namespace tocsin;
using namespace tocsin::app;
using nlohmann::json;

namespace {

Config test_config() {
  auto r = parse_config(R"({
    "storage": {"key_file": ")" + test::shared_key_file() + R"("},
    "coordinators": [{"name": "c1", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]},
                     {"name": "c2", "secret": "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "areas": ["sf"]}],
    "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"},
                 {"name": "m", "type": "file", "channel": "email", "path": "/dev/null"}],
    "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms", "email"]},
               {"name": "all", "match": {"areas": ["la"]}, "channels": ["sms"]}]
  })", "");
  REQUIRE(r.ok());
  return r.config;
}

Report report(MsgType type, std::string area, std::string references = "") {
  Report r;
  r.msg_type = type;
  r.event = "enforcement_activity";
  r.severity = Severity::kSevere;
  r.area = std::move(area);
  r.headline = {{"en", "Headline"}, {"es", "Titular"}};
  r.references = std::move(references);
  return r;
}

struct Fixture {
  std::unique_ptr<store::Store> store = store::open_sqlite_store(":memory:", store::Keyring::generate());
  Config config = test_config();
  MessageTemplates templates = with_defaults(config.templates);
  std::mt19937_64 rng{1};

  IngestResult ingest(const Report& r, const std::string& id, UnixMs now, std::string coord = "c1") {
    store->begin();
    auto res = ingest_report(*store, config, templates, {coord, id, r, "{}", now}, rng);
    store->commit();
    return res;
  }
  int64_t subscribe(std::string phone, std::string email, std::string lang,
                    std::vector<std::string> groups) {
    store::Subscriber s;
    s.phone = std::move(phone);
    s.email = std::move(email);
    s.language = std::move(lang);
    s.groups = std::move(groups);
    if (!s.phone.empty()) s.channels.push_back(Channel::kSms);
    if (!s.email.empty()) s.channels.push_back(Channel::kEmail);
    return store->insert_subscriber(s, 0);
  }
};

}  // namespace

TEST_CASE("a new alert plans one delivery per reachable recipient and channel", "[ingest]") {
  Fixture f;
  f.subscribe("+12135550001", "a@example.org", "en", {"east"});
  f.subscribe("+12135550002", "", "es-MX", {"east", "all"});  // in two groups: still one SMS
  f.subscribe("", "c@example.org", "en", {"all"});            // "all" has no email channel
  auto r = f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  CHECK(r.status == 202);
  CHECK(r.outcome == "new_incident");
  CHECK(r.recipients == 3);  // 2 SMS + 1 email
  auto body = json::parse(r.body);
  CHECK(body["incident_id"] == r.incident_id);
  CHECK(body["recipients"] == 3);

  auto claim = f.store->claim_due(Channel::kSms, 100, 1000, 999999);
  REQUIRE(claim.claimed.size() == 2);
  for (const auto& d : claim.claimed) {
    if (d.language == "es-MX") CHECK(d.body->find("Titular") != std::string::npos);
    else CHECK(d.body->find("Headline") != std::string::npos);
  }
  // Leased: not claimable again until the lease ends.
  CHECK(f.store->claim_due(Channel::kSms, 100, 1000, 999999).claimed.empty());
  CHECK(f.store->release_all_leases() == 2);
  CHECK(f.store->claim_due(Channel::kSms, 100, 1000, 999999).claimed.size() == 2);
}

TEST_CASE("a repeated webhook-id replays the first answer and plans nothing", "[ingest]") {
  Fixture f;
  f.subscribe("+12135550001", "", "en", {"east"});
  auto first = f.ingest(report(MsgType::kAlert, "la/east-la"), "same", 1000);
  auto again = f.ingest(report(MsgType::kAlert, "la/east-la"), "same", 2000);
  CHECK(again.replayed);
  CHECK(again.body == first.body);
  CHECK(f.store->pending_count() == 1);
  // The same id from another coordinator is another message.
  auto other = f.ingest(report(MsgType::kAlert, "sf/mission"), "same", 2000, "c2");
  CHECK_FALSE(other.replayed);
}

TEST_CASE("duplicates merge, follow-ups reach exactly the original recipients", "[ingest]") {
  Fixture f;
  f.subscribe("+12135550001", "", "en", {"east"});
  f.subscribe("+12135550002", "", "en", {"east"});
  auto a = f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  auto dup = f.ingest(report(MsgType::kAlert, "la/east-la"), "w2", 2000);
  CHECK(dup.outcome == "merged");
  CHECK(dup.incident_id == a.incident_id);
  CHECK(dup.recipients == 0);

  f.subscribe("+12135550003", "", "en", {"east"});  // joined after the alert
  auto upd = f.ingest(report(MsgType::kUpdate, "la/east-la", a.incident_id), "w3", 3000);
  CHECK(upd.outcome == "update");
  CHECK(upd.recipients == 2);
  auto cancel = f.ingest(report(MsgType::kCancel, "la/east-la", a.incident_id), "w4", 4000);
  CHECK(cancel.outcome == "cancel");
  CHECK(cancel.recipients == 2);
  CHECK_FALSE(f.store->incident(a.incident_id)->open);
  // A closed incident takes no more follow-ups; a new alert opens a new incident.
  auto late = f.ingest(report(MsgType::kUpdate, "la/east-la", a.incident_id), "w5", 5000);
  REQUIRE(late.problem);
  CHECK(late.problem->field == "references");
  auto fresh = f.ingest(report(MsgType::kAlert, "la/east-la"), "w6", 6000);
  CHECK(fresh.outcome == "new_incident");
  CHECK(fresh.incident_id != a.incident_id);
  CHECK(fresh.recipients == 3);
}

TEST_CASE("follow-ups outside the coordinator's scope or to unknown incidents are refused", "[ingest]") {
  Fixture f;
  auto a = f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  auto unknown = f.ingest(report(MsgType::kUpdate, "sf/mission", "ZZZZZZ"), "w2", 2000, "c2");
  REQUIRE(unknown.problem);
  CHECK(unknown.problem->status == 422);
  auto foreign = f.ingest(report(MsgType::kCancel, "sf/mission", a.incident_id), "w3", 2000, "c2");
  REQUIRE(foreign.problem);
  CHECK(foreign.problem->status == 403);
  CHECK(f.store->incident(a.incident_id)->open);
  // Refused requests leave no answer behind: a corrected retry with the same id works.
  CHECK_FALSE(f.store->find_answer("c2", "w3"));
}

TEST_CASE("results move deliveries on, opt-outs and erasure cancel what is left", "[ingest]") {
  Fixture f;
  int64_t alice = f.subscribe("+12135550001", "", "en", {"east"});
  f.subscribe("+12135550002", "", "en", {"east"});
  f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  auto claim = f.store->claim_due(Channel::kSms, 10, 1000, 5000);
  REQUIRE(claim.claimed.size() == 2);
  std::vector<store::DeliveryUpdate> ups;
  for (const auto& d : claim.claimed) {
    store::DeliveryUpdate u;
    u.id = d.id;
    u.state = d.to == "+12135550001" ? DeliveryState::kFailed : DeliveryState::kPending;
    u.opt_out = d.to == "+12135550001";
    u.next_attempt_at = 3000;
    ups.push_back(u);
  }
  f.store->record_results(ups, 1500);
  CHECK(f.store->subscriber(alice)->sms_opted_out);
  CHECK(f.store->claim_due(Channel::kSms, 10, 2000, 9000).claimed.empty());  // retry not yet due
  CHECK(f.store->next_due(Channel::kSms) == 3000);
  auto retry = f.store->claim_due(Channel::kSms, 10, 3000, 9000);
  REQUIRE(retry.claimed.size() == 1);
  CHECK(retry.claimed[0].attempts == 1);
  // An opted-out subscriber gets no new alerts.
  auto next = f.ingest(report(MsgType::kAlert, "la/east-la/x"), "w2", 999'999'000);
  CHECK(next.recipients == 1);
}

TEST_CASE("erasing a subscriber cancels their pending deliveries", "[ingest]") {
  Fixture f;
  int64_t bob = f.subscribe("+12135550009", "bob@example.org", "en", {"east"});
  f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  CHECK(f.store->pending_count() == 2);
  CHECK(f.store->delete_subscriber(bob));
  CHECK_FALSE(f.store->subscriber(bob));
  CHECK(f.store->pending_count() == 0);
  CHECK_FALSE(f.store->delete_subscriber(bob));
}

TEST_CASE("deliveries past their deadline expire instead of being sent", "[ingest]") {
  Fixture f;
  f.subscribe("+12135550001", "", "en", {"east"});
  f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  UnixMs after_deadline = 1000 + f.config.delivery.sms_deadline_s * 1000 + 1;
  auto c = f.store->claim_due(Channel::kSms, 10, after_deadline, after_deadline + 1000);
  CHECK(c.claimed.empty());
  CHECK(c.expired == 1);
}

TEST_CASE("a lease hides a delivery from claims, the next due time and expiry until it ends",
          "[ingest]") {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.subscribe("+1213555000" + std::to_string(i), "", "en", {"east"});
  f.ingest(report(MsgType::kAlert, "la/east-la"), "w1", 1000);
  const UnixMs deadline = 1000 + f.config.delivery.sms_deadline_s * 1000;
  const UnixMs long_lease = deadline + 100'000;
  auto first = f.store->claim_due(Channel::kSms, 3, 1000, long_lease);
  REQUIRE(first.claimed.size() == 3);
  // The two unleased are claimed next, in id order.
  auto rest = f.store->claim_due(Channel::kSms, 10, 1000, 9000);
  REQUIRE(rest.claimed.size() == 2);
  CHECK(first.claimed.back().id < rest.claimed[0].id);
  CHECK(rest.claimed[0].id < rest.claimed[1].id);
  // Nothing is due until the first lease ends.
  CHECK(f.store->next_due(Channel::kSms) == 9000);
  CHECK(f.store->claim_due(Channel::kSms, 10, 8999, 20000).claimed.empty());
  // Past the deadline, the two whose lease ended expire; the three still
  // leased (at a gateway) are not expired under their sender.
  auto late = f.store->claim_due(Channel::kSms, 10, deadline + 1, deadline + 1000);
  CHECK(late.expired == 2);
  CHECK(late.claimed.empty());
  CHECK(f.store->next_due(Channel::kSms) == long_lease);
  auto end = f.store->claim_due(Channel::kSms, 10, long_lease, long_lease + 1000);
  CHECK(end.expired == 3);
  CHECK_FALSE(f.store->next_due(Channel::kSms));
}

TEST_CASE("update_incident writes every field, for an open incident, a close and a reopen",
          "[ingest][store]") {
  // An incident that stays open takes a narrower UPDATE (open and closed_at
  // left out); what is stored must not depend on which one ran.
  auto store = store::open_sqlite_store(":memory:", store::Keyring::generate());
  store::IncidentRecord r;
  r.id = "ABC123";
  r.event = "e";
  r.area = "la/a";
  r.location = Location{34.0, -118.0, "corner"};
  r.severity = Severity::kModerate;
  r.status = ReportStatus::kActual;
  r.open = true;
  r.opened_at = r.last_report_at = 1000;
  r.report_count = 1;
  store->begin();
  REQUIRE(store->insert_incident(r));
  auto same = [&](const store::IncidentRecord& want) {
    auto got = store->incident(want.id);
    REQUIRE(got);
    CHECK(got->severity == want.severity);
    CHECK(got->open == want.open);
    CHECK(got->closed_at == want.closed_at);
    CHECK(got->last_report_at == want.last_report_at);
    CHECK(got->report_count == want.report_count);
    CHECK(got->spread_m == want.spread_m);
  };
  r.severity = Severity::kExtreme;  // a merge that raised the severity
  r.last_report_at = 2000;
  r.report_count = 2;
  r.spread_m = 120.5;
  store->update_incident(r);
  same(r);
  r.open = false;  // the all-clear
  r.closed_at = 3000;
  r.report_count = 3;
  store->update_incident(r);
  same(r);
  r.open = true;  // reopened: the narrow UPDATE matches nothing, the full one runs
  r.closed_at = 0;
  r.last_report_at = 4000;
  r.report_count = 4;
  store->update_incident(r);
  same(r);
  // And the reopened incident is a dedup candidate again.
  Report rep;
  rep.msg_type = MsgType::kAlert;
  rep.event = "e";
  rep.area = "la/a";
  rep.location = Location{34.0, -118.0, ""};
  auto rows = store->dedup_candidates(rep, 100, 0);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].id == "ABC123");
  store->commit();
}

TEST_CASE("an incident across a latitude band edge from the report is a candidate",
          "[ingest][dedup][property]") {
  // The place query reads only the bands between the bounding box's edges:
  // an incident on or next to a 0.01-degree edge, within the radius of a
  // report on the other side (or at the very same place, radius 0), must
  // still come back.
  auto store = store::open_sqlite_store(":memory:", store::Keyring::generate());
  const UnixMs now = 100'000'000;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> unit(0, 1);
  struct Placed {
    std::string id;
    Location at;
  };
  std::vector<Placed> placed;
  store->begin();
  for (int i = 0; i < 400; ++i) {
    // Edges near Los Angeles, the equator and the south: k / 100 - 90.
    const int bands[] = {12403, 12404, 9000, 8999, 3000};
    double edge = bands[i % 5] / 100.0 - 90;
    // Exactly on the edge, or a hair (down to one ulp-ish) either side.
    const double nudges[] = {0, 1e-12, -1e-12, 1e-9, -1e-9, 2e-6, -2e-6};
    double lat = edge + nudges[rng() % 7];
    store::IncidentRecord r;
    r.id = "E" + std::to_string(i);
    r.event = "e";
    r.area = "x/" + std::to_string(i);  // never the same area as a report: place only
    r.location = Location{lat, -118.0 + unit(rng) * 0.001, ""};
    r.severity = Severity::kSevere;
    r.status = ReportStatus::kActual;
    r.open = true;
    r.opened_at = r.last_report_at = now;
    r.report_count = 1;
    REQUIRE(store->insert_incident(r));
    placed.push_back({r.id, *r.location});
  }
  store->commit();
  int checked = 0;
  for (const auto& p : placed) {
    for (double radius : {0.0, 5.0, 400.0}) {
      // The report due north or south of the incident, just inside the
      // radius (at the incident itself for radius 0).
      for (double sign : {1.0, -1.0}) {
        double dlat = radius / 111'320.0 * 0.999 * sign;
        Report rep;
        rep.msg_type = MsgType::kAlert;
        rep.event = "e";
        rep.area = "y/none";
        rep.location = Location{p.at.lat + dlat, p.at.lon, ""};
        if (radius > 0) REQUIRE(distance_m(*rep.location, p.at) <= radius);
        auto rows = store->dedup_candidates(rep, radius, now - 1000);
        bool found = false;
        for (const auto& row : rows) found = found || row.id == p.id;
        INFO("incident lat " << p.at.lat << ", report lat " << rep.location->lat << ", radius "
                             << radius);
        REQUIRE(found);
        ++checked;
      }
    }
  }
  CHECK(checked == 2400);
}

TEST_CASE("the store's dedup candidates decide exactly as all open incidents would",
          "[ingest][dedup][property]") {
  // Random incidents (located or not, a few events, areas and keys, some
  // stale or closed, many on 0.01-degree band edges and at the antimeridian)
  // and random alerts: find_duplicate over dedup_candidates must pick what it
  // picks over every open incident, for several radii (a reload changes it).
  auto store = store::open_sqlite_store(":memory:", store::Keyring::generate());
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  const Location centres[] = {{34.0339, -118.2107, ""}, {30.0, -120.0, ""}, {-12.0, 179.999, ""},
                              {89.999, 10.0, ""}};
  auto place = [&]() -> std::optional<Location> {
    if (unit(rng) < 0.2) return std::nullopt;
    const Location& c = centres[rng() % 4];
    double lat = std::clamp(c.lat + (unit(rng) - 0.5) * 0.05, -90.0, 90.0);
    if (unit(rng) < 0.3) lat = std::round(lat * 100) / 100;  // on a band edge
    double lon = std::remainder(c.lon + (unit(rng) - 0.5) * 0.05, 360.0);
    return Location{lat, lon, ""};
  };
  const char* events[] = {"e1", "e2"};
  const char* areas[] = {"la/a", "la/b"};
  const UnixMs now = 100'000'000;
  store->begin();
  for (int i = 0; i < 600; ++i) {
    store::IncidentRecord r;
    r.id = "I" + std::to_string(i);
    r.event = events[rng() % 2];
    r.area = areas[rng() % 2];
    r.location = place();
    r.dedup_key = unit(rng) < 0.1 ? "k" + std::to_string(rng() % 5) : "";
    r.severity = Severity::kSevere;
    r.status = unit(rng) < 0.1 ? ReportStatus::kExercise : ReportStatus::kActual;
    r.open = unit(rng) < 0.9;
    r.opened_at = r.last_report_at = now - static_cast<UnixMs>(unit(rng) * 2400'000);
    r.report_count = 1;
    REQUIRE(store->insert_incident(r));
  }
  store->commit();
  auto everything = store->list_incidents(true, 100000);
  int merged = 0;
  for (double radius : {0.0, 400.0, 1500.0, 20000.0}) {
    DedupRules rules{1800, radius};
    for (int i = 0; i < 400; ++i) {
      Report r;
      r.msg_type = MsgType::kAlert;
      r.event = events[rng() % 2];
      r.area = areas[rng() % 2];
      r.location = place();
      r.dedup_key = unit(rng) < 0.1 ? "k" + std::to_string(rng() % 5) : "";
      if (unit(rng) < 0.1) r.status = ReportStatus::kExercise;
      auto rows = store->dedup_candidates(r, radius, now - rules.window_s * 1000);
      auto want = find_duplicate(r, now, dedup_view(everything), rules);
      auto got = find_duplicate(r, now, dedup_view(rows), rules);
      REQUIRE(want.has_value() == got.has_value());
      if (want) {
        REQUIRE(everything[*want].id == rows[*got].id);
        ++merged;
      }
    }
  }
  CHECK(merged > 100);  // the comparison covered merges, not only misses
}

TEST_CASE("a schema 2 database is migrated to schema 3 (provider_events) and on at open", "[store][replay]") {
  tocsin::test::TempDir dir;
  const std::string path = (dir.path() / "t.db").string();
  auto keyring = store::Keyring::generate();
  { auto s = store::open_sqlite_store(path, keyring); }
  // Make it what a schema 2 database is: no provider_events table (nor
  // the later reports.person).
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "DROP TABLE provider_events; ALTER TABLE reports DROP COLUMN person; "
                           "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  auto s = store::open_sqlite_store(path, keyring);
  s->begin();
  CHECK(s->first_event("twilio", "sms:SM1", 1));
  CHECK_FALSE(s->first_event("twilio", "sms:SM1", 2));
  s->commit();
  s.reset();
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "5");  // and on through the later migrations
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE("the dry run counts every group's own members per channel and language, held or not",
          "[ingest][route]") {
  Fixture f;
  Group wide;  // held: two reporters wanted, this report is one
  wide.name = "wide";
  wide.areas = {"la"};
  wide.channels = {Channel::kSms};
  wide.min_corroboration = 2;
  f.config.groups.push_back(wide);
  f.subscribe("+12135550001", "a@example.org", "en", {"east"});
  f.subscribe("+12135550002", "", "es-MX", {"east", "all"});  // in two groups: once in the total
  f.subscribe("", "c@example.org", "en", {"all"});            // "all" has no email channel
  f.subscribe("+12135550004", "", "en", {"wide"});
  const ActiveConfig active(f.config);
  DryRun run = dry_run(f.store.get(), active, report(MsgType::kAlert, "la/east-la"), 1000);
  using A = std::vector<std::tuple<Channel, std::string, int64_t>>;
  auto lines = [&](const std::string& name) {
    A out;
    for (const auto& g : run.groups)
      if (g.name == name)
        for (const auto& a : g.audience) out.emplace_back(a.channel, a.language, a.count);
    return out;
  };
  CHECK(lines("east") ==
        A{{Channel::kSms, "en", 1}, {Channel::kSms, "es-MX", 1}, {Channel::kEmail, "en", 1}});
  CHECK(lines("all") == A{{Channel::kSms, "es-MX", 1}});
  // A held group still says whom it would reach, and the total leaves it out.
  REQUIRE(run.groups.size() == 3);
  CHECK_FALSE(run.groups[2].waits.empty());
  CHECK(lines("wide") == A{{Channel::kSms, "en", 1}});
  CHECK(run.total == 3);
  CHECK(run.merge_into.empty());
  // Once an incident is open, the dry run names it and its headline.
  f.store->begin();
  auto first = ingest_report(*f.store, f.config, f.templates,
                             {"c1", "w1", report(MsgType::kAlert, "la/east-la"),
                              R"({"headline": {"en": "Headline", "es": "Titular"}})", 1000},
                             f.rng);
  f.store->commit();
  REQUIRE(first.outcome == "new_incident");
  DryRun again = dry_run(f.store.get(), active, report(MsgType::kAlert, "la/east-la"), 2000);
  CHECK(again.merge_into == first.incident_id);
  CHECK(again.merge_headline == LocalizedText{{"en", "Headline"}, {"es", "Titular"}});
}
