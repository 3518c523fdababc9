// The command line, run as the real binary.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/keys.h"
#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("version and help", "[e2e][cli]") {
  auto v = run_cli({"version"});
  CHECK(v.exit_code == 0);
  CHECK(v.out.rfind("tocsin ", 0) == 0);
  auto help = run_cli({"submit", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("Example:") != std::string::npos);
  auto bad = run_cli({"frobnicate"});
  CHECK(bad.exit_code == 2);
}

TEST_CASE("check-config passes the shipped demo and lists every problem of a bad file", "[e2e][cli]") {
  // The demo as scripts/demo runs it: its key file generated on first use.
  TempDir demo;
  std::filesystem::create_directories(demo.path() / "config");
  for (const char* f : {"config/example.json", "config/demo-coordinator.secret"})
    std::filesystem::copy_file(std::filesystem::path(TOCSIN_SOURCE_DIR) / f, demo.path() / f);
  auto missing = run_cli({"check-config", "--config", "config/example.json"}, 10s, demo.path());
  CHECK(missing.exit_code == 2);
  CHECK(missing.out.find("storage.key_file: cannot read") != std::string::npos);
  std::filesystem::create_directories(demo.path() / "var");
  REQUIRE(run_cli({"keys", "generate", "var/tocsin.key"}, 10s, demo.path()).exit_code == 0);
  auto ok = run_cli({"check-config", "--config", "config/example.json"}, 10s, demo.path());
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);

  TempDir dir;
  auto path = (dir.path() / "bad.json").string();
  std::ofstream(path) << R"({
    // two problems
    "coordinators": [{"name": "x", "secret": "nope", "areas": ["la"]}],
    "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "out.jsonl"}],
    "groups": [{"name": "g", "match": {"areas": ["la"]}, "channels": ["email"]}]
  })";
  auto bad = run_cli({"check-config", "--config", path});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find(path + ": coordinators[0].secret: ") != std::string::npos);
  CHECK(bad.out.find(path + ": groups[0].channels[0]: no gateway serves channel email") !=
        std::string::npos);

  // serve refuses an invalid config the same way.
  auto serve = run_cli({"serve", "--config", path});
  CHECK(serve.exit_code == 2);
  CHECK(serve.err.find("coordinators[0].secret") != std::string::npos);
}

TEST_CASE("submit signs a report file and prints the answer", "[e2e][cli]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(7)}, {"groups", {"eastside"}}}});
  std::ofstream(d.path("secret")) << kCoordinatorSecret << "\n";
  std::ofstream(d.path("report.json")) << report_body().dump(2);
  auto r = run_cli({"submit", "--url", d.url(), "--secret-file", d.path("secret").string(),
                    d.path("report.json").string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("202 ", 0) == 0);
  CHECK(r.out.find("\"outcome\":\"new_incident\"") != std::string::npos);
  CHECK(gw.twilio.wait_for(1, 5s));

  std::ofstream(d.path("wrong")) << "whsec_d3Jvbmcta2V5LXdyb25nLWtleS0wMDAwMDA=\n";
  auto refused = run_cli({"submit", "--url", d.url(), "--secret-file", d.path("wrong").string(),
                          d.path("report.json").string()});
  CHECK(refused.exit_code == 1);
  CHECK(refused.out.rfind("401 ", 0) == 0);
}

TEST_CASE("route: a dry run beside the running daemon, sending nothing", "[e2e][cli]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"groups", {"eastside", "drills"}}},
                            json{{"phone", phone_for(3)}, {"email", "ana@example.org"}, {"language", "es-MX"},
                                 {"groups", {"eastside"}}},
                            json{{"email", "lawyer@example.org"}, {"groups", {"lawyers"}}}});
  std::ofstream(d.path("report.json")) << report_body().dump(2);
  auto r = run_cli({"route", "--config", "config.json", "report.json"}, 10s, d.dir());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("report: alert enforcement_activity severe in la/boyle-heights (actual)") != std::string::npos);
  CHECK(r.out.find("  eastside                     sms, email") != std::string::npos);
  CHECK(r.out.find("  lawyers                      email") != std::string::npos);
  CHECK(r.out.find("  sms    en              2") != std::string::npos);  // one in two groups counts once
  CHECK(r.out.find("  sms    es-MX           1") != std::string::npos);
  CHECK(r.out.find("  email  en              1") != std::string::npos);
  CHECK(r.out.find("  email  es-MX           1") != std::string::npos);
  CHECK(r.out.find("  total                  5") != std::string::npos);
  CHECK(r.out.find("--- sms, es-MX: ") != std::string::npos);
  CHECK(r.out.find("ALERTA #XXXXXX: Vehículos de ICE") != std::string::npos);
  CHECK(r.out.find("Subject: ICE vehicles at 1st & Soto (#XXXXXX)") != std::string::npos);
  // Once an incident is open, route says the report would merge.
  auto posted = post_report(d.url(), report_body().dump());
  auto again = run_cli({"route", "--config", "config.json", "report.json"}, 10s, d.dir());
  CHECK(again.out.find("a duplicate of open incident " + posted.json()["incident_id"].get<std::string>()) !=
        std::string::npos);
  // Nothing was sent by the dry runs: only the one real report's messages.
  REQUIRE(gw.twilio.wait_for(3, 5s));
  REQUIRE(settled(d));
  CHECK(gw.twilio.message_count() == 3);
  // An invalid report is refused with its field.
  std::ofstream(d.path("bad.json")) << report_body({{"severity", "huge"}}).dump();
  auto bad = run_cli({"route", "--config", "config.json", "bad.json"}, 10s, d.dir());
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("bad.json: severity: ") != std::string::npos);
}

TEST_CASE("check-config and serve refuse a config file with a key given twice, naming it",
          "[e2e][cli][strict]") {
  Gateways gw;
  json config = test_config(gw);
  config["storage"]["key_file"] = tocsin::test::shared_key_file();
  config.erase("dedup");
  // The first says 10 minutes, the second (forgotten) 1 second: which one
  // would the operator expect?
  std::string text = config.dump(2);
  text.insert(1, R"( "dedup": {"window_s": 600}, "dedup": {"window_s": 1},)");
  TempDir dir;
  auto path = (dir.path() / "tocsin.json").string();
  std::ofstream(path) << text;
  auto r = run_cli({"check-config", "--config", path});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.out.find(path + ": dedup: is given twice: duplicate key \"dedup\"") != std::string::npos);
  auto serve = run_cli({"serve", "--config", path});
  CHECK(serve.exit_code == 2);
  CHECK(serve.err.find("dedup: is given twice") != std::string::npos);
}

TEST_CASE("subscribers import takes signal and voice channels, and route counts them",
          "[e2e][cli][reach]") {
  Gateways gw;
  GatewayEmulator signal, voice;
  json cfg = test_config(gw);
  cfg["gateways"].push_back({{"name", "signal-main"},
                             {"type", "signal"},
                             {"channel", "signal"},
                             {"base_url", signal.signal_url()},
                             {"from", signal.options().signal_number}});
  cfg["gateways"].push_back({{"name", "calls"},
                             {"type", "twilio_voice"},
                             {"channel", "voice"},
                             {"base_url", voice.base_url()},
                             {"account_sid", voice.options().account_sid},
                             {"auth_token", voice.options().auth_token},
                             {"from", "+12135550100"}});
  cfg["groups"][0]["channels"] = {"sms", "email", "signal", "voice"};
  Daemon d(cfg);
  d.start();
  std::ofstream(d.path("token")) << kAdminToken << "\n";
  std::ofstream(d.path("people.csv")) << "phone,groups,channels,language\n"
                                         "+1 213 555 0170,eastside,sms;signal,en\n"
                                         "+1 213 555 0171,eastside,voice,en\n"
                                         "+1 213 555 0172,eastside,signal;voice,es-MX\n"
                                         "+1 213 555 0173,eastside,,en\n"
                                         "+1 213 555 0174,eastside,sms;pigeon,en\n";
  auto imported = run_cli({"subscribers", "import", "--url", d.url(), "--token-file",
                           d.path("token").string(), d.path("people.csv").string()},
                          30s);
  INFO(imported.out << imported.err);
  CHECK(imported.out.find(": 4 created, 0 updated, 0 unchanged, 1 refused") != std::string::npos);
  CHECK(imported.out.find("people.csv:6: channels[1]: ") != std::string::npos);
  std::map<std::string, json> channels;
  const json list = admin("GET", d.url() + "/v1/subscribers?limit=500").json()["subscribers"];
  for (const auto& s : list) {
    json one = admin("GET", d.url() + "/v1/subscribers/" + s["id"].dump()).json();
    channels[one.value("phone", "")] = one["channels"];
  }
  CHECK(channels["+12135550170"] == json({"sms", "signal"}));
  CHECK(channels["+12135550171"] == json({"voice"}));
  CHECK(channels["+12135550172"] == json({"signal", "voice"}));

  std::ofstream(d.path("report.json")) << report_body().dump(2);
  auto r = run_cli({"route", "--config", "config.json", "report.json"}, 10s, d.dir());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("  eastside                     sms, email, signal, voice") !=
        std::string::npos);
  auto line = [](const char* channel, const char* lang, int n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %-6s %-8s %8d\n", channel, lang, n);
    return std::string(buf);
  };
  CHECK(r.out.find(line("sms", "en", 2)) != std::string::npos);
  CHECK(r.out.find(line("signal", "en", 1)) != std::string::npos);
  CHECK(r.out.find(line("signal", "es-MX", 1)) != std::string::npos);
  CHECK(r.out.find(line("voice", "en", 1)) != std::string::npos);
  CHECK(r.out.find(line("voice", "es-MX", 1)) != std::string::npos);
  CHECK(r.out.find("  total                  6") != std::string::npos);
  REQUIRE(settled(d));
  CHECK(signal.message_count() == 0);  // a dry run
  CHECK(voice.message_count() == 0);
}

TEST_CASE("check-config warns of missing languages and SMS templates over sms.max_segments, exit 0",
          "[e2e][cli][messages]") {
  Gateways gw;
  json config = test_config(gw);
  config["templates"] = {{"sms", {{"en", "ALERT: {{headline}}"}, {"es", "ALERTA: {{headline}}"},
                                  {"ar", "تنبيه: {{headline}} {{area}}"}}},
                         {"email", {{"body", {{"en", "{{headline}}"}}}}}};
  config["sms"] = {{"max_segments", 2}};
  config["storage"]["key_file"] = tocsin::test::shared_key_file();
  TempDir dir;
  auto path = (dir.path() / "tocsin.json").string();
  std::ofstream(path) << config.dump(2);
  auto r = run_cli({"check-config", "--config", path});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  auto line = [&](const std::string& text) {
    return r.out.find(path + ": " + text + "\n") != std::string::npos;
  };
  CHECK(line("templates.email.subject: warning: no \"ar\" template; subscribers in \"ar\" get the \"en\" "
             "one (fallback ar → en)"));
  CHECK(line("templates.email.body: warning: no \"ar\" template; subscribers in \"ar\" get the \"en\" "
             "one (fallback ar → en)"));
  CHECK(line("templates.email.body: warning: no \"es\" template; subscribers in \"es\" get the \"en\" "
             "one (fallback es → en)"));
  CHECK(line("templates.help: warning: no \"ar\" template; subscribers in \"ar\" get the \"en\" one "
             "(fallback ar → en)"));
  CHECK(line("templates.sms.ar: warning: worst case 5 UCS-2 segments, above sms.max_segments 2 (alert, "
             "100-character headline, instruction and location cut away): such messages go out over "
             "the limit"));
  CHECK(r.out.find("templates.sms.en: warning") == std::string::npos);
  CHECK(r.out.find(": ok (") != std::string::npos);

  // A template error and an out-of-range limit fail the check; warnings still show.
  config["templates"]["sms"]["es"] = "ALERTA: {{titular}}";
  config["sms"]["max_segments"] = 20;
  std::ofstream(path) << config.dump(2);
  auto bad = run_cli({"check-config", "--config", path});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find(path + ": templates.sms.es: template uses unknown variable {{titular}}\n") !=
        std::string::npos);
  CHECK(bad.out.find(path + ": sms.max_segments: ") != std::string::npos);
  CHECK(bad.out.find(path + ": templates.help: warning: ") != std::string::npos);
}

TEST_CASE("route shows a long message shortened to sms.max_segments", "[e2e][cli][messages]") {
  Gateways gw;
  json config = test_config(gw);
  config["sms"] = {{"max_segments", 1}};
  config["storage"]["key_file"] = tocsin::test::shared_key_file();
  TempDir dir;
  std::ofstream(dir.path() / "config.json") << config.dump(2);
  std::ofstream(dir.path() / "report.json")
      << report_body({{"instruction", {{"en", "Legal observers needed: bring water, phones and a "
                                               "charger, film from the sidewalk, stay calm and call "
                                               "the hotline"}}}})
             .dump();
  auto r = run_cli({"route", "--config", "config.json", "report.json"}, 10s, dir.path());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("--- sms, en: 1 segment(s), GSM-7, shortened to fit sms.max_segments\n"
                   "ALERT #XXXXXX: ICE vehicles at 1st & Soto (1st St & Soto St). Legal observers needed: "
                   "bring water, phones and a charger, film from the...\nReply STOP to opt out") !=
        std::string::npos);
}

namespace {

// The shell blocks of README.md's section `heading`, in order, joined.
std::string readme_shell(const std::string& heading) {
  std::ifstream in(std::filesystem::path(TOCSIN_SOURCE_DIR) / "README.md");
  std::string line, out;
  bool section = false, block = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) section = line == "## " + heading;
    else if (section && line == "```sh") block = true;
    else if (block && line == "```") block = false;
    else if (block) out += line + "\n";
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("the README's first alert runs as written and finds its incident", "[e2e][cli]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(8)}, {"groups", {"eastside"}}}});
  std::ofstream(d.path("secret")) << kCoordinatorSecret << "\n";
  std::ofstream(d.path("report.json")) << report_body().dump(2);
  std::string script = readme_shell("A first alert");
  REQUIRE(script.find("tocsin submit") != std::string::npos);
  REQUIRE(script.find("/v1/incidents/") != std::string::npos);
  // The demo's addresses and files become the fixture's; its subscribers are added above.
  replace_all(script, "config/example-subscribers.sh\n", "");
  replace_all(script, "http://127.0.0.1:8080", d.url());
  replace_all(script, "build/tocsin", TOCSIN_BINARY);
  replace_all(script, "config/demo-coordinator.secret", d.path("secret").string());
  replace_all(script, "config/example-report.json", d.path("report.json").string());
  replace_all(script, "demo-admin-token-change-me", kAdminToken);
  std::ofstream(d.path("first-alert.sh")) << "set -eu\n" << script;
  const std::string dir = d.dir().string();
  int rc = std::system(("cd '" + dir + "' && sh first-alert.sh >out.txt 2>err.txt").c_str());
  auto slurp = [&](const char* name) {
    std::ifstream in(d.path(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  struct {
    std::string out, err;
  } r{slurp("out.txt"), slurp("err.txt")};
  INFO(script << r.out << r.err);
  REQUIRE(rc == 0);
  auto answer = r.out.substr(0, r.out.find('\n'));
  REQUIRE(answer.rfind("202 ", 0) == 0);
  std::string code = json::parse(answer.substr(4))["incident_id"];
  auto incident = json::parse(r.out.substr(r.out.find('\n') + 1));
  CHECK(incident["id"] == code);
}

TEST_CASE("the manual page names every subcommand", "[e2e][cli]") {
  std::ifstream in(std::filesystem::path(TOCSIN_SOURCE_DIR) / "packaging/tocsin.1");
  const std::string page(std::istreambuf_iterator<char>(in), {});
  REQUIRE(page.find(".TH TOCSIN 1") != std::string::npos);
  auto help = run_cli({"--help"});
  REQUIRE(help.exit_code == 0);
  std::istringstream lines(help.out.substr(help.out.find("Subcommands:")));
  std::string line;
  std::getline(lines, line);
  int named = 0;
  while (std::getline(lines, line) && line.rfind("  ", 0) == 0) {
    std::string name = line.substr(2, line.find(' ', 2) - 2);
    std::string roff;
    for (char c : name) roff += c == '-' ? std::string("\\-") : std::string(1, c);
    INFO(name);
    CHECK(page.find("\n.B " + roff) != std::string::npos);
    ++named;
  }
  CHECK(named >= 8);
  // Its version is the binary's.
  auto version = run_cli({"version"}).out;
  CHECK(page.find("\"" + version.substr(0, version.find('\n')) + "\"") != std::string::npos);
}
