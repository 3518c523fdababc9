// The pure parts of the admin API: CSV, masking, admin token identities,
// subscriber patches, and bulk import against a real SQLite store in memory.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "app/config.h"
#include "app/subscriber_import.h"
#include "app/subscriber_input.h"
#include "core/csv.h"
#include "core/masking.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/keys.h"

using namespace tocsin;
using namespace tocsin::app;
using nlohmann::json;

namespace {

const char* kConfig = R"({
  "coordinators": [{"name": "c1", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]}],
  "admin": {"tokens": ["plain-token-0123456789", {"name": "ops", "token": "named-token-0123456789"}]},
  "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"},
               {"name": "m", "type": "file", "channel": "email", "path": "/dev/null"}],
  "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms", "email"]},
             {"name": "all", "match": {"areas": ["la"]}, "channels": ["sms"]}]
})";

// kConfig with the test process's key file.
std::string config_text() {
  auto j = json::parse(kConfig);
  j["storage"] = {{"key_file", tocsin::test::shared_key_file()}};
  return j.dump();
}

Config config() {
  auto r = parse_config(config_text(), "");
  REQUIRE(r.ok());
  return r.config;
}

ImportBatch batch(std::vector<json> rows, bool dry_run = false) {
  ImportBatch b;
  b.dry_run = dry_run;
  int64_t line = 2;
  for (auto& r : rows) b.rows.push_back({line++, std::move(r)});
  return b;
}

}  // namespace

TEST_CASE("csv: quotes, commas, doubled quotes, BOM, CRLF and line numbers", "[unit][admin]") {
  auto r = parse_csv(
      "\xEF\xBB\xBFname,phone\r\n\"Ruiz, Ana\",\"+1 213\"\"x\"\r\n\r\n"
      "\"two\nlines\",b\nlast,\"\"");
  REQUIRE_FALSE(r.error);
  REQUIRE(r.records.size() == 4);
  CHECK(r.records[0].fields == std::vector<std::string>{"name", "phone"});
  CHECK(r.records[1].fields == std::vector<std::string>{"Ruiz, Ana", "+1 213\"x"});
  CHECK(r.records[1].line == 2);
  CHECK(r.records[2].fields == std::vector<std::string>{"two\nlines", "b"});
  CHECK(r.records[2].line == 4);  // the blank line 3 is skipped
  CHECK(r.records[3].line == 6);
  CHECK(r.records[3].fields == std::vector<std::string>{"last", ""});

  auto open = parse_csv("a,b\n\"never closed,x\n");
  REQUIRE(open.error);
  CHECK(open.error->line == 2);
  auto stray = parse_csv("a,b\nx\"y,z\n");
  REQUIRE(stray.error);
  CHECK(stray.error->line == 2);
}

TEST_CASE("masking keeps the country code, first group and last two digits", "[unit][admin]") {
  CHECK(mask_phone("+12135550100") == "+1 213 \u2022\u2022\u2022 \u2022\u202200");
  CHECK(mask_phone("+442079460958") == "+44 20 \u2022\u2022\u2022\u2022 \u2022\u202258");
  CHECK(mask_phone("") == "");
  CHECK(mask_email("ana@example.org") == "a\u2022\u2022\u2022@example.org");
  CHECK(mask_email("\u00e9lise@example.org") == "\u00e9\u2022\u2022\u2022@example.org");
  CHECK(mask_name("Ana  Mar\u00eda Ruiz") == "A. M. R.");
  CHECK(mask_name("\u00c1lvaro") == "\u00c1.");
  CHECK(mask_name("") == "");
}

TEST_CASE("admin tokens: plain strings get a hash identity, objects their name", "[unit][admin]") {
  auto c = config();
  REQUIRE(c.admin_tokens.size() == 2);
  CHECK(c.admin_tokens[0].token == "plain-token-0123456789");
  CHECK(c.admin_tokens[0].name.rfind("token:", 0) == 0);
  CHECK(c.admin_tokens[0].name.size() == 14);
  CHECK(c.admin_tokens[0].name.find("plain") == std::string::npos);
  CHECK(c.admin_tokens[1].name == "ops");
  // Stable across loads (the audit log compares them over time).
  CHECK(config().admin_tokens[0].name == c.admin_tokens[0].name);

  std::string bad = config_text();
  std::string named = R"({"name":"ops","token":"named-token-0123456789"})";
  bad.replace(bad.find(named), named.size(), R"({"name": "ops", "tokn": "short"})");
  auto r = parse_config(bad, "");
  std::vector<std::string> paths;
  for (const auto& p : r.problems) paths.push_back(p.path);
  CHECK(std::find(paths.begin(), paths.end(), "admin.tokens[1].tokn") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "admin.tokens[1].token") != paths.end());
}

TEST_CASE("patch: merge semantics, validation naming the field", "[unit][admin]") {
  auto c = config();
  store::Subscriber s;
  s.id = 7;
  s.name = "Ana";
  s.phone = "+12135550142";
  s.language = "es";
  s.groups = {"east"};
  s.channels = {Channel::kSms};
  s.sms_opted_out = true;

  auto p =
      patch_subscriber(s, json{{"email", "ana@example.org"}, {"channels", {"sms", "email"}}}, c);
  REQUIRE(std::holds_alternative<store::Subscriber>(p));
  auto& merged = std::get<store::Subscriber>(p);
  CHECK(merged.id == 7);
  CHECK(merged.name == "Ana");
  CHECK(merged.email == "ana@example.org");
  CHECK(merged.sms_opted_out);  // an opt-out is the person's, not the admin's
  CHECK_FALSE(same_data(merged, s));

  auto renumbered = patch_subscriber(s, json{{"phone", "(213) 555-0199"}}, c);
  REQUIRE(std::holds_alternative<store::Subscriber>(renumbered));
  CHECK(std::get<store::Subscriber>(renumbered).phone == "+12135550199");

  auto problems = [&](const json& patch) {
    auto r = patch_subscriber(s, patch, c);
    REQUIRE(std::holds_alternative<std::vector<FieldProblem>>(r));
    return std::get<std::vector<FieldProblem>>(r).front().path;
  };
  CHECK(problems(json{{"phone", "12"}}) == "phone");
  CHECK(problems(json{{"groups", {"nope"}}}) == "groups[0]");
  CHECK(problems(json{{"language", "???"}}) == "language");
  CHECK(problems(json{{"phone", nullptr}}) == "channels[0]");          // sms needs a phone number
  CHECK(problems(json{{"sms_opted_out", false}}) == "sms_opted_out");  // unknown field
}

TEST_CASE("import: creates, updates by phone or email, unchanged, refuses with reasons",
          "[unit][admin]") {
  auto c = config();
  auto store = store::open_sqlite_store(":memory:", store::Keyring::generate());
  auto first =
      batch({json{{"name", "Ana"}, {"phone", "213-555-0142"}, {"groups", {"east"}}},
             json{{"email", "bo@example.org"}, {"groups", {"all"}}, {"channels", {"email"}}},
             json{{"phone", "12"}, {"groups", {"east"}}},
             json{{"phone", "+1 213 555 0142"}, {"groups", {"east"}}},
             json{{"email", "cy@example.org"}, {"groups", {"nope"}}}});
  auto r = import_rows(*store, c, first, 1000);
  CHECK(r.created == 2);
  CHECK(r.refused == 3);
  REQUIRE(r.rows.size() == 5);
  CHECK(r.rows[0].outcome == "created");
  CHECK(r.rows[2].problems.front().path == "phone");
  CHECK(r.rows[3].problems.front().message == "same number as line 2");
  CHECK(r.rows[4].problems.front().path == "groups[0]");
  const int64_t ana = r.rows[0].id;

  // The same rows again change nothing.
  auto again = import_rows(*store, c, first, 2000);
  CHECK(again.created == 0);
  CHECK(again.unchanged == 2);
  CHECK(again.refused == 3);

  // Matched by phone: the row's fields win, the ones it leaves out stay.
  auto upd = import_rows(
      *store, c,
      batch({json{
          {"phone", "+12135550142"}, {"email", "ana@example.org"}, {"groups", {"east", "all"}}}}),
      3000);
  CHECK(upd.updated == 1);
  CHECK(upd.rows[0].id == ana);
  auto stored = store->subscriber(ana);
  REQUIRE(stored);
  CHECK(stored->name == "Ana");
  CHECK(stored->email == "ana@example.org");
  CHECK(stored->groups == std::vector<std::string>{"all", "east"});
  CHECK(stored->channels == std::vector<Channel>{Channel::kSms, Channel::kEmail});

  // Phone of one subscriber, email of another: refused, nothing merged.
  auto conflict = import_rows(
      *store, c,
      batch({json{{"phone", "+12135550142"}, {"email", "bo@example.org"}, {"groups", {"all"}}}}),
      4000);
  CHECK(conflict.refused == 1);
  CHECK(conflict.rows[0].problems.front().message.find("matches several subscribers") == 0);

  // A dry run classifies and stores nothing.
  auto dry = import_rows(*store, c,
                         batch({json{{"phone", "+12135550177"}, {"groups", {"east"}}},
                                json{{"phone", "+12135550142"}, {"groups", {"east"}}}},
                               /*dry_run=*/true),
                         5000);
  CHECK(dry.created == 1);
  CHECK(dry.updated == 1);
  CHECK(store->subscribers_by_phone("+12135550177").empty());
  CHECK(store->subscriber(ana)->groups == std::vector<std::string>{"all", "east"});
}

TEST_CASE("parse_import refuses malformed batches", "[unit][admin]") {
  CHECK(std::holds_alternative<MalformedBody>(parse_import("[1]")));
  auto no_rows = parse_import(R"({"dry_run": true})");
  REQUIRE(std::holds_alternative<std::vector<FieldProblem>>(no_rows));
  CHECK(std::get<std::vector<FieldProblem>>(no_rows).front().path == "rows");
  auto bad_line = parse_import(R"({"rows": [{"line": -1, "phone": "x"}]})");
  REQUIRE(std::holds_alternative<std::vector<FieldProblem>>(bad_line));
  CHECK(std::get<std::vector<FieldProblem>>(bad_line).front().path == "rows[0].line");
  auto ok = parse_import(R"({"rows": [{"line": 9, "phone": "x"}], "dry_run": true})");
  REQUIRE(std::holds_alternative<ImportBatch>(ok));
  CHECK(std::get<ImportBatch>(ok).rows[0].line == 9);
  CHECK_FALSE(std::get<ImportBatch>(ok).rows[0].data.contains("line"));
}

TEST_CASE("subscribers: signal and voice channels need a phone, and are never implied",
          "[unit][admin][reach]") {
  auto c = config();
  auto ok = parse_subscriber(
      R"({"phone": "213-555-0142", "groups": ["east"], "channels": ["signal", "voice", "sms"]})", c);
  REQUIRE(std::holds_alternative<store::Subscriber>(ok));
  CHECK(std::get<store::Subscriber>(ok).channels ==
        std::vector<Channel>{Channel::kSignal, Channel::kVoice, Channel::kSms});
  auto bad = parse_subscriber(
      R"({"email": "a@example.org", "groups": ["east"], "channels": ["email", "signal"]})", c);
  REQUIRE(std::holds_alternative<std::vector<FieldProblem>>(bad));
  CHECK(std::get<std::vector<FieldProblem>>(bad).front().path == "channels[1]");
  CHECK(std::get<std::vector<FieldProblem>>(bad).front().message == "signal needs a phone number");
  auto implied = parse_subscriber(R"({"phone": "213-555-0142", "groups": ["east"]})", c);
  CHECK(std::get<store::Subscriber>(implied).channels == std::vector<Channel>{Channel::kSms});
}

TEST_CASE("csv import rows: header in any order, semicolon lists, short lines and bad headers refused",
          "[unit][admin]") {
  auto ok = rows_from_csv("Groups,PHONE,name\r\n\"a; b\",+12135550001,Ann\n+12135550002,Ben\nb,,\n");
  REQUIRE(ok.error.empty());
  REQUIRE(ok.rows.size() == 2);
  CHECK(ok.rows[0].line == 2);
  CHECK(ok.rows[0].data == json{{"groups", {"a", "b"}}, {"phone", "+12135550001"}, {"name", "Ann"}});
  CHECK(ok.rows[1].line == 4);
  CHECK(ok.rows[1].data == json{{"groups", {"b"}}});  // empty cells are left out
  REQUIRE(ok.refused.size() == 1);
  CHECK(ok.refused[0].line == 3);
  CHECK(ok.refused[0].outcome == "refused");
  CHECK(ok.refused[0].problems.at(0).message == "has 2 fields, the header 3");

  auto typo = rows_from_csv("name,phone,grups\nAnn,+12135550001,a\n");
  CHECK(typo.error_line == 1);
  CHECK(typo.error.find("unknown column \"grups\"") != std::string::npos);
  CHECK(typo.rows.empty());
  CHECK(rows_from_csv("name,phone\nAnn,+1\n").error.find("groups column") != std::string::npos);
  CHECK(rows_from_csv("").error == "no header row");
  CHECK(rows_from_csv("groups,phone\n\"a,1\n").error_line == 2);  // unterminated quote
}
