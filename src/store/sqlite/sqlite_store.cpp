// SqliteStore's opening, its transactions (the worker's group commit) and
// the scrub after erasures; the open_sqlite_store* factories.
#include "store/sqlite/sqlite_store.h"

#include "store/open_store.h"
#include "store/sqlite/schema.h"

namespace tocsin::store::sqlite {

SqliteStore::SqliteStore(const std::string& path, std::shared_ptr<const Keyring> keyring,
                         Database::Mode mode)
    : db_(path, mode) {
  if (mode == Database::Mode::kReadOnly) return;
  migrate(db_);
  set_keyring(std::move(keyring));
}

// See Database::begin for why reads end before a transaction begins.
void SqliteStore::begin() { db_.begin(); }

void SqliteStore::commit() {
  db_.commit();
  if (scrub_pending_) scrub();
}

void SqliteStore::rollback() { db_.rollback(); }
void SqliteStore::savepoint() { db_.savepoint(); }
void SqliteStore::release_savepoint() { db_.release_savepoint(); }
void SqliteStore::rollback_to_savepoint() { db_.rollback_to_savepoint(); }

// After an erasure or a purge has committed: copies the WAL into the
// database and truncates it, so the deleted rows' old page images leave
// the -wal file too (secure_delete has zeroed them in the database). A
// reader (tocsin route) can hold the WAL; then the next commit tries again.
// The cost, a checkpoint, is paid on erasures and purges only.
void SqliteStore::scrub() {
  if (db_.checkpoint_truncate()) scrub_pending_ = false;
}

}  // namespace tocsin::store::sqlite

namespace tocsin::store {

std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         std::shared_ptr<const Keyring> keyring) {
  return std::make_unique<sqlite::SqliteStore>(path, std::move(keyring),
                                               sqlite::Database::Mode::kReadWrite);
}

std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path) {
  return std::make_unique<sqlite::SqliteStore>(path, nullptr, sqlite::Database::Mode::kReadOnly);
}

std::unique_ptr<Store> open_sqlite_store_beside_daemon(const std::string& path,
                                                       std::shared_ptr<const Keyring> keyring) {
  return std::make_unique<sqlite::SqliteStore>(path, std::move(keyring),
                                               sqlite::Database::Mode::kBesideDaemon);
}

}  // namespace tocsin::store
