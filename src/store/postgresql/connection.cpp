// The libpq connection, queries and transactions: see connection.h.
#include "store/postgresql/connection.h"

#include <charconv>
#include <cstring>

namespace tocsin::store::postgresql {
namespace {

constexpr Oid kInt8 = 20, kFloat8 = 701, kUnknown = 0, kInt8Array = 1016, kTextArray = 1009;

// The server's primary message and SQLSTATE only: the DETAIL line of a
// unique violation quotes the key's values.
std::string error_of(const PGresult* r, PGconn* c) {
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = primary ? primary : PQerrorMessage(c);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (state) msg += std::string(" (SQLSTATE ") + state + ")";
  return "postgresql: " + msg;
}

void ignore_notice(void*, const char*) {}

}  // namespace

std::string Result::text(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
}

int64_t Result::i64(int row, int col) const {
  if (is_null(row, col)) return 0;
  const char* p = PQgetvalue(r_.get(), row, col);
  const char* end = p + PQgetlength(r_.get(), row, col);
  if (end - p == 1 && (*p == 't' || *p == 'f')) return *p == 't' ? 1 : 0;  // a boolean
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(p, end, v);
  // numeric (a sum) may carry a fraction; tocsin's sums are whole.
  if (ec != std::errc() || (ptr != end && *ptr != '.'))
    throw StoreError("postgresql: not an integer in column " + std::to_string(col));
  return v;
}

double Result::f64(int row, int col) const {
  if (is_null(row, col)) return 0;
  const char* p = PQgetvalue(r_.get(), row, col);
  double v = 0;
  auto [ptr, ec] = std::from_chars(p, p + PQgetlength(r_.get(), row, col), v);
  if (ec != std::errc()) throw StoreError("postgresql: not a number in column " + std::to_string(col));
  return v;
}

std::string Result::bytea(int row, int col) const {
  if (is_null(row, col)) return {};
  std::size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &n);
  if (!raw) throw StoreError("postgresql: out of memory reading bytea");
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return *n ? std::stoll(n) : 0;
}

Query& Query::add(std::string value, Oid type, bool null) {
  values_.push_back(std::move(value));
  types_.push_back(type);
  nulls_.push_back(null);
  return *this;
}

Query& Query::bind(int64_t v) { return add(std::to_string(v), kInt8); }

Query& Query::bind(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  return add(std::string(buf, end), kFloat8);
}

Query& Query::bind(std::string_view v) { return add(std::string(v), kUnknown); }

Query& Query::bind_bytea(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 + 2 * v.size());
  hex.push_back('\\');
  hex.push_back('x');
  for (unsigned char c : v) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return add(std::move(hex), kUnknown);
}

Query& Query::bind_array(const std::vector<int64_t>& v) {
  std::string text(1, '{');
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) text.push_back(',');
    text.append(std::to_string(v[i]));
  }
  text.push_back('}');
  return add(std::move(text), kInt8Array);
}

Query& Query::bind_array(const std::vector<std::string>& v) {
  // Every element quoted, with a quote or backslash in it escaped by a
  // backslash: the
  // array literal's own syntax, so no value can end an element early.
  std::string text(1, '{');
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) text.push_back(',');
    text.push_back('"');
    for (char c : v[i]) {
      if (c == '"' || c == '\\') text.push_back('\\');
      text.push_back(c);
    }
    text.push_back('"');
  }
  text.push_back('}');
  return add(std::move(text), kTextArray);
}

Query& Query::bind_null() { return add(std::string(), kUnknown, true); }

Result Query::rows() { return c_.run(sql_, values_, types_, nulls_); }

void Query::send() {
  if (c_.in_pipeline()) c_.pipelined(sql_, values_, types_, nulls_, false);
  else rows();
}

Connection::Connection(const std::string& conninfo, const std::string& password) {
  // expand_dbname: "dbname" holds the whole conninfo or URI and overrides
  // the keywords before it; the password after it overrides the conninfo's.
  std::vector<const char*> keys{"connect_timeout", "application_name", "dbname"};
  std::vector<const char*> values{"5", "tocsin", conninfo.c_str()};
  if (!password.empty()) keys.push_back("password"), values.push_back(password.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
  if (!conn_) throw StoreError("postgresql: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw StoreError("cannot connect to PostgreSQL: " + msg);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
  // Like SQLite's busy_timeout: a row or lock another instance holds is
  // waited for this long, then the job fails (503 + Retry-After).
  exec("SET lock_timeout = '5s'; SET synchronous_commit = on; SET client_min_messages = warning");
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

void Connection::ensure_connected() {
  if (PQstatus(conn_) == CONNECTION_OK) return;
  prepared_.clear();  // a new session has none of them
  queued_.clear();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) throw StoreError("postgresql: the server is unreachable");
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
  exec("SET lock_timeout = '5s'; SET synchronous_commit = on; SET client_min_messages = warning");
}

Result Connection::run(const char* sql, const std::vector<std::string>& values,
                       const std::vector<Oid>& types, const std::vector<bool>& nulls) {
  if (in_pipeline()) return pipelined(sql, values, types, nulls, true);
  // Outside a transaction a lost connection is made again; inside one the
  // statement fails (the transaction is gone with the connection).
  if (!in_tx_) ensure_connected();
  std::vector<const char*> ptrs(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) ptrs[i] = nulls[i] ? nullptr : values[i].c_str();
  const std::string& name = prepared(sql, types);
  PGresult* r = PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), ptrs.data(),
                               nullptr, nullptr, 0);
  Result result(r);
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw StoreError(error_of(r, conn_));
  return result;
}

bool Connection::in_pipeline() const { return PQpipelineStatus(conn_) != PQ_PIPELINE_OFF; }

Result Connection::pipelined(const char* sql, const std::vector<std::string>& values,
                             const std::vector<Oid>& types, const std::vector<bool>& nulls,
                             bool wait) {
  std::vector<const char*> ptrs(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) ptrs[i] = nulls[i] ? nullptr : values[i].c_str();
  std::string key = statement_key(sql, types);
  auto it = prepared_.find(key);
  if (it == prepared_.end()) {
    // Prepared in the pipeline too: the statement after it uses the name
    // at once, and a failed preparation forgets it again (drain).
    std::string name = "tocsin_" + std::to_string(next_name_++);
    if (!PQsendPrepare(conn_, name.c_str(), sql, static_cast<int>(types.size()), types.data()))
      throw StoreError(error_of(nullptr, conn_));
    queued_.push_back(key);
    it = prepared_.emplace(std::move(key), std::move(name)).first;
  }
  if (!PQsendQueryPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), ptrs.data(),
                           nullptr, nullptr, 0))
    throw StoreError(error_of(nullptr, conn_));
  queued_.emplace_back();
  if (!wait) return Result(nullptr);
  return drain();
}

void Connection::send_plain(const char* sql) {
  if (!PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0))
    throw StoreError(error_of(nullptr, conn_));
  queued_.emplace_back();
}

Result Connection::drain() {
  if (queued_.empty()) return Result(nullptr);
  if (!PQpipelineSync(conn_)) {
    queued_.clear();
    throw StoreError(error_of(nullptr, conn_));
  }
  // Each statement's answer is one result and a NULL; the sync point's is
  // one result. Two NULLs in a row, or a lost connection, end it early.
  std::string failure;
  Result last(nullptr);
  std::size_t i = 0;
  int nulls = 0;
  for (;;) {
    PGresult* raw = PQgetResult(conn_);
    if (!raw) {
      if (PQstatus(conn_) != CONNECTION_OK || ++nulls > 1) {
        if (failure.empty()) failure = error_of(nullptr, conn_);
        break;
      }
      continue;
    }
    nulls = 0;
    Result r(raw);
    auto status = r.status();
    if (status == PGRES_PIPELINE_SYNC) break;
    if (i < queued_.size()) {
      bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
      if (!ok && !queued_[i].empty()) prepared_.erase(queued_[i]);  // never prepared
      // PGRES_PIPELINE_ABORTED: skipped after an earlier failure, the one named.
      if (!ok && status != PGRES_PIPELINE_ABORTED && failure.empty())
        failure = error_of(raw, conn_);
      if (i + 1 == queued_.size()) last = std::move(r);
    }
    ++i;
  }
  if (i < queued_.size()) {  // the connection went: what was not read is lost with it
    for (; i < queued_.size(); ++i)
      if (!queued_[i].empty()) prepared_.erase(queued_[i]);
  }
  queued_.clear();
  if (!failure.empty()) throw StoreError(failure);
  return last;
}

void Connection::leave_pipeline() {
  if (!in_pipeline()) return;
  if (!queued_.empty()) {
    try {
      drain();
    } catch (const StoreError&) {  // the transaction's end reports it
    }
  }
  PQexitPipelineMode(conn_);
}

std::string Connection::statement_key(const char* sql, const std::vector<Oid>& types) {
  std::string key(sql);
  key.push_back('\0');
  key.append(reinterpret_cast<const char*>(types.data()), types.size() * sizeof(Oid));
  return key;
}

const std::string& Connection::prepared(const char* sql, const std::vector<Oid>& types) {
  std::string key = statement_key(sql, types);
  auto it = prepared_.find(key);
  if (it != prepared_.end()) return it->second;
  std::string name = "tocsin_" + std::to_string(next_name_++);
  Result r(PQprepare(conn_, name.c_str(), sql, static_cast<int>(types.size()), types.data()));
  auto status = r.status();
  if (status != PGRES_COMMAND_OK) throw StoreError(error_of(r.get(), conn_));
  return prepared_.emplace(std::move(key), std::move(name)).first->second;
}

void Connection::exec(const char* sql) {
  // Several statements in one string need the simple protocol, which a
  // pipeline does not speak: what is queued is read first, and the
  // pipeline taken up again after.
  const bool piped = in_pipeline();
  if (piped) {
    drain();
    PQexitPipelineMode(conn_);
  }
  PGresult* r = PQexec(conn_, sql);
  Result result(r);
  if (piped) PQenterPipelineMode(conn_);
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw StoreError(error_of(r, conn_));
}

void Connection::begin() {
  leave_pipeline();
  ensure_connected();
  try {
    exec("BEGIN");
  } catch (const StoreError&) {
    // libpq learns that the server closed the connection (a restart, a
    // failover) only when it next uses it: here, before anything was
    // written, so once more on a new connection is safe.
    if (PQstatus(conn_) == CONNECTION_OK) throw;
    ensure_connected();
    exec("BEGIN");
  }
  in_tx_ = true;
  if (!PQenterPipelineMode(conn_)) throw StoreError(error_of(nullptr, conn_));
}

void Connection::commit() {
  in_tx_ = false;
  Result r(nullptr);
  try {
    if (in_pipeline()) {
      send_plain("COMMIT");
      r = drain();
    } else {
      r = Result(PQexec(conn_, "COMMIT"));
    }
  } catch (...) {
    leave_pipeline();
    throw;
  }
  leave_pipeline();
  if (!r.get() || r.status() != PGRES_COMMAND_OK) throw StoreError(error_of(r.get(), conn_));
  // COMMIT of a transaction a failed statement aborted answers "ROLLBACK":
  // nothing was written, and the caller must not say it was.
  if (std::strcmp(PQcmdStatus(r.get()), "ROLLBACK") == 0)
    throw StoreError("postgresql: the transaction was aborted and rolled back");
}

void Connection::rollback() {
  in_tx_ = false;
  leave_pipeline();
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  PQclear(PQexec(conn_, "ROLLBACK"));  // a lost connection has rolled back already
}

void Connection::savepoint() {
  if (in_pipeline()) send_plain("SAVEPOINT job");
  else exec("SAVEPOINT job");
}

void Connection::release_savepoint() {
  if (in_pipeline()) send_plain("RELEASE SAVEPOINT job");
  else exec("RELEASE SAVEPOINT job");
}

void Connection::next_savepoint() {
  release_savepoint();
  savepoint();
}

void Connection::rollback_to_savepoint() {
  if (!in_pipeline()) {
    PQclear(PQexec(conn_, "ROLLBACK TO SAVEPOINT job"));
    PQclear(PQexec(conn_, "RELEASE SAVEPOINT job"));
    return;
  }
  // The job's failure was read already, or (a bug's exception) its
  // statements are still queued: read them, whatever they say, then roll
  // back. A failure of the rollback itself fails the commit.
  try {
    drain();
  } catch (const StoreError&) {
  }
  send_plain("ROLLBACK TO SAVEPOINT job");
  send_plain("RELEASE SAVEPOINT job");
  try {
    drain();
  } catch (const StoreError&) {
  }
}

void Connection::sync() {
  if (in_pipeline()) drain();
}

void Connection::xact_lock(int64_t key) { q("SELECT pg_advisory_xact_lock($1)").bind(key).send(); }
void Connection::lock(int64_t key) { q("SELECT pg_advisory_lock($1)").bind(key).rows(); }
void Connection::unlock(int64_t key) { q("SELECT pg_advisory_unlock($1)").bind(key).rows(); }

std::string Connection::where() const {
  const char* host = PQhost(conn_);
  const char* db = PQdb(conn_);
  return std::string(host ? host : "?") + "/" + (db ? db : "?");
}

int64_t lock_key(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

}  // namespace tocsin::store::postgresql
