// Safety rules end to end (README "Safety rules"), through the real daemon
// and the Twilio emulator, with short timers: wide lists only after
// corroboration or certainty, escalation when too few respond (across a
// kill -9, stopped by an all-clear), "covered" to the non-responders.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Phones of the "wide" group's subscribers: 100.. (eastside uses 0..).
std::string wide_phone(int i) { return phone_for(100 + i); }
// Phones of the "wider" group's (a second escalation): 200..
std::string wider_phone(int i) { return phone_for(200 + i); }

json wide_group(json match_extra = json::object()) {
  json match = {{"areas", {"la"}}, {"events", {"enforcement_activity"}}};
  for (auto it = match_extra.begin(); it != match_extra.end(); ++it) match[it.key()] = *it;
  return {{"name", "wide"}, {"match", match}, {"channels", {"sms"}}};
}

// Adds `n` SMS subscribers in `group` with phones `phone(0..n-1)`.
void add_group(const std::string& url, const std::string& group, int n,
               std::string (*phone)(int)) {
  std::vector<json> subs;
  for (int i = 0; i < n; ++i) subs.push_back({{"phone", phone(i)}, {"groups", {group}}});
  add_subscribers(url, subs);
}

std::multiset<std::string> recipients_of(const std::vector<ReceivedMessage>& messages,
                                         const std::string& containing = "") {
  std::multiset<std::string> out;
  for (const auto& m : messages)
    if (containing.empty() || m.body.find(containing) != std::string::npos) out.insert(m.to);
  return out;
}

json incident(const Daemon& d, const std::string& code) {
  auto r = admin("GET", d.url() + "/v1/incidents/" + code);
  REQUIRE(r.status == 200);
  return r.json();
}

// Timeline entries of `what`.
std::vector<json> steps(const json& inc, const std::string& what) {
  std::vector<json> out;
  for (const auto& t : inc["timeline"])
    if (t["what"] == what) out.push_back(t);
  return out;
}

// Waits up to `timeout` for the incident's timeline to have a `what` step.
bool wait_for_step(const Daemon& d, const std::string& code, const std::string& what,
                   std::chrono::milliseconds timeout = 20s) {
  return eventually([&] { return !steps(incident(d, code), what).empty(); }, timeout);
}

double metric(const Daemon& d, const std::string& step) {
  auto r = get(d.url() + "/metrics");
  REQUIRE(r.status == 200);
  std::string key = "tocsin_safety_steps_total{step=\"" + step + "\"} ";
  auto at = r.body.find(key);
  REQUIRE(at != std::string::npos);  // exported from the start
  return std::stod(r.body.substr(at + key.size()));
}

// The incident's audit entries by tocsin with `method` (HOLD, RELEASE, ESCALATE, COVER).
int audit_count(const Daemon& d, const std::string& code, const std::string& method) {
  auto audit = admin("GET", d.url() + "/v1/audit?limit=500").json();
  int n = 0;
  for (const auto& e : audit["entries"])
    if (e["object_id"] == code && e["actor"] == "tocsin" && e["method"] == method) ++n;
  return n;
}

json update_of(const std::string& code, json extra = json::object()) {
  json body = report_body({{"msg_type", "update"}, {"references", code}});
  for (auto it = extra.begin(); it != extra.end(); ++it) body[it.key()] = *it;
  return body;
}

json cancel_of(const std::string& code) {
  return report_body({{"msg_type", "cancel"},
                      {"references", code},
                      {"headline", nullptr},
                      {"instruction", nullptr}});
}

}  // namespace

TEST_CASE("min_corroboration 2: held from one coordinator, released once by a second",
          "[e2e][safety]") {
  Gateways gw;
  json config = test_config(gw);
  config["groups"].push_back(wide_group({{"min_corroboration", 2}}));
  Daemon d(config);
  d.start();
  for (const char* step : {"held", "released", "escalated", "covered"})
    CHECK(metric(d, step) == 0);
  add_group(d.url(), "eastside", 2, phone_for);
  add_group(d.url(), "wide", 3, wide_phone);
  // In both groups: reached by eastside's alert, never a second time.
  add_subscribers(d.url(), {json{{"phone", phone_for(50)}, {"groups", {"eastside", "wide"}}}});

  auto first = post_report(d.url(), report_body().dump());
  REQUIRE(first.status == 202);
  std::string code = first.json()["incident_id"];
  CHECK(first.json()["recipients"] == 3);  // eastside only
  REQUIRE(gw.twilio.wait_for(3, 10s));
  auto inc = incident(d, code);
  REQUIRE(steps(inc, "held").size() == 1);
  CHECK(steps(inc, "held")[0]["group"] == "wide");
  CHECK(steps(inc, "held")[0]["detail"] == "waits for 2 reporters (has 1)");
  CHECK(metric(d, "held") == 1);

  // The same coordinator again: still one coordinator, nothing sent.
  auto again = post_report(d.url(), report_body().dump());
  CHECK(again.json()["outcome"] == "merged");
  CHECK(again.json()["recipients"] == 0);

  // A second coordinator's report of the same event: released, once.
  auto second = post_report(d.url(), report_body().dump(), kObserverSecret);
  REQUIRE(second.status == 202);
  CHECK(second.json()["outcome"] == "merged");
  CHECK(second.json()["incident_id"] == code);
  CHECK(second.json()["recipients"] == 3);  // wide, minus the one already reached
  REQUIRE(gw.twilio.wait_for(6, 10s));
  auto third = post_report(d.url(), report_body().dump(), kObserverSecret);
  CHECK(third.json()["recipients"] == 0);
  REQUIRE(settled(d));
  auto msgs = gw.twilio.messages();
  CHECK(recipients_of(msgs, "CONFIRMED ALERT #" + code) ==
        std::multiset<std::string>{wide_phone(0), wide_phone(1), wide_phone(2)});
  CHECK(repeated_messages(count_by_recipient(msgs)) == 0);
  inc = incident(d, code);
  REQUIRE(steps(inc, "released").size() == 1);
  CHECK(steps(inc, "released")[0]["recipients"] == 3);
  CHECK(metric(d, "released") == 1);
  bool wide_sent = false;
  for (const auto& g : inc["groups"])
    if (g["group"] == "wide") wide_sent = g["state"] == "sent" && g["via"] == "released";
  CHECK(wide_sent);
  CHECK(inc["coordinators"] == json::array({"la-hotline", "la-observers"}));
  CHECK(inc["reports"].size() == 4);  // the coordinators' reports only
  // The audit trail has both steps for the incident.
  auto audit = admin("GET", d.url() + "/v1/audit?limit=500").json();
  std::set<std::string> methods;
  for (const auto& e : audit["entries"])
    if (e["object_id"] == code && e["actor"] == "tocsin") methods.insert(e["method"]);
  CHECK(methods == std::set<std::string>{"HOLD", "RELEASE"});

  // An update and the all-clear each reach exactly who had the alert, the
  // released ones too, once.
  const std::multiset<std::string> everyone{phone_for(0),  phone_for(1),  phone_for(50),
                                            wide_phone(0), wide_phone(1), wide_phone(2)};
  for (const auto& [body, marker] : {std::pair{update_of(code), "UPDATE"},
                                     std::pair{cancel_of(code), "ALL CLEAR"}}) {
    gw.twilio.reset();
    auto r = post_report(d.url(), body.dump());
    REQUIRE(r.status == 202);
    CHECK(r.json()["recipients"] == 6);
    REQUIRE(gw.twilio.wait_for(6, 10s));
    REQUIRE(settled(d));
    CHECK(recipients_of(gw.twilio.messages(), marker) == everyone);
  }
}

TEST_CASE("min_certainty observed: a possible report holds, an observed update releases",
          "[e2e][safety]") {
  Gateways gw;
  json config = test_config(gw);
  config["groups"].push_back(wide_group({{"min_certainty", "observed"}}));
  Daemon d(config);
  d.start();
  add_group(d.url(), "eastside", 2, phone_for);
  add_group(d.url(), "wide", 2, wide_phone);

  auto first = post_report(d.url(), report_body({{"certainty", "possible"}}).dump());
  REQUIRE(first.status == 202);
  std::string code = first.json()["incident_id"];
  CHECK(first.json()["recipients"] == 2);
  REQUIRE(gw.twilio.wait_for(2, 10s));
  CHECK(steps(incident(d, code), "held")[0]["detail"] ==
        "waits for certainty observed (has possible)");
  // An update that is still only likely: nothing for wide.
  auto likely = post_report(d.url(), update_of(code, {{"certainty", "likely"}}).dump());
  CHECK(likely.json()["recipients"] == 2);
  REQUIRE(gw.twilio.wait_for(4, 10s));
  // An observed update: eastside gets the update, wide the confirmed alert.
  auto observed = post_report(d.url(), update_of(code, {{"certainty", "observed"}}).dump());
  REQUIRE(observed.status == 202);
  CHECK(observed.json()["recipients"] == 4);
  REQUIRE(gw.twilio.wait_for(8, 10s));
  REQUIRE(settled(d));
  auto msgs = gw.twilio.messages();
  CHECK(recipients_of(msgs, "CONFIRMED ALERT") ==
        std::multiset<std::string>{wide_phone(0), wide_phone(1)});
  CHECK(recipients_of(msgs, "UPDATE ALERT") ==
        std::multiset<std::string>{phone_for(0), phone_for(0), phone_for(1), phone_for(1)});
  CHECK(msgs.size() == 8);
  // An invalid certainty is refused, naming the field.
  auto bad = post_report(d.url(), report_body({{"certainty", "sure"}}).dump());
  CHECK(bad.status == 422);
  CHECK(bad.json()["field"] == "certainty");
}

namespace {

json escalation_config(const Gateways& gw, int after_s) {
  json config = test_config(gw);
  for (auto& g : config["groups"])
    if (g["name"] == "eastside")
      g["escalate"] = {{"after_s", after_s}, {"if_responding_below", 3}, {"to", {"wide"}}};
  config["groups"].push_back(wide_group());
  // wide does not match on its own: it hears only by escalation.
  config["groups"].back()["match"]["areas"] = {"la/downtown"};
  return config;
}

}  // namespace

TEST_CASE("escalation: after after_s with 2 of 6 responding, not with 5 of 6", "[e2e][safety]") {
  Gateways gw;
  Daemon d(escalation_config(gw, 4));
  d.start();
  add_group(d.url(), "eastside", 5, phone_for);
  add_group(d.url(), "wide", 3, wide_phone);
  // In both groups: has the alert through eastside, not a second time by escalation.
  add_subscribers(d.url(), {json{{"phone", phone_for(50)}, {"groups", {"eastside", "wide"}}}});

  const auto reported = std::chrono::steady_clock::now();
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(6, 10s));
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "1").status == 200);
  CHECK(inbound_sms(d.url(), gw, phone_for(1), "yes").status == 200);
  CHECK(inbound_sms(d.url(), gw, phone_for(2), "can't, sorry").status == 200);  // not responding
  // Not before after_s (4 s from the first send, which follows the report).
  if (std::chrono::steady_clock::now() - reported < 3s) {
    CHECK(steps(incident(d, code), "escalated").empty());
    CHECK(gw.twilio.message_count() == 6);
  }
  REQUIRE(wait_for_step(d, code, "escalated"));
  CHECK(std::chrono::steady_clock::now() - reported >= 3500ms);  // due 4 s after the first send
  REQUIRE(gw.twilio.wait_for(9, 10s));
  auto inc = incident(d, code);
  CHECK(steps(inc, "escalated")[0]["group"] == "eastside");
  CHECK(steps(inc, "escalated")[0]["detail"] == "2 of 6 responding (below 3): to wide");
  CHECK(steps(inc, "escalated")[0]["recipients"] == 3);  // wide, less the one already reached
  CHECK(recipients_of(gw.twilio.messages(), "ALERT #" + code).count(phone_for(50)) == 1);
  CHECK(metric(d, "escalated") == 1);

  // Another incident where all five respond: no escalation.
  gw.twilio.reset();
  auto r2 = post_report(d.url(), report_body({{"location", {{"lat", 34.1339}, {"lon", -118.2107}}}}).dump());
  std::string code2 = r2.json()["incident_id"];
  REQUIRE(code2 != code);
  REQUIRE(gw.twilio.wait_for(6, 10s));
  for (int i = 0; i < 5; ++i) CHECK(inbound_sms(d.url(), gw, phone_for(i), "On my way").status == 200);
  REQUIRE(wait_for_step(d, code2, "escalation_not_needed"));
  CHECK(steps(incident(d, code2), "escalated").empty());
  REQUIRE(eventually([&] { return query_db(d, "SELECT count(*) FROM escalations WHERE state = 0")[0] == "0"; }));
  REQUIRE(settled(d));  // no timer left to fire, nothing left to send
  CHECK(gw.twilio.message_count() == 6);
  CHECK(metric(d, "escalated") == 1);

  // The whole run: wide got the first incident once, nothing of the second
  // (beyond the one who is in eastside too: eastside's alert of each).
  auto escalated_to_wide = query_db(
      d, "SELECT count(*) FROM deliveries d JOIN subscriber_groups g ON g.subscriber_id = "
         "d.subscriber_id WHERE g.group_name = 'wide'");
  CHECK(escalated_to_wide == std::vector<std::string>{"5"});
}

TEST_CASE("escalation survives a kill -9 while its timer runs, and fires once", "[e2e][safety]") {
  Gateways gw;
  Daemon d(escalation_config(gw, 6));
  d.start();
  add_group(d.url(), "eastside", 5, phone_for);
  add_group(d.url(), "wide", 3, wide_phone);
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(5, 10s));
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "1").status == 200);
  // The sends are recorded (a kill -9 before that would send them again,
  // at least once, which is not what this test is about).
  REQUIRE(eventually([&] { return query_db(d, "SELECT count(*) FROM deliveries WHERE state = 1")[0] == "5"; }));
  // The timer is stored and still waiting at the kill (it is due ~6 s after
  // the first send): otherwise this test would prove nothing about a restart.
  REQUIRE(query_db(d, "SELECT count(*) FROM escalations WHERE state = 0") == std::vector<std::string>{"1"});
  REQUIRE(steps(incident(d, code), "escalated").empty());
  REQUIRE(gw.twilio.message_count() == 5);
  d.kill9();
  d.start();
  REQUIRE(wait_for_step(d, code, "escalated"));
  REQUIRE(gw.twilio.wait_for(8, 10s));
  REQUIRE(eventually([&] { return query_db(d, "SELECT count(*) FROM escalations WHERE state = 0")[0] == "0"; }));
  REQUIRE(settled(d));  // no timer left to fire, nothing left to send
  auto msgs = gw.twilio.messages();
  CHECK(recipients_of(msgs, "ALERT #" + code).size() == 8);
  CHECK(repeated_messages(count_by_recipient(msgs)) == 0);
  CHECK(steps(incident(d, code), "escalated").size() == 1);
  CHECK(query_db(d, "SELECT state FROM escalations") == std::vector<std::string>{"1"});
}

TEST_CASE("escalation chains: the group escalated to escalates in turn, and audit and all-clear follow",
          "[e2e][safety]") {
  Gateways gw;
  json config = escalation_config(gw, 2);
  for (auto& g : config["groups"])
    if (g["name"] == "wide")
      g["escalate"] = {{"after_s", 2}, {"if_responding_below", 1}, {"to", {"wider"}}};
  config["groups"].push_back(wide_group());
  config["groups"].back()["name"] = "wider";
  config["groups"].back()["match"]["areas"] = {"la/downtown"};
  Daemon d(config);
  d.start();
  add_group(d.url(), "eastside", 5, phone_for);
  add_group(d.url(), "wide", 3, wide_phone);
  add_group(d.url(), "wider", 2, wider_phone);

  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  // Nobody responds: eastside's timer widens to wide, whose own timer
  // (from its first send) widens to wider.
  REQUIRE(gw.twilio.wait_for(10, 20s));
  REQUIRE(eventually([&] { return steps(incident(d, code), "escalated").size() == 2; }, 20s));
  auto inc = incident(d, code);
  auto escalated = steps(inc, "escalated");
  CHECK(escalated[0]["group"] == "eastside");
  CHECK(escalated[0]["detail"] == "0 of 5 responding (below 3): to wide");
  CHECK(escalated[1]["group"] == "wide");
  CHECK(escalated[1]["detail"] == "0 of 3 responding (below 1): to wider");
  CHECK(escalated[1]["recipients"] == 2);
  REQUIRE(eventually([&] { return query_db(d, "SELECT count(*) FROM escalations WHERE state = 0")[0] == "0"; }));
  REQUIRE(settled(d));
  auto msgs = gw.twilio.messages();
  CHECK(msgs.size() == 10);
  CHECK(repeated_messages(count_by_recipient(msgs)) == 0);
  CHECK(metric(d, "escalated") == 2);
  // The audit trail has both steps, by tocsin, for this incident.
  CHECK(audit_count(d, code, "ESCALATE") == 2);

  // The all-clear reaches everyone the escalations reached, once each.
  gw.twilio.reset();
  auto cancel = post_report(d.url(), cancel_of(code).dump());
  REQUIRE(cancel.status == 202);
  CHECK(cancel.json()["recipients"] == 10);
  REQUIRE(gw.twilio.wait_for(10, 10s));
  REQUIRE(settled(d));
  std::multiset<std::string> everyone;
  for (int i = 0; i < 5; ++i) everyone.insert(phone_for(i));
  for (int i = 0; i < 3; ++i) everyone.insert(wide_phone(i));
  for (int i = 0; i < 2; ++i) everyone.insert(wider_phone(i));
  CHECK(recipients_of(gw.twilio.messages(), "ALL CLEAR") == everyone);
}

TEST_CASE("an all-clear stops the escalation timer", "[e2e][safety]") {
  Gateways gw;
  Daemon d(escalation_config(gw, 4));
  d.start();
  add_group(d.url(), "eastside", 5, phone_for);
  add_group(d.url(), "wide", 3, wide_phone);
  auto reported = std::chrono::steady_clock::now();
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  auto cancel = post_report(d.url(), cancel_of(code).dump());
  REQUIRE(cancel.status == 202);
  REQUIRE(gw.twilio.wait_for(10, 10s));
  CHECK(steps(incident(d, code), "escalation_cancelled").size() == 1);
  CHECK(query_db(d, "SELECT state FROM escalations") == std::vector<std::string>{"3"});
  std::this_thread::sleep_until(reported + 6500ms);  // past after_s and several polls
  CHECK(gw.twilio.message_count() == 10);
  CHECK(steps(incident(d, code), "escalated").empty());
  std::set<std::string> wide = {wide_phone(0), wide_phone(1), wide_phone(2)};
  for (const auto& m : gw.twilio.messages()) CHECK(wide.count(m.to) == 0);
}

TEST_CASE("covered goes to exactly the non-responders, once, in each one's language", "[e2e][safety]") {
  Gateways gw;
  json config = test_config(gw);
  for (auto& g : config["groups"])
    if (g["name"] == "eastside") g["enough_responding"] = 2;
  Daemon d(config);
  d.start();
  add_group(d.url(), "eastside", 4, phone_for);
  add_subscribers(d.url(), {json{{"phone", phone_for(4)}, {"language", "es"}, {"groups", {"eastside"}}}});
  auto r = post_report(d.url(), report_body().dump());
  std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(5, 10s));
  CHECK(inbound_sms(d.url(), gw, phone_for(3), "not today").status == 200);  // a reply
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "on my way").status == 200);
  REQUIRE(settled(d));
  CHECK(gw.twilio.message_count() == 5);  // one responding: not yet
  CHECK(inbound_sms(d.url(), gw, phone_for(1), "SI").status == 200);
  REQUIRE(gw.twilio.wait_for(8, 10s));
  // A third responder, and the first again: nothing more.
  CHECK(inbound_sms(d.url(), gw, phone_for(2), "1").status == 200);
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "1").status == 200);
  REQUIRE(settled(d));
  auto msgs = gw.twilio.messages();
  CHECK(msgs.size() == 8);
  CHECK(recipients_of(msgs, "COVERED #" + code) ==
        std::multiset<std::string>{phone_for(2), phone_for(3)});
  // templates.covered in the subscriber's language (the built-in Spanish).
  CHECK(recipients_of(msgs, "CUBIERTO #" + code) == std::multiset<std::string>{phone_for(4)});
  auto inc = incident(d, code);
  REQUIRE(steps(inc, "covered").size() == 1);
  CHECK(steps(inc, "covered")[0]["recipients"] == 3);
  CHECK(metric(d, "covered") == 1);
  CHECK(audit_count(d, code, "COVER") == 1);
}

TEST_CASE("route says which groups wait for what, and their escalation and covered rules",
          "[e2e][safety][cli]") {
  Gateways gw;
  json config = escalation_config(gw, 300);
  for (auto& g : config["groups"])
    if (g["name"] == "eastside") g["enough_responding"] = 8;
  config["groups"].push_back(wide_group({{"min_corroboration", 2}, {"min_certainty", "observed"}}));
  config["groups"].back()["name"] = "citywide";
  Daemon d(config);
  d.start();
  add_group(d.url(), "citywide", 2, wide_phone);
  add_group(d.url(), "eastside", 1, phone_for);
  std::ofstream(d.path("report.json")) << report_body({{"certainty", "likely"}}).dump(2);
  auto r = run_cli({"route", "--config", "config.json", "report.json"}, 10s, d.dir());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("  citywide                     sms  HELD: waits for certainty observed (has "
                   "likely); 2 reporters (has 1)") != std::string::npos);
  CHECK(r.out.find("  eastside                     escalates to wide if fewer than 3 respond "
                   "within 300 s") != std::string::npos);
  CHECK(r.out.find("  eastside                     covered at 8 responding") != std::string::npos);
  // The held group's subscribers are not counted among the recipients.
  CHECK(r.out.find("  sms    en              1") != std::string::npos);
}
