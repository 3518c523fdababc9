// store_options() and store_name(): see storage.h.
#include "app/storage.h"

namespace tocsin::app {

store::StoreOptions store_options(const StorageConfig& storage,
                                  store::StoreOptions::Access access) {
  store::StoreOptions o;
  o.sqlite_path = storage.sqlite_path;
  o.keyring = access == store::StoreOptions::Access::kReadOnly ? nullptr : storage.keyring;
  o.access = access;
  o.postgresql_url = storage.postgresql_url;
  o.postgresql_password_file = storage.postgresql_password_file;
  return o;
}

std::string store_name(const StorageConfig& storage) {
  return storage.postgresql_url.empty() ? storage.sqlite_path : std::string("PostgreSQL");
}

}  // namespace tocsin::app
