// The safety rules carried out on a real SQLite store in memory (app/safety
// through ingest_report): held groups, release on corroboration, stored
// escalation timers, covered. No sockets, no clock: `now` is passed in.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "app/ingest.h"
#include "app/safety.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/daemon.h"
#include "support/keys.h"

using namespace tocsin;
using namespace tocsin::app;

namespace {

Config safety_config() {
  auto r = parse_config(R"({
    "storage": {"key_file": ")" + test::shared_key_file() + R"("},
    "coordinators": [{"name": "c1", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]},
                     {"name": "c2", "secret": "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "areas": ["la/east-la", "la/downtown"]}],
    "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"}],
    "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms"],
                "escalate": {"after_s": 60, "if_responding_below": 2, "to": ["wide", "gated"]},
                "enough_responding": 3},
               {"name": "wide", "match": {"areas": ["la/downtown"]}, "channels": ["sms"]},
               {"name": "gated", "match": {"areas": ["la/downtown"], "min_corroboration": 2},
                "channels": ["sms"]},
               {"name": "citywide", "match": {"areas": ["la"], "min_corroboration": 2},
                "channels": ["sms"]}]
  })", "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  return r.config;
}

Report alert(Certainty certainty = Certainty::kObserved) {
  Report r;
  r.msg_type = MsgType::kAlert;
  r.event = "enforcement_activity";
  r.severity = Severity::kSevere;
  r.area = "la/east-la";
  r.observed_at = "2026-11-22T13:05:00Z";
  r.headline = {{"en", "Headline"}};
  r.certainty = certainty;
  return r;
}

std::string body_of(const Report& r) {
  return nlohmann::json{{"msg_type", "alert"},     {"status", "actual"},
                        {"event", r.event},         {"severity", "severe"},
                        {"area", r.area},           {"observed_at", r.observed_at},
                        {"headline", r.headline}}
      .dump();
}

struct Fixture {
  std::unique_ptr<store::Store> store =
      store::open_sqlite_store(":memory:", store::Keyring::generate());
  Config config = safety_config();
  MessageTemplates templates = with_defaults(config.templates);
  std::mt19937_64 rng{1};
  int webhook = 0;

  // person: the console user who sent it ("" a webhook report).
  IngestResult ingest(const Report& r, UnixMs now, std::string coord = "c1",
                      std::string person = "") {
    store->begin();
    auto res = ingest_report(
        *store, config, templates,
        {coord, "w" + std::to_string(webhook++), r, body_of(r), now, {}, std::move(person)}, rng);
    store->commit();
    return res;
  }
  template <typename F>
  auto job(F f) {
    store->begin();
    auto out = f(*store);
    store->commit();
    return out;
  }
  int64_t subscribe(int n, const std::string& group) {
    store::Subscriber s;
    s.phone = "+1213555" + std::to_string(1000 + n);
    s.groups = {group};
    s.channels = {Channel::kSms};
    return store->insert_subscriber(s, 0);
  }
  // Bodies of the pending SMS, by subscriber phone (decrypted by claim_due).
  std::multiset<std::string> claim(UnixMs now) {
    std::multiset<std::string> out;
    auto c = store->claim_due(Channel::kSms, 1000, now, now + 1);
    for (const auto& d : c.claimed) out.insert(d.to + " " + *d.body);
    std::vector<store::DeliveryUpdate> done;
    for (const auto& d : c.claimed) done.push_back({d.id, DeliveryState::kSent, 0, "f"});
    store->record_results(done, now);
    return out;
  }
  std::vector<std::string> whats(const std::string& incident) {
    std::vector<std::string> out;
    for (const auto& e : store->safety_events(incident)) out.push_back(e.what + " " + e.group);
    return out;
  }
};

}  // namespace

TEST_CASE("two console people of one coordinator release a held group, one person twice does not",
          "[safety][ingest]") {
  Fixture f;
  f.subscribe(1, "east");
  f.subscribe(2, "citywide");
  auto a = f.ingest(alert(), 1000, "c1", "ana");
  CHECK(a.safety.held == 1);
  CHECK(f.claim(1000).size() == 1);
  // ana again, and a webhook report of her coordinator (perhaps ana too):
  // still one reporter.
  CHECK(f.ingest(alert(), 2000, "c1", "ana").safety.released == 0);
  CHECK(f.ingest(alert(), 2500, "c1").safety.released == 0);
  CHECK(f.claim(2500).empty());
  // The stored evidence names each report's person.
  auto evidence = f.job([&](store::Store& s) { return s.incident_evidence(a.incident_id); });
  REQUIRE(evidence.size() == 3);
  CHECK(evidence[0] == ReportEvidence{"c1", "ana", Certainty::kObserved});
  CHECK(evidence[2] == ReportEvidence{"c1", "", Certainty::kObserved});
  // ben, another person of c1: released, once.
  auto b = f.ingest(alert(), 3000, "c1", "ben");
  CHECK(b.outcome == "merged");
  CHECK(b.safety.released == 1);
  auto sent = f.claim(3000);
  REQUIRE(sent.size() == 1);
  CHECK(sent.begin()->find("CONFIRMED ALERT #" + a.incident_id) != std::string::npos);
  CHECK(f.ingest(alert(), 4000, "c1", "cy").safety.released == 0);
  CHECK(f.whats(a.incident_id) == std::vector<std::string>{"held citywide", "released citywide"});
}

TEST_CASE("a held group is released by a second coordinator, once, to those not reached",
          "[safety][ingest]") {
  Fixture f;
  f.subscribe(1, "east");
  f.subscribe(2, "citywide");
  auto a = f.ingest(alert(), 1000);
  CHECK(a.recipients == 1);
  CHECK(a.safety.held == 1);
  CHECK(f.claim(1000).size() == 1);
  CHECK(f.ingest(alert(), 2000).recipients == 0);  // c1 again
  auto b = f.ingest(alert(), 3000, "c2");
  CHECK(b.outcome == "merged");
  CHECK(b.recipients == 1);
  CHECK(b.safety.released == 1);
  auto sent = f.claim(3000);
  REQUIRE(sent.size() == 1);
  CHECK(sent.begin()->find("CONFIRMED ALERT #" + a.incident_id) != std::string::npos);
  CHECK(f.ingest(alert(), 4000, "c2").recipients == 0);
  CHECK(f.whats(a.incident_id) ==
        std::vector<std::string>{"held citywide", "released citywide"});
  // The report list still shows the coordinators' four reports only.
  CHECK(f.store->incident_reports(a.incident_id).size() == 4);
}

TEST_CASE("an escalation timer fires once, after after_s, only when too few respond",
          "[safety][ingest]") {
  Fixture f;
  std::vector<int64_t> east;
  for (int i = 0; i < 5; ++i) east.push_back(f.subscribe(i, "east"));
  f.subscribe(10, "wide");
  f.subscribe(11, "gated");
  auto a = f.ingest(alert(), 1000);
  CHECK(f.claim(1000).size() == 5);
  f.job([&](store::Store& s) {
    s.insert_ack({a.incident_id, east[0], "responding", 2000});
    s.insert_ack({a.incident_id, east[1], "reply", 2000});
    return 0;
  });
  auto run = [&](UnixMs now) {
    return f.job([&](store::Store& s) {
      return run_due_escalations(s, f.config, f.templates, now);
    });
  };
  CHECK(run(60'999).escalated == 0);  // not due
  auto fired = run(61'000);
  CHECK(fired.escalated == 1);
  CHECK(fired.held == 1);  // gated still waits for corroboration
  CHECK(fired.recipients == 1);  // wide
  auto sent = f.claim(61'000);
  REQUIRE(sent.size() == 1);
  CHECK(sent.begin()->find("+12135551010 ALERT #" + a.incident_id) == 0);
  CHECK(run(120'000).escalated == 0);  // never twice
  CHECK(f.whats(a.incident_id) ==
        std::vector<std::string>{"held citywide", "held gated", "escalated east"});
  // A second coordinator releases the held groups; wide is not sent twice.
  auto b = f.ingest(alert(), 130'000, "c2");
  CHECK(b.safety.released == 2);
  CHECK(f.claim(130'000).size() == 1);
}

// A timer that came due while tocsin was down fires at the next start, unless
// it is overdue by more than an SMS may wait (delivery.sms_deadline_s): a
// call for responders that late would send them to a raid long over.
TEST_CASE("an escalation overdue by more than delivery.sms_deadline_s expires instead of firing",
          "[safety][ingest]") {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.subscribe(i, "east");
  f.subscribe(10, "wide");
  auto a = f.ingest(alert(), 1000);
  CHECK(f.claim(1000).size() == 5);
  const UnixMs due = 61'000;
  const UnixMs deadline_ms = static_cast<UnixMs>(f.config.delivery.sms_deadline_s) * 1000;
  auto run = [&](UnixMs now) {
    return f.job([&](store::Store& s) {
      return run_due_escalations(s, f.config, f.templates, now);
    });
  };
  auto whats = [&] {
    auto w = f.whats(a.incident_id);
    return std::set<std::string>(w.begin(), w.end());
  };
  SECTION("overdue by exactly the deadline: it fires") {
    CHECK(run(due + deadline_ms).escalated == 1);
    CHECK(f.claim(due + deadline_ms).size() == 1);  // wide
    CHECK(whats().count("escalated east") == 1);
  }
  SECTION("overdue by more: expired, on the timeline, nothing sent, never fired later") {
    auto late = run(due + deadline_ms + 1);
    CHECK(late.escalated == 0);
    CHECK(late.recipients == 0);
    CHECK(f.claim(due + deadline_ms + 1).empty());
    CHECK(whats().count("escalation_expired east") == 1);
    CHECK(whats().count("escalated east") == 0);
    CHECK(run(due + 2 * deadline_ms).escalated == 0);
  }
}

TEST_CASE("enough responding: no escalation, and covered once to the non-responders",
          "[safety][ingest]") {
  Fixture f;
  std::vector<int64_t> east;
  for (int i = 0; i < 5; ++i) east.push_back(f.subscribe(i, "east"));
  f.subscribe(10, "wide");
  auto a = f.ingest(alert(), 1000);
  f.claim(1000);
  auto ack = [&](int64_t who, UnixMs now) {
    return f.job([&](store::Store& s) {
      s.insert_ack({a.incident_id, who, "responding", now});
      return check_covered(s, f.config, f.templates, a.incident_id, now);
    });
  };
  CHECK(ack(east[0], 2000).covered == 0);
  CHECK(ack(east[0], 2100).covered == 0);  // the same person twice counts once
  CHECK(ack(east[1], 2200).covered == 0);
  auto third = ack(east[2], 2300);
  CHECK(third.covered == 1);
  CHECK(third.recipients == 2);
  auto sent = f.claim(2300);
  CHECK(sent == std::multiset<std::string>{
                    "+12135551003 COVERED #" + a.incident_id +
                        ": enough people are on the way. Stand down unless you are already close.",
                    "+12135551004 COVERED #" + a.incident_id +
                        ": enough people are on the way. Stand down unless you are already close."});
  CHECK(ack(east[3], 2400).covered == 0);  // once
  auto later = f.job([&](store::Store& s) {
    return run_due_escalations(s, f.config, f.templates, 61'000);
  });
  CHECK(later.escalated == 0);
  CHECK(f.whats(a.incident_id) ==
        std::vector<std::string>{"held citywide", "covered east", "escalation_not_needed east"});
}

TEST_CASE("store: an all-clear ends the stored escalation timer", "[safety][ingest]") {
  Fixture f;
  f.subscribe(1, "east");
  f.subscribe(10, "wide");
  auto a = f.ingest(alert(), 1000);
  Report cancel = alert();
  cancel.msg_type = MsgType::kCancel;
  cancel.references = a.incident_id;
  f.ingest(cancel, 2000);
  auto run = f.job([&](store::Store& s) {
    return run_due_escalations(s, f.config, f.templates, 100'000);
  });
  CHECK(run.escalated == 0);
  CHECK(f.whats(a.incident_id) ==
        std::vector<std::string>{"held citywide", "escalation_cancelled east"});
  CHECK(f.store->due_escalations(200'000, 10).empty());
}

TEST_CASE("store: a schema 1 database is migrated to schema 2 and on", "[safety][store]") {
  test::TempDir dir{"tocsin-migrate"};
  const std::string path = (dir.path() / "t.db").string();
  auto keyring = store::Keyring::generate();
  {
    auto s = store::open_sqlite_store(path, keyring);
  }
  // Back to what version 1 was: no certainty, none of the safety tables.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "ALTER TABLE reports DROP COLUMN certainty; ALTER TABLE reports DROP "
                       "COLUMN person; DROP TABLE incident_groups; "
                       "DROP TABLE escalations; DROP TABLE safety_events; INSERT INTO reports "
                       "(incident_id, coordinator, webhook_id, msg_type, outcome, status, event, "
                       "severity, area, body, received_at) VALUES ('ABCDEF', 'c1', 'w', 'alert', "
                       "'new_incident', 'actual', 'e', 'severe', 'la', '{}', 1); UPDATE meta SET "
                       "value = '1' WHERE key = 'schema_version'",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto s = store::open_sqlite_store(path, keyring);
  // The old report reads as observed (what it meant), the new tables work.
  auto evidence = s->incident_evidence("ABCDEF");
  REQUIRE(evidence.size() == 1);
  CHECK(evidence[0] == ReportEvidence{"c1", "", Certainty::kObserved});
  s->begin();
  s->insert_escalation("ABCDEF", "east", 1, 2);
  s->commit();
  CHECK(s->due_escalations(2, 10).size() == 1);
  s.reset();
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "5");  // and on through the later migrations
  sqlite3_finalize(st);
  sqlite3_close(db);
}
