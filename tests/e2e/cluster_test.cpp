// End-to-end: several build/tocsin instances on one PostgreSQL (README
// "Several instances on PostgreSQL"). Each test gets a fresh schema of the
// test cluster (support/pg_schema.h, started by CTest's pg fixture); the
// instances share it, the key file and the gateway emulators, as instances
// behind a load balancer share a database and provider accounts.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "e2e/fixture.h"
#include "support/keys.h"
#include "support/pg_schema.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// `n` daemons on the schema's database, each with test_config(gw, ...).
struct Cluster {
  std::vector<std::unique_ptr<Daemon>> daemons;

  Cluster(const Gateways& gw, const std::string& conninfo, int n, int rate_per_s = 500,
          int max_in_flight = 16) {
    for (int i = 0; i < n; ++i) {
      json cfg = test_config(gw, rate_per_s, max_in_flight);
      cfg["storage"] = {{"key_file", shared_key_file()}, {"postgresql", {{"url", conninfo}}}};
      // A dead instance's leases run out after this (the default is 120 s).
      cfg["delivery"]["lease_s"] = 10;
      daemons.push_back(std::make_unique<Daemon>(cfg));
    }
  }
  // One after another, from the test's thread: a daemon dies with the
  // thread that started it (PR_SET_PDEATHSIG). Instances starting at once
  // (migrations racing) are the store contract suite's pg_instances_test.
  void start() {
    for (auto& d : daemons) d->start(30s);
  }
  Daemon& operator[](std::size_t i) { return *daemons[i]; }
  std::size_t size() const { return daemons.size(); }
};

// The most messages the emulator accepted in any one second.
std::size_t busiest_second(const std::vector<ReceivedMessage>& msgs) {
  std::size_t busiest = 0;
  for (std::size_t i = 0, j = 0; i < msgs.size(); ++i) {
    j = std::max(j, i);
    while (j < msgs.size() && msgs[j].accepted_at - msgs[i].accepted_at < 1s) ++j;
    busiest = std::max(busiest, j - i);
  }
  return busiest;
}

}  // namespace

TEST_CASE("cluster: 50 reports of one event spread over three instances at once open one "
          "incident, and each subscriber gets one message",
          "[e2e][postgresql][cluster]") {
  PgSchema pg;
  Gateways gw;
  Cluster c(gw, pg.conninfo(), 3);
  c.start();
  add_eastside_subscribers(c[0].url(), 20);
  std::vector<std::thread> posting;
  std::mutex mu;
  std::set<std::string> incidents;
  int accepted = 0;
  for (int i = 0; i < 50; ++i)
    posting.emplace_back([&, i] {
      auto body = report_body({{"location", {{"lat", 34.0333 + 0.00001 * i}, {"lon", -118.1972}}}});
      auto r = post_report(c[static_cast<std::size_t>(i) % c.size()].url(), body.dump());
      std::lock_guard lock(mu);
      if (r.status == 202) {
        ++accepted;
        incidents.insert(r.json()["incident_id"].get<std::string>());
      }
    });
  for (auto& t : posting) t.join();
  CHECK(accepted == 50);
  CHECK(incidents.size() == 1);
  REQUIRE(gw.twilio.wait_for(20, 20s));
  for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(settled(c[i]));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 20);
  CHECK(repeated_messages(counts) == 0);
}

TEST_CASE("cluster: one webhook-id sent to three instances at once gives one report and the "
          "same answer from each",
          "[e2e][postgresql][cluster]") {
  PgSchema pg;
  Gateways gw;
  Cluster c(gw, pg.conninfo(), 3);
  c.start();
  add_eastside_subscribers(c[0].url(), 5);
  const std::string body = report_body().dump();
  std::vector<HttpResult> answers(c.size());
  std::vector<std::thread> posting;
  for (std::size_t i = 0; i < c.size(); ++i)
    posting.emplace_back([&, i] { answers[i] = post_report(c[i].url(), body, kCoordinatorSecret, "msg_cluster_once"); });
  for (auto& t : posting) t.join();
  for (const auto& a : answers) {
    CHECK(a.status == 202);
    CHECK(a.body == answers[0].body);
  }
  REQUIRE(gw.twilio.wait_for(5, 15s));
  for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(settled(c[i]));
  CHECK(gw.twilio.messages().size() == 5);
}

TEST_CASE("cluster: a 10,000-recipient fan-out with one instance killed halfway reaches "
          "everyone, duplicates within the dead instance's in-flight bound",
          "[e2e][postgresql][cluster]") {
  PgSchema pg;
  Gateways gw;
  const int max_in_flight = 8;
  Cluster c(gw, pg.conninfo(), 3, 3000, max_in_flight);
  c.start();
  add_eastside_subscribers(c[0].url(), 10'000);
  auto alert = post_report(c[1].url(), report_body().dump());
  REQUIRE(alert.json()["recipients"] == 10'000);
  const std::string code = alert.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(5'000, 60s));
  c[2].kill9();
  // The dead instance's leases run out (delivery.lease_s) and the others
  // take its deliveries and its share of the rate.
  bool all = eventually([&] { return count_by_recipient(gw.twilio.messages()).size() == 10'000; }, 40s);
  INFO("served " << count_by_recipient(gw.twilio.messages()).size() << " of " << gw.twilio.messages().size() << "; pending "
                  << metric(c[0].url(), "tocsin_deliveries_pending") << ", held "
                  << metric(c[0].url(), "tocsin_deliveries_held") << " / "
                  << metric(c[1].url(), "tocsin_deliveries_held") << ", in flight "
                  << metric(c[0].url(), "tocsin_deliveries_in_flight") << " / "
                  << metric(c[1].url(), "tocsin_deliveries_in_flight") << "; "
                  << admin("GET", c[0].url() + "/v1/incidents/" + code).json()["deliveries"].dump());
  REQUIRE(all);
  REQUIRE(settled(c[0], 30s));
  REQUIRE(settled(c[1], 30s));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 10'000);
  // What the dead instance had sent and not yet recorded: at most its
  // requests in flight plus the answers waiting for their commit
  // (delivery.max_unrecorded, 500 by default).
  CHECK(repeated_messages(counts) <= max_in_flight + 500);
}

TEST_CASE("cluster: a gateway limit of 50 per second holds for three instances together, "
          "with no 429",
          "[e2e][postgresql][cluster]") {
  PgSchema pg;
  Gateways gw;
  const int limit = 50;
  gw.twilio.set_rate_limit(limit);
  Cluster c(gw, pg.conninfo(), 3, limit, 16);
  c.start();
  add_eastside_subscribers(c[0].url(), 300);
  REQUIRE(post_report(c[0].url(), report_body().dump()).json()["recipients"] == 300);
  REQUIRE(gw.twilio.wait_for(300, 60s));
  auto msgs = gw.twilio.messages();
  CHECK(gw.twilio.count(429) == 0);
  CHECK(busiest_second(msgs) <= static_cast<std::size_t>(limit));
}

TEST_CASE("cluster: STOP through one instance while another fans out stops the rest to "
          "that number",
          "[e2e][postgresql][cluster]") {
  PgSchema pg;
  Gateways gw;
  // 150 SMS/s for the two together: the fan-out takes several seconds.
  Cluster c(gw, pg.conninfo(), 2, 150, 8);
  c.start();
  add_eastside_subscribers(c[0].url(), 1000);
  auto r = post_report(c[1].url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 1000);
  REQUIRE(gw.twilio.wait_for(100, 10s));
  // The last subscriber's message is queued behind 900 others.
  const std::string quitter = phone_for(999);
  CHECK(inbound_sms(c[0].url(), gw, quitter, "STOP").status == 200);
  REQUIRE(gw.twilio.wait_for(999, 30s));
  REQUIRE(settled(c[0]));
  REQUIRE(settled(c[1]));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.count(quitter) == 0);
  CHECK(counts.size() == 999);
  auto inc = admin("GET", c[0].url() + "/v1/incidents/" + r.json()["incident_id"].get<std::string>()).json();
  CHECK(inc["deliveries"]["sms"]["cancelled"] == 1);
}

TEST_CASE("cluster: PostgreSQL away for 10 s in the middle of a fan-out: reports get 503 with "
          "Retry-After, /readyz fails, and once it is back every 202 is delivered",
          "[e2e][postgresql][cluster]") {
  // A server of this test's own: stopping the shared one would fail the
  // other PostgreSQL tests running beside it.
  TempDir dir("tocsin-pgdown");
  const std::string cluster = TOCSIN_SOURCE_DIR "/tests/support/pg_cluster";
  auto pg_cluster = [&](const std::string& cmd) {
    std::string line = cluster + " " + cmd + " " + dir.path().string() + " > /dev/null";
    return std::system(line.c_str());
  };
  REQUIRE(pg_cluster("start") == 0);
  struct Stop {
    std::function<int(const std::string&)> run;
    ~Stop() { run("stop"); }
  } stop{pg_cluster};
  const std::string conninfo = "host=" + dir.path().string() + " dbname=postgres user=postgres";
  Gateways gw;
  Cluster c(gw, conninfo, 2, 200, 8);
  c.start();
  add_eastside_subscribers(c[0].url(), 3000);
  REQUIRE(post_report(c[0].url(), report_body().dump()).json()["recipients"] == 3000);
  REQUIRE(gw.twilio.wait_for(300, 20s));
  REQUIRE(pg_cluster("pause") == 0);
  const auto away_since = std::chrono::steady_clock::now();
  // While it is away: no 202 that is not committed, and not ready.
  auto refused = post_report(c[1].url(), report_body({{"location", {{"lat", 34.2}, {"lon", -118.4}}}}).dump());
  CHECK(refused.status == 503);
  CHECK(!refused.header("Retry-After").empty());
  CHECK(eventually([&] { return get(c[0].url() + "/readyz").status == 503; }, 8s));
  CHECK(eventually([&] { return get(c[1].url() + "/readyz").status == 503; }, 8s));
  std::this_thread::sleep_until(away_since + 10s);  // the outage's length: the test's input
  REQUIRE(pg_cluster("resume") == 0);
  CHECK(eventually([&] { return get(c[0].url() + "/readyz").status == 200; }, 20s));
  CHECK(eventually([&] { return get(c[1].url() + "/readyz").status == 200; }, 20s));
  // Everything resumes by itself: the fan-out ends, and a new report is taken.
  REQUIRE(eventually([&] { return count_by_recipient(gw.twilio.messages()).size() == 3000; }, 60s));
  auto after = post_report(c[1].url(), report_body({{"location", {{"lat", 34.2}, {"lon", -118.4}}}}).dump());
  CHECK(after.status == 202);
  // Two incidents reached everyone (the report refused with 503 planned
  // nothing); beyond those, what was sent while the results could not be
  // written is sent again, within the in-flight and unrecorded bounds of
  // the two instances.
  REQUIRE(eventually([&] { return gw.twilio.messages().size() >= 2 * 3000; }, 60s));
  REQUIRE(settled(c[0], 30s));
  REQUIRE(settled(c[1], 30s));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 3000);
  CHECK(std::all_of(counts.begin(), counts.end(), [](const auto& kv) { return kv.second >= 2; }));
  CHECK(repeated_messages(counts) - 3000 <= 2 * (8 + 500));
}

// Issue 15: escalation timers are stored, so the death of the instance that
// runs them (the housekeeping leader) neither loses nor repeats one.
TEST_CASE("cluster: the housekeeping leader killed while an escalation timer runs: another "
          "instance fires it, once",
          "[e2e][postgresql][cluster][safety]") {
  PgSchema pg;
  Gateways gw;
  Cluster c(gw, pg.conninfo(), 3);
  for (auto& d : c.daemons) {
    json& cfg = d->config();
    for (auto& g : cfg["groups"])
      if (g["name"] == "eastside")
        g["escalate"] = {{"after_s", 8}, {"if_responding_below", 3}, {"to", {"wide"}}};
    // wide does not match on its own: it hears only by escalation.
    cfg["groups"].push_back(
        {{"name", "wide"}, {"match", {{"areas", {"la/downtown"}}}}, {"channels", {"sms"}}});
    d->write_config();
  }
  c.start();
  auto leader = [&]() -> int {
    for (std::size_t i = 0; i < c.size(); ++i) {
      auto log = c[i].log();
      auto leads = log.rfind("leads housekeeping"), not_lead = log.rfind("does not lead housekeeping");
      if (leads != std::string::npos && (not_lead == std::string::npos || leads > not_lead)) return static_cast<int>(i);
    }
    return -1;
  };
  REQUIRE(eventually([&] { return leader() >= 0; }, 15s));
  const int dying = leader();
  Daemon& other = c[(dying + 1) % 3];
  add_eastside_subscribers(other.url(), 5);
  std::vector<json> wide;
  for (int i = 0; i < 3; ++i) wide.push_back({{"phone", phone_for(100 + i)}, {"groups", {"wide"}}});
  add_subscribers(other.url(), wide);
  auto r = post_report(other.url(), report_body().dump());
  REQUIRE(r.status == 202);
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(5, 10s));
  CHECK(inbound_sms(other.url(), gw, phone_for(0), "1").status == 200);
  auto incident = [&] { return admin("GET", other.url() + "/v1/incidents/" + code).json(); };
  auto escalated = [&] {
    int n = 0;
    json inc = incident();  // kept: a range-for over a temporary's member would dangle
    for (const auto& t : inc["timeline"]) n += t["what"] == "escalated";
    return n;
  };
  // The sends are recorded (so the kill repeats none of them), and the timer still waits.
  REQUIRE(eventually([&] { return incident()["deliveries"]["sms"].value("sent", 0) == 5; }));
  REQUIRE(escalated() == 0);
  c[static_cast<std::size_t>(dying)].kill9();
  // A survivor takes the lead (the dead one's session lock is gone) and
  // fires the timer: wide gets the alert, each once.
  REQUIRE(gw.twilio.wait_for(8, 40s));
  REQUIRE(settled(other, 30s));
  CHECK(escalated() == 1);
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 8);
  CHECK(repeated_messages(counts) == 0);
  for (int i = 0; i < 3; ++i) CHECK(counts[phone_for(100 + i)] == 1);
}
