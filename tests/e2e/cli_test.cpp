// The command line, run as the real binary.
#include <catch2/catch.hpp>
#include <fstream>

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
  auto ok = run_cli({"check-config", "--config", "config/example.json"}, 10s, TOCSIN_SOURCE_DIR);
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
