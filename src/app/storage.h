// From the storage config to the store layer's options: what the daemon and
// every command open (SQLite or PostgreSQL, as storage says).
#pragma once

#include "app/config.h"
#include "store/open_store.h"

namespace tocsin::app {

store::StoreOptions store_options(const StorageConfig& storage,
                                  store::StoreOptions::Access access = store::StoreOptions::Access::kDaemon);

// Where the store is, for people: the SQLite path, or "PostgreSQL" (the
// URL is never shown: it may hold a password).
std::string store_name(const StorageConfig& storage);

}  // namespace tocsin::app
