// End-to-end: delivery under provider limits and failures.
#include <catch2/catch.hpp>
#include <map>
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
