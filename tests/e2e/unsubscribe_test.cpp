// End-to-end: alert email people can leave (RFC 8058 one-click unsubscribe),
// marked auto-generated (RFC 3834) and threaded (In-Reply-To/References),
// through the smtp gateway at the SMTP sink and the SendGrid emulator.
#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "e2e/fixture.h"
#include "support/smtp_sink.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json smtp_config(const Gateways& gw, const SmtpSink& sink) {
  json cfg = test_config(gw);
  cfg["gateways"][1] = {{"name", "smtp-main"}, {"type", "smtp"},       {"channel", "email"},
                        {"url", sink.url()},   {"from", "alerts@example.org"},
                        {"rate_per_s", 200},   {"timeout_ms", 5000}};
  return cfg;
}

// A strict reading of an RFC 5322 message: CRLF line endings only, header
// lines of printable ASCII "Name: value" (or folded continuations) within
// 998 octets, then a blank line. Returns every header (lower-case name)
// with its count, or fails the test.
std::map<std::string, int> strict_headers(const std::string& data) {
  std::map<std::string, int> names;
  std::size_t pos = 0;
  const std::regex field("^[!-9;-~]+: [ -~]*$"), folded("^[ \t][ -~]*$");
  for (;;) {
    auto eol = data.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    std::string line = data.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    INFO(line);
    REQUIRE(line.size() <= 998);
    REQUIRE(line.find('\n') == std::string::npos);
    REQUIRE(line.find('\r') == std::string::npos);
    if (std::regex_match(line, folded)) continue;
    REQUIRE(std::regex_match(line, field));
    std::string name = line.substr(0, line.find(':'));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++names[name];
  }
  // No bare LF or CR anywhere in the body either.
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\n') REQUIRE((i > 0 && data[i - 1] == '\r'));
    if (data[i] == '\r') REQUIRE((i + 1 < data.size() && data[i + 1] == '\n'));
  }
  return names;
}

// The token of "<https://alerts.example.org/u/TOKEN>".
std::string token_of(const std::string& list_unsubscribe) {
  std::smatch m;
  std::regex re("^<" + std::string(kPublicUrl) + "/u/([A-Za-z0-9_-]+)>$");
  REQUIRE(std::regex_match(list_unsubscribe, m, re));
  return m[1];
}

json subscriber(const std::string& base, int64_t id) {
  return admin("GET", base + "/v1/subscribers/" + std::to_string(id)).json();
}

}  // namespace

TEST_CASE("unsubscribe: alert email carries one-click links, GET changes nothing, POST opts out",
          "[e2e][reach]") {
  Gateways gw;
  SmtpSink sink;
  Daemon d(smtp_config(gw, sink));
  d.start();
  auto ids = add_subscribers(
      d.url(), {{{"email", "ana@example.org"}, {"language", "es-MX"}, {"groups", {"lawyers"}}},
                {{"email", "bo@example.org"}, {"language", "en"}, {"groups", {"lawyers"}}}});
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 2);
  const std::string code = r.json()["incident_id"];
  REQUIRE(sink.wait_for(2, 15s));
  std::map<std::string, SmtpMessage> by_rcpt;
  for (const auto& m : sink.messages()) by_rcpt[m.rcpts.at(0)] = m;
  REQUIRE(by_rcpt.size() == 2);
  std::map<std::string, std::string> tokens, message_ids;
  for (auto& [rcpt, m] : by_rcpt) {
    INFO(m.data);
    auto names = strict_headers(m.data);
    for (const char* h : {"from", "to", "subject", "date", "message-id", "list-unsubscribe",
                          "list-unsubscribe-post", "auto-submitted"})
      CHECK(names[h] == 1);
    CHECK(names.count("in-reply-to") == 0);  // the alert starts the thread
    CHECK(m.headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click");
    CHECK(m.headers["auto-submitted"] == "auto-generated");
    tokens[rcpt] = token_of(m.headers["list-unsubscribe"]);
    message_ids[rcpt] = m.headers["message-id"];
    // No personal data in the link.
    CHECK(m.headers["list-unsubscribe"].find("example.org/u/") != std::string::npos);
    CHECK(m.headers["list-unsubscribe"].find(rcpt.substr(0, rcpt.find('@'))) == std::string::npos);
    // The same link in the footer, in the person's language.
    const std::string url = std::string(kPublicUrl) + "/u/" + tokens[rcpt];
    CHECK(m.body.find(url) != std::string::npos);
  }
  CHECK(by_rcpt["ana@example.org"].body.find("Para no recibir") != std::string::npos);
  CHECK(by_rcpt["bo@example.org"].body.find("To stop receiving") != std::string::npos);
  CHECK(tokens["ana@example.org"] != tokens["bo@example.org"]);

  // A GET (a link scanner, a preview) shows the page in the person's
  // language and changes nothing.
  const std::string ana = d.url() + "/u/" + tokens["ana@example.org"];
  auto page = request("GET", ana);
  CHECK(page.status == 200);
  CHECK(page.header("content-type").starts_with("text/html"));
  CHECK(page.body.find("<form method=\"post\"") != std::string::npos);
  CHECK(page.body.find("List-Unsubscribe") != std::string::npos);
  CHECK(page.body.find("Darme de baja") != std::string::npos);
  CHECK(page.body.find("ana@") == std::string::npos);
  CHECK(subscriber(d.url(), ids[0])["email_opted_out"] == false);

  // Forged or altered tokens are refused and change nothing.
  std::string altered = tokens["ana@example.org"];
  altered[3] = altered[3] == 'A' ? 'B' : 'A';
  const tocsin::http::Headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};
  CHECK(request("POST", d.url() + "/u/" + altered, form, "List-Unsubscribe=One-Click").status == 404);
  CHECK(request("POST", d.url() + "/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", form,
                "List-Unsubscribe=One-Click")
            .status == 404);
  CHECK(request("POST", d.url() + "/u/not-a-token", form, "List-Unsubscribe=One-Click").status == 404);
  // A POST without the one-click field is refused too.
  CHECK(request("POST", ana, form, "other=1").status == 400);
  CHECK(subscriber(d.url(), ids[0])["email_opted_out"] == false);

  // The POST Gmail sends (RFC 8058 3.2) opts out at once.
  auto done = request("POST", ana, form, "List-Unsubscribe=One-Click");
  CHECK(done.status == 200);
  CHECK(subscriber(d.url(), ids[0])["email_opted_out"] == true);
  CHECK(subscriber(d.url(), ids[1])["email_opted_out"] == false);

  // The update reaches only Bo, threaded under Bo's alert.
  sink.reset();
  auto update = post_report(
      d.url(), report_body({{"msg_type", "update"}, {"references", code}}).dump());
  REQUIRE(update.status == 202);
  CHECK(update.json()["recipients"] == 1);
  REQUIRE(sink.wait_for(1, 15s));
  auto m = sink.messages().at(0);
  CHECK(m.rcpts.at(0) == "bo@example.org");
  CHECK(m.headers["in-reply-to"] == message_ids["bo@example.org"]);
  CHECK(m.headers["references"] == message_ids["bo@example.org"]);
  CHECK(m.headers["message-id"] != message_ids["bo@example.org"]);
  CHECK(m.headers.count("list-unsubscribe") == 1);

  // A new alert sends Ana no email.
  sink.reset();
  auto other = post_report(d.url(), report_body({{"area", "la/east-la"},
                                                 {"event", "checkpoint"},
                                                 {"location", nullptr}})
                                        .dump());
  REQUIRE(other.status == 202);
  CHECK(other.json()["recipients"] == 1);
  REQUIRE(sink.wait_for(1, 15s));
  REQUIRE(settled(d));
  for (const auto& msg : sink.messages()) CHECK(msg.rcpts.at(0) == "bo@example.org");
  CHECK(d.log().find("@example.org") == std::string::npos);
}

TEST_CASE("unsubscribe: SendGrid gets the links per personalization and still batches",
          "[e2e][reach]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 6; ++i)
    subs.push_back({{"email", "p" + std::to_string(i) + "@example.org"}, {"groups", {"lawyers"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 6);
  REQUIRE(gw.sendgrid.wait_for(6, 15s));
  auto msgs = gw.sendgrid.messages();
  std::set<std::string> raws, links;
  for (const auto& m : msgs) raws.insert(m.raw);
  CHECK(raws.size() < msgs.size());  // several recipients per request
  for (const auto& raw : raws) {
    json mail = json::parse(raw);
    CHECK(mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click");
    CHECK(mail["headers"]["Auto-Submitted"] == "auto-generated");
    const std::string text = mail["content"][0]["value"];
    CHECK(text.find("-tocsin-unsubscribe-url-") != std::string::npos);
    for (const auto& p : mail["personalizations"]) {
      const std::string header = p["headers"]["List-Unsubscribe"];
      const std::string token = token_of(header);
      CHECK(p["substitutions"]["-tocsin-unsubscribe-url-"] ==
            std::string(kPublicUrl) + "/u/" + token);
      CHECK(p["custom_args"]["tocsin_delivery_id"].is_string());
      links.insert(header);
      // The emulated link works against the daemon.
      CHECK(request("GET", d.url() + "/u/" + token).status == 200);
    }
  }
  CHECK(links.size() == 6);
  for (auto m : msgs) {  // as SendGrid would send each: the footer's link filled in
    CHECK(m.body.find(m.fields["header.List-Unsubscribe"].substr(
              1, m.fields["header.List-Unsubscribe"].size() - 2)) != std::string::npos);
    CHECK(m.body.find("-tocsin-unsubscribe-url-") == std::string::npos);
  }
}

TEST_CASE("unsubscribe: through SendGrid an update threads under each person's alert",
          "[e2e][reach]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 4; ++i)
    subs.push_back({{"email", "t" + std::to_string(i) + "@example.org"}, {"groups", {"lawyers"}}});
  add_subscribers(d.url(), subs);
  auto r = post_report(d.url(), report_body().dump());
  REQUIRE(r.json()["recipients"] == 4);
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.sendgrid.wait_for(4, 15s));
  REQUIRE(settled(d));
  std::map<std::string, std::string> alert_ids;
  std::set<std::string> raws;
  for (auto m : gw.sendgrid.messages()) {
    raws.insert(m.raw);
    const std::string id = m.fields["header.Message-ID"];
    CHECK(std::regex_match(id, std::regex("^<tocsin\\.[^<>@ ]+@example\\.org>$")));
    CHECK(m.fields.count("header.In-Reply-To") == 0);  // the alert starts the thread
    alert_ids[m.to] = id;
  }
  CHECK(raws.size() < 4);  // still batched
  std::set<std::string> distinct;
  for (const auto& [to, id] : alert_ids) distinct.insert(id);
  CHECK(distinct.size() == 4);  // one thread per person

  gw.sendgrid.reset();
  auto update =
      post_report(d.url(), report_body({{"msg_type", "update"}, {"references", code}}).dump());
  REQUIRE(update.status == 202);
  REQUIRE(update.json()["recipients"] == 4);
  REQUIRE(gw.sendgrid.wait_for(4, 15s));
  raws.clear();
  for (auto m : gw.sendgrid.messages()) {
    INFO(m.to);
    raws.insert(m.raw);
    REQUIRE(alert_ids.count(m.to) == 1);
    CHECK(m.fields["header.In-Reply-To"] == alert_ids[m.to]);
    CHECK(m.fields["header.References"] == alert_ids[m.to]);
    CHECK(!m.fields["header.Message-ID"].empty());
    CHECK(m.fields["header.Message-ID"] != alert_ids[m.to]);
  }
  CHECK(raws.size() < 4);
}
