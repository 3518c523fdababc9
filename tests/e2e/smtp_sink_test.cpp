// Self-tests of the SMTP sink (spoken to line by line, and through the
// daemon's CurlHttpClient as the smtp gateway uses it) and of the gateway
// emulator's webhook receiver.
#include "support/smtp_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <optional>
#include <thread>

#include "core/signature.h"
#include "delivery/gateways/providers.h"
#include "delivery/http_client.h"
#include "support/emulator.h"
#include "support/http.h"

namespace tocsin::test {
namespace {

using namespace std::chrono_literals;

// A blocking SMTP client speaking raw lines, for exact control of the session.
class LineClient {
 public:
  explicit LineClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~LineClient() { ::close(fd_); }

  void send(const std::string& text) {
    REQUIRE(::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(text.size()));
  }
  // The next reply's code (multi-line replies read whole); 0 on EOF.
  int reply() {
    for (;;) {
      auto line = read_line();
      if (!line) return 0;
      if (line->size() < 4 || (*line)[3] != '-') return std::stoi(line->substr(0, 3));
    }
  }
  int command(const std::string& line) {
    send(line + "\r\n");
    return reply();
  }

 private:
  std::optional<std::string> read_line() {
    for (;;) {
      if (auto eol = in_.find("\r\n"); eol != std::string::npos) {
        std::string line = in_.substr(0, eol);
        in_.erase(0, eol + 2);
        return line;
      }
      char buf[1024];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      in_.append(buf, static_cast<std::size_t>(n));
    }
  }
  int fd_ = -1;
  std::string in_;
};

TEST_CASE("smtp sink: a session records the message, dot-unstuffed and decoded", "[support]") {
  SmtpSink sink;
  LineClient c(sink.port());
  CHECK(c.reply() == 220);
  CHECK(c.command("EHLO client.example") == 250);
  CHECK(c.command("MAIL FROM:<alerts@example.org>") == 250);
  CHECK(c.command("RCPT TO:<ana@example.org>") == 250);
  CHECK(c.command("RCPT TO:<bo@example.org>") == 250);
  CHECK(c.command("DATA") == 354);
  c.send(
      "Subject: =?UTF-8?B?QcOxbw==?=\r\n =?UTF-8?B?IG51ZXZv?=\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
      "L=C3=ADnea\r\n..dot\r\nlong=\r\n line\r\n.\r\n");
  CHECK(c.reply() == 250);
  CHECK(c.command("NOOP") == 250);
  CHECK(c.command("RSET") == 250);
  CHECK(c.command("QUIT") == 221);
  auto msgs = sink.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].from == "alerts@example.org");
  CHECK(msgs[0].rcpts == std::vector<std::string>{"ana@example.org", "bo@example.org"});
  CHECK(msgs[0].subject == "Año nuevo");
  CHECK(msgs[0].body == "Línea\n.dot\nlong line\n");
  CHECK(msgs[0].data.find("\r\n.dot\r\n") != std::string::npos);
}

TEST_CASE("smtp sink: AUTH PLAIN and LOGIN are checked before MAIL", "[support]") {
  SmtpSink sink(SmtpSink::Options{.username = "tocsin", .password = "s3cret"});
  LineClient c(sink.port());
  CHECK(c.reply() == 220);
  CHECK(c.command("EHLO x") == 250);
  CHECK(c.command("MAIL FROM:<a@example.org>") == 530);
  CHECK(c.command("AUTH PLAIN " + base64_encode(std::string("\0tocsin\0wrong", 13))) == 535);
  CHECK(c.command("AUTH LOGIN") == 334);
  CHECK(c.command(base64_encode("tocsin")) == 334);
  CHECK(c.command(base64_encode("s3cret")) == 235);
  CHECK(c.command("MAIL FROM:<a@example.org>") == 250);
  LineClient plain(sink.port());
  CHECK(plain.reply() == 220);
  CHECK(plain.command("HELO x") == 250);
  CHECK(plain.command("AUTH PLAIN") == 334);
  CHECK(plain.command(base64_encode(std::string("\0tocsin\0s3cret", 14))) == 235);
}

TEST_CASE("smtp sink: 550 for chosen recipients, 451 and drops on DATA", "[support]") {
  SmtpSink sink;
  sink.reject_recipient("Gone@Example.org");
  LineClient c(sink.port());
  CHECK(c.reply() == 220);
  CHECK(c.command("EHLO x") == 250);
  CHECK(c.command("MAIL FROM:<a@example.org>") == 250);
  CHECK(c.command("RCPT TO:<gone@example.org>") == 550);
  CHECK(c.command("DATA") == 503);  // no recipient accepted
  CHECK(c.command("RCPT TO:<ok@example.org>") == 250);
  sink.set_p_451(1);
  CHECK(c.command("DATA") == 354);
  CHECK(c.command("Subject: x\r\n\r\nbody\r\n.") == 451);
  CHECK(sink.message_count() == 0);
  sink.set_p_451(0);
  sink.set_p_drop(1);
  CHECK(c.command("MAIL FROM:<a@example.org>") == 250);
  CHECK(c.command("RCPT TO:<ok@example.org>") == 250);
  CHECK(c.command("DATA") == 354);
  CHECK(c.command("body\r\n.") == 0);  // closed without an answer
  CHECK(sink.observations().dropped == 1);
  CHECK(sink.message_count() == 0);
}

// Runs one request through a CurlHttpClient on its own io_context.
delivery::OutboundResponse run_request(delivery::OutboundRequest req) {
  boost::asio::io_context io;
  delivery::CurlHttpClient client(io);
  delivery::OutboundResponse out;
  bool done = false;
  client.send(std::move(req), [&](delivery::OutboundResponse r) {
    out = std::move(r);
    done = true;
  });
  while (!done && io.run_one_for(10s) > 0) {
  }
  return out;
}

TEST_CASE("the curl client sends the smtp gateway's message through the sink", "[support]") {
  SmtpSink sink(SmtpSink::Options{.username = "tocsin", .password = "pa:ss"});
  delivery::GatewayConfig g;
  g.url = sink.url();
  g.username = "tocsin";
  g.password = "pa:ss";
  g.from = "alerts@example.org";
  g.from_name = "Red de Respuesta Rápida";
  g.timeout_ms = 5000;
  auto message = [](std::string to) {
    return delivery::Outgoing{
        7,
        std::move(to),
        std::make_shared<const std::string>("Alerta: Vehículos de ICE #K7Q2M9"),
        std::make_shared<const std::string>("Vehículos en 1st y Soto\n.\nfin"),
        "K7Q2M9",
        0};
  };
  auto ok = run_request(delivery::smtp_request(g, message("ana@example.org"), 0));
  CHECK(ok.status == 250);
  CHECK(delivery::smtp_outcome(ok).kind == delivery::OutcomeKind::kAccepted);
  auto msgs = sink.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].auth_user == "tocsin");
  CHECK(msgs[0].rcpts == std::vector<std::string>{"ana@example.org"});
  CHECK(msgs[0].subject == "Alerta: Vehículos de ICE #K7Q2M9");
  CHECK(msgs[0].body == "Vehículos en 1st y Soto\n.\nfin\n");  // a lone "." survives stuffing
  CHECK(decode_rfc2047(msgs[0].headers["from"]) == "Red de Respuesta Rápida <alerts@example.org>");

  sink.reject_recipient("gone@example.org");
  auto gone = run_request(delivery::smtp_request(g, message("gone@example.org"), 0));
  CHECK(gone.status == 550);
  CHECK(delivery::smtp_outcome(gone).kind == delivery::OutcomeKind::kFailed);
  sink.set_p_451(1);
  auto later = run_request(delivery::smtp_request(g, message("bo@example.org"), 0));
  CHECK(later.status == 451);
  CHECK(delivery::smtp_outcome(later).kind == delivery::OutcomeKind::kRetry);
  g.password = "wrong";
  sink.set_p_451(0);
  auto denied = run_request(delivery::smtp_request(g, message("bo@example.org"), 0));
  CHECK(denied.status == 535);
  CHECK(delivery::smtp_outcome(denied).kind == delivery::OutcomeKind::kRetry);
  g.url = "smtp://127.0.0.1:1";
  auto refused = run_request(delivery::smtp_request(g, message("bo@example.org"), 0));
  CHECK(refused.status == 0);
  CHECK(sink.message_count() == 1);
}

TEST_CASE(
    "the curl client never sends without TLS when STARTTLS is required, and times out "
    "on a stalled server",
    "[support]") {
  SmtpSink sink;  // offers no STARTTLS
  delivery::GatewayConfig g;
  g.url = sink.url();
  g.from = "alerts@example.org";
  g.starttls = true;
  g.timeout_ms = 1000;
  delivery::Outgoing m{8,
                       "ana@example.org",
                       std::make_shared<const std::string>("s"),
                       std::make_shared<const std::string>("b"),
                       "K7Q2M9",
                       0};
  auto refused = run_request(delivery::smtp_request(g, m, 0));
  CHECK(refused.status == 0);
  CHECK_FALSE(refused.error.empty());
  CHECK(delivery::smtp_outcome(refused).kind == delivery::OutcomeKind::kRetry);
  CHECK(sink.observations().count(354) == 0);  // no DATA went out in clear

  g.starttls = false;
  sink.set_stall(1, 5s);
  auto stalled = run_request(delivery::smtp_request(g, m, 0));
  CHECK(stalled.status == 0);
  CHECK(stalled.timed_out);
  CHECK(delivery::smtp_outcome(stalled).kind == delivery::OutcomeKind::kRetry);
  CHECK(sink.message_count() == 0);
}

TEST_CASE("webhook receiver verifies Standard Webhooks signatures and records the JSON",
          "[support]") {
  GatewayEmulator gw;
  const std::string body =
      R"({"channel":"sms","to":"+12135550199","body":"Año","incident":"K7Q2M9","delivery_id":5})";
  auto key = *decode_webhook_secret(gw.options().webhook_secret);
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  auto post = [&](const std::string& signature, const std::string& text) {
    return request("POST", gw.webhook_url(),
                   {{"Content-Type", "application/json"},
                    {"webhook-id", "tocsin-delivery-5"},
                    {"webhook-timestamp", std::to_string(now)},
                    {"webhook-signature", signature}},
                   text);
  };
  CHECK(post(sign_webhook(key, "tocsin-delivery-5", now, body), body).status == 200);
  CHECK(
      post(sign_webhook("another key of 16+ bytes", "tocsin-delivery-5", now, body), body).status ==
      401);
  CHECK(post(sign_webhook(key, "tocsin-delivery-5", now, "{}"), "{}").status == 400);
  gw.set_p_503(1);
  CHECK(post(sign_webhook(key, "tocsin-delivery-5", now, body), body).status == 503);
  auto msgs = gw.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].provider == "webhook");
  CHECK(msgs[0].id == "tocsin-delivery-5");
  CHECK(msgs[0].to == "+12135550199");
  CHECK(msgs[0].body == "Año");
  CHECK(msgs[0].fields.at("delivery_id") == "5");
  CHECK(msgs[0].raw == body);
}

}  // namespace
}  // namespace tocsin::test
