// End-to-end: joining a group by text with double opt-in, leaving it, and
// the abuse limits on confirmation prompts (SMS pumping).
#include <catch2/catch.hpp>
#include <atomic>
#include <thread>

#include "core/report.h"
#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json join_config(const Gateways& gw, int per_number, int per_hour) {
  json cfg = test_config(gw);
  cfg["groups"][0]["join"] = {{"keywords", {"ESTE", "eastside"}}, {"language", "es"}};
  cfg["join"] = {{"max_prompts_per_number", per_number}, {"max_prompts_per_hour", per_hour}};
  return cfg;
}

std::string sid(int i) {
  std::string s = std::to_string(i);
  return "SM" + std::string(32 - s.size(), '0') + s;
}

int64_t count(const Daemon& d, const std::string& sql) {
  return std::stoll(query_db(d, sql).at(0));
}

bool has_message(const HttpResult& r) { return r.body.find("<Message>") != std::string::npos; }

}  // namespace

TEST_CASE("join by text: keyword, confirmation, LEAVE, and nobody stored without a confirmation",
          "[e2e][reach]") {
  Gateways gw;
  Daemon d(join_config(gw, 3, 100));
  d.start();
  const std::string ana = phone_for(10), bo = phone_for(11);

  auto prompt = inbound_sms(d.url(), gw, ana, "este", false, sid(1));
  CHECK(prompt.status == 200);
  INFO(prompt.body);
  CHECK(prompt.body.find("responda SI") != std::string::npos);
  CHECK(prompt.body.find("Reply YES for English") != std::string::npos);
  // A replay of the same callback changes nothing and texts nothing.
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, ana, "este", false, sid(1))));
  CHECK(count(d, "SELECT count(*) FROM join_requests") == 1);
  CHECK(metric(d.url(), R"(tocsin_requests_ignored_total{reason="already_applied"})") == 1);
  // No confirmation, nobody stored.
  CHECK(count(d, "SELECT count(*) FROM subscribers") == 0);

  // "Sí" confirms, in Spanish.
  auto done = inbound_sms(d.url(), gw, ana, "Sí", false, sid(2));
  CHECK(done.body.find("Listo") != std::string::npos);
  CHECK(done.body.find("LEAVE ESTE") != std::string::npos);
  auto list = admin("GET", d.url() + "/v1/subscribers").json()["subscribers"];
  REQUIRE(list.size() == 1);
  const int64_t id = list[0]["id"];
  auto sub = admin("GET", d.url() + "/v1/subscribers/" + std::to_string(id)).json();
  CHECK(sub["phone"] == ana);
  CHECK(sub["language"] == "es");
  CHECK(sub["groups"] == json{"eastside"});
  CHECK(sub["channels"] == json{"sms"});
  // Consent: time, keyword and the provider's message ids; never the text.
  auto consent = query_db(d, "SELECT group_name || '|' || keyword || '|' || request_message_id || '|' "
                             "|| confirm_message_id FROM consents");
  REQUIRE(consent.size() == 1);
  CHECK(consent[0] == "eastside|ESTE|" + sid(1) + "|" + sid(2));
  // ...and an operator reads it in the admin API, as proof of consent.
  REQUIRE(sub["consents"].size() == 1);
  CHECK(sub["consents"][0]["group"] == "eastside");
  CHECK(sub["consents"][0]["keyword"] == "ESTE");
  CHECK(sub["consents"][0]["request_message_id"] == sid(1));
  CHECK(sub["consents"][0]["confirm_message_id"] == sid(2));
  CHECK(tocsin::parse_rfc3339(sub["consents"][0]["confirmed_at"].get<std::string>()).has_value());
  CHECK(sub["consents"][0].size() == 6);  // no text of either message
  // Encrypted like every subscriber: the number is not in the database in clear.
  CHECK(count(d, "SELECT count(*) FROM subscribers WHERE phone = '" + ana + "'") == 0);

  // The new subscriber is alerted with the group.
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 15s));
  CHECK(gw.twilio.messages().at(0).to == ana);
  CHECK(gw.twilio.messages().at(0).body.find("ALERTA") != std::string::npos);

  // A "yes" from Bo, who asked nothing, is an ordinary reply: nobody joins.
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, bo, "yes", false, sid(3))));
  // Bo asks, then texts STOP: the request ends, a later YES joins nobody.
  CHECK(has_message(inbound_sms(d.url(), gw, bo, "EASTSIDE", false, sid(4))));
  CHECK(inbound_sms(d.url(), gw, bo, "STOP", false, sid(5)).status == 200);
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, bo, "YES", false, sid(6))));
  CHECK(count(d, "SELECT count(*) FROM subscribers") == 1);

  // LEAVE ESTE leaves the group.
  auto left = inbound_sms(d.url(), gw, ana, "leave este", false, sid(7));
  CHECK(left.body.find("ESTE") != std::string::npos);
  sub = admin("GET", d.url() + "/v1/subscribers/" + std::to_string(id)).json();
  CHECK(sub["groups"] == json::array());
  // HELP still answers.
  CHECK(has_message(inbound_sms(d.url(), gw, ana, "HELP", false, sid(8))));
  // No number or text in the log.
  CHECK(d.log().find(ana.substr(2)) == std::string::npos);
}

TEST_CASE("join by text: each keyword is answered in its own language", "[e2e][reach]") {
  Gateways gw;
  json cfg = join_config(gw, 3, 100);
  cfg["groups"][0]["join"]["keywords"] = {"ESTE", {{"word", "EASTSIDE"}, {"language", "en"}}};
  Daemon d(cfg);
  d.start();
  auto es = inbound_sms(d.url(), gw, phone_for(20), "este", false, sid(1));
  INFO(es.body);
  CHECK(es.body.find("<Message>Alertas de respuesta rapida ESTE") != std::string::npos);
  auto en = inbound_sms(d.url(), gw, phone_for(21), "eastside", false, sid(2));
  INFO(en.body);
  CHECK(en.body.find("<Message>Rapid-response alerts EASTSIDE") != std::string::npos);
  CHECK(count(d, "SELECT count(*) FROM join_requests WHERE language = 'en'") == 1);
}

TEST_CASE("join by text: YES confirms in English", "[e2e][reach]") {
  Gateways gw;
  Daemon d(join_config(gw, 3, 100));
  d.start();
  const std::string cy = phone_for(40);
  CHECK(has_message(inbound_sms(d.url(), gw, cy, "EASTSIDE", false, sid(1))));
  auto done = inbound_sms(d.url(), gw, cy, "Yes", false, sid(2));
  INFO(done.body);
  CHECK(done.body.find("<Message>Done: you will get EASTSIDE alerts.") != std::string::npos);
  CHECK(done.body.find("LEAVE EASTSIDE") != std::string::npos);
  auto list = admin("GET", d.url() + "/v1/subscribers").json()["subscribers"];
  REQUIRE(list.size() == 1);
  auto sub = admin("GET", d.url() + "/v1/subscribers/" + list[0]["id"].dump()).json();
  CHECK(sub["phone"] == cy);
  CHECK(sub["language"] == "en");
  CHECK(sub["groups"] == json{"eastside"});
  CHECK(query_db(d, "SELECT keyword FROM consents").at(0) == "EASTSIDE");
  // The alert reaches Cy in English.
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 15s));
  CHECK(gw.twilio.messages().at(0).body.find("ALERT") != std::string::npos);
  CHECK(gw.twilio.messages().at(0).body.find("ICE vehicles") != std::string::npos);
}

TEST_CASE("join by text: HELP from a number with no subscriber is answered, within the limits",
          "[e2e][reach]") {
  Gateways gw;
  Daemon d(join_config(gw, 2, 100));
  d.start();
  const std::string stranger = phone_for(30);
  auto help = inbound_sms(d.url(), gw, stranger, "help", false, sid(1));
  CHECK(help.status == 200);
  INFO(help.body);
  // The network's answer (templates.help) in the joinable group's language,
  // how to join, and STOP.
  CHECK(help.body.find("Alertas de respuesta rapida") != std::string::npos);
  CHECK(help.body.find("STOP") != std::string::npos);
  CHECK(help.body.find("Para unirse, envie ESTE o EASTSIDE.") != std::string::npos);
  CHECK(count(d, "SELECT count(*) FROM subscribers") == 0);
  // Nothing to confirm: a YES after it joins nobody.
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, stranger, "YES", false, sid(2))));
  // It costs an SMS, so it counts toward the prompt limits: 2 per number.
  CHECK(has_message(inbound_sms(d.url(), gw, stranger, "INFO", false, sid(3))));
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, stranger, "HELP", false, sid(4))));
  // A number that cannot be a mobile phone gets no answer.
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, "+18006427676", "HELP", false, sid(5))));
  CHECK(count(d, "SELECT count(*) FROM subscribers") == 0);
  CHECK(d.log().find(stranger.substr(2)) == std::string::npos);
}

TEST_CASE("join by text: HELP from a stranger without joinable groups gets the help text",
          "[e2e][reach]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  auto help = inbound_sms(d.url(), gw, phone_for(31), "HELP", false, sid(1));
  INFO(help.body);
  CHECK(help.body.find("<Message>Rapid-response alerts. Reply STOP to opt out") !=
        std::string::npos);
  CHECK(help.body.find("to join") == std::string::npos);
}

TEST_CASE("join by text: prompt limits hold under 1,000 keyword texts from 1,000 numbers",
          "[e2e][reach]") {
  Gateways gw;
  const int per_hour = 40;
  Daemon d(join_config(gw, 2, per_hour));
  d.start();
  // Not a mobile number: no answer at all.
  CHECK_FALSE(has_message(inbound_sms(d.url(), gw, "+18006427676", "ESTE", false, sid(1))));
  // One number: at most max_prompts_per_number prompts.
  int to_one = 0;
  for (int i = 0; i < 5; ++i)
    to_one += has_message(inbound_sms(d.url(), gw, phone_for(9000), "ESTE", false, sid(10 + i)));
  CHECK(to_one == 2);
  // A flood from 1,000 numbers within a minute: the network-wide hourly cap.
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> prompts{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < 1000; i += 4) {
        auto r = inbound_sms(d.url(), gw, phone_for(i), i % 2 ? "este" : "EASTSIDE", false,
                             sid(1000 + i));
        if (r.status == 200) ++answered;
        if (has_message(r)) ++prompts;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(std::chrono::steady_clock::now() - start < 60s);
  CHECK(answered == 1000);
  CHECK(prompts == per_hour - 2);
  CHECK(count(d, "SELECT count(*) FROM join_requests") == per_hour);
  CHECK(count(d, "SELECT count(*) FROM subscribers") == 0);
  // The texts held off write no line each: counted, and one summary line.
  const int limited = 1000 + 5 - per_hour;
  CHECK(metric(d.url(), R"(tocsin_requests_ignored_total{reason="join_limit"})") == limited);
  CHECK(metric(d.url(), R"(tocsin_requests_ignored_total{reason="join_not_mobile"})") == 1);
  d.terminate();
  REQUIRE(d.wait_exit(15s));
  const std::string log = d.log();
  INFO(d.log_tail(5));
  CHECK(log.find("join: prompt limit") == std::string::npos);
  CHECK(log.find("not mobile\u00d71, join prompt limit (join.max_prompts_*)\u00d7" +
                 std::to_string(limited)) != std::string::npos);
}
