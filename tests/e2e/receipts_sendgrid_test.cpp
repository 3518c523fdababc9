// End-to-end: SendGrid's Event Webhook, ECDSA P-256 signed with a key pair
// made here: events update deliveries, hard bounces and spam reports opt
// the address out, a wrong signature changes nothing, repeats apply once.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "core/signature.h"
#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct TestKey {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ~TestKey() { EVP_PKEY_free(key); }
  std::string public_der_base64() const {
    unsigned char* der = nullptr;
    int n = i2d_PUBKEY(key, &der);
    REQUIRE(n > 0);
    std::string out = tocsin::base64_encode(std::string(reinterpret_cast<char*>(der), n));
    OPENSSL_free(der);
    return out;
  }
  std::string sign(const std::string& message) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1);
    std::size_t len = 0;
    REQUIRE(EVP_DigestSign(ctx, nullptr, &len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1);
    std::string sig(len, '\0');
    REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return tocsin::base64_encode(sig);
  }
};

HttpResult post_events(const std::string& base, const TestKey& key, const json& events,
                       bool wrong = false) {
  const std::string body = events.dump(), ts = "1795000000";
  std::string sig = key.sign(ts + body + (wrong ? " " : ""));
  return request("POST", base + "/v1/receipts/sendgrid",
                 {{"Content-Type", "application/json"},
                  {"X-Twilio-Email-Event-Webhook-Signature", sig},
                  {"X-Twilio-Email-Event-Webhook-Timestamp", ts}},
                 body);
}

}  // namespace

TEST_CASE("sendgrid events: signed receipts and bounces, forged refused, repeats once",
          "[e2e][reach]") {
  Gateways gw;
  TestKey key;
  json cfg = test_config(gw);
  cfg["gateways"][1]["event_webhook_public_key"] = key.public_der_base64();
  Daemon d(cfg);
  d.start();
  auto ids = add_subscribers(d.url(), {{{"email", "a@example.org"}, {"groups", {"lawyers"}}},
                                       {{"email", "b@example.org"}, {"groups", {"lawyers"}}},
                                       {{"email", "c@example.org"}, {"groups", {"lawyers"}}}});
  auto r = post_report(d.url(), report_body().dump());
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.sendgrid.wait_for(3, 15s));
  std::map<std::string, std::string> delivery;  // address → tocsin delivery id
  for (auto m : gw.sendgrid.messages()) delivery[m.to] = m.fields["custom_args.tocsin_delivery_id"];
  REQUIRE(delivery.size() == 3);
  auto email = [&]() {
    for (int i = 0; i < 50; ++i) {
      auto e = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"]["email"];
      if (e.value("sent", 0) + e.value("delivered", 0) + e.value("undelivered", 0) == 3) return e;
      std::this_thread::sleep_for(100ms);
    }
    FAIL("deliveries not recorded");
    return json();
  };
  REQUIRE(email()["sent"] == 3);
  auto event = [&](const std::string& to, const std::string& kind, const std::string& id) {
    json e = {{"email", to}, {"event", kind}, {"sg_event_id", id}, {"timestamp", 1795000000},
              {"sg_message_id", "x.filter"}, {"tocsin_delivery_id", delivery[to]}};
    if (kind == "bounce") e["type"] = "bounce";
    return e;
  };
  json events = {event("a@example.org", "delivered", "ev1"), event("b@example.org", "bounce", "ev2"),
                 event("c@example.org", "delivered", "ev3"), event("c@example.org", "spamreport", "ev4"),
                 event("a@example.org", "open", "ev5")};
  auto opted_out = [&](int k) {
    return admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[k])).json()["email_opted_out"];
  };

  // A wrong signature, or none, is refused and changes nothing.
  CHECK(post_events(d.url(), key, events, /*wrong=*/true).status == 403);
  CHECK(request("POST", d.url() + "/v1/receipts/sendgrid", {{"Content-Type", "application/json"}},
                events.dump())
            .status == 403);
  TestKey other;
  CHECK(post_events(d.url(), other, events).status == 403);
  CHECK(email()["sent"] == 3);
  CHECK(opted_out(1) == false);

  CHECK(post_events(d.url(), key, events).status == 200);
  auto e = email();
  CHECK(e["delivered"] == 2);
  CHECK(e["undelivered"] == 1);
  CHECK(opted_out(0) == false);
  CHECK(opted_out(1) == true);  // hard bounce
  CHECK(opted_out(2) == true);  // spam report
  // Repeats are applied once.
  CHECK(post_events(d.url(), key, events).status == 200);
  CHECK(query_db(d, "SELECT count(*) FROM provider_events WHERE provider = 'sendgrid'").at(0) == "4");
  CHECK(d.log().find("0 applied, 4 repeats ignored") != std::string::npos);
  // The next alert mails only a@.
  gw.sendgrid.reset();
  auto next = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  CHECK(next.json()["recipients"] == 1);
  REQUIRE(gw.sendgrid.wait_for(1, 15s));
  CHECK(gw.sendgrid.messages().at(0).to == "a@example.org");
}
