#include "delivery/gateways/providers.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/signature.h"
#include "delivery/gateways/gateways.h"
#include "delivery/policy.h"
#include "support/fake_time.h"

using namespace tocsin;
using namespace tocsin::delivery;
using nlohmann::json;

namespace {
delivery::GatewayConfig twilio_cfg() {
  delivery::GatewayConfig g;
  g.name = "tw";
  g.type = delivery::GatewayType::kTwilio;
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

TEST_CASE("twilio: the message sid is the top-level one of Twilio's whole answer", "[providers]") {
  // Shaped like Twilio's 201 (fields abridged): nested objects before the
  // sid, one of them with a "sid" of its own.
  const std::string body = R"({"account_sid":"AC123","api_version":"2010-04-01",
    "body":"Alert: ICE at 1st & Soto","error_code":null,"num_segments":"1","price":null,
    "media":{"sid":"ME-not-this","list":[{"sid":"nor-this"}]},"sid":"SM0123abc",
    "status":"queued","subresource_uris":{"media":"/Media.json"},"to":"+15555550100"})";
  CHECK(twilio_outcome(response(201, body), 0).provider_id == "SM0123abc");
  CHECK(twilio_outcome(response(200, R"({"sid":"SM1"} trailing)"), 0).provider_id == "SM1");
  // Accepted all the same (the request was): only the id is missing.
  for (const char* odd : {R"({"sid":5})", R"({"media":{"sid":"ME1"}})", "not json", "",
                          R"(["sid","SM2"])", R"({"sid":)"}) {
    auto o = twilio_outcome(response(201, odd), 0);
    CHECK(o.kind == OutcomeKind::kAccepted);
    CHECK(o.provider_id.empty());
  }
}

TEST_CASE("twilio: answers classified as the provider documents them", "[providers]") {
  auto ok = twilio_outcome(response(201, R"({"sid":"SM0123","status":"queued"})"), 0);
  CHECK(ok.kind == OutcomeKind::kAccepted);
  CHECK(ok.provider_id == "SM0123");
  auto limited = twilio_outcome(response(429, R"({"code":20429})", {{"Retry-After", "7"}}), 0);
  CHECK(limited.kind == OutcomeKind::kThrottled);
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
  delivery::GatewayConfig g;
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
  CHECK(limited.kind == OutcomeKind::kThrottled);
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

namespace {
delivery::GatewayConfig smtp_cfg() {
  delivery::GatewayConfig g;
  g.name = "mail";
  g.type = delivery::GatewayType::kSmtp;
  g.channel = Channel::kEmail;
  g.url = "smtp://127.0.0.1:2525";
  g.username = "tocsin";
  g.password = "pa:ss";
  g.from = "alerts@example.org";
  g.from_name = "Red de Respuesta Rápida";
  g.starttls = true;
  g.timeout_ms = 7000;
  return g;
}
Outgoing email(std::string subject, std::string body) {
  return Outgoing{42,
                  "ana@example.org",
                  std::make_shared<const std::string>(std::move(subject)),
                  std::make_shared<const std::string>(std::move(body)),
                  "K7Q2M9",
                  0};
}
// The header block of an RFC 5322 message, and its body.
std::pair<std::string, std::string> split_message(const std::string& msg) {
  auto blank = msg.find("\r\n\r\n");
  REQUIRE(blank != std::string::npos);
  return {msg.substr(0, blank + 2), msg.substr(blank + 4)};
}
}  // namespace

TEST_CASE("smtp: envelope, credentials and STARTTLS for one recipient", "[providers]") {
  auto req = smtp_request(smtp_cfg(), email("Alert", "Hello"), 1'795'000'000'000);
  CHECK(req.url == "smtp://127.0.0.1:2525");
  REQUIRE(req.smtp);
  CHECK(req.smtp->mail_from == "alerts@example.org");
  CHECK(req.smtp->rcpt == std::vector<std::string>{"ana@example.org"});
  CHECK(req.smtp->require_tls);
  CHECK(req.basic_auth == "tocsin:pa:ss");
  CHECK(req.timeout == std::chrono::milliseconds(7000));
  auto anonymous = smtp_cfg();
  anonymous.username.clear();
  CHECK(smtp_request(anonymous, email("a", "b"), 0).basic_auth.empty());
}

TEST_CASE("smtp: an RFC 5322 message with encoded words and CRLF lines", "[providers]") {
  auto msg = smtp_message(
      smtp_cfg(),
      email("Alerta: Vehículos de ICE en 1st y Soto #K7Q2M9", "Línea uno\nline two\n.dot line"),
      1'795'000'000'000);
  auto [headers, body] = split_message(msg);
  CHECK(headers.find("From: =?UTF-8?B?") == 0);
  CHECK(headers.find("?= <alerts@example.org>\r\n") != std::string::npos);
  CHECK(headers.find("To: <ana@example.org>\r\n") != std::string::npos);
  CHECK(headers.find("Subject: =?UTF-8?B?") != std::string::npos);
  CHECK(headers.find("Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n") != std::string::npos);
  CHECK(headers.find("Message-ID: <tocsin.42.K7Q2M9@example.org>\r\n") != std::string::npos);
  CHECK(headers.find("MIME-Version: 1.0\r\n") != std::string::npos);
  CHECK(headers.find("Content-Type: text/plain; charset=UTF-8\r\n") != std::string::npos);
  CHECK(headers.find("Content-Transfer-Encoding: quoted-printable\r\n") != std::string::npos);
  CHECK(body == "L=C3=ADnea uno\r\nline two\r\n.dot line\r\n");
  // No bare LF anywhere: every line ends in CRLF.
  for (std::size_t i = 0; i < msg.size(); ++i)
    if (msg[i] == '\n') CHECK(msg[i - 1] == '\r');

  // ASCII stays readable; a header value cannot smuggle a header.
  auto plain_cfg = smtp_cfg();
  plain_cfg.from_name = "Rapid \"Response\"";
  auto plain = smtp_message(plain_cfg, email("Alert\r\nBcc: evil@example.org", "Hi"), 0);
  CHECK(plain.find("From: \"Rapid \\\"Response\\\"\" <alerts@example.org>\r\n") == 0);
  CHECK(plain.find("Subject: Alert  Bcc: evil@example.org\r\n") != std::string::npos);
  CHECK(plain.find("\r\nBcc:") == std::string::npos);
  CHECK(plain.find("Content-Transfer-Encoding: 7bit\r\n\r\nHi\r\n") != std::string::npos);
}

TEST_CASE("smtp: RFC 2047 words keep whole UTF-8 characters, quoted-printable lines stay short",
          "[providers]") {
  CHECK(rfc2047_encode("Plain ASCII") == "Plain ASCII");
  CHECK(rfc2047_encode("Año") == "=?UTF-8?B?QcOxbw==?=");
  std::string long_es;
  for (int i = 0; i < 20; ++i) long_es += "ñá";
  auto words = rfc2047_encode(long_es);
  std::string decoded;
  std::size_t pos = 0;
  while ((pos = words.find("=?UTF-8?B?", pos)) != std::string::npos) {
    auto end = words.find("?=", pos + 10);
    REQUIRE(end != std::string::npos);
    CHECK(end + 2 - pos <= 75);
    auto part = tocsin::base64_decode(words.substr(pos + 10, end - pos - 10));
    REQUIRE(part);
    CHECK((static_cast<unsigned char>(part->front()) & 0xC0) != 0x80);  // starts a character
    decoded += *part;
    pos = end;
  }
  CHECK(decoded == long_es);
  CHECK(words.find("?=\r\n =?UTF-8?B?") != std::string::npos);

  std::string long_line(200, 'x');
  auto qp = quoted_printable(long_line + " \r\nend=\r\n");
  for (std::size_t start = 0, eol; (eol = qp.find("\r\n", start)) != std::string::npos;
       start = eol + 2)
    CHECK(eol - start <= 76);
  CHECK(qp.find("=20\r\nend=3D\r\n") != std::string::npos);
}

TEST_CASE("smtp: replies classified: 2xx accepted, 4xx retried, 5xx failed", "[providers]") {
  CHECK(smtp_outcome(response(250)).kind == OutcomeKind::kAccepted);
  auto later = smtp_outcome(response(451));
  CHECK(later.kind == OutcomeKind::kRetry);
  CHECK(later.error == "smtp 451");
  CHECK(smtp_outcome(response(421)).kind == OutcomeKind::kRetry);
  CHECK(smtp_outcome(response(0)).kind == OutcomeKind::kRetry);
  auto unknown = smtp_outcome(response(550));
  CHECK(unknown.kind == OutcomeKind::kFailed);
  CHECK(unknown.error == "smtp 550");
  CHECK(smtp_outcome(response(554)).kind == OutcomeKind::kFailed);
  auto creds = smtp_outcome(response(535));
  CHECK(creds.kind == OutcomeKind::kRetry);
  CHECK(creds.retry_after == std::chrono::milliseconds(30'000));
}

TEST_CASE("webhook: a Standard Webhooks signed JSON POST, one id per delivery", "[providers]") {
  delivery::GatewayConfig g;
  g.type = delivery::GatewayType::kWebhook;
  g.channel = Channel::kSms;
  g.url = "http://127.0.0.1:9/hook";
  g.webhook_key = "0123456789abcdef0123";
  g.timeout_ms = 3000;
  auto req = webhook_request(g, message("+12135550199", "Año"), 1'795'000'000);
  CHECK(req.url == "http://127.0.0.1:9/hook");
  CHECK(req.method == "POST");
  CHECK(http::find_header(req.headers, "content-type") == "application/json");
  CHECK(http::find_header(req.headers, "webhook-id") == "tocsin-delivery-1");
  CHECK(http::find_header(req.headers, "webhook-timestamp") == "1795000000");
  auto sig = http::find_header(req.headers, "webhook-signature");
  CHECK(sig == tocsin::sign_webhook(g.webhook_key, "tocsin-delivery-1", 1'795'000'000, req.body));
  CHECK(tocsin::verify_webhook("tocsin-delivery-1", "1795000000", sig, req.body, {g.webhook_key},
                               1'795'000'010)
            .check == tocsin::SignatureCheck::kValid);
  auto j = json::parse(req.body);
  CHECK(j == json{{"channel", "sms"},
                  {"to", "+12135550199"},
                  {"body", "Año"},
                  {"incident", "K7Q2M9"},
                  {"delivery_id", 1}});
  g.channel = Channel::kEmail;
  CHECK(json::parse(webhook_request(g, message("a@example.org", "b"), 0).body)["subject"] ==
        "Subject");

  CHECK(webhook_outcome(response(204)).kind == OutcomeKind::kAccepted);
  auto limited = webhook_outcome(response(429, "", {{"Retry-After", "3"}}));
  CHECK(limited.kind == OutcomeKind::kThrottled);
  CHECK(limited.retry_after == std::chrono::milliseconds(3000));
  CHECK(webhook_outcome(response(503)).kind == OutcomeKind::kRetry);
  CHECK(webhook_outcome(response(0)).kind == OutcomeKind::kRetry);
  CHECK(webhook_outcome(response(400)).kind == OutcomeKind::kFailed);
  CHECK(webhook_outcome(response(404)).kind == OutcomeKind::kFailed);
}

TEST_CASE("smtp: unsubscribe headers and footer, auto-generated, threaded follow-ups",
          "[providers][unsubscribe]") {
  Outgoing m = email("Alert", "Hi");
  m.subscriber_id = 7;
  m.language = "es";
  m.unsubscribe_url = "https://alerts.example.org/u/TOKEN";
  auto [headers, body] = split_message(smtp_message(smtp_cfg(), m, 0));
  CHECK(headers.find("Message-ID: <tocsin.K7Q2M9.7@example.org>\r\n") != std::string::npos);
  CHECK(headers.find("In-Reply-To:") == std::string::npos);
  CHECK(headers.find("Auto-Submitted: auto-generated\r\n") != std::string::npos);
  CHECK(headers.find("List-Unsubscribe: <https://alerts.example.org/u/TOKEN>\r\n") !=
        std::string::npos);
  CHECK(headers.find("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") != std::string::npos);
  CHECK(body.find("https://alerts.example.org/u/TOKEN\r\n") != std::string::npos);
  CHECK(body.find("Para no recibir") != std::string::npos);  // quoted-printable keeps ASCII words
  m.followup = true;
  auto [fheaders, fbody] = split_message(smtp_message(smtp_cfg(), m, 0));
  CHECK(fheaders.find("Message-ID: <tocsin.K7Q2M9.7.42@example.org>\r\n") != std::string::npos);
  CHECK(fheaders.find("In-Reply-To: <tocsin.K7Q2M9.7@example.org>\r\n") != std::string::npos);
  CHECK(fheaders.find("References: <tocsin.K7Q2M9.7@example.org>\r\n") != std::string::npos);
  // Without a public URL: no link, still auto-generated.
  m.unsubscribe_url.clear();
  auto bare = smtp_message(smtp_cfg(), m, 0);
  CHECK(bare.find("List-Unsubscribe") == std::string::npos);
  CHECK(bare.find("Auto-Submitted: auto-generated\r\n") != std::string::npos);
}

TEST_CASE("the Twilio gateway's cost is the segments of each body, kept for a shared one", "[providers]") {
  struct NoHttp : delivery::HttpClient {
    void send(delivery::OutboundRequest, delivery::ResponseCallback) override {}
    std::size_t in_flight() const override { return 0; }
  } http;
  boost::asio::io_context io;
  tocsin::test::FakeClock clock;
  delivery::GatewayConfig config;
  config.name = "t";
  config.type = delivery::GatewayType::kTwilio;
  auto gw = delivery::make_gateway(config, delivery::GatewayContext{io, http, clock, "", ""});
  auto batch = [](std::shared_ptr<const std::string> body) {
    delivery::Outgoing o;
    o.body = std::move(body);
    return std::vector<delivery::Outgoing>{o};
  };
  auto one = std::make_shared<const std::string>("short");
  auto three = std::make_shared<const std::string>(std::string(400, 'a'));
  CHECK(gw->cost(batch(one)) == 1);
  CHECK(gw->cost(batch(one)) == 1);
  CHECK(gw->cost(batch(three)) == 3);
  CHECK(gw->cost(batch(three)) == 3);
  CHECK(gw->cost(batch(one)) == 1);
  // A body freed and another made (perhaps at the same address) is counted anew.
  three.reset();
  CHECK(gw->cost(batch(std::make_shared<const std::string>(std::string(200, 'b')))) == 2);
  CHECK(gw->cost(batch(std::make_shared<const std::string>("x"))) == 1);
}
