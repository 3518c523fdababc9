// The libpq connection underneath PgStore: opening it (conninfo or URI,
// password from a file), queries with parameters (every value a separate
// text parameter: nothing is ever spliced into SQL), each statement prepared
// on its first use and executed by name after (the server parses and plans
// it once per session, not once per call), results,
// transactions and savepoints, advisory locks, and reconnecting after the
// server went away. Nothing here knows a table.
//
// Synchronous libpq on the caller's thread: a Connection is used by one
// thread at a time (the StoreWorker's), as SQLite's Database is.
//
// Inside a transaction the connection is in libpq's pipeline mode: a
// statement whose answer nobody waits for (an advisory lock, an insert, an
// update, a savepoint: Query::send) is sent and not waited for; its answer
// is read with the next statement that needs one (Query::rows, run), at
// sync() or at commit, all in one round trip. A duplicate report took ~9
// round trips and takes ~4. A sent statement's failure is thrown from
// that later call, so the StoreWorker calls sync() (Store::end_job) at the
// end of every job: the failure stays the job's, rolled back with it.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/store_error.h"

namespace tocsin::store::postgresql {

// The rows a query returned, read by (row, column). Values arrive as text;
// NULL reads as 0, 0.0 or "".
class Result {
 public:
  explicit Result(PGresult* r) : r_(r, &PQclear) {}
  PGresult* get() const { return r_.get(); }
  ExecStatusType status() const { return r_ ? PQresultStatus(r_.get()) : PGRES_FATAL_ERROR; }
  int rows() const { return PQntuples(r_.get()); }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const;
  int64_t i64(int row, int col) const;
  double f64(int row, int col) const;
  // A bytea column (the server's hex output), as raw bytes.
  std::string bytea(int row, int col) const;
  // Rows an INSERT, UPDATE or DELETE touched.
  int64_t affected() const;

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

class Connection;

// One statement and its parameters ($1, $2, ... in the order bound).
// Integers go as int8 and doubles as float8; strings and bytea are left for
// the server to type from where they are used.
class Query {
 public:
  Query(Connection& c, const char* sql) : c_(c), sql_(sql) {}
  Query& bind(int64_t v);
  Query& bind(int v) { return bind(static_cast<int64_t>(v)); }
  Query& bind(double v);
  Query& bind(std::string_view v);
  Query& bind(const std::string& v) { return bind(std::string_view(v)); }
  Query& bind(const char* v) { return bind(std::string_view(v)); }
  Query& bind_bytea(std::string_view v);
  // A bytea, or NULL for "" (an absent phone, email or name).
  Query& bind_bytea_or_null(std::string_view v) { return v.empty() ? bind_null() : bind_bytea(v); }
  // An int8[] (for `= ANY($n)`).
  Query& bind_array(const std::vector<int64_t>& v);
  // A text[] (for unnest($n): many rows' values in one statement).
  Query& bind_array(const std::vector<std::string>& v);
  Query& bind_null();
  // Runs it; throws StoreError on failure.
  Result rows();
  // Runs it; the rows it touched.
  int64_t run() { return rows().affected(); }
  // Sends it without waiting for its answer (in a transaction; outside one
  // it runs at once). Its failure is thrown by the next call that waits.
  void send();

 private:
  Query& add(std::string value, Oid type, bool null = false);
  Connection& c_;
  const char* sql_;
  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<bool> nulls_;
};

class Connection {
 public:
  // Connects with `conninfo` (key=value pairs or a postgresql:// URI) and,
  // when not empty, `password` (overriding one in conninfo). Throws
  // StoreError naming the server's complaint, never the conninfo (it may
  // hold a password).
  Connection(const std::string& conninfo, const std::string& password);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Query q(const char* sql) { return Query(*this, sql); }
  bool in_transaction() const { return in_tx_; }
  // Runs `sql` (several statements allowed, no parameters).
  void exec(const char* sql);

  void begin();
  void commit();
  void rollback();
  void savepoint();
  void release_savepoint();
  void rollback_to_savepoint();
  // Releases the job's savepoint and opens the next one's, both sent.
  void next_savepoint();
  // Waits for the answers of everything sent; throws the first failure.
  void sync();

  // Waits for the transaction-scoped advisory lock `key` (released at
  // COMMIT or ROLLBACK); outside a transaction it is released at once.
  // Sent, not waited for (see Query::send).
  void xact_lock(int64_t key);
  // Session-scoped advisory lock, held until unlock() or disconnection.
  void lock(int64_t key);
  void unlock(int64_t key);

  // Where the connection went (host or socket directory, database): for
  // logs, without user or password.
  std::string where() const;

 private:
  friend class Query;
  Result run(const char* sql, const std::vector<std::string>& values,
             const std::vector<Oid>& types, const std::vector<bool>& nulls);
  // In pipeline mode: queues the statement (and its preparation, the first
  // time); `wait` then reads every answer up to it and returns its own.
  Result pipelined(const char* sql, const std::vector<std::string>& values,
                   const std::vector<Oid>& types, const std::vector<bool>& nulls, bool wait);
  // A statement without parameters, in the pipeline.
  void send_plain(const char* sql);
  // Marks a sync point and reads every queued answer up to it; returns the
  // last statement's answer. After a failure the server skipped the rest
  // up to the sync point: the pipeline is clean again, and the first
  // failure is thrown.
  Result drain();
  // Reads what is queued (failures ignored: the transaction's end reports
  // them) and leaves pipeline mode.
  void leave_pipeline();
  bool in_pipeline() const;
  static std::string statement_key(const char* sql, const std::vector<Oid>& types);
  // Reconnects when the server went away and no transaction is open.
  void ensure_connected();
  // The name `sql` with these parameter types is prepared under in this
  // session, preparing it on first use. The statements are string literals
  // of the store, so the map stays small (one entry per statement and
  // parameter typing). A connection pooler in transaction mode would need
  // to keep them (PgBouncer ≥ 1.21 with max_prepared_statements).
  const std::string& prepared(const char* sql, const std::vector<Oid>& types);

  PGconn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // sql + types → statement name
  std::size_t next_name_ = 0;                              // tocsin_<n>: never reused
  // The statements queued in the pipeline and not yet read, in order; for
  // a preparation its prepared_ key (forgotten if it fails), else empty.
  std::vector<std::string> queued_;
  bool in_tx_ = false;  // between begin() and commit() or rollback()
};

// A stable 64-bit key for an advisory lock on `text` (FNV-1a): the same in
// every instance and every release, unlike the server's hashtext().
int64_t lock_key(std::string_view text);

}  // namespace tocsin::store::postgresql
