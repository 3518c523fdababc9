// Opening a store: open_store() opens the one the storage config names, for
// the daemon and every command; the open_sqlite_store* and
// open_postgresql_store functions open one directly (tests, and open_store
// itself).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace tocsin::store {

class Keyring;

// What the storage config says, in the store layer's terms.
struct StoreOptions {
  enum class Access {
    kDaemon,        // the one writer: takes the database's lock
    kBesideDaemon,  // writes beside a running daemon (console accounts only)
    kReadOnly,      // looks, beside a running daemon; reads no personal data
  };
  std::string sqlite_path;  // the SQLite file ("" or ":memory:": in memory)
  std::shared_ptr<const Keyring> keyring;  // may be null for kReadOnly
  Access access = Access::kDaemon;
  // PostgreSQL instead of SQLite when not empty: libpq's conninfo
  // ("host=... dbname=...") or URI (postgresql://...). Never logged (it
  // may hold a password).
  std::string postgresql_url;
  std::string postgresql_password_file;  // optional: the password, alone in a file
  // This instance's name on its leases (PostgreSQL); "": a random one.
  std::string instance_id;
};

// Opens the store `options` name. Throws StoreLocked or StoreError as the
// open_sqlite_store* functions below do.
std::unique_ptr<Store> open_store(const StoreOptions& options);

// Opens the PostgreSQL store `options` name (postgresql_url, the password
// file, instance_id; kReadOnly: read-only transactions, no migration),
// migrating its schema; several instances may open one database at once.
// Throws StoreError when it cannot connect or `keyring` does not fit.
std::unique_ptr<Store> open_postgresql_store(const StoreOptions& options);

// Calls `on_new`, on a thread of its own, when another instance may have
// committed deliveries this one could send (new, requeued or handed back):
// PostgreSQL's LISTEN/NOTIFY (postgresql/listener.h). Null for SQLite,
// which only this process writes. Destroying it stops it.
class DeliveryWatch {
 public:
  virtual ~DeliveryWatch() = default;
};
std::unique_ptr<DeliveryWatch> watch_deliveries(const StoreOptions& options,
                                                std::function<void()> on_new);

// What is wrong with `url` as libpq's conninfo or URI, or "" when nothing
// is; the text never quotes `url` (it may hold a password).
std::string postgresql_url_problem(const std::string& url);

// Opens (creating if needed) the SQLite store at `path` ("" or ":memory:"
// for an in-memory database): WAL, synchronous=FULL, secure_delete, schema
// migrated; subscribers' personal data encrypted with `keyring`.
// Takes an exclusive lock file beside it: one daemon per database.
// Throws StoreLocked when another process holds it, StoreError when it
// cannot open or `keyring` does not fit the database (see set_keyring).
std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         std::shared_ptr<const Keyring> keyring);

// Opens an existing store read-only, beside a running daemon (WAL lets
// readers in): for `tocsin route` and other looks that change nothing and
// read no personal data (without a keyring, reading a subscriber throws).
std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path);

// Opens the store read-write without its lock file, beside a running daemon
// (WAL and busy_timeout let the two write in turn): for `tocsin users`,
// which writes console accounts only, never the delivery queue.
std::unique_ptr<Store> open_sqlite_store_beside_daemon(const std::string& path,
                                                       std::shared_ptr<const Keyring> keyring);

}  // namespace tocsin::store
