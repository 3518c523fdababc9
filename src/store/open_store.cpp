// open_store(): from the storage options to a store.
#include "store/open_store.h"

namespace tocsin::store {

std::unique_ptr<Store> open_store(const StoreOptions& o) {
  if (!o.postgresql_url.empty()) return open_postgresql_store(o);
  switch (o.access) {
    case StoreOptions::Access::kReadOnly:
      return open_sqlite_store_read_only(o.sqlite_path);
    case StoreOptions::Access::kBesideDaemon:
      return open_sqlite_store_beside_daemon(o.sqlite_path, o.keyring);
    case StoreOptions::Access::kDaemon:
      break;
  }
  return open_sqlite_store(o.sqlite_path, o.keyring);
}

}  // namespace tocsin::store
