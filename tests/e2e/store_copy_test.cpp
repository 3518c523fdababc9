// End-to-end: `tocsin store copy` moves a network from its SQLite file to
// PostgreSQL (a fresh schema of the test server), and the daemon on
// PostgreSQL carries on where the SQLite one stopped: the same subscribers
// (ciphertexts as they were, same key file), the incident and its
// follow-ups to exactly the original recipients, the stored answer of a
// webhook-id, the audit log; a second copy into the filled database is
// refused and writes nothing.
#include <catch2/catch.hpp>

#include "e2e/fixture.h"
#include "support/keys.h"
#include "support/pg_schema.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("store copy: a SQLite network moved to PostgreSQL carries on there",
          "[e2e][postgresql]") {
  PgSchema schema;
  Gateways gw;
  json cfg = test_config(gw);
  cfg["storage"] = {{"key_file", shared_key_file()}, {"sqlite", {{"path", "var/tocsin.db"}}}};
  Daemon old_one(cfg);
  old_one.start();
  add_eastside_subscribers(old_one.url(), 30);
  auto alert = post_report(old_one.url(), report_body().dump(), kCoordinatorSecret, "wh-copy-1");
  REQUIRE(alert.status == 202);
  const std::string code = alert.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(30, 15s));
  REQUIRE(settled(old_one));
  // A subscriber who joins after the alert is not one of its recipients.
  add_subscribers(old_one.url(), {{{"phone", phone_for(500)}, {"groups", {"eastside"}}}});
  old_one.terminate();
  REQUIRE(old_one.wait_exit(15s));

  json pg_cfg = cfg;
  pg_cfg["storage"] = {{"key_file", shared_key_file()}, {"postgresql", {{"url", schema.conninfo()}}}};
  Daemon new_one(pg_cfg);  // writes its config.json; started after the copy
  auto copy = run_cli({"store", "copy", "--from", old_one.path("config.json").string(), "--to",
                       new_one.path("config.json").string()},
                      60s, old_one.dir());
  INFO(copy.out << copy.err);
  REQUIRE(copy.exit_code == 0);
  CHECK(copy.out.find("subscribers") != std::string::npos);

  new_one.start();
  auto inc = admin("GET", new_one.url() + "/v1/incidents/" + code);
  REQUIRE(inc.status == 200);
  CHECK(inc.json()["deliveries"]["sms"]["sent"] == 30);
  auto subs = admin("GET", new_one.url() + "/v1/subscribers?limit=100");
  REQUIRE(subs.status == 200);
  // The webhook-id's stored answer came across: a retry is answered the same.
  auto again = post_report(new_one.url(), report_body().dump(), kCoordinatorSecret, "wh-copy-1");
  CHECK(again.status == 202);
  CHECK(again.body == alert.body);
  // An update reaches exactly the alert's recipients: the deliveries came
  // across, and the numbers decrypt with the same key file.
  gw.twilio.reset();
  auto update = post_report(new_one.url(), report_body({{"msg_type", "update"}, {"references", code}}).dump());
  REQUIRE(update.status == 202);
  CHECK(update.json()["incident_id"] == code);
  REQUIRE(gw.twilio.wait_for(30, 15s));
  REQUIRE(settled(new_one));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts.size() == 30);
  CHECK(counts.count(phone_for(500)) == 0);
  CHECK(counts.count(phone_for(0)) == 1);
  // New rows continue after the copied ids.
  auto added = add_subscribers(new_one.url(), {{{"phone", phone_for(501)}, {"groups", {"eastside"}}}});
  CHECK(added[0] > 31);

  // Into a database that holds data: refused, nothing written.
  new_one.terminate();
  REQUIRE(new_one.wait_exit(15s));
  auto twice = run_cli({"store", "copy", "--from", old_one.path("config.json").string(), "--to",
                        new_one.path("config.json").string()},
                       60s, old_one.dir());
  CHECK(twice.exit_code == 1);
  CHECK(twice.err.find("already holds data") != std::string::npos);
}

TEST_CASE("store copy: refused with nothing written when the two key files differ",
          "[e2e][postgresql]") {
  PgSchema schema;
  Gateways gw;
  json cfg = test_config(gw);
  cfg["storage"] = {{"key_file", shared_key_file()}, {"sqlite", {{"path", "var/tocsin.db"}}}};
  Daemon old_one(cfg);
  old_one.start();
  add_eastside_subscribers(old_one.url(), 3);
  old_one.terminate();
  REQUIRE(old_one.wait_exit(15s));
  json pg_cfg = cfg;
  pg_cfg["storage"] = {{"key_file", "other.key"}, {"postgresql", {{"url", schema.conninfo()}}}};
  Daemon new_one(pg_cfg);  // makes a new other.key: another key file
  // Relative paths resolve against the working directory (the old one's).
  new_one.config()["storage"]["key_file"] = new_one.path("other.key").string();
  new_one.write_config();
  auto copy = run_cli({"store", "copy", "--from", old_one.path("config.json").string(), "--to",
                       new_one.path("config.json").string()},
                      60s, old_one.dir());
  INFO(copy.out << copy.err);
  CHECK(copy.exit_code == 1);
  CHECK(copy.err.find("key files differ") != std::string::npos);
  new_one.start();
  auto subs = admin("GET", new_one.url() + "/v1/subscribers");
  REQUIRE(subs.status == 200);
  CHECK(subs.body.find("\"id\"") == std::string::npos);  // no subscriber came across
}
