// storage.postgresql in the config: exactly one of sqlite and postgresql, a
// URL libpq parses (its problem never quotes it: it may hold a password),
// a readable password file, and the options the store is opened with.
#include <catch2/catch.hpp>

#include <fstream>

#include "app/config.h"
#include "app/storage.h"
#include "support/daemon.h"
#include "support/keys.h"

using namespace tocsin::app;

namespace {

// config/example.json with `storage` as given (plus the shared key file).
ConfigResult with_storage(const std::string& storage) {
  std::ifstream in(std::string(TOCSIN_SOURCE_DIR) + "/config/example.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto start = text.find("\"storage\":");
  auto end = text.find("\n", start);
  std::string block = storage;
  block.insert(block.size() - 1, std::string(block.size() > 2 ? ", " : "") + R"("key_file": ")" +
                                     tocsin::test::shared_key_file() + "\"");
  return parse_config(text.substr(0, start) + "\"storage\": " + block + "," + text.substr(end),
                      TOCSIN_SOURCE_DIR);
}

std::string problems(const ConfigResult& r) {
  std::string out;
  for (const auto& p : r.problems) out += p.path + ": " + p.message + "\n";
  return out;
}

}  // namespace

TEST_CASE("storage.postgresql: url and password_file, exactly one store", "[config][postgresql-config]") {
  auto sqlite = with_storage(R"({"sqlite": {"path": "var/x.db"}})");
  INFO(problems(sqlite));
  REQUIRE(sqlite.ok());
  CHECK(sqlite.config.storage.postgresql_url.empty());
  CHECK(store_options(sqlite.config.storage).postgresql_url.empty());
  CHECK(store_options(sqlite.config.storage).sqlite_path == "var/x.db");

  tocsin::test::TempDir dir;
  auto pw = dir.path() / "pg.password";
  std::ofstream(pw) << "secret\n";
  auto pg = with_storage(R"({"postgresql": {"url": "postgresql://tocsin:hunter2@db.internal/tocsin", "password_file": ")" +
                         pw.string() + "\"}}");
  INFO(problems(pg));
  REQUIRE(pg.ok());
  auto o = store_options(pg.config.storage);
  CHECK(o.postgresql_url == "postgresql://tocsin:hunter2@db.internal/tocsin");
  CHECK(o.postgresql_password_file == pw.string());
  CHECK(o.keyring);
  CHECK(store_name(pg.config.storage) == "PostgreSQL");  // never the URL
  CHECK_FALSE(store_options(pg.config.storage, tocsin::store::StoreOptions::Access::kReadOnly).keyring);

  auto both = with_storage(R"({"sqlite": {"path": "x.db"}, "postgresql": {"url": "dbname=tocsin"}})");
  CHECK(problems(both) == "storage.postgresql: give exactly one of storage.sqlite and storage.postgresql\n");

  auto bad = with_storage(R"({"postgresql": {"url": "host=db password=hunter2 nonsense"}})");
  CHECK(problems(bad) == "storage.postgresql.url: is not a libpq connection string or postgresql:// URI\n");
  CHECK(problems(bad).find("hunter2") == std::string::npos);

  auto no_url = with_storage(R"({"postgresql": {}})");
  CHECK(problems(no_url).find("storage.postgresql.url") != std::string::npos);
  auto unknown = with_storage(R"({"postgresql": {"url": "dbname=tocsin", "pasword_file": "x"}})");
  CHECK(problems(unknown).find("storage.postgresql.pasword_file") != std::string::npos);
  auto unreadable = with_storage(R"({"postgresql": {"url": "dbname=tocsin", "password_file": "/nonexistent/pw"}})");
  CHECK(problems(unreadable) == "storage.postgresql.password_file: cannot read /nonexistent/pw\n");
}
