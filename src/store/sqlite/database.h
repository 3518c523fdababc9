// The SQLite connection underneath SqliteStore: opening it (the lock file
// beside the database, the pragmas), prepared statements (Stmt, cached by
// their SQL literal), transactions and savepoints, and the WAL checkpoint
// that scrubs erased rows. Nothing here knows a table.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/store_error.h"

namespace tocsin::store::sqlite {

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw StoreError(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    next_ = 1;
    return *this;
  }
  Stmt& bind(int64_t v) {
    sqlite3_bind_int64(stmt_, next_++, v);
    return *this;
  }
  Stmt& bind(int v) { return bind(static_cast<int64_t>(v)); }
  Stmt& bind(double v) {
    sqlite3_bind_double(stmt_, next_++, v);
    return *this;
  }
  Stmt& bind(const std::string& v) {
    sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(std::string_view v) {
    sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(const char* v) { return bind(std::string_view(v)); }
  Stmt& bind_blob(std::string_view v) {
    sqlite3_bind_blob(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // A blob, or NULL for "" (an absent phone, email or name).
  Stmt& bind_blob_or_null(std::string_view v) { return v.empty() ? bind_null() : bind_blob(v); }
  Stmt& bind_null() {
    sqlite3_bind_null(stmt_, next_++);
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_reset(stmt_);
    throw StoreError("step: " + msg);
  }
  void run() {
    while (step()) {
    }
  }
  int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double f64(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string blob(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int next_ = 1;
};

// The first row of `s` read by `read` (the statement reset), or nullopt.
template <typename Read>
auto first_row(Stmt& s, Read read) -> std::optional<decltype(read(s))> {
  std::optional<decltype(read(s))> out;
  if (s.step()) out = read(s);
  s.reset();
  return out;
}
// Every row of `s`, each read by `read`.
template <typename Read>
auto all_rows(Stmt& s, Read read) -> std::vector<decltype(read(s))> {
  std::vector<decltype(read(s))> out;
  while (s.step()) out.push_back(read(s));
  return out;
}

// One connection, used by one thread at a time.
class Database {
 public:
  enum class Mode {
    kReadWrite,     // the daemon's: creates the file, takes the lock file
    kBesideDaemon,  // read-write without the lock file (WAL and busy_timeout share the writes)
    kReadOnly,      // a look beside a running daemon
  };
  // Opens `path` ("" or ":memory:" for an in-memory database). Throws
  // StoreLocked when another process holds the lock file, StoreError when
  // it cannot open.
  Database(const std::string& path, Mode mode);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The statement prepared from `sql`, a string literal (its address is the key).
  Stmt& stmt(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, std::make_unique<Stmt>(db_, sql)).first;
    return *it->second;
  }
  // Runs `sql` (several statements allowed) once, unprepared.
  void exec(const char* sql);
  int64_t changes() const { return sqlite3_changes64(db_); }
  int64_t last_insert_id() const { return sqlite3_last_insert_rowid(db_); }

  void begin();
  void commit();
  void rollback();
  void savepoint();
  void release_savepoint();
  void rollback_to_savepoint();

  // Resets every statement left on a row: each keeps the connection in a
  // read transaction (a snapshot of the WAL) until it is reset.
  void end_reads();
  // Copies the WAL into the database and truncates it; false when a reader
  // holds the WAL (try again later).
  bool checkpoint_truncate();

 private:
  void checkpoint_after_full();

  sqlite3* db_ = nullptr;
  int lock_fd_ = -1;
  bool wal_full_ = false;          // a transaction failed for want of space
  int wal_autocheckpoint_ = 1000;  // SQLite's default, lowered by checkpoint_after_full()
  // Prepared once, reused: keyed by the SQL literal's address.
  std::unordered_map<const char*, std::unique_ptr<Stmt>> stmts_;
};

}  // namespace tocsin::store::sqlite
