// SendGrid Event Webhook bodies (app/email_events): which events change a
// delivery, and the strict parse every body gets (duplicate keys, shape).
#include <catch2/catch.hpp>

#include "app/email_events.h"

using namespace tocsin;
using namespace tocsin::app;

TEST_CASE("sendgrid event bodies: kinds, soft and hard bounces, skipped events", "[unit][reach]") {
  auto parsed = parse_email_events(R"([
    {"event":"delivered","sg_event_id":"e1","tocsin_delivery_id":"7"},
    {"event":"bounce","type":"blocked","sg_event_id":"e2","tocsin_delivery_id":"8"},
    {"event":"bounce","type":"bounce","sg_event_id":"e3","tocsin_delivery_id":"9"},
    {"event":"spamreport","sg_event_id":"e4","tocsin_delivery_id":"9"},
    {"event":"open","sg_event_id":"e5","tocsin_delivery_id":"9"},
    {"event":"delivered","sg_event_id":"e6"},
    {"event":"delivered","sg_event_id":"e7","tocsin_delivery_id":"-1"},
    {"event":"delivered","tocsin_delivery_id":"3"},
    17, "x", null])");
  REQUIRE(std::holds_alternative<std::vector<EmailEvent>>(parsed));
  const auto& events = std::get<std::vector<EmailEvent>>(parsed);
  REQUIRE(events.size() == 4);
  CHECK(events[0].delivery_id == 7);
  CHECK(events[0].state == DeliveryState::kDelivered);
  CHECK_FALSE(events[0].opt_out);
  CHECK(events[1].state == DeliveryState::kUndelivered);
  CHECK_FALSE(events[1].opt_out);  // soft bounce
  CHECK(events[2].opt_out);        // hard bounce
  CHECK(events[3].event_id == "e4");
  CHECK_FALSE(events[3].state);
  CHECK(events[3].opt_out);
}

TEST_CASE("sendgrid event bodies: deferred, dropped and the unsubscribe events", "[unit][reach]") {
  auto parsed = parse_email_events(R"([
    {"event":"deferred","attempt":"3","response":"451 busy","sg_event_id":"f1","tocsin_delivery_id":"5"},
    {"event":"deferred","sg_event_id":"f2","tocsin_delivery_id":"5"},
    {"event":"dropped","reason":"Bounced Address","sg_event_id":"f3","tocsin_delivery_id":"6"},
    {"event":"unsubscribe","sg_event_id":"f4","tocsin_delivery_id":"7"},
    {"event":"group_unsubscribe","asm_group_id":1,"sg_event_id":"f5","tocsin_delivery_id":"8"},
    {"event":"processed","sg_event_id":"f6","tocsin_delivery_id":"8"}])");
  REQUIRE(std::holds_alternative<std::vector<EmailEvent>>(parsed));
  const auto& events = std::get<std::vector<EmailEvent>>(parsed);
  REQUIRE(events.size() == 5);
  // Deferred is no outcome: the state stays, the attempt is noted (never the response).
  CHECK_FALSE(events[0].state);
  CHECK_FALSE(events[0].opt_out);
  CHECK(events[0].note == "sendgrid deferred (attempt 3)");
  CHECK(events[1].note == "sendgrid deferred");
  CHECK(events[2].state == DeliveryState::kUndelivered);
  CHECK_FALSE(events[2].opt_out);
  CHECK(events[2].note.empty());
  for (std::size_t k : {3u, 4u}) {
    INFO(k);
    CHECK_FALSE(events[k].state);
    CHECK(events[k].opt_out);
  }
  CHECK(events[4].delivery_id == 8);
}

TEST_CASE("sendgrid event bodies: duplicate keys, non-arrays and deep nesting are malformed",
          "[unit][reach][strict]") {
  auto dup = parse_email_events(
      R"([{"event":"deferred","sg_event_id":"d","tocsin_delivery_id":"1","event":"spamreport"}])");
  REQUIRE(std::holds_alternative<MalformedBody>(dup));
  CHECK(std::get<MalformedBody>(dup).detail == "duplicate key \"event\"");
  CHECK(std::get<MalformedBody>(dup).field == "[0].event");
  CHECK(std::holds_alternative<MalformedBody>(parse_email_events(R"({"event":"delivered"})")));
  CHECK(std::holds_alternative<MalformedBody>(parse_email_events("[1,")));
  CHECK(std::holds_alternative<MalformedBody>(parse_email_events(std::string(10000, '['))));
  auto empty = parse_email_events("[]");
  REQUIRE(std::holds_alternative<std::vector<EmailEvent>>(empty));
  CHECK(std::get<std::vector<EmailEvent>>(empty).empty());
}
