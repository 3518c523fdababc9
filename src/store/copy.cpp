// `tocsin store copy` underneath (see copy.h): a generic row copy from the
// SQLite schema to the PostgreSQL one, which have the same tables and
// columns (PostgreSQL's extra ones, such as lease_owner and the
// instances table, take their defaults).
#include "store/copy.h"

#include <sqlite3.h>

#include <memory>
#include <set>

#include "store/postgresql/connection.h"
#include "store/postgresql/pg_store.h"

namespace tocsin::store {
namespace {

using SqlitePtr = std::unique_ptr<sqlite3, int (*)(sqlite3*)>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

StmtPtr prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
    throw StoreError(std::string("copy: ") + sqlite3_errmsg(db));
  return StmtPtr(s, &sqlite3_finalize);
}

bool step(sqlite3* db, sqlite3_stmt* s) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw StoreError(std::string("copy: ") + sqlite3_errmsg(db));
}

std::string text(sqlite3_stmt* s, int col) {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, col))) : std::string();
}

// A table or column name, as an SQL identifier (the names come from the
// destination's own catalogue, never from input).
std::string ident(const std::string& name) {
  std::string out(1, '"');
  out.append(name).push_back('"');
  return out;
}

// The tables the copy carries and their order: subscribers first (others
// refer to them); meta is each store's own (schema version, key check).
std::vector<std::string> tables(postgresql::Connection& pg) {
  auto r = pg.q("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() AND table_type = 'BASE TABLE' AND table_name NOT IN "
                "('meta', 'instances') ORDER BY table_name <> 'subscribers', table_name")
               .rows();
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

std::vector<std::string> sqlite_columns(sqlite3* db, const std::string& table) {
  auto s = prepare(db, "SELECT name FROM pragma_table_info(?)");
  sqlite3_bind_text(s.get(), 1, table.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> out;
  while (step(db, s.get())) out.push_back(text(s.get(), 0));
  return out;
}

std::set<std::string> pg_columns(postgresql::Connection& pg, const std::string& table) {
  auto r = pg.q("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = $1")
               .bind(table)
               .rows();
  std::set<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.insert(r.text(i, 0));
  return out;
}

int64_t copy_table(sqlite3* db, postgresql::Connection& pg, const std::string& table) {
  auto in_pg = pg_columns(pg, table);
  std::vector<std::string> cols;
  for (const auto& c : sqlite_columns(db, table))
    if (in_pg.count(c)) cols.push_back(c);
  if (cols.empty()) return 0;  // a table SQLite does not have
  std::string select("SELECT "), insert("INSERT INTO "), values;
  insert.append(ident(table)).append(" (");
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const char* sep = i ? ", " : "";
    select.append(sep).append(ident(cols[i]));
    insert.append(sep).append(ident(cols[i]));
    values.append(sep).append("$").append(std::to_string(i + 1));
  }
  select.append(" FROM ").append(ident(table));
  insert.append(") VALUES (").append(values).append(")");
  auto s = prepare(db, select);
  const bool deliveries = table == "deliveries";
  int64_t n = 0;
  while (step(db, s.get())) {
    auto q = pg.q(insert.c_str());
    for (int i = 0; i < static_cast<int>(cols.size()); ++i) {
      // A lease is the old daemon's: the new instances take the work.
      if (deliveries && cols[static_cast<std::size_t>(i)] == "lease_until") {
        q.bind(int64_t{0});
        continue;
      }
      switch (sqlite3_column_type(s.get(), i)) {
        case SQLITE_INTEGER: q.bind(static_cast<int64_t>(sqlite3_column_int64(s.get(), i))); break;
        case SQLITE_FLOAT: q.bind(sqlite3_column_double(s.get(), i)); break;
        case SQLITE_BLOB: {
          auto* p = static_cast<const char*>(sqlite3_column_blob(s.get(), i));
          q.bind_bytea(std::string_view(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s.get(), i))));
          break;
        }
        case SQLITE_NULL: q.bind_null(); break;
        default: q.bind(text(s.get(), i)); break;
      }
    }
    q.run();
    ++n;
  }
  // New rows after the copied ones: the identity continues past them.
  auto identity = pg.q("SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                       "current_schema() AND table_name = $1 AND column_name = 'id' AND "
                       "is_identity = 'YES'")
                      .bind(table)
                      .rows();
  if (identity.i64(0, 0) > 0 && n > 0) {
    std::string sql("SELECT setval(pg_get_serial_sequence($1::text, 'id')::regclass, (SELECT max(id) FROM ");
    sql.append(ident(table)).append("))");
    pg.q(sql.c_str()).bind(table).rows();
  }
  return n;
}

}  // namespace

std::vector<CopiedTable> copy_sqlite_to_postgresql(const std::string& sqlite_path,
                                                   const StoreOptions& to) {
  if (to.postgresql_url.empty()) throw StoreError("the destination is not a PostgreSQL store");
  // Opening each store as its commands do checks the key file against its
  // data (and creates or migrates the destination's schema).
  open_sqlite_store_read_only(sqlite_path);
  open_postgresql_store(to);
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(sqlite_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  SqlitePtr db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) throw StoreError(std::string("cannot open ").append(sqlite_path).append(" to copy it"));
  sqlite3_busy_timeout(db.get(), 5000);
  auto key_check = [&]() {
    auto s = prepare(db.get(), "SELECT value FROM meta WHERE key = 'hash_key_check'");
    return step(db.get(), s.get()) ? text(s.get(), 0) : std::string();
  };
  postgresql::Connection pg(to.postgresql_url, postgresql_password(to));
  pg.begin();
  try {
    auto m = pg.q("SELECT value FROM meta WHERE key = 'hash_key_check'").rows();
    if (sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw StoreError(std::string("cannot read ").append(sqlite_path));
    std::string source_check = key_check();
    if (!source_check.empty() && (!m.rows() || m.text(0, 0) != source_check))
      throw StoreError("the two configs' key files differ: give the destination the source's key file");
    for (const char* t : {"subscribers", "reports", "deliveries", "console_users"}) {
      std::string sql("SELECT EXISTS (SELECT 1 FROM ");
      sql.append(ident(t)).append(")");
      if (pg.q(sql.c_str()).rows().text(0, 0) == "t")
        throw StoreError(std::string("the destination already holds data (").append(t).append(
            "): copy into an empty database"));
    }
    std::vector<CopiedTable> out;
    for (const auto& t : tables(pg)) out.push_back({t, copy_table(db.get(), pg, t)});
    sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr);
    pg.commit();
    return out;
  } catch (...) {
    if (pg.in_transaction()) pg.rollback();
    throw;
  }
}

}  // namespace tocsin::store
