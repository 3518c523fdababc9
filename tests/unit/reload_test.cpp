// What a reload reports as changed, and what it keeps for a restart; the
// JSON log line format.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/keys.h"
#include "app/config.h"
#include "app/log_format.h"
#include "app/reload.h"

using namespace tocsin::app;
using nlohmann::json;

namespace {

json base() {
  json j = json::parse(R"({
    "server": {"listen": "127.0.0.1:0", "public_url": "https://alerts.example.org"},
    "storage": {"sqlite": {"path": "var/t.db"}},
    "coordinators": [{"name": "la", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]}],
    "admin": {"tokens": ["0123456789abcdef0123"]},
    "gateways": [
      {"name": "sms-a", "type": "twilio", "channel": "sms", "base_url": "http://127.0.0.1:1",
       "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "0123456789abcdef0123456789abcdef", "from": "+12135550100", "rate_per_s": 5},
      {"name": "sms-b", "type": "twilio", "channel": "sms", "base_url": "http://127.0.0.1:2",
       "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "0123456789abcdef0123456789abcdef", "from": "+12135550100"},
      {"name": "mail", "type": "sendgrid", "channel": "email", "base_url": "http://127.0.0.1:1",
       "api_key": "SG.tocsin-test-key-id-00.tocsin-test-secret-0000000000000000000000000", "from": "alerts@example.org"}
    ],
    "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms", "email"]}]
  })");
  j["storage"]["key_file"] = tocsin::test::shared_key_file();
  return j;
}

Config load(const json& j) {
  auto r = parse_config(j.dump(), "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  return r.config;
}

}  // namespace

TEST_CASE("reload: an identical config changes nothing", "[reload]") {
  auto c = compare_configs(load(base()), load(base()));
  CHECK(c.applied.empty());
  CHECK(c.restart_required.empty());
}

TEST_CASE("reload: names what it applies, secrets as 'credentials'", "[reload]") {
  json j = base();
  j["groups"][0]["match"]["areas"].push_back("la/boyle-heights");
  j["templates"] = {{"sms", {{"en", "NEW {{headline}}"}}}};
  j["gateways"][0]["auth_token"] = "fedcba9876543210fedcba9876543210";
  j["gateways"][0]["rate_per_s"] = 50;
  j["gateways"][2]["max_in_flight"] = 2;
  j["admin"]["tokens"] = {"another-token-0123456789"};
  j["log"] = {{"format", "json"}};
  auto c = compare_configs(load(base()), load(j));
  using V = std::vector<std::string>;
  CHECK(c.applied == V{"admin.tokens", "groups", "templates", "log",
                       "gateways.sms-a: credentials, rate_per_s", "gateways.mail: max_in_flight"});
  CHECK(c.restart_required.empty());
  for (const auto& line : c.applied) CHECK(line.find("rotated") == std::string::npos);
}

TEST_CASE("reload: gateways added, removed, reordered", "[reload]") {
  json j = base();
  std::swap(j["gateways"][0], j["gateways"][1]);
  j["gateways"].erase(2);
  j["gateways"].push_back({{"name", "mail-2"}, {"type", "sendgrid"}, {"channel", "email"},
                           {"api_key", "SG.tocsin-other-key-id-0.tocsin-other-secret-000000000000000000000000"}, {"from", "alerts@example.org"}});
  auto c = compare_configs(load(base()), load(j));
  using V = std::vector<std::string>;
  CHECK(c.applied ==
        V{"gateways.mail-2: added", "gateways.mail: removed", "gateways: sms failover order"});
}

TEST_CASE("reload: listen address and storage need a restart and keep running values",
          "[reload]") {
  json j = base();
  j["server"]["listen"] = "127.0.0.1:9999";
  j["storage"]["sqlite"]["path"] = "elsewhere.db";
  j["dedup"] = {{"window_s", 60}};
  Config running = load(base());
  Config loaded = load(j);
  auto c = compare_configs(running, loaded);
  CHECK(c.restart_required == std::vector<std::string>{"server.listen", "storage.sqlite.path"});
  CHECK(c.applied == std::vector<std::string>{"dedup"});
  Config next = keep_restart_settings(running, loaded);
  CHECK(next.server.listen == "127.0.0.1:0");
  CHECK(next.storage.sqlite_path == "var/t.db");
  CHECK(next.dedup.window_s == 60);
}

TEST_CASE("reload: a gateway keeps running unless how it connects changed", "[reload]") {
  Config a = load(base());
  GatewayConfig g = a.gateways[0];
  GatewayConfig faster = g;
  faster.rate_per_s = 100;
  faster.max_in_flight = 1;
  CHECK(same_gateway(g, faster, "https://x", "https://x"));
  GatewayConfig moved = g;
  moved.base_url = "http://127.0.0.1:3";
  CHECK_FALSE(same_gateway(g, moved, "https://x", "https://x"));
  GatewayConfig slower = g;
  slower.timeout_ms = 1000;
  CHECK_FALSE(same_gateway(g, slower, "https://x", "https://x"));
  // Twilio's receipts go to server.public_url: a new one rebuilds it.
  CHECK_FALSE(same_gateway(g, g, "https://x", "https://y"));
  // So do email unsubscribe links.
  CHECK_FALSE(same_gateway(a.gateways[2], a.gateways[2], "https://x", "https://y"));
  auto c = compare_configs(a, [&] {
    Config b = a;
    b.server.public_url = "https://y.example.org";
    return b;
  }());
  CHECK(c.applied == std::vector<std::string>{"server.public_url", "gateways.sms-a: server.public_url",
                                              "gateways.sms-b: server.public_url",
                                              "gateways.mail: server.public_url"});
}

TEST_CASE("log.format is text or json", "[reload][config]") {
  json j = base();
  CHECK_FALSE(load(j).log.json);
  j["log"] = {{"format", "json"}};
  CHECK(load(j).log.json);
  j["log"] = {{"format", "xml"}};
  auto r = parse_config(j.dump(), "");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].path == "log.format");
}

TEST_CASE("JSON log lines escape the message and repeat the ids it names", "[log]") {
  auto line = json_log_line("warning", 1795871100123,
                            "delivery 42 failed at gateway twilio-main: \"quoted\" \\ back\ttab\nnew");
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // one line, whatever the message holds
  auto j = json::parse(line);
  CHECK(j["ts"] == "2026-11-28T13:05:00.123Z");
  CHECK(j["level"] == "warning");
  CHECK(j["msg"] == "delivery 42 failed at gateway twilio-main: \"quoted\" \\ back\ttab\nnew");
  CHECK(j["delivery_id"] == 42);
  CHECK(j["gateway"] == "twilio-main");

  auto accepted = json::parse(json_log_line(
      "info", 0, "report 7 accepted from coordinator la-hotline: incident A72WYM new_incident, 3 deliveries"));
  CHECK(accepted["report_id"] == 7);
  CHECK(accepted["coordinator"] == "la-hotline");
  CHECK(accepted["incident"] == "A72WYM");
  CHECK(accepted["ts"] == "1970-01-01T00:00:00.000Z");

  // Words after "report"/"incident" that are not ids add nothing.
  auto refused = json::parse(json_log_line("warning", 0, "report refused: 422 severity from coordinator la's"));
  CHECK_FALSE(refused.contains("report_id"));
  CHECK(refused["coordinator"] == "la");

  // Bytes that are not UTF-8 and control characters still make valid JSON.
  auto odd = json_log_line("error", 0, std::string("bad \xff\xfe utf8 \x01 bell\x07"));
  CHECK_NOTHROW(json::parse(odd));
  CHECK(odd.find("\\u0001") != std::string::npos);
}

TEST_CASE("reload: new or changed area shapes are named, equal ones are not", "[reload][areas]") {
  json j = base();
  j["areas"] = {{"circles", {{{"name", "la"}, {"center", {{"lat", 34.05}, {"lon", -118.25}}}, {"radius_m", 20000}}}}};
  using V = std::vector<std::string>;
  CHECK(compare_configs(load(base()), load(j)).applied == V{"areas"});
  CHECK(compare_configs(load(j), load(j)).applied.empty());
  json k = j;
  k["areas"]["circles"][0]["radius_m"] = 25000;
  CHECK(compare_configs(load(j), load(k)).applied == V{"areas"});
  k = j;
  k["areas"]["tolerance_m"] = 50;
  CHECK(compare_configs(load(j), load(k)).applied == V{"areas"});
}
