// End-to-end: delivery under provider limits and failures.
#include <catch2/catch.hpp>
#include <fstream>
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
  add_eastside_subscribers(d.url(), 200);
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
  REQUIRE(settled(d));
  CHECK(backup.message_count() == 51);  // each once

  // The primary recovers: after the cooldown the next message is its probe;
  // once that succeeds, traffic is back on the primary.
  gw.twilio.set_down(false);
  // The breaker's cooldown passes: the subject here, not a wait for a condition.
  std::this_thread::sleep_for(1500ms);
  backup.reset();
  auto probe = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  REQUIRE(probe.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 5s));
  auto r = post_report(d.url(), report_body({{"location", {{"lat", 34.2}, {"lon", -118.2}}}}).dump());
  REQUIRE(r.json()["recipients"] == 51);
  REQUIRE(gw.twilio.wait_for(52, 15s));
  REQUIRE(settled(d));
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
  eventually(
      [&] {
        deliveries = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"];
        return deliveries["sms"].value("expired", 0) == 2;
      },
      15s);
  CHECK(deliveries["sms"]["expired"] == 2);
  CHECK(gw.twilio.message_count() == 0);
  // Recovery after the deadline sends nothing stale.
  gw.twilio.set_down(false);
  REQUIRE(settled(d));  // every delivery is final (expired): none can go out
  CHECK(gw.twilio.message_count() == 0);
}

TEST_CASE("kill -9 at random moments of 5,000-recipient fan-outs, ten rounds: nothing lost, "
          "duplicates bounded by max_in_flight + max_unrecorded",
          "[e2e][delivery][crash]") {
  Gateways gw;
  const int max_in_flight = 16;
  const int max_unrecorded = 64;
  json cfg = test_config(gw, 5000, max_in_flight);
  cfg["delivery"]["max_unrecorded"] = max_unrecorded;
  Daemon d(cfg);
  d.start();
  add_eastside_subscribers(d.url(), 5000);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> when(0, 600);
  int worst = 0;
  for (int round = 0; round < 10; ++round) {
    gw.twilio.reset();
    // Each round a new incident, kilometres from the last.
    auto r = post_report(d.url(), report_body({{"location", {{"lat", 34.0 + 0.05 * round}, {"lon", -118.2}}}}).dump());
    REQUIRE(r.json()["recipients"] == 5000);
    std::this_thread::sleep_for(std::chrono::milliseconds(when(rng)));  // a random crash moment: the input
    d.kill9();
    d.start();
    REQUIRE(gw.twilio.wait_for(distinct_recipients(5000), 60s));
    REQUIRE(settled(d, 60s));
    auto counts = count_by_recipient(gw.twilio.messages());
    int duplicates = repeated_messages(counts);
    INFO("round " << round);
    CHECK(counts.size() == 5000);
    // Sent and not recorded at the kill: at most max_in_flight requests
    // (one message each) at the gateway and max_unrecorded - 1 answered.
    CHECK(duplicates < max_in_flight + max_unrecorded);
    worst = std::max(worst, duplicates);
  }
  WARN("most duplicates in one round: " << worst << " (max_in_flight " << max_in_flight
                                        << ", max_unrecorded " << max_unrecorded << ")");
}

TEST_CASE("a send slot frees when its answer is queued, and answered results not yet committed "
          "are bounded by max_unrecorded",
          "[e2e][delivery][crash]") {
  Gateways gw;
  const int max_in_flight = 8;
  const int max_unrecorded = 100;
  // 1,000 SMS per second: three seconds of fan-out to stall in the middle.
  json cfg = test_config(gw, 1000, max_in_flight);
  cfg["delivery"]["max_unrecorded"] = max_unrecorded;
  Daemon d(cfg);
  d.start();
  const int n = 3000;
  add_eastside_subscribers(d.url(), n);
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == n);
  REQUIRE(gw.twilio.wait_for(200, 10s));
  // Another process takes the write lock mid fan-out: from now on no result
  // can be recorded, so what a crash would send again only grows.
  OutsideWriteLock lock(d);
  int64_t recorded = lock.count("SELECT count(*) FROM deliveries WHERE state <> 0");
  // Sends go on past the commit that cannot happen, then stop at the bound.
  std::size_t sent = gw.twilio.message_count();
  // Nothing can settle while the lock holds: wait until a second passes with no send.
  for (int stable = 0, i = 0; stable < 4 && i < 100; ++i) {
    std::this_thread::sleep_for(250ms);
    std::size_t now = gw.twilio.message_count();
    stable = now == sent ? stable + 1 : 0;
    sent = now;
  }
  lock.release();
  auto unrecorded = static_cast<int64_t>(sent) - recorded;
  WARN("recorded at the lock " << recorded << ", sent by the stall " << sent);
  CHECK(sent < static_cast<std::size_t>(n));  // stalled mid fan-out, not finished
  // More than max_in_flight: slots did not wait for the commit...
  CHECK(unrecorded > max_in_flight);
  // ...and never more than the bound a crash could repeat.
  CHECK(unrecorded <= max_in_flight + max_unrecorded);
  // Once the lock is gone everything is recorded and each recipient served once.
  REQUIRE(gw.twilio.wait_for(distinct_recipients(n), 60s));
  REQUIRE(settled(d, 60s));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == static_cast<std::size_t>(n));
  CHECK(repeated_messages(counts) == 0);
}

TEST_CASE("Twilio receipts move deliveries to delivered or undelivered, one way only",
          "[e2e][delivery]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"groups", {"eastside"}}}});
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(2, 5s));
  auto counts = [&] { return admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"]["sms"]; };
  eventually([&] { return counts().value("sent", 0) == 2; });
  auto msgs = gw.twilio.messages();
  // Out of order: "delivered" first, then a late "sent" and a contradicting "undelivered".
  CHECK(twilio_receipt(d.url(), gw, msgs[0].id, "delivered").status == 204);
  CHECK(twilio_receipt(d.url(), gw, msgs[0].id, "sent").status == 204);
  CHECK(twilio_receipt(d.url(), gw, msgs[0].id, "undelivered").status == 204);
  CHECK(twilio_receipt(d.url(), gw, msgs[1].id, "undelivered").status == 204);
  // A forged receipt changes nothing.
  CHECK(twilio_receipt(d.url(), gw, msgs[1].id, "delivered", /*forged=*/true).status == 403);
  auto c = counts();
  CHECK(c.value("delivered", 0) == 1);
  CHECK(c.value("undelivered", 0) == 1);
  CHECK(c.value("sent", 0) == 0);
}

TEST_CASE("30% 503, 10% 429 and 2 s stalls: every message still delivered exactly once",
          "[e2e][delivery]") {
  Gateways gw;
  for (auto* e : {&gw.twilio, &gw.sendgrid}) {
    e->set_p_503(0.30);
    e->set_p_429(0.10, 1);
    e->set_stall(0.10, 2s);
  }
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 60; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"email", "s" + std::to_string(i) + "@example.org"},
                    {"language", i % 2 ? "es" : "en"}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == 120);
  REQUIRE(gw.twilio.wait_for(60, 90s));
  REQUIRE(gw.sendgrid.wait_for(60, 90s));
  REQUIRE(settled(d, 30s));
  auto counts = count_by_recipient(gw.twilio.messages());
  counts.merge(count_by_recipient(gw.sendgrid.messages()));
  CHECK(counts.size() == 120);
  for (const auto& [to, n] : counts) CHECK(n == 1);
  CHECK(gw.twilio.count(503) > 0);
  CHECK(gw.twilio.count(429) > 0);
}

TEST_CASE("SIGTERM drains requests in flight and the next start sends the rest, once",
          "[e2e][delivery]") {
  Gateways gw;
  gw.twilio.set_stall(1.0, 1500ms);  // every request takes 1.5 s
  Daemon d(test_config(gw, 500, 4));
  d.start();
  add_eastside_subscribers(d.url(), 12);
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == 12);
  REQUIRE(gw.twilio.wait_for([](const Observations& o) { return o.in_flight == 4; }, 5s));
  d.terminate();
  auto exit = d.wait_exit(15s);
  REQUIRE(exit);
  CHECK(exit->code == 0);
  CHECK(gw.twilio.message_count() == 4);  // the four in flight were answered and recorded
  gw.twilio.set_stall(0, 0ms);
  d.start();
  REQUIRE(gw.twilio.wait_for(12, 10s));
  REQUIRE(settled(d));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 12);
  for (const auto& [to, n] : counts) CHECK(n == 1);
}

TEST_CASE("operators see deliveries by gateway and queue expired ones again", "[e2e][delivery][cli]") {
  Gateways gw;
  gw.twilio.set_down(true);
  json cfg = test_config(gw);
  cfg["delivery"]["sms_deadline_s"] = 10;
  cfg["delivery"]["breaker_cooldown_s"] = 1;
  Daemon d(cfg);
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}}});
  std::string code = post_report(d.url(), report_body().dump()).json()["incident_id"];
  std::ofstream(d.path("admin.token")) << kAdminToken << "\n";
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"deliveries", "--url", d.url(), "--token-file",
                                  d.path("admin.token").string(), "--incident", code};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  eventually([&] { return run_cli(args({})).out.find("expired") != std::string::npos; }, 15s);
  auto shown = run_cli(args({}));
  INFO(shown.out << shown.err);
  CHECK(shown.exit_code == 0);
  CHECK(shown.out.find("sms      expired") != std::string::npos);
  CHECK(shown.out.find("twilio-main") != std::string::npos);
  // The provider is back: the operator queues the expired alert again.
  gw.twilio.set_down(false);
  auto retried = run_cli({"deliveries", "retry", "--url", d.url(), "--token-file",
                          d.path("admin.token").string(), "--incident", code});
  INFO(retried.out << retried.err);
  CHECK(retried.exit_code == 0);
  CHECK(retried.out.find("1 deliveries queued again") != std::string::npos);
  CHECK(gw.twilio.wait_for(1, 5s));
}

TEST_CASE("Twilio 21610 marks the subscriber opted out, 21211 fails one delivery, not the gateway",
          "[e2e][delivery]") {
  Gateways gw;
  gw.twilio.set_twilio_error(phone_for(1), 21610);
  gw.twilio.set_twilio_error(phone_for(2), 21211);
  Daemon d(test_config(gw));
  d.start();
  auto ids = add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                                       json{{"phone", phone_for(2)}, {"groups", {"eastside"}}},
                                       json{{"phone", phone_for(3)}, {"groups", {"eastside"}}}});
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(1, 5s));
  json sms;
  eventually([&] {
    sms = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"]["sms"];
    // All three results recorded: they may land in different commits.
    return sms.value("failed", 0) + sms.value("sent", 0) == 3;
  });
  CHECK(sms.value("failed", 0) == 2);
  CHECK(sms.value("sent", 0) == 1);
  CHECK(gw.twilio.count(400) == 2);  // each tried once: permanent errors are not retried
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[0])).json()["sms_opted_out"] == true);
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[1])).json()["sms_opted_out"] == false);
  // The opted-out number is left out of the next alert.
  auto next = post_report(d.url(), report_body({{"location", {{"lat", 34.2}, {"lon", -118.2}}}}).dump());
  CHECK(next.json()["recipients"] == 2);
}
