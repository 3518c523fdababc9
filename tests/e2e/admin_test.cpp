// The admin API against the real daemon: PATCH, paging with masked data,
// the audit log, and `tocsin subscribers import`.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kOpsToken = "ops-named-token-0123456789";

json config_with_named_token(const Gateways& gw) {
  json c = test_config(gw);
  c["admin"]["tokens"].push_back({{"name", "ops"}, {"token", kOpsToken}});
  return c;
}

HttpResult as_ops(const std::string& method, const std::string& url, const json& body = nullptr) {
  tocsin::http::Headers h = {{"Authorization", std::string("Bearer ") + kOpsToken}};
  if (body.is_null()) return request(method, url, h);
  h.emplace_back("Content-Type", "application/json");
  return request(method, url, h, body.dump());
}

std::string sub_url(const Daemon& d, int64_t id) {
  return d.url() + "/v1/subscribers/" + std::to_string(id);
}

std::vector<json> audit_entries(const Daemon& d) {
  std::vector<json> out;
  std::string after = "0";
  for (;;) {
    auto r = admin("GET", d.url() + "/v1/audit?limit=500&after=" + after);
    REQUIRE(r.status == 200);
    auto j = r.json();
    for (auto& e : j["entries"]) out.push_back(e);
    if (j["next"].is_null()) return out;
    after = j["next"].get<std::string>();
  }
}

}  // namespace

TEST_CASE("PATCH: merge patch of a subscriber, a refused patch changes nothing", "[e2e][admin]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  auto created = admin("POST", d.url() + "/v1/subscribers",
                       {{"name", "Ana"}, {"phone", "(213) 555-0142"}, {"groups", {"eastside"}}});
  REQUIRE(created.status == 201);
  int64_t id = created.json()["id"].get<int64_t>();

  auto patched = admin("PATCH", sub_url(d, id),
                       {{"phone", "213 555 0199"},
                        {"email", "ana@example.org"},
                        {"channels", {"sms", "email"}},
                        {"language", "es"}});
  INFO(patched.body);
  REQUIRE(patched.status == 200);
  CHECK(patched.json()["phone"] == "+12135550199");
  CHECK(patched.json()["name"] == "Ana");  // not in the patch: kept
  auto got = admin("GET", sub_url(d, id)).json();
  CHECK(got["phone"] == "+12135550199");
  CHECK(got["email"] == "ana@example.org");
  CHECK(got["language"] == "es");
  CHECK(got["channels"] == json({"sms", "email"}));

  // null removes a field (RFC 7396): name cleared.
  CHECK(admin("PATCH", sub_url(d, id), {{"name", nullptr}}).json()["name"] == "");

  // Refused patches: 422 naming the field, 404, 400; each stores nothing.
  auto bad_phone = admin("PATCH", sub_url(d, id), {{"phone", "12"}, {"language", "fr"}});
  CHECK(bad_phone.status == 422);
  CHECK(bad_phone.json()["field"] == "phone");
  auto bad_group = admin("PATCH", sub_url(d, id), {{"groups", {"eastside", "nope"}}});
  CHECK(bad_group.status == 422);
  CHECK(bad_group.json()["field"] == "groups[1]");
  auto no_address = admin("PATCH", sub_url(d, id), {{"email", nullptr}});
  CHECK(no_address.status == 422);
  CHECK(no_address.json()["field"] == "channels[1]");
  auto unknown = admin("PATCH", sub_url(d, id), {{"sms_opted_out", false}});
  CHECK(unknown.status == 422);
  CHECK(unknown.json()["field"] == "sms_opted_out");
  CHECK(admin("PATCH", sub_url(d, id + 1000), {{"name", "X"}}).status == 404);
  CHECK(request("PATCH", sub_url(d, id),
                {{"Authorization", std::string("Bearer ") + kAdminToken},
                 {"Content-Type", "application/merge-patch+json"}},
                "{not json")
            .status == 400);
  CHECK(request("PATCH", sub_url(d, id), {}, "{}").status == 401);
  auto after = admin("GET", sub_url(d, id)).json();
  CHECK(after["phone"] == "+12135550199");
  CHECK(after["language"] == "es");
  CHECK(after["groups"] == json({"eastside"}));

  // STOP from the new number opts the subscriber out; the old number is no one's.
  CHECK(inbound_sms(d.url(), gw, "+12135550142", "STOP").status == 200);
  CHECK_FALSE(admin("GET", sub_url(d, id)).json()["sms_opted_out"].get<bool>());
  CHECK(inbound_sms(d.url(), gw, "+12135550199", "STOP").status == 200);
  CHECK(admin("GET", sub_url(d, id)).json()["sms_opted_out"].get<bool>());
  CHECK(d.log().find("555-0199") == std::string::npos);
  CHECK(d.log().find("5550199") == std::string::npos);
}

TEST_CASE("paging through 250 subscribers of a group: masked lists, full data for one",
          "[e2e][admin]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 250; ++i)
    subs.push_back({{"name", "Person " + std::to_string(i) + " Ruiz"},
                    {"phone", phone_for(i)},
                    {"email", "p" + std::to_string(i) + "@example.org"},
                    {"groups", {"eastside"}}});
  for (int i = 0; i < 20; ++i)  // another group's people are not listed
    subs.push_back(
        {{"email", "lawyer" + std::to_string(i) + "@example.org"}, {"groups", {"lawyers"}}});
  auto ids = add_subscribers(d.url(), subs);
  std::map<int64_t, std::string> phone_of;
  for (int i = 0; i < 250; ++i) phone_of[ids[static_cast<std::size_t>(i)]] = phone_for(i);

  const std::string dot = "\u2022";
  std::regex masked_phone("^\\+1 \\d{3} (" + dot + "){3} (" + dot + "){2}\\d\\d$");
  std::vector<int64_t> seen;
  std::vector<std::size_t> page_sizes;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    auto r = admin("GET", d.url() + "/v1/subscribers?group=eastside&limit=100" +
                              (cursor.empty() ? "" : "&after=" + cursor));
    REQUIRE(r.status == 200);
    auto j = r.json();
    page_sizes.push_back(j["subscribers"].size());
    for (auto& s : j["subscribers"]) {
      int64_t id = s["id"].get<int64_t>();
      seen.push_back(id);
      auto phone = s["phone"].get<std::string>();
      INFO(phone);
      CHECK(std::regex_match(phone, masked_phone));
      REQUIRE(phone_of.count(id));
      CHECK(phone.substr(phone.size() - 2) == phone_of[id].substr(phone_of[id].size() - 2));
      CHECK(phone.substr(0, 6) == phone_of[id].substr(0, 2) + " " + phone_of[id].substr(2, 3));
      CHECK(s["email"].get<std::string>().find(
                "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2@example.org") == 1);
      auto name = s["name"].get<std::string>();  // initials only: "P. 7. R."
      CHECK(name.rfind("P. ", 0) == 0);
      CHECK(name.ends_with(". R."));
      CHECK(name.find("Ruiz") == std::string::npos);
      CHECK(s["groups"] == json({"eastside"}));
    }
    if (j["next"].is_null()) break;
    cursor = j["next"].get<std::string>();
  }
  CHECK(page_sizes == std::vector<std::size_t>{100, 100, 50});
  CHECK(seen.size() == 250);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 250);

  // One subscriber asked for by id: the full record.
  auto one = admin("GET", sub_url(d, ids[7])).json();
  CHECK(one["phone"] == phone_for(7));
  CHECK(one["email"] == "p7@example.org");
  CHECK(one["name"] == "Person 7 Ruiz");

  // Without a group: everyone; bad parameters name themselves.
  auto all = admin("GET", d.url() + "/v1/subscribers?limit=500").json();
  CHECK(all["subscribers"].size() == 270);
  CHECK(all["next"].is_null());
  CHECK(admin("GET", d.url() + "/v1/subscribers?limit=501").json()["field"] == "limit");
  CHECK(admin("GET", d.url() + "/v1/subscribers?group=nope").json()["field"] == "group");
  CHECK(admin("GET", d.url() + "/v1/subscribers?grup=eastside").json()["field"] == "grup");
  CHECK(admin("GET", d.url() + "/v1/subscribers?after=x").status == 422);
}

TEST_CASE("audit log: every admin read and write, by token identity, without personal data",
          "[e2e][admin]") {
  Gateways gw;
  Daemon d(config_with_named_token(gw));
  d.start();
  auto created = as_ops("POST", d.url() + "/v1/subscribers",
                        {{"name", "Zelda Quintero"},
                         {"phone", "+12135550142"},
                         {"email", "zelda@example.org"},
                         {"groups", {"eastside"}}});
  REQUIRE(created.status == 201);
  int64_t id = created.json()["id"].get<int64_t>();
  CHECK(admin("GET", sub_url(d, id)).status == 200);
  CHECK(admin("PATCH", sub_url(d, id), {{"phone", "12"}}).status == 422);
  CHECK(as_ops("PATCH", sub_url(d, id), {{"name", "Zelda Q."}}).status == 200);
  CHECK(admin("GET", d.url() + "/v1/subscribers?group=eastside").status == 200);
  // A mistyped path holding a number is recorded without it.
  CHECK(admin("GET", d.url() + "/v1/subscribers/+12135550142").status == 404);
  auto report = post_report(d.url(), report_body().dump());
  REQUIRE(report.status == 202);
  auto code = report.json()["incident_id"].get<std::string>();
  CHECK(admin("GET", d.url() + "/v1/incidents/" + code).status == 200);
  CHECK(admin("GET", d.url() + "/v1/incidents").status == 200);
  CHECK(admin("POST", d.url() + "/v1/incidents/" + code + "/retry").status == 200);
  CHECK(request("GET", sub_url(d, id)).status == 401);  // no token: refused, not an admin action
  CHECK(admin("DELETE", sub_url(d, id)).status == 204);
  d.signal(SIGHUP);
  // Read as another process would: a GET /v1/audit would be audited itself.
  REQUIRE(eventually([&] { return query_db(d, "SELECT count(*) FROM audit WHERE actor = 'signal'")[0] == "1"; }));

  auto entries = audit_entries(d);
  auto r = admin("GET", d.url() + "/v1/audit?limit=2");
  REQUIRE(r.status == 200);
  CHECK(r.json()["entries"].size() == 2);
  CHECK(r.json()["next"] == r.json()["entries"][1]["id"].dump());

  std::vector<std::string> lines;
  std::string plain_actor;
  for (auto& e : entries) {
    lines.push_back(e["actor"].get<std::string>() + " " + e["method"].get<std::string>() + " " +
                    e["route"].get<std::string>() + " " +
                    (e["object_id"].is_null() ? "-" : e["object_id"].get<std::string>()) + " " +
                    std::to_string(e["status"].get<int>()));
    CHECK(!e["at"].get<std::string>().empty());
    if (e["actor"] != "ops" && e["actor"] != "signal") plain_actor = e["actor"].get<std::string>();
  }
  INFO(json(lines).dump(1));
  CHECK(plain_actor.rfind("token:", 0) == 0);
  CHECK(plain_actor.find(kAdminToken) == std::string::npos);
  auto ids = std::to_string(id);
  std::vector<std::string> expected = {
      "ops POST /v1/subscribers " + ids + " 201",
      plain_actor + " GET /v1/subscribers/{id} " + ids + " 200",
      plain_actor + " PATCH /v1/subscribers/{id} " + ids + " 422",
      "ops PATCH /v1/subscribers/{id} " + ids + " 200",
      plain_actor + " GET /v1/subscribers - 200",
      plain_actor + " GET /v1/subscribers/{id} - 404",
      plain_actor + " GET /v1/incidents/{code} " + code + " 200",
      plain_actor + " GET /v1/incidents - 200",
      plain_actor + " POST /v1/incidents/{code}/retry " + code + " 200",
      plain_actor + " DELETE /v1/subscribers/{id} " + ids + " 204",
      "signal RELOAD SIGHUP - 200"};
  REQUIRE(lines.size() >= expected.size());
  CHECK(std::vector<std::string>(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(
                                                                    expected.size())) == expected);
  CHECK(entries[4]["count"] == 1);  // the list's page size
  // Nothing personal anywhere in the log.
  auto text = admin("GET", d.url() + "/v1/audit?limit=500").body;
  for (const char* pii : {"5550142", "555-0142", "zelda", "Zelda", "Quintero"})
    CHECK(text.find(pii) == std::string::npos);
  CHECK(admin("GET", d.url() + "/v1/audit?limit=0").status == 422);
  CHECK(request("GET", d.url() + "/v1/audit").status == 401);
}

TEST_CASE(
    "subscribers import: good rows in, bad rows reported by line, a second run changes nothing",
    "[e2e][admin][cli]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::ofstream(d.path("token")) << kAdminToken << "\n";
  // An existing subscriber the file updates by email.
  auto existing = admin("POST", d.url() + "/v1/subscribers",
                        {{"email", "bo@example.org"}, {"groups", {"lawyers"}}});
  REQUIRE(existing.status == 201);
  {
    std::ofstream csv(d.path("people.csv"), std::ios::binary);
    csv << "\xEF\xBB\xBF"
           "Name,Phone,Email,Language,Groups,Channels\r\n"  // 1
           "\"Ruiz, Ana \"\"La Jefa\"\"\",(213) "
           "555-0142,ana@example.org,es-MX,eastside;drills,sms;email\r\n"  // 2
           "Bo,,bo@example.org,,lawyers;eastside,\r\n"                     // 3
           "Cy,12345,,en,eastside,\r\n"                                    // 4: bad number
           "Di,+1 213 555 0143,,en,nowhere,\r\n"                           // 5: unknown group
           "Ed,+1 213 555 0144,,klingon!,eastside,\r\n"                    // 6: bad language
           "Fay,+1 213 555 0145,,en,eastside,email\r\n"                    // 7: no email address
           "Gus,+1 213 555 0146,,en\r\n"                                   // 8: too few fields
           "\"Hal\nHarper\",+1 213 555 0147,,en,eastside,\r\n";            // 9-10: a line break in a name
  }
  auto run = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "subscribers", "import", "--url", d.url(), "--token-file", d.path("token").string(),
        "--batch",     "3"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(d.path("people.csv").string());
    return run_cli(args, 30s);
  };
  auto first = run();
  INFO(first.out << first.err);
  CHECK(first.exit_code == 1);
  auto file = d.path("people.csv").string();
  CHECK(first.out.find(file + ":4: phone: is not a valid phone number") != std::string::npos);
  CHECK(first.out.find(file + ":5: groups[0]: no group named \"nowhere\"") != std::string::npos);
  CHECK(first.out.find(file + ":6: language: ") != std::string::npos);
  CHECK(first.out.find(file + ":7: channels[0]: email needs an email address") !=
        std::string::npos);
  CHECK(first.out.find(file + ":8: has 4 fields, the header 6") != std::string::npos);
  // The quoted field spans two lines of the file (the row is line 9), and
  // a name may not hold a control character.
  CHECK(first.out.find(file + ":9: name: must not contain control characters") != std::string::npos);
  CHECK(first.out.find(file + ": 1 created, 1 updated, 0 unchanged, 6 refused") !=
        std::string::npos);
  CHECK(first.err.find("7/7 rows") != std::string::npos);  // plain progress lines: not a terminal

  auto list = admin("GET", d.url() + "/v1/subscribers?limit=500").json()["subscribers"];
  CHECK(list.size() == 2);
  auto by_phone = admin("GET", d.url() + "/v1/subscribers/" + list[1]["id"].dump()).json();
  CHECK(by_phone["name"] == "Ruiz, Ana \"La Jefa\"");
  CHECK(by_phone["phone"] == "+12135550142");
  CHECK(by_phone["language"] == "es-MX");
  CHECK(by_phone["groups"] == json({"drills", "eastside"}));
  auto bo = admin("GET", d.url() + "/v1/subscribers/" + existing.json()["id"].dump()).json();
  CHECK(bo["name"] == "Bo");
  CHECK(bo["groups"] == json({"eastside", "lawyers"}));

  auto second = run();
  INFO(second.out << second.err);
  CHECK(second.exit_code == 1);  // the same six rows are still refused
  CHECK(second.out.find(file + ": 0 created, 0 updated, 2 unchanged, 6 refused") !=
        std::string::npos);
  CHECK(admin("GET", d.url() + "/v1/subscribers?limit=500").json()["subscribers"].size() == 2);

  // A dry run of new and changed rows stores nothing; a clean file exits 0.
  {
    std::ofstream csv(d.path("people.csv"));
    csv << "phone,groups\n+1 213 555 0150,eastside\n+1 213 555 0151,eastside\n(213) "
           "555-0142,lawyers\n";
  }
  auto dry = run({"--dry-run"});
  INFO(dry.out << dry.err);
  CHECK(dry.exit_code == 0);
  CHECK(dry.out.find(file + ": 2 created, 1 updated, 0 unchanged, 0 refused (dry run") !=
        std::string::npos);
  CHECK(admin("GET", d.url() + "/v1/subscribers?limit=500").json()["subscribers"].size() == 2);
  CHECK(admin("GET", d.url() + "/v1/subscribers/" + list[1]["id"].dump()).json()["groups"] ==
        json({"drills", "eastside"}));
  auto real = run();
  CHECK(real.exit_code == 0);
  CHECK(admin("GET", d.url() + "/v1/subscribers?limit=500").json()["subscribers"].size() == 4);

  // A bad header is a usage error (exit 2) and sends nothing.
  std::ofstream(d.path("people.csv")) << "phone,grups\n+1 213 555 0160,eastside\n";
  auto bad = run();
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown column \"grups\"") != std::string::npos);
  // The log has ids and counts only.
  CHECK(d.log().find("555-0142") == std::string::npos);
  CHECK(d.log().find("ana@example.org") == std::string::npos);
  // Each batch is one audit entry with its row count.
  bool batch_audited = false;
  for (auto& e : audit_entries(d))
    batch_audited = batch_audited || (e["route"] == "/v1/subscribers/import" && e["count"] == 3);
  CHECK(batch_audited);
}

TEST_CASE("measure: import of 50,000 subscribers", "[.measure]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::ofstream(d.path("token")) << kAdminToken << "\n";
  {
    std::ofstream csv(d.path("big.csv"));
    csv << "name,phone,email,language,groups,channels\n";
    for (int i = 0; i < 50000; ++i) {
      char phone[32];
      std::snprintf(phone, sizeof phone, "+1213%03d%04d", 201 + i / 10000, i % 10000);
      csv << "Person " << i << "," << phone << ",p" << i << "@example.org," << (i % 3 ? "en" : "es")
          << ",eastside;lawyers,sms;email\n";
    }
  }
  auto run = [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto r = run_cli({"subscribers", "import", "--url", d.url(), "--token-file",
                      d.path("token").string(), d.path("big.csv").string()},
                     300s);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(r, s);
  };
  auto [first, t1] = run();
  INFO(first.out << first.err.substr(0, 2000));
  CHECK(first.exit_code == 0);
  CHECK(first.out.find("50000 created, 0 updated, 0 unchanged, 0 refused") != std::string::npos);
  auto [second, t2] = run();
  CHECK(second.out.find("0 created, 0 updated, 50000 unchanged, 0 refused") != std::string::npos);
  std::printf(
      "import of 50,000 rows: %.1f s (%.0f rows/s); second run (all unchanged): %.1f s (%.0f "
      "rows/s)\n",
      t1, 50000 / t1, t2, 50000 / t2);
  CHECK(t1 < 30);
}

TEST_CASE("an admin write commits with its audit entry: both or neither", "[e2e][admin][audit]") {
  Gateways gw;
  Daemon d(config_with_named_token(gw));
  d.start();
  auto created = as_ops("POST", d.url() + "/v1/subscribers",
                        {{"phone", phone_for(41)}, {"groups", {"eastside"}}});
  REQUIRE(created.status == 201);
  const auto id = std::to_string(created.json()["id"].get<int64_t>());
  // In the committed state, the row and its entry are there together.
  CHECK(query_db(d, "SELECT status FROM audit WHERE method = 'POST' AND object_id = '" + id + "'") ==
        std::vector<std::string>{"201"});

  // The audit table refuses entries that claim success (another process
  // added a trigger): the writes they record must not be kept either.
  query_db(d, "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit WHEN NEW.status < 300 "
              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
  auto refused = as_ops("POST", d.url() + "/v1/subscribers",
                        {{"phone", phone_for(42)}, {"groups", {"eastside"}}});
  CHECK(refused.status == 503);
  CHECK(refused.header("retry-after") == "2");
  CHECK(query_db(d, "SELECT count(*) FROM subscribers") == std::vector<std::string>{"1"});
  CHECK(as_ops("DELETE", sub_url(d, std::stoll(id))).status == 503);
  CHECK(as_ops("PATCH", sub_url(d, std::stoll(id)), {{"groups", {"lawyers"}}}).status == 503);
  CHECK(query_db(d, "SELECT group_name FROM subscriber_groups") ==
        std::vector<std::string>{"eastside"});
  // A read whose entry cannot be stored is refused, as before.
  CHECK(as_ops("GET", sub_url(d, std::stoll(id))).status == 503);
  // Each attempt is audited as what it was: refused.
  CHECK(query_db(d, "SELECT method || ' ' || status FROM audit WHERE id > 1 ORDER BY id") ==
        std::vector<std::string>{"POST 503", "DELETE 503", "PATCH 503", "GET 503"});

  query_db(d, "DROP TRIGGER refuse_audit");
  CHECK(as_ops("DELETE", sub_url(d, std::stoll(id))).status == 204);
  CHECK(query_db(d, "SELECT count(*) FROM subscribers") == std::vector<std::string>{"0"});
  CHECK(query_db(d, "SELECT method || ' ' || status FROM audit ORDER BY id DESC LIMIT 1") ==
        std::vector<std::string>{"DELETE 204"});
}

TEST_CASE("kill -9 during admin writes: every subscriber kept has its audit entry",
          "[e2e][admin][audit][crash]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < 2500 && !stop; ++i)
        admin("POST", d.url() + "/v1/subscribers",
              {{"phone", phone_for(t * 2500 + i)}, {"groups", {"eastside"}}});
    });
  std::mt19937 rng(std::random_device{}());
  // The crash comes at a random moment of the writes: the test's input, not a wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(
      std::uniform_int_distribution<int>(400, 900)(rng)));
  d.kill9();
  stop = true;
  for (auto& w : writers) w.join();
  auto kept = query_db(d, "SELECT count(*) FROM subscribers");
  INFO("subscribers kept: " << kept.at(0));
  CHECK(std::stoi(kept.at(0)) > 10);
  CHECK(query_db(d, "SELECT count(*) FROM subscribers s WHERE NOT EXISTS (SELECT 1 FROM audit a "
                    "WHERE a.method = 'POST' AND a.status = 201 AND "
                    "a.object_id = CAST(s.id AS TEXT))") == std::vector<std::string>{"0"});
}
