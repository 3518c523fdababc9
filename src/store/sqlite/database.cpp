// Opening the SQLite connection (lock file, pragmas), transactions and the
// scrubbing checkpoint: see database.h.
#include "store/sqlite/database.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include <spdlog/spdlog.h>

namespace tocsin::store::sqlite {
namespace {

// Process-wide SQLite settings, before the first connection opens. Debian's
// SQLite is built without lookaside memory, so every statement step mallocs
// through SQLite's allocator: with memory statistics on (the default), each
// of those ~100 calls per report takes a global mutex. tocsin never reads
// the statistics. Too late (SQLITE_MISUSE) if something in the process used
// SQLite first, as some tests do; that changes only the speed.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Database::Database(const std::string& path, Mode mode) {
  configure_sqlite_once();
  bool memory = path.empty() || path == ":memory:";
  if (mode == Mode::kReadOnly) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw StoreError("cannot open " + path + " read-only: " + msg);
    }
    exec("PRAGMA busy_timeout=5000");
    return;
  }
  if (!memory && mode == Mode::kReadWrite) {
    auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    lock_fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) throw StoreError("cannot open lock file " + path + ".lock");
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(lock_fd_);
      throw StoreLocked("another tocsin process is using " + path);
    }
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(memory ? ":memory:" : path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
    throw StoreError("cannot open " + path + ": " + msg);
  }
  try {
    if (!memory) ::chmod(path.c_str(), 0600);  // it holds phone numbers
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    exec("PRAGMA busy_timeout=5000");
    exec("PRAGMA temp_store=MEMORY");
    exec("PRAGMA cache_size=-16000");  // 16 MB
    // Deleted content is overwritten with zeros, so an erased subscriber or
    // a purged message leaves no bytes behind in the file (see
    // SqliteStore::scrub()).
    exec("PRAGMA secure_delete=ON");
  } catch (...) {
    sqlite3_close(db_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
    throw;
  }
}

Database::~Database() {
  stmts_.clear();
  sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Database::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError(msg);
  }
}

// Waits up to busy_timeout (5 s) for a write lock another connection
// holds, then fails (the jobs answer 503 + Retry-After). SQLite calls the
// busy handler only for a connection that has no transaction at all: one
// still in a read transaction gets SQLITE_BUSY at once, since upgrading it
// to a writer might deadlock. A statement that returned a row and was not
// reset (fanout_progress's EXISTS, pending_count, a lookup returning its
// one row) keeps the connection in such a read transaction past COMMIT,
// so the next BEGIN IMMEDIATE failed in ~1 ms ("database is locked")
// whenever another process held the lock. Hence: end those reads first.
//
// begin, commit, savepoint and release run for every batch and every job
// in it: prepared once like the other statements, not parsed each time
// by sqlite3_exec (that parse was 8% of a report's instructions).
void Database::begin() {
  end_reads();
  if (wal_full_) checkpoint_after_full();
  stmt("BEGIN IMMEDIATE").reset().run();
}

void Database::commit() {
  // No read left open across the commit either: its snapshot would keep
  // the commit's automatic checkpoint from reaching the end of the WAL.
  end_reads();
  stmt("COMMIT").reset().run();
}

void Database::rollback() {
  // Read before ROLLBACK replaces it: the error that ended the transaction.
  if (sqlite3_errcode(db_) == SQLITE_FULL) wal_full_ = true;
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Database::savepoint() { stmt("SAVEPOINT job").reset().run(); }

void Database::release_savepoint() { stmt("RELEASE job").reset().run(); }

void Database::rollback_to_savepoint() {
  sqlite3_exec(db_, "ROLLBACK TO job", nullptr, nullptr, nullptr);
  sqlite3_exec(db_, "RELEASE job", nullptr, nullptr, nullptr);
}

// The disk filled up while the WAL grew: SQLite checkpoints only after a
// commit succeeds, and only once the WAL holds wal_autocheckpoint pages
// (4 MB), so on a disk with less room than that every commit failed for
// good, space back or not (a 2 MB filesystem: 50 of 50 reports refused with
// 12 stored, a 4 KB database and a 2 MB WAL). So before each transaction,
// until one succeeds, copy the WAL into the database: the next commit then
// writes the WAL from its start, in space it already has. And since only
// that much WAL fit, checkpoint at half of it from then on.
void Database::checkpoint_after_full() {
  int frames = 0, copied = 0;
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) !=
          SQLITE_OK ||
      copied < frames)
    return;  // still no room for the database to grow, or a reader holds the WAL
  wal_full_ = false;
  const int pages = std::max(16, frames / 2);
  if (pages < wal_autocheckpoint_) {
    wal_autocheckpoint_ = pages;
    sqlite3_wal_autocheckpoint(db_, pages);
    spdlog::warn("the disk filled up: WAL checkpointed, and from now on every {} pages", pages);
  }
}

void Database::end_reads() {
  for (sqlite3_stmt* p = sqlite3_next_stmt(db_, nullptr); p; p = sqlite3_next_stmt(db_, p))
    if (sqlite3_stmt_busy(p)) sqlite3_reset(p);
}

bool Database::checkpoint_truncate() {
  end_reads();  // a statement stepped but not reset would hold a read on the WAL
  return sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) ==
         SQLITE_OK;
}

}  // namespace tocsin::store::sqlite
