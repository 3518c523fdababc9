// Self-tests of the end-to-end support library: the gateway emulators answer
// as Twilio and SendGrid document, faults are injected as configured, and
// Daemon runs, watches and reaps a child process.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <thread>

#include "support/daemon.h"
#include "support/emulator.h"
#include "support/http.h"

namespace tocsin::test {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Clock = std::chrono::steady_clock;
using Form = std::vector<std::pair<std::string, std::string>>;

const std::string kSpanish = "Vehículos de ICE en 1st y Soto & Calle 3 + ñandú: ¡atención!";

// "SM" and 32 lowercase hex digits. (No std::regex: GCC 12 warns inside it
// under -fsanitize.)
bool is_message_sid(const std::string& sid) {
  return sid.size() == 34 && sid.rfind("SM", 0) == 0 &&
         sid.find_first_not_of("0123456789abcdef", 2) == std::string::npos;
}

std::string twilio_url(const GatewayEmulator& emu) {
  return emu.base_url() + "/2010-04-01/Accounts/" + emu.options().account_sid + "/Messages.json";
}

http::Headers twilio_headers(const GatewayEmulator& emu) {
  return {{"Authorization", basic_auth(emu.options().account_sid, emu.options().auth_token)},
          {"Content-Type", "application/x-www-form-urlencoded"}};
}

HttpResult send_sms(HttpClient& client, const GatewayEmulator& emu, const Form& form) {
  return client.request("POST", twilio_url(emu), twilio_headers(emu), form_encode(form));
}

HttpResult send_sms(const GatewayEmulator& emu, const std::string& to = "+12135550199") {
  HttpClient client;
  return send_sms(client, emu, {{"To", to}, {"From", "+12135550100"}, {"Body", "hola"}});
}

std::string sendgrid_url(const GatewayEmulator& emu) {
  return emu.base_url() + "/v3/mail/send";
}

http::Headers sendgrid_headers(const GatewayEmulator& emu) {
  return {{"Authorization", "Bearer " + emu.options().api_key}};
}

nlohmann::json mail_with(std::size_t personalizations) {
  nlohmann::json ps = nlohmann::json::array();
  for (std::size_t i = 0; i < personalizations; ++i) {
    ps.push_back({{"to", {{{"email", "r" + std::to_string(i) + "@example.org"}}}}});
  }
  return {{"personalizations", ps},
          {"from", {{"email", "alerts@example.org"}, {"name", "Alerts"}}},
          {"subject", "Alerta"},
          {"content", {{{"type", "text/plain"}, {"value", kSpanish}}}}};
}

}  // namespace

TEST_CASE("twilio emulator accepts a message and round-trips UTF-8", "[support]") {
  GatewayEmulator emu;
  HttpClient client;
  auto r = send_sms(client, emu,
                    {{"To", "+12135550199"},
                     {"From", "+12135550100"},
                     {"Body", kSpanish},
                     {"StatusCallback", "https://alerts.example.org/v1/receipts/twilio"},
                     {"ValidityPeriod", "600"}});
  REQUIRE(r.status == 201);
  CHECK(r.header("content-type") == "application/json");
  auto j = r.json();
  CHECK(is_message_sid(j["sid"].get<std::string>()));
  CHECK(j["status"] == "queued");
  CHECK(j["to"] == "+12135550199");
  CHECK(j["from"] == "+12135550100");
  CHECK(j["body"] == kSpanish);
  CHECK(j["num_segments"] == "1");  // 60 UCS-2 characters fit one segment

  auto msgs = emu.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].provider == "twilio");
  CHECK(msgs[0].id == j["sid"]);
  CHECK(msgs[0].to == "+12135550199");
  CHECK(msgs[0].body == kSpanish);
  CHECK(msgs[0].fields.at("StatusCallback") == "https://alerts.example.org/v1/receipts/twilio");
  CHECK(msgs[0].fields.at("ValidityPeriod") == "600");
  CHECK(emu.count(201) == 1);

  // Segments as Twilio counts them: GSM-7 153 per part, UCS-2 67.
  auto long_gsm =
      send_sms(client, emu, {{"To", "+1"}, {"From", "+2"}, {"Body", std::string(161, 'a')}});
  CHECK(long_gsm.json()["num_segments"] == "2");
  auto long_ucs2 =
      send_sms(client, emu, {{"To", "+1"}, {"From", "+2"}, {"Body", kSpanish + kSpanish}});
  CHECK(long_ucs2.json()["num_segments"] == "2");
  // One connection for all three: keep-alive works.
  CHECK(emu.observations().connections == 1);
}

TEST_CASE("twilio emulator refuses bad credentials with 20003", "[support]") {
  GatewayEmulator emu;
  Form form{{"To", "+12135550199"}, {"From", "+12135550100"}, {"Body", "x"}};
  for (const auto& auth : {basic_auth(emu.options().account_sid, "wrong"), std::string()}) {
    http::Headers headers;
    if (!auth.empty()) headers.emplace_back("Authorization", auth);
    auto r = request("POST", twilio_url(emu), headers, form_encode(form));
    REQUIRE(r.status == 401);
    CHECK(r.json() ==
          nlohmann::json::parse(
              R"({"code":20003,"message":"Authenticate",)"
              R"("more_info":"https://www.twilio.com/docs/errors/20003","status":401})"));
  }
  CHECK(emu.message_count() == 0);
}

TEST_CASE("twilio emulator requires To, From and Body", "[support]") {
  GatewayEmulator emu;
  HttpClient client;
  auto missing = [&](const Form& form) {
    auto r = send_sms(client, emu, form);
    CHECK(r.status == 400);
    return r.json()["code"].get<int>();
  };
  CHECK(missing({{"To", "+12135550199"}, {"From", "+12135550100"}}) == 21602);
  CHECK(missing({{"To", "+12135550199"}, {"From", "+12135550100"}, {"Body", ""}}) == 21602);
  CHECK(missing({{"From", "+12135550100"}, {"Body", "x"}}) == 21604);
  CHECK(missing({{"To", "+12135550199"}, {"Body", "x"}}) == 21603);
  CHECK(emu.message_count() == 0);
  CHECK(emu.count(400) == 4);
}

TEST_CASE("twilio emulator answers per-number error codes", "[support]") {
  GatewayEmulator emu;
  emu.set_twilio_error("+15555550123", 21610);
  emu.set_twilio_error("+15555550124", 21211);
  CHECK_THROWS_AS(emu.set_twilio_error("+1", 12345), std::invalid_argument);

  auto r = send_sms(emu, "+15555550123");
  REQUIRE(r.status == 400);
  CHECK(r.json()["code"] == 21610);
  CHECK(r.json()["message"] == "Attempt to send to unsubscribed recipient");
  CHECK(r.json()["more_info"] == "https://www.twilio.com/docs/errors/21610");
  CHECK(send_sms(emu, "+15555550124").json()["code"] == 21211);
  CHECK(send_sms(emu, "+15555550125").status == 201);
  emu.clear_twilio_errors();
  CHECK(send_sms(emu, "+15555550123").status == 201);
  CHECK(emu.message_count() == 2);
}

TEST_CASE("sendgrid emulator records each recipient of each personalization", "[support]") {
  GatewayEmulator emu;
  auto mail = mail_with(3);
  mail["personalizations"][1]["subject"] = "Asunto propio";
  mail["personalizations"][2]["to"][0]["name"] = "Ana";
  mail["content"].push_back({{"type", "text/html"}, {"value", "<p>hola</p>"}});
  auto r = post_json(sendgrid_url(emu), mail, sendgrid_headers(emu));
  REQUIRE(r.status == 202);
  CHECK(r.body.empty());
  CHECK_FALSE(r.header("X-Message-Id").empty());

  auto msgs = emu.messages();
  REQUIRE(msgs.size() == 3);
  CHECK(msgs[0].provider == "sendgrid");
  CHECK(msgs[0].to == "r0@example.org");
  CHECK(msgs[2].to == "r2@example.org");
  CHECK(msgs[0].from == "alerts@example.org");
  CHECK(msgs[0].subject == "Alerta");
  CHECK(msgs[1].subject == "Asunto propio");
  CHECK(msgs[0].body == kSpanish);
  CHECK(msgs[2].fields.at("to_name") == "Ana");
  CHECK(msgs[0].fields.at("html") == "<p>hola</p>");
  CHECK(msgs[0].id == r.header("X-Message-Id"));
}

TEST_CASE("sendgrid emulator validates like SendGrid", "[support]") {
  GatewayEmulator emu;
  HttpClient client;
  auto send = [&](const nlohmann::json& mail) {
    return client.request("POST", sendgrid_url(emu),
                          {{"Authorization", "Bearer " + emu.options().api_key},
                           {"Content-Type", "application/json"}},
                          mail.dump());
  };
  auto fields_of = [](const HttpResult& r) {
    std::vector<std::string> fields;
    const auto answer = r.json();
    for (const auto& e : answer["errors"]) {
      CHECK(e["help"].is_null());
      fields.push_back(e["field"].is_null() ? "null" : e["field"].get<std::string>());
    }
    return fields;
  };

  SECTION("1000 personalizations pass, 1001 do not") {
    CHECK(send(mail_with(1000)).status == 202);
    CHECK(emu.message_count() == 1000);
    auto r = send(mail_with(1001));
    REQUIRE(r.status == 400);
    CHECK(fields_of(r) == std::vector<std::string>{"personalizations"});
    CHECK(emu.message_count() == 1000);
  }
  SECTION("every problem is reported with its field") {
    auto mail = mail_with(2);
    mail["personalizations"][1]["to"] = nlohmann::json::array();
    mail["from"].erase("email");
    mail.erase("subject");
    mail["content"][0]["value"] = "";
    auto r = send(mail);
    REQUIRE(r.status == 400);
    CHECK(fields_of(r) == std::vector<std::string>{"personalizations.1.to", "from.email", "subject",
                                                   "content.0.value"});
  }
  SECTION("subjects in every personalization replace the top-level one") {
    auto mail = mail_with(2);
    mail.erase("subject");
    CHECK(send(mail).status == 400);
    mail["personalizations"][0]["subject"] = "a";
    mail["personalizations"][1]["subject"] = "b";
    CHECK(send(mail).status == 202);
  }
  SECTION("no content, bad addresses, not JSON") {
    auto mail = mail_with(1);
    mail["content"] = nlohmann::json::array();
    mail["personalizations"][0]["to"][0]["email"] = "not an address";
    auto r = send(mail);
    REQUIRE(r.status == 400);
    CHECK(fields_of(r) == std::vector<std::string>{"personalizations.0.to.0.email", "content"});
    auto bad = client.request("POST", sendgrid_url(emu), sendgrid_headers(emu), "{nope");
    CHECK(bad.status == 400);
    CHECK(fields_of(bad) == std::vector<std::string>{"null"});
  }
}

TEST_CASE("sendgrid emulator refuses a bad key with 401", "[support]") {
  GatewayEmulator emu;
  for (const std::string auth : {"Bearer SG.wrong", "", "Basic eDp5"}) {
    http::Headers headers;
    if (!auth.empty()) headers.emplace_back("Authorization", auth);
    auto r = post_json(sendgrid_url(emu), mail_with(1), headers);
    REQUIRE(r.status == 401);
    CHECK(r.json() == nlohmann::json::parse(
                          R"({"errors":[{"message":"The provided authorization grant is invalid, )"
                          R"(expired, or revoked","field":null,"help":null}]})"));
  }
  CHECK(emu.message_count() == 0);
}

TEST_CASE("emulator enforces a strict rate limit with provider 429s", "[support]") {
  GatewayEmulator emu;
  emu.set_rate_limit(5);
  HttpClient client;
  std::size_t accepted = 0, limited = 0;
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) {
    auto r = send_sms(client, emu, {{"To", "+12135550199"}, {"From", "+1"}, {"Body", "x"}});
    if (r.status == 201) {
      ++accepted;
    } else {
      REQUIRE(r.status == 429);
      CHECK(r.json()["code"] == 20429);
      int retry_after = std::stoi(std::string(r.header("Retry-After")));
      CHECK(retry_after == 1);
      ++limited;
    }
  }
  // The window must not have slid during the burst, or the count is moot.
  REQUIRE(Clock::now() - start < 900ms);
  CHECK(accepted == 5);
  CHECK(limited == 15);
  CHECK(emu.count(429) == 15);

  // SendGrid's flavour: X-RateLimit-* with Reset a unix time ahead.
  auto r = post_json(sendgrid_url(emu), mail_with(1), sendgrid_headers(emu));
  REQUIRE(r.status == 429);
  CHECK(r.header("X-RateLimit-Limit") == "5");
  CHECK(r.header("X-RateLimit-Remaining") == "0");
  const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const auto reset = std::stoll(std::string(r.header("X-RateLimit-Reset")));
  CHECK(reset >= now_unix);
  CHECK(reset <= now_unix + 2);
}

TEST_CASE("random faults follow their probability and the seed", "[support]") {
  auto run = [](uint64_t seed, int n) {
    GatewayEmulator::Options options;
    options.seed = seed;
    GatewayEmulator emu(options);
    emu.set_p_503(0.3);
    HttpClient client;
    std::string statuses;
    for (int i = 0; i < n; ++i) {
      auto r = send_sms(client, emu, {{"To", "+1"}, {"From", "+2"}, {"Body", "x"}});
      statuses += r.status == 503 ? 'U' : r.status == 201 ? '.' : '?';
    }
    CHECK(emu.count(503) ==
          static_cast<std::size_t>(std::count(statuses.begin(), statuses.end(), 'U')));
    return statuses;
  };
  const std::string a = run(7, 500);
  const auto unavailable = std::count(a.begin(), a.end(), 'U');
  CHECK(a.find('?') == std::string::npos);
  // 30% of 500 = 150; 3 standard deviations are about 31.
  CHECK(unavailable >= 120);
  CHECK(unavailable <= 180);
  CHECK(run(7, 100) == a.substr(0, 100));  // same seed, same sequence
  CHECK(run(8, 100) != a.substr(0, 100));

  GatewayEmulator emu;
  emu.set_p_429(1.0, 7);
  auto r = send_sms(emu);
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After") == "7");
}

TEST_CASE("a stall delays the answer", "[support]") {
  GatewayEmulator emu;
  emu.set_stall(1.0, 300ms);
  const auto start = Clock::now();
  auto r = send_sms(emu);
  const auto took = Clock::now() - start;
  CHECK(r.status == 201);
  CHECK(took >= 300ms);
  CHECK(took < 2s);
}

TEST_CASE("concurrent requests are counted in flight", "[support]") {
  GatewayEmulator emu;
  emu.set_stall(1.0, 200ms);
  // Catch2 assertions are not thread-safe: threads record, the test checks.
  std::vector<int> statuses(4);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back([&, i] { statuses[i] = send_sms(emu).status; });
  for (auto& t : clients) t.join();
  CHECK(statuses == std::vector<int>(4, 201));
  CHECK(emu.peak_in_flight() == 4);
  CHECK(emu.observations().in_flight == 0);
  CHECK(emu.requests() == 4);
}

TEST_CASE("a dropped connection gives the client an error", "[support]") {
  GatewayEmulator emu;
  emu.set_p_drop(1.0);
  auto r = send_sms(emu);
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.error.empty());
  auto obs = emu.observations();
  CHECK(obs.dropped == 1);
  CHECK(obs.requests == 1);
  CHECK(obs.messages.empty());
  emu.set_p_drop(0);
  CHECK(send_sms(emu).status == 201);
}

TEST_CASE("the down switch answers 503 to everything until lifted", "[support]") {
  GatewayEmulator emu;
  emu.set_down(true);
  auto sms = send_sms(emu);
  CHECK(sms.status == 503);
  CHECK(sms.json()["code"] == 20503);
  CHECK(post_json(sendgrid_url(emu), mail_with(1), sendgrid_headers(emu)).status == 503);
  CHECK(emu.message_count() == 0);
  emu.set_down(false);
  CHECK(send_sms(emu).status == 201);
  CHECK(post_json(sendgrid_url(emu), mail_with(1), sendgrid_headers(emu)).status == 202);
}

TEST_CASE("wait_for wakes on acceptance and times out otherwise", "[support]") {
  GatewayEmulator emu;
  auto start = Clock::now();
  CHECK_FALSE(emu.wait_for(1, 100ms));
  CHECK(Clock::now() - start >= 100ms);
  std::thread sender([&] {
    for (int i = 0; i < 3; ++i) send_sms(emu);
  });
  CHECK(emu.wait_for(3, 5s));
  sender.join();
  CHECK(emu.wait_for([](const Observations& o) { return o.count(201) == 3; }, 1s));
  emu.reset();
  CHECK(emu.observations().messages.empty());
  CHECK(emu.requests() == 0);
}

TEST_CASE("a large body with Expect: 100-continue is read", "[support]") {
  GatewayEmulator emu;
  auto r = request("POST", sendgrid_url(emu),
                   {{"Authorization", "Bearer " + emu.options().api_key},
                    {"Content-Type", "application/json"},
                    {"Expect", "100-continue"}},
                   mail_with(500).dump(), 5s);
  CHECK(r.status == 202);
  CHECK(emu.message_count() == 500);
}

TEST_CASE("the emulator shuts down promptly with a stalled connection open", "[support]") {
  auto emu = std::make_unique<GatewayEmulator>();
  emu->set_stall(1.0, 30s);
  const std::string url = twilio_url(*emu);
  const http::Headers headers = twilio_headers(*emu);
  HttpResult result;
  std::thread client([&] { result = request("POST", url, headers, "To=%2B1&From=%2B2&Body=x"); });
  REQUIRE(emu->wait_for([](const Observations& o) { return o.in_flight == 1; }, 5s));
  // An idle keep-alive connection stays open too.
  HttpClient idle;
  emu->set_stall(0, 0ms);
  CHECK(send_sms(idle, *emu, {{"To", "+1"}, {"From", "+2"}, {"Body", "x"}}).status == 201);

  const auto start = Clock::now();
  emu = nullptr;
  CHECK(Clock::now() - start < 1s);
  client.join();
  CHECK_FALSE(result.ok());
}

// ---- Daemon -------------------------------------------------------------------

namespace {

// A stand-in daemon: a shell script that prints the readiness line with a
// port that changes on every start, and exits 0 on SIGTERM.
std::string write_fake_daemon(const std::filesystem::path& dir) {
  auto path = dir / "fake-tocsin";
  std::ofstream(path) << "#!/bin/sh\n"
                         "n=$(cat starts 2>/dev/null || echo 0); n=$((n+1)); echo $n > starts\n"
                         "echo \"cwd=$(pwd) args=$*\"\n"
                         "sleep 10 & child=$!\n"
                         "trap 'kill $child; exit 0' TERM\n"
                         "echo \"info: listening on http://127.0.0.1:4000$n\"\n"
                         "wait\n";
  ::chmod(path.c_str(), 0755);
  return path.string();
}

bool reaped(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

TEST_CASE("run_cli runs the binary and captures its output", "[support]") {
  auto r = run_cli({"version"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, StartsWith("tocsin "));
  CHECK_FALSE(r.timed_out);

  auto bad = run_cli({"no-such-subcommand"});
  CHECK(bad.exit_code != 0);
  CHECK_FALSE(bad.err.empty());
}

TEST_CASE("Daemon::start fails clearly when the binary exits at once", "[support]") {
  // An invalid config: `serve` prints its problems and exits 2 at once.
  Daemon daemon(nlohmann::json{{"server", {{"listen", "0.0.0.0:8080"}}}});
  std::string message;
  try {
    daemon.start(5s);
  } catch (const DaemonError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Contains("exited (exit status 2)"));
  CHECK_THAT(message, Contains("listening on"));
  CHECK_THAT(message, Contains("config.json: coordinators: is required"));  // the log's tail
  CHECK_FALSE(daemon.running());
  CHECK(reaped(daemon.pid()));
  REQUIRE(daemon.wait_exit(0ms));
  CHECK(daemon.wait_exit(0ms)->code == 2);
  // The config was written with the listen address forced.
  auto written = nlohmann::json::parse(std::ifstream(daemon.path("config.json")));
  CHECK(written["server"]["listen"] == "127.0.0.1:0");

  Daemon missing(nlohmann::json::object(), Daemon::Options{.binary = "/nonexistent/tocsin"});
  CHECK_THROWS_WITH(missing.start(), Contains("cannot run /nonexistent/tocsin"));
}

TEST_CASE("Daemon starts, restarts and stops a child, reaping it", "[support]") {
  TempDir bin("tocsin-fake");
  const std::string fake = write_fake_daemon(bin.path());
  Daemon daemon(nlohmann::json::object(), Daemon::Options{.binary = fake});
  daemon.start();
  CHECK(daemon.url() == "http://127.0.0.1:40001");
  CHECK(daemon.running());
  CHECK_THAT(daemon.log(),
             Contains("cwd=" + daemon.dir().string() + " args=serve --config config.json"));
  CHECK_THROWS_WITH(daemon.start(), Contains("already running"));

  daemon.terminate();
  auto status = daemon.wait_exit(5s);
  REQUIRE(status);
  CHECK(status->exited());
  CHECK(status->code == 0);
  CHECK(reaped(daemon.pid()));

  // A restart only counts lines written after it: the old line says 40001.
  daemon.start();
  CHECK(daemon.port() == 40002);
  const pid_t second = daemon.pid();
  daemon.kill9();
  CHECK_FALSE(daemon.running());
  CHECK(daemon.wait_exit(0ms)->signal == SIGKILL);
  CHECK(reaped(second));
  // Its `sleep` went with it (once init has reaped that zombie).
  const auto deadline = Clock::now() + 2s;
  while (::kill(-second, 0) == 0 && Clock::now() < deadline) ::poll(nullptr, 0, 10);
  CHECK(::kill(-second, 0) != 0);

  daemon.start();
  CHECK(daemon.port() == 40003);
}

TEST_CASE("Daemon::start gives up after its timeout and kills the child", "[support]") {
  TempDir bin("tocsin-fake");
  auto path = bin.path() / "silent";
  std::ofstream(path) << "#!/bin/sh\necho starting\nexec sleep 10\n";
  ::chmod(path.c_str(), 0755);
  Daemon daemon(nlohmann::json::object(), Daemon::Options{.binary = path.string()});
  const auto start = Clock::now();
  CHECK_THROWS_WITH(daemon.start(300ms), Contains("within 300 ms") && Contains("starting"));
  CHECK(Clock::now() - start < 3s);
  CHECK(reaped(daemon.pid()));
}

TEST_CASE("TempDir removes its directory", "[support]") {
  std::filesystem::path kept;
  {
    TempDir dir;
    kept = dir.path();
    CHECK(std::filesystem::is_directory(kept));
    std::ofstream(kept / "file") << "x";
  }
  if (!std::getenv("TOCSIN_KEEP_TEST_DIRS")) CHECK_FALSE(std::filesystem::exists(kept));
}

}  // namespace tocsin::test
