#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "delivery/gateways/providers.h"
#include "delivery/policy.h"

using namespace tocsin;
using namespace tocsin::delivery;
using nlohmann::json;

namespace {
app::GatewayConfig twilio_cfg() {
  app::GatewayConfig g;
  g.name = "tw";
  g.type = app::GatewayType::kTwilio;
  g.base_url = "http://127.0.0.1:9";
  g.account_sid = "AC123";
  g.auth_token = "secret";
  g.from = "+12135550100";
  return g;
}
Outgoing message(std::string to, std::string body, UnixMs deadline = 0) {
  return Outgoing{1, std::move(to), std::make_shared<const std::string>("Subject"),
                  std::make_shared<const std::string>(std::move(body)), "K7Q2M9", deadline};
}
OutboundResponse response(int status, std::string body = "", http::Headers headers = {}) {
  OutboundResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}
}  // namespace

TEST_CASE("twilio: the documented request", "[providers]") {
  auto req = twilio_request(twilio_cfg(), message("+12135550199", "Año & más 100%", 61'000), "", 1000);
  CHECK(req.url == "http://127.0.0.1:9/2010-04-01/Accounts/AC123/Messages.json");
  CHECK(req.basic_auth == "AC123:secret");
  CHECK(req.body ==
        "To=%2B12135550199&From=%2B12135550100&Body=A%C3%B1o+%26+m%C3%A1s+100%25&ValidityPeriod=60");
  auto with_cb = twilio_request(twilio_cfg(), message("+1", "x"), "https://a.example/v1/receipts/twilio", 0);
  CHECK(with_cb.body.find("StatusCallback=https%3A%2F%2Fa.example%2Fv1%2Freceipts%2Ftwilio") !=
        std::string::npos);
}

TEST_CASE("twilio: answers classified as the provider documents them", "[providers]") {
  auto ok = twilio_outcome(response(201, R"({"sid":"SM0123","status":"queued"})"), 0);
  CHECK(ok.kind == OutcomeKind::kAccepted);
  CHECK(ok.provider_id == "SM0123");
  auto limited = twilio_outcome(response(429, R"({"code":20429})", {{"Retry-After", "7"}}), 0);
  CHECK(limited.kind == OutcomeKind::kRetry);
  CHECK(limited.retry_after == std::chrono::milliseconds(7000));
  CHECK(twilio_outcome(response(503), 0).kind == OutcomeKind::kRetry);
  CHECK(twilio_outcome(response(0), 0).kind == OutcomeKind::kRetry);
  auto invalid = twilio_outcome(response(400, R"({"code":21211,"message":"Invalid 'To'"})"), 0);
  CHECK(invalid.kind == OutcomeKind::kFailed);
  CHECK(invalid.error == "twilio 21211");
  CHECK_FALSE(invalid.opt_out);
  auto stopped = twilio_outcome(response(400, R"({"code":21610})"), 0);
  CHECK(stopped.kind == OutcomeKind::kFailed);
  CHECK(stopped.opt_out);
  // Bad credentials wait for an operator rather than dropping the alert.
  CHECK(twilio_outcome(response(401, R"({"code":20003})"), 0).kind == OutcomeKind::kRetry);
}

TEST_CASE("sendgrid: one personalization per recipient sharing the text", "[providers]") {
  app::GatewayConfig g;
  g.base_url = "http://127.0.0.1:9";
  g.api_key = "SG.k";
  g.from = "alerts@example.org";
  g.from_name = "Rapid Response";
  std::vector<Outgoing> batch = {message("a@example.org", "Body"), message("b@example.org", "Body")};
  auto req = sendgrid_request(g, batch);
  CHECK(req.url == "http://127.0.0.1:9/v3/mail/send");
  CHECK(http::find_header(req.headers, "authorization") == "Bearer SG.k");
  auto j = json::parse(req.body);
  REQUIRE(j["personalizations"].size() == 2);
  CHECK(j["personalizations"][1]["to"][0]["email"] == "b@example.org");
  CHECK(j["from"]["name"] == "Rapid Response");
  CHECK(j["subject"] == "Subject");
  CHECK(j["content"][0]["value"] == "Body");

  CHECK(sendgrid_outcome(response(202, "", {{"X-Message-Id", "abc"}}), 0).provider_id == "abc");
  auto limited = sendgrid_outcome(response(429, "", {{"X-RateLimit-Reset", "100"}}), 95'000);
  CHECK(limited.kind == OutcomeKind::kRetry);
  CHECK(limited.retry_after == std::chrono::milliseconds(5000));
  CHECK(sendgrid_outcome(response(400, R"({"errors":[]})"), 0).kind == OutcomeKind::kFailed);
  CHECK(sendgrid_outcome(response(502), 0).kind == OutcomeKind::kRetry);
}

TEST_CASE("policy: sent, failed, retried with backoff, expired at the deadline", "[providers]") {
  store::ClaimedDelivery d;
  d.id = 9;
  d.attempts = 2;
  d.deadline_at = 100'000;
  BackoffPolicy p;
  auto sent = decide(d, Outcome{.kind = OutcomeKind::kAccepted, .provider_id = "SM1"}, "tw", 0, p, 0.5);
  CHECK(sent.state == DeliveryState::kSent);
  CHECK(sent.provider_id == "SM1");
  auto retry = decide(d, Outcome{.kind = OutcomeKind::kRetry}, "tw", 10'000, p, 0.5);
  CHECK(retry.state == DeliveryState::kPending);
  CHECK(retry.next_attempt_at == 10'000 + 1000);  // half of 500 ms * 2^2
  auto waited = decide(d, Outcome{.kind = OutcomeKind::kRetry, .retry_after = Millis(30'000)}, "tw",
                       10'000, p, 0.5);
  CHECK(waited.next_attempt_at == 40'000);
  auto late = decide(d, Outcome{.kind = OutcomeKind::kRetry, .retry_after = Millis(30'000)}, "tw",
                     90'000, p, 0.5);
  CHECK(late.state == DeliveryState::kExpired);
  auto opted = decide(d, Outcome{.kind = OutcomeKind::kFailed, .opt_out = true}, "tw", 0, p, 0.5);
  CHECK(opted.state == DeliveryState::kFailed);
  CHECK(opted.opt_out);
}
