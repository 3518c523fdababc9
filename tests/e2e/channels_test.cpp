// End-to-end: the signal and twilio_voice gateways, with the real daemon
// against emulators of signal-cli-rest-api and Twilio's Calls API.
#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json signal_gateway(const GatewayEmulator& em) {
  return {{"name", "signal-main"}, {"type", "signal"},  {"channel", "signal"},
          {"base_url", em.signal_url()}, {"from", em.options().signal_number},
          {"rate_per_s", 200},   {"timeout_ms", 5000}};
}

json voice_gateway(const GatewayEmulator& em) {
  return {{"name", "voice-main"},
          {"type", "twilio_voice"},
          {"channel", "voice"},
          {"base_url", em.base_url()},
          {"account_sid", em.options().account_sid},
          {"auth_token", em.options().auth_token},
          {"from", "+12135550100"},
          {"timeout_ms", 5000}};  // rate_per_s: the type's default, 1 call per second
}

// test_config plus `gateway`, with the eastside group alerted on its channel too.
json config_with(const Gateways& gw, json gateway) {
  json cfg = test_config(gw);
  cfg["groups"][0]["channels"] = {"sms", "email", gateway["channel"]};
  cfg["gateways"].push_back(std::move(gateway));
  return cfg;
}

json incident(const std::string& base, const std::string& code) {
  return admin("GET", base + "/v1/incidents/" + code).json();
}

// Waits until the incident's `channel` deliveries have `state` `n` times.
bool wait_deliveries(const std::string& base, const std::string& code, const std::string& channel,
                     const std::string& state, int n) {
  return eventually(
      [&] {
        auto d = incident(base, code)["deliveries"];
        return d.contains(channel) && d[channel].value(state, 0) == n;
      },
      30s);
}

}  // namespace

TEST_CASE("signal gateway: every subscriber reached once, 5xx retried, unregistered fails alone",
          "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator signal;
  Daemon d(config_with(gw, signal_gateway(signal)));
  d.start();
  const int n = 20;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)},
                    {"groups", {"eastside"}},
                    {"channels", i == 0 ? json{"sms", "signal"} : json{"signal"}}});
  add_subscribers(d.url(), subs);
  signal.set_signal_unregistered(phone_for(0));
  signal.set_p_503(0.3);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.status == 202);
  CHECK(r.json()["recipients"] == n + 1);  // n on signal, one of them on sms too
  const std::string code = r.json()["incident_id"];
  REQUIRE(signal.wait_for(distinct_recipients(n - 1), 30s));
  REQUIRE(wait_deliveries(d.url(), code, "signal", "failed", 1));
  REQUIRE(wait_deliveries(d.url(), code, "signal", "sent", n - 1));
  auto counts = count_by_recipient(signal.messages());
  CHECK(counts.count(phone_for(0)) == 0);
  for (int i = 1; i < n; ++i) CHECK(counts[phone_for(i)] == 1);
  CHECK(signal.count(503) > 0);  // retried through them
  for (const auto& m : signal.messages()) {
    CHECK(m.from == signal.options().signal_number);
    CHECK(m.body.find("#" + code) != std::string::npos);
    json body = json::parse(m.raw);
    CHECK(body["recipients"] == json{m.to});
  }
  // The unregistered number still gets its SMS: the failure is Signal's only.
  REQUIRE(gw.twilio.wait_for(1, 15s));
  CHECK(gw.twilio.messages().at(0).to == phone_for(0));
  // The incident and route count the channel.
  CHECK(incident(d.url(), code)["deliveries"]["signal"]["failed"] == 1);
  CHECK(d.log().find(phone_for(0).substr(2)) == std::string::npos);
}

TEST_CASE("signal gateway: a failover chain, and STOP by SMS stops Signal too", "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator primary, backup;
  json first = signal_gateway(primary), second = signal_gateway(backup);
  second["name"] = "signal-backup";
  json cfg = config_with(gw, first);
  cfg["gateways"].push_back(second);
  cfg["delivery"]["breaker_threshold"] = 2;
  Daemon d(cfg);
  d.start();
  primary.set_down(true);
  const int n = 12;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}, {"channels", {"signal"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == n);
  REQUIRE(backup.wait_for(distinct_recipients(n), 30s));
  CHECK(primary.message_count() == 0);
  CHECK(repeated_messages(count_by_recipient(backup.messages())) == 0);
  // STOP texted to the alert number: no more Signal messages to that number.
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "STOP").status == 200);
  backup.reset();
  auto next = post_report(  // 1.1 km away: a new incident
      d.url(),
      report_body({{"location", {{"lat", 34.0439}, {"lon", -118.2107}, {"description", "Soto St"}}}})
          .dump());
  CHECK(next.json()["recipients"] == n - 1);
  REQUIRE(backup.wait_for(distinct_recipients(n - 1), 30s));
  CHECK(count_by_recipient(backup.messages()).count(phone_for(0)) == 0);
}

TEST_CASE("voice gateway: paced calls with TwiML in the language, Gather acknowledges once",
          "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator voice;
  Daemon d(config_with(gw, voice_gateway(voice)));
  d.start();
  auto ids = add_subscribers(
      d.url(), {{{"phone", phone_for(1)}, {"language", "es-MX"}, {"groups", {"eastside"}}, {"channels", {"voice"}}},
                {{"phone", phone_for(2)}, {"language", "en"}, {"groups", {"eastside"}}, {"channels", {"voice"}}},
                {{"phone", phone_for(3)}, {"language", "en"}, {"groups", {"eastside"}}, {"channels", {"voice"}}}});
  voice.set_p_503(0.25);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 3);
  const std::string code = r.json()["incident_id"];
  REQUIRE(voice.wait_for(distinct_recipients(3), 30s));
  auto calls = voice.messages();
  REQUIRE(calls.size() == 3);
  // rate_per_s 1: three calls take at least two seconds.
  CHECK(calls.back().accepted_at - calls.front().accepted_at >= 1800ms);
  std::map<std::string, ReceivedMessage> by_to;
  for (const auto& c : calls) by_to[c.to] = c;
  const auto& es = by_to[phone_for(1)];
  CHECK(es.provider == "twilio_voice");
  CHECK(es.fields.at("From") == "+12135550100");
  CHECK(es.fields.at("StatusCallback") == std::string(kPublicUrl) + "/v1/inbound/twilio/voice/status");
  const std::string& twiml = es.body;
  INFO(twiml);
  std::smatch m;
  REQUIRE(std::regex_search(
      twiml, m,
      std::regex("^<Response><Gather numDigits=\"1\"[^>]* action=\"([^\"]+)\">(.*)</Gather></Response>$")));
  const std::string action = m[1];
  REQUIRE(action.starts_with(std::string(kPublicUrl) + "/v1/inbound/twilio/voice/gather?d="));
  const std::string said = m[2];
  // Said twice, in Spanish, XML-escaped ("1st &amp; Soto").
  auto first = said.find("<Say language=\"es-MX\">Alerta. Veh");
  REQUIRE(first != std::string::npos);
  CHECK(said.find("<Say language=\"es-MX\">Alerta. Veh", first + 1) != std::string::npos);
  CHECK(said.find("Marque 1") != std::string::npos);
  CHECK(said.find("&amp;") != std::string::npos);
  CHECK(by_to[phone_for(2)].body.find("<Say language=\"en-US\">") != std::string::npos);

  // Pressing 1: a responding acknowledgement, once however often it is posted.
  const std::string path = action.substr(std::string(kPublicUrl).size());
  const auto& token = voice.options().auth_token;
  std::vector<std::pair<std::string, std::string>> gather = {
      {"CallSid", es.id}, {"Digits", "1"}, {"From", "+12135550100"}, {"To", phone_for(1)}};
  CHECK(twilio_callback(d.url(), token, path, gather, /*forged=*/true).status == 403);
  auto g = twilio_callback(d.url(), token, path, gather);
  CHECK(g.status == 200);
  CHECK(g.body.find("<Say language=\"es-MX\">Gracias.</Say>") != std::string::npos);
  CHECK(twilio_callback(d.url(), token, path, gather).status == 200);  // a repeat
  auto acks = incident(d.url(), code)["acknowledgements"]["counts"];
  CHECK(acks["responding"] == 1);
  // Another key is no acknowledgement.
  auto other = gather;
  other[0].second = by_to[phone_for(2)].id;
  other[1].second = "2";
  CHECK(twilio_callback(d.url(), token, path, other).status == 200);
  CHECK(incident(d.url(), code)["acknowledgements"]["counts"]["responding"] == 1);

  // Status callbacks end the calls.
  auto status = [&](const std::string& sid, const std::string& s) {
    return twilio_callback(d.url(), token, "/v1/inbound/twilio/voice/status",
                           {{"CallSid", sid}, {"CallStatus", s}});
  };
  REQUIRE(wait_deliveries(d.url(), code, "voice", "sent", 3));
  CHECK(status(es.id, "completed").status == 204);
  CHECK(status(by_to[phone_for(2)].id, "no-answer").status == 204);
  CHECK(status(by_to[phone_for(3)].id, "ringing").status == 204);
  auto dv = incident(d.url(), code)["deliveries"]["voice"];
  CHECK(dv["delivered"] == 1);
  CHECK(dv["undelivered"] == 1);
  CHECK(dv["sent"] == 1);
  (void)ids;
}

TEST_CASE("voice gateway: pressing 1 counts toward enough_responding, and covered goes out",
          "[e2e][reach][safety]") {
  Gateways gw;
  GatewayEmulator voice;
  json config = config_with(gw, voice_gateway(voice));
  config["groups"][0]["enough_responding"] = 2;
  Daemon d(config);
  d.start();
  add_subscribers(d.url(),
                  {{{"phone", phone_for(1)}, {"groups", {"eastside"}}, {"channels", {"voice"}}},
                   {{"phone", phone_for(2)}, {"groups", {"eastside"}}, {"channels", {"sms"}}},
                   {{"phone", phone_for(3)}, {"groups", {"eastside"}}, {"channels", {"sms"}}}});
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.status == 202);
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(2, 10s));
  REQUIRE(voice.wait_for(1, 10s));
  auto call = voice.messages()[0];
  std::smatch m;
  REQUIRE(std::regex_search(call.body, m, std::regex("action=\"([^\"]+)\"")));
  const std::string path = std::string(m[1]).substr(std::string(kPublicUrl).size());

  // One responding by SMS: not yet covered.
  CHECK(inbound_sms(d.url(), gw, phone_for(2), "1").status == 200);
  REQUIRE(settled(d));
  CHECK(gw.twilio.message_count() == 2);
  // The second presses 1 on the call: two responding, so the one left gets covered.
  auto g = twilio_callback(d.url(), voice.options().auth_token, path,
                           {{"CallSid", call.id}, {"Digits", "1"}, {"To", phone_for(1)}});
  CHECK(g.status == 200);
  REQUIRE(gw.twilio.wait_for(3, 10s));
  REQUIRE(settled(d));
  auto msgs = gw.twilio.messages();
  REQUIRE(msgs.size() == 3);
  CHECK(msgs[2].to == phone_for(3));
  CHECK(msgs[2].body.find("COVERED #" + code) != std::string::npos);
  auto inc = incident(d.url(), code);
  CHECK(inc["acknowledgements"]["counts"]["responding"] == 2);
  int covered = 0;
  for (const auto& t : inc["timeline"])
    if (t["what"] == "covered") {
      ++covered;
      CHECK(t["recipients"] == 1);
    }
  CHECK(covered == 1);
}

TEST_CASE("signal gateway: a bridge's rate limit and 429s are waited out, each person once",
          "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator signal;
  Daemon d(config_with(gw, signal_gateway(signal)));  // rate_per_s 200: over the bridge's limit
  d.start();
  const int n = 15;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}, {"channels", {"signal"}}});
  add_subscribers(d.url(), subs);
  signal.set_rate_limit(5);
  signal.set_p_429(0.2);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == n);
  const std::string code = r.json()["incident_id"];
  REQUIRE(signal.wait_for(distinct_recipients(n), 30s));
  REQUIRE(wait_deliveries(d.url(), code, "signal", "sent", n));
  CHECK(signal.count(429) > 0);
  CHECK(repeated_messages(count_by_recipient(signal.messages())) == 0);
  CHECK(incident(d.url(), code)["deliveries"]["signal"].value("failed", 0) == 0);
}

TEST_CASE("voice gateway: failover to a backup account, and its 429s waited out", "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator primary, backup;
  json first = voice_gateway(primary), second = voice_gateway(backup);
  first["rate_per_s"] = 5;
  second["name"] = "voice-backup";
  second["rate_per_s"] = 5;
  json cfg = config_with(gw, first);
  cfg["gateways"].push_back(second);
  cfg["delivery"]["breaker_threshold"] = 2;
  Daemon d(cfg);
  d.start();
  primary.set_down(true);
  backup.set_p_429(0.3);
  const int n = 6;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}, {"channels", {"voice"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == n);
  const std::string code = r.json()["incident_id"];
  REQUIRE(backup.wait_for(distinct_recipients(n), 30s));
  REQUIRE(wait_deliveries(d.url(), code, "voice", "sent", n));
  CHECK(primary.message_count() == 0);
  CHECK(primary.count(503) > 0);  // tried, then the breaker sent calls on
  CHECK(backup.count(429) > 0);
  CHECK(repeated_messages(count_by_recipient(backup.messages())) == 0);
  for (const auto& c : backup.messages()) CHECK(c.provider == "twilio_voice");
}

TEST_CASE("voice gateway: busy, failed and canceled calls are undelivered, STOP stops calls",
          "[e2e][reach]") {
  Gateways gw;
  GatewayEmulator voice;
  json gateway = voice_gateway(voice);
  gateway["rate_per_s"] = 10;
  Daemon d(config_with(gw, gateway));
  d.start();
  const int n = 4;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}, {"channels", {"voice"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  const std::string code = r.json()["incident_id"];
  REQUIRE(voice.wait_for(distinct_recipients(n), 30s));
  REQUIRE(wait_deliveries(d.url(), code, "voice", "sent", n));
  std::map<std::string, std::string> sid;
  for (const auto& c : voice.messages()) sid[c.to] = c.id;
  const auto& token = voice.options().auth_token;
  const std::vector<std::string> statuses = {"busy", "failed", "canceled", "completed"};
  for (int i = 0; i < n; ++i)
    CHECK(twilio_callback(d.url(), token, "/v1/inbound/twilio/voice/status",
                          {{"CallSid", sid[phone_for(i)]}, {"CallStatus", statuses[i]}})
              .status == 204);
  auto dv = incident(d.url(), code)["deliveries"]["voice"];
  CHECK(dv["undelivered"] == 3);
  CHECK(dv["delivered"] == 1);
  CHECK(dv.value("sent", 0) == 0);

  // STOP texted to the alert number: no more calls to that number.
  CHECK(inbound_sms(d.url(), gw, phone_for(0), "STOP").status == 200);
  voice.reset();
  auto next = post_report(  // 1.1 km away: a new incident
      d.url(), report_body({{"location",
                             {{"lat", 34.0439}, {"lon", -118.2107}, {"description", "Soto St"}}}})
                   .dump());
  CHECK(next.json()["recipients"] == n - 1);
  REQUIRE(voice.wait_for(distinct_recipients(n - 1), 30s));
  REQUIRE(settled(d));
  CHECK(count_by_recipient(voice.messages()).count(phone_for(0)) == 0);
}
