// End-to-end: delivery under provider limits and failures.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/sms.h"
#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("against a provider allowing N requests per second, tocsin settles at N with no 429",
          "[e2e][delivery]") {
  Gateways gw;
  const int limit = 40;
  gw.twilio.set_rate_limit(limit);
  Daemon d(test_config(gw, limit, 16));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 200; ++i) subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == 200);
  REQUIRE(gw.twilio.wait_for(200, 20s));
  auto msgs = gw.twilio.messages();
  CHECK(gw.twilio.count(429) == 0);
  // No second ever held more than the limit...
  std::size_t busiest = 0;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    std::size_t j = i;
    while (j < msgs.size() && msgs[j].accepted_at - msgs[i].accepted_at < 1s) ++j;
    busiest = std::max(busiest, j - i);
  }
  CHECK(busiest <= static_cast<std::size_t>(limit));
  // ...and the fan-out ran at the limit: n messages need n/limit windows.
  double seconds = std::chrono::duration<double>(msgs.back().accepted_at - msgs.front().accepted_at).count();
  double rate = msgs.size() / (seconds + 1.0);
  WARN("settled rate: " << rate << " messages/s against a limit of " << limit);
  CHECK(rate >= 0.85 * limit);
}

TEST_CASE("long Spanish messages are rated by segment", "[e2e][delivery]") {
  Gateways gw;
  gw.twilio.set_rate_limit(10);
  // 10 segments per second; each message below is 3 UCS-2 segments.
  Daemon d(test_config(gw, 10, 16));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 12; ++i) subs.push_back({{"phone", phone_for(i)}, {"language", "es"}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  std::string long_es = "Vehículos de ICE en la esquina de 1st y Soto, frente a la panadería";
  auto r = post_report(d.url(), report_body({{"headline", {{"es", long_es}}}}).dump());
  REQUIRE(r.json()["recipients"] == 12);
  REQUIRE(gw.twilio.wait_for(12, 20s));
  auto msgs = gw.twilio.messages();
  auto size = tocsin::sms_size(msgs.front().body);
  CHECK(size.encoding == tocsin::SmsEncoding::kUcs2);
  REQUIRE(size.segments >= 3);
  double seconds = std::chrono::duration<double>(msgs.back().accepted_at - msgs.front().accepted_at).count();
  // 12 messages of k segments at 10 segments/s: the first second's 10
  // segments, then 10 more each second.
  double expected = (12.0 * size.segments - 10.0) / 10.0 - 1.0;
  CHECK(seconds >= expected);
  CHECK(gw.twilio.count(429) == 0);
}

TEST_CASE("primary SMS gateway down: traffic fails over to the backup, and returns after recovery",
          "[e2e][delivery]") {
  Gateways gw;
  GatewayEmulator backup;
  gw.twilio.set_down(true);
  json cfg = test_config(gw);
  json second = cfg["gateways"][0];
  second["name"] = "twilio-backup";
  second["base_url"] = backup.base_url();
  cfg["gateways"].insert(cfg["gateways"].begin() + 1, second);
  cfg["delivery"]["breaker_threshold"] = 3;
  cfg["delivery"]["breaker_cooldown_s"] = 1;
  Daemon d(cfg);
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 50; ++i) subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}});
  subs.push_back({{"phone", phone_for(99)}, {"groups", {"drills"}}});  // the one checkpoint alerts reach
  add_subscribers(d.url(), subs);

  auto start = std::chrono::steady_clock::now();
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == 51);
  REQUIRE(backup.wait_for(51, 15s));
  auto failover = std::chrono::steady_clock::now() - start;
  WARN("all 51 SMS delivered via the backup in "
       << std::chrono::duration_cast<std::chrono::milliseconds>(failover).count() << " ms");
  CHECK(failover < 5s);
  CHECK(gw.twilio.message_count() == 0);
  CHECK(gw.twilio.count(503) >= 3);
  std::this_thread::sleep_for(300ms);
  CHECK(backup.message_count() == 51);  // each once

  // The primary recovers: after the cooldown the next message is its probe;
  // once that succeeds, traffic is back on the primary.
  gw.twilio.set_down(false);
  std::this_thread::sleep_for(1500ms);
  backup.reset();
  auto probe = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  REQUIRE(probe.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 5s));
  auto r = post_report(d.url(), report_body({{"location", {{"lat", 34.2}, {"lon", -118.2}}}}).dump());
  REQUIRE(r.json()["recipients"] == 51);
  REQUIRE(gw.twilio.wait_for(52, 15s));
  std::this_thread::sleep_for(500ms);
  CHECK(gw.twilio.message_count() == 52);
  CHECK(backup.message_count() == 0);
  CHECK(d.log().find("circuit open") != std::string::npos);
}

TEST_CASE("a whole-channel outage holds messages until their deadline, then expires them visibly",
          "[e2e][delivery]") {
  Gateways gw;
  gw.twilio.set_down(true);
  json cfg = test_config(gw);
  cfg["delivery"]["sms_deadline_s"] = 10;
  cfg["delivery"]["breaker_cooldown_s"] = 1;
  Daemon d(cfg);
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"groups", {"eastside"}}}});
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  // Retried while the deadline allows...
  REQUIRE(gw.twilio.wait_for([](const Observations& o) { return o.count(503) >= 4; }, 10s));
  // ...then expired, and shown as such.
  json deliveries;
  for (int i = 0; i < 60; ++i) {
    deliveries = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"];
    if (deliveries["sms"].value("expired", 0) == 2) break;
    std::this_thread::sleep_for(250ms);
  }
  CHECK(deliveries["sms"]["expired"] == 2);
  CHECK(gw.twilio.message_count() == 0);
  // Recovery after the deadline sends nothing stale.
  gw.twilio.set_down(false);
  std::this_thread::sleep_for(2s);
  CHECK(gw.twilio.message_count() == 0);
}

TEST_CASE("kill -9 at random moments of 5,000-recipient fan-outs, ten rounds: nothing lost, "
          "duplicates bounded by max_in_flight",
          "[e2e][delivery][crash]") {
  Gateways gw;
  const int max_in_flight = 16;
  Daemon d(test_config(gw, 5000, max_in_flight));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 5000; ++i) subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> when(0, 600);
  int worst = 0;
  for (int round = 0; round < 10; ++round) {
    gw.twilio.reset();
    // Each round a new incident, kilometres from the last.
    auto r = post_report(d.url(), report_body({{"location", {{"lat", 34.0 + 0.05 * round}, {"lon", -118.2}}}}).dump());
    REQUIRE(r.json()["recipients"] == 5000);
    std::this_thread::sleep_for(std::chrono::milliseconds(when(rng)));
    d.kill9();
    d.start();
    REQUIRE(gw.twilio.wait_for(
        [](const Observations& o) {
          std::set<std::string> got;
          for (const auto& m : o.messages) got.insert(m.to);
          return got.size() == 5000;
        },
        60s));
    std::this_thread::sleep_for(300ms);
    std::map<std::string, int> counts;
    for (const auto& m : gw.twilio.messages()) ++counts[m.to];
    int duplicates = 0;
    for (const auto& [to, n] : counts) duplicates += n - 1;
    INFO("round " << round);
    CHECK(counts.size() == 5000);
    CHECK(duplicates <= max_in_flight);
    worst = std::max(worst, duplicates);
  }
  WARN("most duplicates in one round: " << worst << " (max_in_flight " << max_in_flight << ")");
}
