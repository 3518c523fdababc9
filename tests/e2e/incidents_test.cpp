// End-to-end: incidents — dedup by place and time, follow-ups to the same
// people, drills, two-way SMS (opt-out, opt-in, help, acknowledgements).
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::multiset<std::string> recipients(const std::vector<ReceivedMessage>& msgs) {
  std::multiset<std::string> out;
  for (const auto& m : msgs) out.insert(m.to);
  return out;
}

json at(double lat, double lon) { return {{"lat", lat}, {"lon", lon}, {"description", "x"}}; }

}  // namespace

TEST_CASE("five reports from two coordinators within 150 m make one incident and one message each",
          "[e2e][incidents]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_eastside_subscribers(d.url(), 10);

  // Up to ~150 m apart around 1st & Soto.
  const double offsets[5][2] = {{0, 0}, {0.0009, 0}, {0, 0.0012}, {-0.0004, 0.0005}, {0.0013, 0.0002}};
  std::set<std::string> incidents;
  int merged = 0;
  for (int i = 0; i < 5; ++i) {
    auto body = report_body({{"location", at(34.0339 + offsets[i][0], -118.2107 + offsets[i][1])},
                             {"severity", "moderate"}});
    auto r = post_report(d.url(), body.dump(), i % 2 ? kObserverSecret : kCoordinatorSecret);
    REQUIRE(r.status == 202);
    incidents.insert(r.json()["incident_id"].get<std::string>());
    merged += r.json()["outcome"] == "merged";
  }
  CHECK(incidents.size() == 1);
  CHECK(merged == 4);
  REQUIRE(gw.twilio.wait_for(10, 10s));
  REQUIRE(settled(d));
  CHECK(gw.twilio.message_count() == 10);

  auto inc = admin("GET", d.url() + "/v1/incidents/" + *incidents.begin()).json();
  CHECK(inc["report_count"] == 5);
  CHECK(inc["coordinators"] == json({"la-hotline", "la-observers"}));
  CHECK(inc["timeline"].size() == 5);
  CHECK(inc["spread_m"].get<double>() > 100);
  CHECK(inc["spread_m"].get<double>() <= 150);

  // 5 km away, or another event at the same place: new incidents.
  auto far = post_report(d.url(), report_body({{"location", at(34.0339, -118.1565)}}).dump());
  CHECK(far.json()["outcome"] == "new_incident");
  auto other = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  CHECK(other.json()["outcome"] == "new_incident");
  CHECK(other.json()["incident_id"] != far.json()["incident_id"]);
  auto open = admin("GET", d.url() + "/v1/incidents?state=open").json();
  CHECK(open["incidents"].size() == 3);
}

TEST_CASE("update and cancel reach exactly the original 20 recipients, not 5 who joined after",
          "[e2e][incidents]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> original, later;
  std::set<std::string> original_phones;
  for (int i = 0; i < 20; ++i) {
    original.push_back({{"phone", phone_for(i)}, {"language", i % 2 ? "es" : "en"}, {"groups", {"eastside"}}});
    original_phones.insert(phone_for(i));
  }
  for (int i = 20; i < 25; ++i) later.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), original);
  auto alert = post_report(d.url(), report_body().dump());
  REQUIRE(alert.status == 202);
  std::string code = alert.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(20, 10s));
  add_subscribers(d.url(), later);
  gw.twilio.reset();

  auto update = post_report(d.url(), report_body({{"msg_type", "update"}, {"references", code},
                                                  {"headline", {{"en", "Vehicles moving north"}, {"es", "Vehículos hacia el norte"}}}})
                                         .dump());
  REQUIRE(update.status == 202);
  CHECK(update.json()["outcome"] == "update");
  CHECK(update.json()["incident_id"] == code);
  CHECK(update.json()["recipients"] == 20);
  REQUIRE(gw.twilio.wait_for(20, 10s));
  REQUIRE(settled(d));
  auto got = recipients(gw.twilio.messages());
  CHECK(got == std::multiset<std::string>(original_phones.begin(), original_phones.end()));
  for (const auto& m : gw.twilio.messages())
    CHECK((m.body.rfind("UPDATE ALERT #" + code, 0) == 0 || m.body.rfind("ACTUALIZACION ALERTA #" + code, 0) == 0));

  gw.twilio.reset();
  auto cancel = post_report(d.url(), report_body({{"msg_type", "cancel"}, {"references", code}, {"headline", nullptr}}).dump(),
                            kObserverSecret);
  REQUIRE(cancel.status == 202);
  CHECK(cancel.json()["outcome"] == "cancel");
  REQUIRE(gw.twilio.wait_for(20, 10s));
  REQUIRE(settled(d));
  got = recipients(gw.twilio.messages());
  CHECK(got == std::multiset<std::string>(original_phones.begin(), original_phones.end()));
  for (const auto& m : gw.twilio.messages())
    CHECK((m.body.rfind("ALL CLEAR #" + code, 0) == 0 || m.body.rfind("FIN DE ALERTA #" + code, 0) == 0));
  CHECK(admin("GET", d.url() + "/v1/incidents/" + code).json()["state"] == "closed");

  // A new alert at the same place opens a new incident, for all 25.
  gw.twilio.reset();
  auto again = post_report(d.url(), report_body().dump());
  CHECK(again.json()["outcome"] == "new_incident");
  CHECK(again.json()["incident_id"] != code);
  CHECK(again.json()["recipients"] == 25);
}

TEST_CASE("a duplicate that raises the severity updates the same recipients", "[e2e][incidents]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"email", "lawyer@example.org"}, {"groups", {"lawyers"}}}});
  auto first = post_report(d.url(), report_body({{"severity", "moderate"}}).dump());
  CHECK(first.json()["recipients"] == 1);  // lawyers take severe and above only
  REQUIRE(gw.twilio.wait_for(1, 5s));
  auto same = post_report(d.url(), report_body({{"severity", "moderate"}}).dump());
  CHECK(same.json()["recipients"] == 0);
  auto worse = post_report(d.url(), report_body({{"severity", "extreme"}}).dump());
  CHECK(worse.json()["outcome"] == "merged");
  CHECK(worse.json()["recipients"] == 1);  // the original recipient, not the lawyers
  REQUIRE(gw.twilio.wait_for(2, 5s));
  CHECK(gw.twilio.messages()[1].body.rfind("UPDATE ALERT", 0) == 0);
  REQUIRE(settled(d));
  CHECK(gw.sendgrid.message_count() == 0);
}

TEST_CASE("drills reach only groups that take drills, and say so", "[e2e][incidents]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"language", "es"}, {"groups", {"drills"}}}});
  auto r = post_report(d.url(), report_body({{"status", "exercise"}}).dump());
  REQUIRE(r.status == 202);
  CHECK(r.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 5s));
  auto m = gw.twilio.messages().front();
  CHECK(m.to == phone_for(2));
  CHECK(m.body.rfind("[SIMULACRO - NO ES REAL]", 0) == 0);
  // A drill never merges with a real incident, nor a real one with a drill.
  auto real = post_report(d.url(), report_body().dump());
  CHECK(real.json()["outcome"] == "new_incident");
}

TEST_CASE("two-way SMS: STOP, forged STOP, START, HELP, acknowledgements", "[e2e][incidents]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"language", "es"}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"groups", {"eastside"}}}});
  auto alert = post_report(d.url(), report_body().dump());
  std::string code = alert.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(2, 5s));

  // Replies become acknowledgements on the incident.
  CHECK(inbound_sms(d.url(), gw, phone_for(1), "On my way").status == 200);
  CHECK(inbound_sms(d.url(), gw, phone_for(2), "I can be there in 20 min").status == 200);
  auto inc = admin("GET", d.url() + "/v1/incidents/" + code).json();
  CHECK(inc["acknowledgements"]["counts"]["responding"] == 1);
  CHECK(inc["acknowledgements"]["counts"]["reply"] == 1);
  CHECK(d.log().find("20 min") == std::string::npos);  // reply texts are not logged

  // HELP answers in the subscriber's language.
  auto help = inbound_sms(d.url(), gw, phone_for(1), "help");
  CHECK(help.status == 200);
  CHECK(help.header("content-type") == "text/xml");
  CHECK(help.body.find("<Message>Alertas de respuesta rapida") != std::string::npos);

  // A forged STOP is refused and changes nothing.
  auto forged = inbound_sms(d.url(), gw, phone_for(2), "STOP", /*forged=*/true);
  CHECK(forged.status == 403);
  // A signed STOP opts the number out: the next alert skips it.
  CHECK(inbound_sms(d.url(), gw, phone_for(1), "Stop").status == 200);
  gw.twilio.reset();
  auto next = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  CHECK(next.json()["recipients"] == 0);  // eastside takes enforcement_activity only
  auto next2 = post_report(d.url(), report_body({{"location", at(34.0339, -118.1565)}}).dump());
  CHECK(next2.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 5s));
  REQUIRE(settled(d));
  CHECK(recipients(gw.twilio.messages()) == std::multiset<std::string>{phone_for(2)});
  // START opts back in.
  CHECK(inbound_sms(d.url(), gw, phone_for(1), "START").status == 200);
  auto third = post_report(d.url(), report_body({{"location", at(34.1339, -118.2107)}}).dump());
  CHECK(third.json()["recipients"] == 2);
}

TEST_CASE("STOP in the middle of a 1,000-recipient fan-out stops the rest to that number",
          "[e2e][incidents]") {
  Gateways gw;
  // 150 SMS/s: the fan-out takes several seconds.
  Daemon d(test_config(gw, 150, 8));
  d.start();
  add_eastside_subscribers(d.url(), 1000);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 1000);
  REQUIRE(gw.twilio.wait_for(100, 10s));
  // The last subscriber's message is queued behind 900 others.
  const std::string quitter = phone_for(999);
  CHECK(inbound_sms(d.url(), gw, quitter, "STOP").status == 200);
  REQUIRE(gw.twilio.wait_for(999, 30s));
  REQUIRE(settled(d));
  auto got = recipients(gw.twilio.messages());
  CHECK(got.count(quitter) == 0);
  CHECK(got.size() == 999);
  auto inc = admin("GET", d.url() + "/v1/incidents/" + r.json()["incident_id"].get<std::string>()).json();
  CHECK(inc["deliveries"]["sms"]["cancelled"] == 1);
}

// The two-person rule is the console's (issue 13): a hotline's own system has
// verified what it signs, so its webhook reports go out at once.
TEST_CASE("a coordinator with approval two_person: its signed webhook reports are sent at once, no draft",
          "[e2e][incidents][console]") {
  Gateways gw;
  json config = test_config(gw);
  config["coordinators"][0]["approval"] = "two_person";
  config["console"]["enabled"] = true;
  Daemon d(config);
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}}});
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.status == 202);
  CHECK(r.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  CHECK(query_db(d, "SELECT count(*) FROM drafts") == std::vector<std::string>{"0"});
}
