// Subscribers' data at rest, end to end: what the database file and its WAL
// hold while the daemon runs, key rotation under a running daemon, erasure,
// and retention.
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The database and its WAL, byte for byte, as a copy of them would be.
std::string raw_db(const Daemon& d) {
  auto db = d.path("var/tocsin.db");
  return slurp(db) + slurp(db.string() + "-wal");
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Waits until the log holds `needle` `times` times.
bool wait_log(const Daemon& d, const std::string& needle, std::size_t times = 1,
              std::chrono::milliseconds timeout = 15s) {
  return eventually([&] { return occurrences(d.log(), needle) >= times; }, timeout);
}

json person(int i) {
  return {{"name", "Xiomara Testperson" + std::to_string(i)},
          {"phone", phone_for(i)},
          {"email", "xiomara" + std::to_string(i) + "@example.net"},
          {"language", i % 2 ? "es" : "en"},
          {"groups", {"eastside"}}};
}

// Every form a person's data could be grepped for.
std::vector<std::string> needles(const json& p) {
  std::string phone = p["phone"], digits;
  for (char c : phone)
    if (c >= '0' && c <= '9') digits += c;
  return {phone, digits, digits.substr(1), p["email"], p["name"]};
}

}  // namespace

TEST_CASE("privacy: keys rotate under a running daemon, everyone stays reachable",
          "[e2e][privacy]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  constexpr int kPeople = 450;  // more than one re-encryption batch
  std::vector<json> people;
  for (int i = 0; i < kPeople; ++i) people.push_back(person(i));
  auto ids = add_subscribers(d.url(), people);

  // A copy of the database and its WAL reveals nobody.
  auto raw = raw_db(d);
  REQUIRE(raw.find("SQLite format 3") != std::string::npos);
  for (const auto& p : people)
    for (const auto& n : needles(p)) {
      INFO(n);
      CHECK(raw.find(n) == std::string::npos);
    }

  // Rotate the file the daemon reads, then reload: it re-encrypts in the background.
  auto rotate = run_cli({"keys", "rotate", "tocsin.key"}, 10s, d.dir());
  INFO(rotate.out << rotate.err);
  REQUIRE(rotate.exit_code == 0);
  CHECK(rotate.out.find("key 2 added") != std::string::npos);
  d.signal(SIGHUP);
  REQUIRE(wait_log(d, "re-encrypted 450 subscribers under the active key"));
  CHECK(query_db(d, "SELECT DISTINCT key_id FROM subscribers") == std::vector<std::string>{"2"});

  // --config beside a running daemon: adds key 3 and leaves re-encryption to it.
  auto again = run_cli({"keys", "rotate", "--config", "config.json"}, 10s, d.dir());
  INFO(again.out << again.err);
  REQUIRE(again.exit_code == 0);
  CHECK(again.out.find("key 3 added") != std::string::npos);
  CHECK(again.out.find("a daemon is running") != std::string::npos);
  d.signal(SIGHUP);
  REQUIRE(wait_log(d, "re-encrypted 450 subscribers under the active key", 2));
  CHECK(query_db(d, "SELECT DISTINCT key_id FROM subscribers") == std::vector<std::string>{"3"});

  // A report still reaches every number and address.
  REQUIRE(post_report(d.url(), report_body().dump()).status == 202);
  CHECK(gw.twilio.wait_for(kPeople, 30s));
  CHECK(gw.sendgrid.wait_for(kPeople, 30s));
  CHECK(count_by_recipient(gw.twilio.messages()).size() == kPeople);
  CHECK(count_by_recipient(gw.sendgrid.messages()).size() == kPeople);

  // A STOP by phone still finds its subscriber (the lookup hash is unchanged).
  auto stop = inbound_sms(d.url(), gw, phone_for(7), "STOP");
  CHECK(stop.status == 200);
  auto sub = admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[7]));
  REQUIRE(sub.status == 200);
  CHECK(sub.json()["sms_opted_out"] == true);
  CHECK(sub.json()["phone"] == phone_for(7));

  // A restart reads the rotated key file and checks it against the rows.
  d.terminate();
  REQUIRE(d.wait_exit(20s));
  d.start();
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + std::to_string(ids[9])).json()["email"] ==
        people[9]["email"]);
  CHECK(d.log().find(phone_for(7)) == std::string::npos);
}

TEST_CASE("privacy: a key file that does not fit the database stops the start", "[e2e][privacy]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {person(1)});
  d.terminate();
  REQUIRE(d.wait_exit(20s));
  std::filesystem::remove(d.path("tocsin.key"));
  REQUIRE(run_cli({"keys", "generate", "tocsin.key"}, 10s, d.dir()).exit_code == 0);
  CHECK_THROWS_AS(d.start(5s), DaemonError);
  CHECK(d.log().find("hash-key is not the one this database was written with") != std::string::npos);
}

TEST_CASE("privacy: DELETE leaves neither hash nor ciphertext in the database or WAL",
          "[e2e][privacy]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  auto ids = add_subscribers(d.url(), {person(1), person(2)});
  REQUIRE(post_report(d.url(), report_body().dump()).status == 202);
  REQUIRE(gw.twilio.wait_for(2, 10s));
  REQUIRE(gw.sendgrid.wait_for(2, 10s));

  auto gone = std::to_string(ids[0]), kept = std::to_string(ids[1]);
  std::vector<std::string> traces;
  for (const char* col : {"phone_hash", "email_hash", "phone", "email", "name"}) {
    auto v = query_db(d, std::string("SELECT ") + col + " FROM subscribers WHERE id = " + gone);
    REQUIRE(v.size() == 1);
    REQUIRE(v[0].size() >= 16);
    traces.push_back(v[0]);
  }
  auto kept_phone = query_db(d, "SELECT phone FROM subscribers WHERE id = " + kept).at(0);
  auto before = raw_db(d);
  for (const auto& t : traces) REQUIRE(before.find(t) != std::string::npos);

  REQUIRE(admin("DELETE", d.url() + "/v1/subscribers/" + gone).status == 204);
  auto after = raw_db(d);
  for (std::size_t i = 0; i < traces.size(); ++i) {
    INFO("trace " << i);
    CHECK(after.find(traces[i]) == std::string::npos);
  }
  CHECK(after.find(kept_phone) != std::string::npos);
  // Deliveries no longer name the erased id; their counts stay.
  CHECK(query_db(d, "SELECT count(*) FROM deliveries WHERE subscriber_id = " + gone).at(0) == "0");
  CHECK(query_db(d, "SELECT count(*) FROM deliveries").at(0) == "4");
}

TEST_CASE("privacy: retention purges texts and bodies, the incident keeps its counts",
          "[e2e][privacy]") {
  Gateways gw;
  auto cfg = test_config(gw);
  cfg["retention"] = {{"deliveries_days", 2.0 / 86400}};  // two seconds
  Daemon d(cfg);
  d.start();
  add_subscribers(d.url(), {person(1), person(2), person(3)});
  auto body = report_body({{"headline", {{"en", "Zyxwvheadline at the corner"}}}}).dump();
  auto r = post_report(d.url(), body);
  REQUIRE(r.status == 202);
  std::string incident = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(3, 10s));
  REQUIRE(gw.sendgrid.wait_for(3, 10s));
  auto detail = [&] {
    auto got = admin("GET", d.url() + "/v1/incidents/" + incident);
    REQUIRE(got.status == 200);
    return got.json();
  };
  // Deliveries are recorded just after the gateways answer.
  json first;
  eventually([&] {
    first = detail();
    return first["deliveries"].dump().find("pending") == std::string::npos;
  });
  REQUIRE(first["deliveries"]["sms"]["sent"] == 3);
  REQUIRE(raw_db(d).find("Zyxwvheadline") != std::string::npos);

  eventually([&] { return raw_db(d).find("Zyxwvheadline") == std::string::npos; }, 20s);
  CHECK(raw_db(d).find("Zyxwvheadline") == std::string::npos);
  CHECK(query_db(d, "SELECT count(*) FROM deliveries").at(0) == "0");
  CHECK(query_db(d, "SELECT count(*) FROM messages").at(0) == "0");
  auto later = detail();
  CHECK(later["deliveries"] == first["deliveries"]);
  CHECK(later["deliveries_by_gateway"] == first["deliveries_by_gateway"]);
  CHECK(later["reports"].size() == 1);
  CHECK(wait_log(d, "retention: 6 deliveries older than"));
}
