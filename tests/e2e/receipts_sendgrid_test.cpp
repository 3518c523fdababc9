// End-to-end: SendGrid's Event Webhook, ECDSA P-256 signed with a key pair
// made here: events update deliveries, hard bounces and spam reports opt
// the address out, a wrong signature changes nothing, repeats apply once; a
// flood of forged posts is counted, not logged line by line; a signed body
// is read strictly (duplicate keys, Content-Type) like every other body.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <catch2/catch.hpp>
#include <chrono>
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

// Now, in Unix seconds: tocsin refuses a timestamp more than 10 minutes off.
std::string unix_now(int64_t offset_s = 0) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() +
                        offset_s);
}

// `body` as it is, correctly signed, with `content_type`.
HttpResult post_signed(const std::string& base, const TestKey& key, const std::string& body,
                       const std::string& content_type = "application/json") {
  const std::string ts = unix_now();
  return request("POST", base + "/v1/receipts/sendgrid",
                 {{"Content-Type", content_type},
                  {"X-Twilio-Email-Event-Webhook-Signature", key.sign(ts + body)},
                  {"X-Twilio-Email-Event-Webhook-Timestamp", ts}},
                 body);
}

HttpResult post_events(const std::string& base, const TestKey& key, const json& events,
                       bool wrong = false, int64_t offset_s = 0) {
  const std::string body = events.dump(), ts = unix_now(offset_s);
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
    json e;
    if (eventually([&] {
          e = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"]["email"];
          return e.value("sent", 0) + e.value("delivered", 0) + e.value("undelivered", 0) == 3;
        }))
      return e;
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
  // Signed with the right key but 11 minutes old, or ahead: refused too.
  CHECK(post_events(d.url(), key, events, false, -660).status == 403);
  CHECK(post_events(d.url(), key, events, false, 660).status == 403);
  CHECK(email()["sent"] == 3);
  CHECK(opted_out(1) == false);

  auto applied = post_events(d.url(), key, events);
  INFO(applied.body);
  CHECK(applied.status == 200);
  auto e = email();
  CHECK(e["delivered"] == 2);
  CHECK(e["undelivered"] == 1);
  CHECK(opted_out(0) == false);
  CHECK(opted_out(1) == true);  // hard bounce
  CHECK(opted_out(2) == true);  // spam report
  // Repeats are applied once.
  CHECK(post_events(d.url(), key, events).status == 200);
  CHECK(query_db(d, "SELECT count(*) FROM provider_events WHERE provider = 'sendgrid'").at(0) == "4");
  // A replayed body writes no line of its own: counted, and summarised.
  CHECK(d.log().find("0 applied") == std::string::npos);
  CHECK(metric(d.url(), R"(tocsin_requests_ignored_total{reason="already_applied"})") == 1);
  // The next alert mails only a@.
  gw.sendgrid.reset();
  auto next = post_report(d.url(), report_body({{"event", "checkpoint"}}).dump());
  CHECK(next.json()["recipients"] == 1);
  REQUIRE(gw.sendgrid.wait_for(1, 15s));
  CHECK(gw.sendgrid.messages().at(0).to == "a@example.org");
}

TEST_CASE("sendgrid events: deferred noted, dropped undelivered, unsubscribe events opt out",
          "[e2e][reach]") {
  Gateways gw;
  TestKey key;
  json cfg = test_config(gw);
  cfg["gateways"][1]["event_webhook_public_key"] = key.public_der_base64();
  Daemon d(cfg);
  d.start();
  std::vector<json> subs;
  for (const char* who : {"a", "b", "c", "d"})
    subs.push_back({{"email", std::string(who) + "@example.org"}, {"groups", {"lawyers"}}});
  auto ids = add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.sendgrid.wait_for(4, 15s));
  std::map<std::string, std::string> delivery;
  for (auto m : gw.sendgrid.messages()) delivery[m.to] = m.fields["custom_args.tocsin_delivery_id"];
  REQUIRE(eventually([&] {
    return admin("GET", d.url() + "/v1/incidents/" + code)
               .json()["deliveries"]["email"]
               .value("sent", 0) == 4;
  }));
  auto event = [&](const std::string& to, const std::string& kind, const std::string& id) {
    return json{{"email", to},
                {"event", kind},
                {"sg_event_id", id},
                {"timestamp", 1795000000},
                {"tocsin_delivery_id", delivery[to]}};
  };
  json deferred = event("a@example.org", "deferred", "d1");
  deferred["attempt"] = "2";
  deferred["response"] = "450 4.2.1 a@example.org mailbox busy";
  json events = {deferred, event("b@example.org", "dropped", "d2"),
                 event("c@example.org", "unsubscribe", "d3"),
                 event("d@example.org", "group_unsubscribe", "d4")};
  REQUIRE(post_events(d.url(), key, events).status == 200);
  auto state = [&](const std::string& to) {
    return query_db(d,
                    "SELECT state || '|' || last_error FROM deliveries WHERE id = " + delivery[to])
        .at(0);
  };
  auto opted_out = [&](int k) {
    return admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[k]))
        .json()["email_opted_out"];
  };
  // Deferred: still sent (SendGrid keeps trying), the attempt noted, never the response.
  CHECK(state("a@example.org") == "1|sendgrid deferred (attempt 2)");
  CHECK(opted_out(0) == false);
  CHECK(query_db(d, "SELECT count(*) FROM deliveries WHERE last_error LIKE '%busy%'").at(0) == "0");
  // Dropped: undelivered, the address kept.
  CHECK(state("b@example.org").starts_with("3|"));
  CHECK(opted_out(1) == false);
  CHECK(opted_out(2) == true);
  CHECK(opted_out(3) == true);
  auto e = admin("GET", d.url() + "/v1/incidents/" + code).json()["deliveries"]["email"];
  CHECK(e["sent"] == 3);
  CHECK(e["undelivered"] == 1);
  // A later delivered still moves the deferred one on.
  REQUIRE(
      post_events(d.url(), key, json::array({event("a@example.org", "delivered", "d5")})).status ==
      200);
  CHECK(state("a@example.org").starts_with("2|"));
}

// The value of the metric line starting with `series` ("name{labels}"), or -1.
double metric_value(const std::string& url, const std::string& series) {
  auto r = get(url + "/metrics");
  auto pos = r.body.find("\n" + series + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(r.body.substr(pos + series.size() + 2));
}

TEST_CASE("sendgrid events: a forged flood is counted and summarised, not logged per request",
          "[e2e][reach][logs]") {
  Gateways gw;
  TestKey key, forger;
  json cfg = test_config(gw);
  cfg["gateways"][1]["event_webhook_public_key"] = key.public_der_base64();
  Daemon d(cfg);
  d.start();
  const json events = {{{"email", "a@example.org"}, {"event", "bounce"}, {"type", "bounce"},
                        {"sg_event_id", "forged"}, {"tocsin_delivery_id", "1"}}};
  const std::string body = events.dump();
  const std::string url = d.url() + "/v1/receipts/sendgrid";
  // 500 forged posts of four kinds: no headers, a timestamp that is not a
  // number, a stale one, and a fresh one signed with someone else's key.
  HttpClient client;
  int refused = 0;
  for (int i = 0; i < 500; ++i) {
    std::vector<std::pair<std::string, std::string>> h = {{"Content-Type", "application/json"}};
    std::string ts = i % 4 == 1 ? "yesterday" : unix_now(i % 4 == 2 ? -3600 : 0);
    if (i % 4 != 0) {
      h.emplace_back("X-Twilio-Email-Event-Webhook-Timestamp", ts);
      h.emplace_back("X-Twilio-Email-Event-Webhook-Signature", forger.sign(ts + body));
    }
    auto r = client.request("POST", url, h, body, 5s);
    if (r.status == 403) ++refused;
  }
  CHECK(refused == 500);
  CHECK(metric_value(d.url(),
                     R"(tocsin_http_refused_total{route="/v1/receipts/sendgrid",status="403"})") ==
        500);
  CHECK(query_db(d, "SELECT count(*) FROM provider_events").at(0) == "0");
  // A genuine post still gets through the same door.
  CHECK(post_events(d.url(), key, json::array()).status == 200);
  d.terminate();
  REQUIRE(d.wait_exit(15s));
  const std::string log = d.log();
  std::size_t sendgrid_lines = 0, refused_lines = 0;
  for (std::size_t pos = 0; pos < log.size();) {
    std::size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string_view line(log.data() + pos, end - pos);
    if (line.find("SendGrid") != std::string_view::npos ||
        line.find("sendgrid") != std::string_view::npos)
      ++sendgrid_lines;
    if (line.find("refused") != std::string_view::npos) ++refused_lines;
    pos = end + 1;
  }
  INFO(d.log_tail(20));
  // The start names the gateways; no line per forged post; one summary.
  CHECK(sendgrid_lines <= 2);
  CHECK(refused_lines <= 2);
  CHECK(log.find("refused 500 requests in the last ") != std::string::npos);
}

TEST_CASE("sendgrid events: a signed body with a duplicate key or not JSON typed is refused",
          "[e2e][reach][strict]") {
  Gateways gw;
  TestKey key;
  json cfg = test_config(gw);
  cfg["gateways"][1]["event_webhook_public_key"] = key.public_der_base64();
  Daemon d(cfg);
  d.start();
  auto ids = add_subscribers(d.url(), {{{"email", "a@example.org"}, {"groups", {"lawyers"}}}});
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(gw.sendgrid.wait_for(1, 15s));
  const std::string delivery = gw.sendgrid.messages().at(0).fields["custom_args.tocsin_delivery_id"];
  // A sender whose library kept the first "event" meant a soft "deferred";
  // the last one would opt the address out. Neither is guessed.
  const std::string dup = R"([{"email":"a@example.org","event":"deferred","sg_event_id":"d1",)"
                          R"("tocsin_delivery_id":")" +
                          delivery + R"(","event":"spamreport"}])";
  auto refused = post_signed(d.url(), key, dup);
  INFO(refused.body);
  CHECK(refused.status == 400);
  CHECK(refused.json()["detail"] == "duplicate key \"event\"");
  CHECK(refused.json()["field"] == "[0].event");
  // Well-formed and signed, but not declared JSON: 415.
  const std::string good = json::array({{{"email", "a@example.org"},
                                         {"event", "spamreport"},
                                         {"sg_event_id", "s1"},
                                         {"tocsin_delivery_id", delivery}}})
                               .dump();
  auto typed = post_signed(d.url(), key, good, "text/plain");
  CHECK(typed.status == 415);
  CHECK(typed.json()["field"] == "Content-Type");
  CHECK(post_signed(d.url(), key, good, "application/x-www-form-urlencoded").status == 415);
  // Nothing changed: no event recorded, the address not opted out.
  CHECK(query_db(d, "SELECT count(*) FROM provider_events").at(0) == "0");
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[0])).json()["email_opted_out"] ==
        false);
  // The same events, correctly typed (with a charset), are applied.
  CHECK(post_signed(d.url(), key, good, "application/json; charset=utf-8").status == 200);
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[0])).json()["email_opted_out"] ==
        true);
}
