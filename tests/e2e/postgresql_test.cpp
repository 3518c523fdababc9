// End-to-end on PostgreSQL: the real build/tocsin with storage.postgresql
// (a fresh schema of the test server, CTest's pg fixture), against the
// loopback Twilio and SendGrid emulators: check-config accepts the block,
// the daemon opens the store, takes a report and sends it, and neither
// the URL's nor the password file's secret reaches its log.
#include <catch2/catch.hpp>
#include <fstream>

#include "e2e/fixture.h"
#include "support/pg_schema.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("PostgreSQL store: the daemon opens it from config, takes a report and sends it",
          "[e2e][postgresql]") {
  PgSchema schema;
  Gateways gw;
  json cfg = test_config(gw);
  // Trust authentication ignores the password: it is here to be looked for in the log.
  cfg["storage"] = {{"postgresql", {{"url", schema.conninfo()}, {"password_file", "pg.password"}}},
                    {"key_file", "tocsin.key"}};
  Daemon d(cfg);
  {
    std::ofstream(d.path("pg.password")) << "pw-not-for-logs\n";
  }
  auto check = run_cli({"check-config", "--config", d.path("config.json").string()}, 10s, d.dir());
  INFO(check.out << check.err);
  CHECK(check.exit_code == 0);

  d.start();
  add_eastside_subscribers(d.url(), 5);
  auto r = post_report(d.url(), report_body().dump(), kCoordinatorSecret, "wh-pg-1");
  REQUIRE(r.status == 202);
  CHECK(r.json()["outcome"] == "new_incident");
  REQUIRE(gw.twilio.wait_for(5, 10s));
  REQUIRE(settled(d));
  CHECK(gw.twilio.messages().size() == 5);
  // The same webhook-id again: the stored answer, no second report.
  auto again = post_report(d.url(), report_body().dump(), kCoordinatorSecret, "wh-pg-1");
  CHECK(again.status == r.status);
  CHECK(again.body == r.body);
  // Restarted, it finds its data.
  d.terminate();
  REQUIRE(d.wait_exit(15s));
  d.start();
  auto inc = admin("GET", d.url() + "/v1/incidents/" + r.json()["incident_id"].get<std::string>());
  REQUIRE(inc.status == 200);
  CHECK(inc.json()["deliveries"]["sms"]["sent"] == 5);
  std::string log = d.log();
  CHECK(log.find("pw-not-for-logs") == std::string::npos);
  CHECK(log.find("search_path") == std::string::npos);  // the URL itself is never logged
  CHECK(log.find("PostgreSQL store at") != std::string::npos);

  // Both stores at once is a problem, named.
  cfg["storage"]["sqlite"] = {{"path", "x.db"}};
  d.config() = cfg;
  d.write_config();
  auto both = run_cli({"check-config", "--config", d.path("config.json").string()}, 10s, d.dir());
  CHECK(both.exit_code != 0);
  CHECK(both.out.find("storage.postgresql: give exactly one of storage.sqlite and storage.postgresql") !=
        std::string::npos);
}
