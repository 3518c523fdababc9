// End-to-end: the smtp and webhook gateways, with the real daemon against
// the SMTP sink and the emulator's webhook receiver.
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

#include "core/signature.h"
#include "e2e/fixture.h"
#include "support/smtp_sink.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kHeadlineEs = "Vehículos de ICE en 1st y Soto";

// test_config with its email gateway replaced by an smtp gateway on `sink`
// (authenticating as tocsin/pw).
json smtp_config(const Gateways& gw, const SmtpSink& sink) {
  json cfg = test_config(gw);
  cfg["gateways"][1] = {{"name", "smtp-main"},
                        {"type", "smtp"},
                        {"channel", "email"},
                        {"url", sink.url()},
                        {"username", "tocsin"},
                        {"password", "pw"},
                        {"from", "alerts@example.org"},
                        {"from_name", "Red de Respuesta Rápida"},
                        {"rate_per_s", 200},
                        {"max_in_flight", 4},
                        {"timeout_ms", 5000}};
  return cfg;
}

std::string email_for(int i) {
  return "person" + std::to_string(i) + "@example.org";
}

// n email-only subscribers of the lawyers group; every other one reads Spanish.
std::vector<json> email_subscribers(int n) {
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"email", email_for(i)},
                    {"language", i % 2 ? "es-MX" : "en"},
                    {"groups", {"lawyers"}},
                    {"channels", {"email"}}});
  return subs;
}

// Messages per recipient address.
std::map<std::string, int> per_recipient(const std::vector<SmtpMessage>& msgs) {
  std::map<std::string, int> counts;
  for (const auto& m : msgs)
    for (const auto& r : m.rcpts) ++counts[r];
  return counts;
}

}  // namespace

TEST_CASE("smtp gateway: each recipient gets one message with its subject and body",
          "[e2e][delivery]") {
  Gateways gw;
  SmtpSink sink(SmtpSink::Options{.username = "tocsin", .password = "pw"});
  Daemon d(smtp_config(gw, sink));
  d.start();
  const int n = 12;
  add_subscribers(d.url(), email_subscribers(n));
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == n);
  const std::string code = r.json()["incident_id"];
  REQUIRE(sink.wait_for(n, 15s));
  REQUIRE(settled(d));
  auto msgs = sink.messages();
  REQUIRE(msgs.size() == static_cast<std::size_t>(n));
  auto counts = per_recipient(msgs);
  for (int i = 0; i < n; ++i) CHECK(counts[email_for(i)] == 1);
  for (auto m : msgs) {  // a copy: headers[] below
    INFO(m.data);
    REQUIRE(m.rcpts.size() == 1);
    const int i = std::stoi(m.rcpts[0].substr(6));
    CHECK(m.from == "alerts@example.org");
    CHECK(m.auth_user == "tocsin");
    CHECK(m.headers["to"] == "<" + m.rcpts[0] + ">");
    CHECK(m.headers["content-type"] == "text/plain; charset=UTF-8");
    CHECK(m.headers.count("date") == 1);
    CHECK(m.headers.count("message-id") == 1);
    CHECK(m.headers["mime-version"] == "1.0");
    if (i % 2) {
      // The Spanish subject survives RFC 2047 encoding.
      CHECK(m.subject == std::string(kHeadlineEs) + " (#" + code + ")");
      CHECK(m.body.find("Se necesitan observadores legales") != std::string::npos);
      CHECK(m.body.find("Incidente: #" + code) != std::string::npos);
    } else {
      CHECK(m.subject == "ICE vehicles at 1st & Soto (#" + code + ")");
      CHECK(m.body.find("Legal observers needed") != std::string::npos);
    }
    CHECK(m.data.find("\n") == m.data.find("\r\n") + 1);  // CRLF lines
  }
  json deliveries;
  eventually([&] {
    deliveries = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"];
    return deliveries["email"].value("sent", 0) == n;
  });
  CHECK(deliveries["email"]["sent"] == n);
  // Addresses stay out of the log.
  CHECK(d.log().find("@example.org") == std::string::npos);
}

TEST_CASE("smtp gateway: 451 on 30% of DATA still delivers each message exactly once",
          "[e2e][delivery]") {
  Gateways gw;
  SmtpSink sink(SmtpSink::Options{.username = "tocsin", .password = "pw"});
  sink.set_p_451(0.3);
  Daemon d(smtp_config(gw, sink));
  d.start();
  const int n = 30;
  add_subscribers(d.url(), email_subscribers(n));
  REQUIRE(post_report(d.url(), report_body().dump()).json()["recipients"] == n);
  REQUIRE(sink.wait_for(n, 30s));
  REQUIRE(settled(d, 30s));
  auto counts = per_recipient(sink.messages());
  CHECK(counts.size() == static_cast<std::size_t>(n));
  for (const auto& [to, k] : counts) {
    INFO(to);
    CHECK(k == 1);
  }
  CHECK(sink.count(451) > 0);
  WARN(sink.count(451) << " DATA answered 451 for " << n << " messages");
}

TEST_CASE("smtp gateway: 550 for one recipient fails that delivery, the others are sent",
          "[e2e][delivery]") {
  Gateways gw;
  SmtpSink sink(SmtpSink::Options{.username = "tocsin", .password = "pw"});
  sink.reject_recipient(email_for(3));
  Daemon d(smtp_config(gw, sink));
  d.start();
  const int n = 6;
  add_subscribers(d.url(), email_subscribers(n));
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == n);
  const std::string code = r.json()["incident_id"];
  REQUIRE(sink.wait_for(n - 1, 15s));
  json deliveries;
  eventually([&] {
    deliveries = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"];
    return deliveries["email"].value("sent", 0) == n - 1 &&
           deliveries["email"].value("failed", 0) == 1;
  });
  INFO(deliveries.dump());
  CHECK(deliveries["email"]["sent"] == n - 1);
  CHECK(deliveries["email"]["failed"] == 1);
  CHECK(sink.count(550) == 1);  // permanent: not retried
  auto counts = per_recipient(sink.messages());
  CHECK(counts.count(email_for(3)) == 0);
  CHECK(counts.size() == static_cast<std::size_t>(n - 1));
}

TEST_CASE("webhook gateway: signed JSON per message, retried on 503, each delivered once",
          "[e2e][delivery]") {
  Gateways gw;
  GatewayEmulator bridge;
  bridge.set_p_503(0.3);
  json cfg = test_config(gw);
  cfg["gateways"][0] = {{"name", "signal-bridge"},
                        {"type", "webhook"},
                        {"channel", "sms"},
                        {"url", bridge.webhook_url()},
                        {"secret", bridge.options().webhook_secret},
                        {"rate_per_s", 200},
                        {"max_in_flight", 4},
                        {"timeout_ms", 5000}};
  Daemon d(cfg);
  d.start();
  const int n = 20;
  std::vector<json> subs;
  for (int i = 0; i < n; ++i)
    subs.push_back({{"phone", phone_for(i)}, {"groups", {"drills"}}, {"channels", {"sms"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  REQUIRE(r.json()["recipients"] == n);
  const std::string code = r.json()["incident_id"];
  REQUIRE(bridge.wait_for(n, 30s));
  REQUIRE(settled(d));
  auto msgs = bridge.messages();
  CHECK(bridge.count(503) > 0);
  CHECK(bridge.count(401) == 0);
  std::map<std::string, int> per_phone;
  std::set<std::string> ids;
  const auto key = *tocsin::decode_webhook_secret(bridge.options().webhook_secret);
  for (const auto& m : msgs) {
    ++per_phone[m.to];
    ids.insert(m.id);
    CHECK(m.provider == "webhook");
    CHECK(m.id == "tocsin-delivery-" + m.fields.at("delivery_id"));
    CHECK(m.fields.at("incident") == code);
    CHECK(m.fields.at("channel") == "sms");
    CHECK(m.body.find("#" + code) != std::string::npos);
    // The signature verifies with the shared secret over the exact body.
    auto check = tocsin::verify_webhook(m.id, m.fields.at("webhook-timestamp"),
                                        m.fields.at("webhook-signature"), m.raw, {key},
                                        std::stoll(m.fields.at("webhook-timestamp")));
    CHECK(check.check == tocsin::SignatureCheck::kValid);
    auto j = json::parse(m.raw);
    CHECK_FALSE(j.contains("subject"));
  }
  CHECK(per_phone.size() == static_cast<std::size_t>(n));
  for (const auto& [to, k] : per_phone) CHECK(k == 1);
  CHECK(ids.size() == static_cast<std::size_t>(n));
}
