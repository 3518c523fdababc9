// The console's parts below the browser: TOTP (RFC 6238 test vectors), base32,
// HTML escaping, passphrase hashing, the console config section, and the
// store's console tables (one use per TOTP step, migration 1 -> 2).
#include <catch2/catch.hpp>

#include <sqlite3.h>

#include "app/config.h"
#include "app/console_crypto.h"
#include "core/html.h"
#include "core/totp.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/daemon.h"
#include "support/keys.h"

using namespace tocsin;

TEST_CASE("TOTP matches the RFC 6238 SHA-1 test vectors", "[console][totp]") {
  const std::string key = "12345678901234567890";  // RFC 6238 Appendix B
  CHECK(totp_code(key, 59 / 30, 8) == "94287082");
  CHECK(totp_code(key, 1111111109 / 30, 8) == "07081804");
  CHECK(totp_code(key, 1111111111 / 30, 8) == "14050471");
  CHECK(totp_code(key, 1234567890 / 30, 8) == "89005924");
  CHECK(totp_code(key, 2000000000 / 30, 8) == "69279037");
  CHECK(totp_code(key, 20000000000 / 30, 8) == "65353130");
  // 6 digits are the last six of the same value.
  CHECK(totp_code(key, 1111111109 / 30) == "081804");
}

TEST_CASE("a TOTP code is accepted one step either side, not two", "[console][totp]") {
  const std::string key = "12345678901234567890";
  const int64_t t = 1111111109;
  std::string code = totp_code(key, t / 30);
  CHECK(totp_match(key, code, t) == t / 30);
  CHECK(totp_match(key, code, t + 30) == t / 30);
  CHECK(totp_match(key, code, t - 30) == t / 30);
  CHECK_FALSE(totp_match(key, code, t + 60));
  CHECK_FALSE(totp_match(key, code, t - 60));
  CHECK_FALSE(totp_match(key, "000000x", t));
}

TEST_CASE("base32 round-trips and reads the RFC 4648 vectors", "[console][totp]") {
  CHECK(base32_encode("foobar") == "MZXW6YTBOI");
  CHECK(base32_encode("f") == "MY");
  CHECK(base32_decode("MZXW6YTBOI======") == std::string("foobar"));
  CHECK(base32_decode("mzxw 6ytb oi") == std::string("foobar"));
  CHECK_FALSE(base32_decode("MZ1W"));
  std::string raw = app::random_bytes(20);
  CHECK(base32_decode(base32_encode(raw)) == raw);
  CHECK(base32_encode(raw).size() == 32);
}

TEST_CASE("the otpauth URI names issuer and account, escaped", "[console][totp]") {
  CHECK(totp_uri("tocsin", "ana maria", "ABC") ==
        "otpauth://totp/"
        "tocsin:ana%20maria?secret=ABC&issuer=tocsin&algorithm=SHA1&digits=6&period=30");
}

TEST_CASE("html_escape keeps markup and attribute breaks as text", "[console]") {
  CHECK(html_escape("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;");
  CHECK(html_escape("\"><img src=x onerror=alert(1)>") ==
        "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
  CHECK(html_escape("a'b&c") == "a&#39;b&amp;c");
  CHECK(html_escape("Vehículos") == "Vehículos");
}

TEST_CASE("passphrases are stored as argon2id and verified", "[console]") {
  std::string h = app::hash_passphrase("correct horse battery");
  REQUIRE(h.starts_with("$argon2id$"));
  CHECK(app::verify_passphrase(h, "correct horse battery"));
  CHECK_FALSE(app::verify_passphrase(h, "correct horse batterx"));
  CHECK_FALSE(app::verify_passphrase("", "anything"));
  CHECK(app::token_hash("abc") != app::token_hash("abd"));
  CHECK(app::random_token().size() == 64);
}

namespace {
std::string config_with(const std::string& console, const std::string& approval = "") {
  return R"({
  "server": {"listen": "127.0.0.1:0", "public_url": "https://alerts.example.org"},
  "storage": {"sqlite": {"path": "var/t.db"}, "key_file": ")" +
         test::shared_key_file() + R"("},
  "coordinators": [{"name": "la", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"])" +
         approval + R"(}],
  "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "var/out.jsonl"}],
  "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms"]}],
  "console": )" +
         console + "}";
}
}  // namespace

TEST_CASE("check-config validates the console section and approval", "[console][config]") {
  auto ok = app::parse_config(
      config_with(R"({"enabled": true, "idle_timeout_s": 600, "events": ["raid", "checkpoint"],
                      "languages": ["en", "es"], "draft_flag_after_s": 120})",
                  R"(, "approval": "two_person")"),
      "");
  INFO((ok.problems.empty() ? "" : ok.problems.front().path + ": " + ok.problems.front().message));
  REQUIRE(ok.ok());
  CHECK(ok.config.console.enabled);
  CHECK(ok.config.console.idle_timeout_s == 600);
  CHECK(ok.config.console.events == std::vector<std::string>{"raid", "checkpoint"});
  CHECK(ok.config.coordinators[0].two_person);

  auto bad = app::parse_config(
      config_with(R"({"enabled": true, "idle_timeout_s": 90000, "absolute_timeout_s": 3600,
                      "events": ["Bad Event"], "languages": ["not a tag"], "colour": 1})",
                  R"(, "approval": "maybe")"),
      "");
  std::vector<std::string> paths;
  for (const auto& p : bad.problems) paths.push_back(p.path);
  CHECK_THAT(paths, Catch::Matchers::VectorContains(std::string("console.idle_timeout_s")));
  CHECK_THAT(paths, Catch::Matchers::VectorContains(std::string("console.events[0]")));
  CHECK_THAT(paths, Catch::Matchers::VectorContains(std::string("console.languages[0]")));
  CHECK_THAT(paths, Catch::Matchers::VectorContains(std::string("console.colour")));
  CHECK_THAT(paths, Catch::Matchers::VectorContains(std::string("coordinators[0].approval")));
}

TEST_CASE("a schema 3 database is migrated to schema 4 with the console's tables", "[console][store]") {
  test::TempDir dir("tocsin-migrate");
  std::string path = (dir.path() / "t.db").string();
  auto keyring = store::Keyring::generate();
  store::open_sqlite_store(path, keyring).reset();
  {  // make it look like a database written by schema 3
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "DROP TABLE console_users; DROP TABLE sessions; DROP TABLE login_throttle; "
                         "DROP TABLE drafts; ALTER TABLE reports DROP COLUMN person; "
                         "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = store::open_sqlite_store(path, keyring);
  store::ConsoleUser u;
  u.name = "ben";
  u.role = "verifier";
  CHECK(s->insert_console_user(u) > 0);
  s.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &q, nullptr);
  REQUIRE(sqlite3_step(q) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))) == "5");
  sqlite3_finalize(q);
  sqlite3_close(db);
}
