// Moving a network up: copies every row of a SQLite store into an empty
// PostgreSQL store (`tocsin store copy`), ciphertexts as they are (both
// stores take the same key file), ids kept, so incidents, follow-ups to
// their original recipients, idempotency answers, console accounts and the
// audit log carry over. Deliveries come across unleased: the instances on
// PostgreSQL take them as their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/open_store.h"

namespace tocsin::store {

struct CopiedTable {
  std::string table;
  int64_t rows = 0;
};

// Reads the SQLite file at `sqlite_path` in one read transaction (a running
// daemon may keep writing; what it writes after is not copied) and writes
// it into the PostgreSQL store `to` names in one transaction, after opening
// that store once (which migrates its schema and checks `to.keyring`
// against the SQLite data's key check). Throws StoreError — and writes
// nothing — when the destination holds any subscriber, report, delivery or
// console account already, when the key files differ, or when a statement
// fails.
std::vector<CopiedTable> copy_sqlite_to_postgresql(const std::string& sqlite_path,
                                                   const StoreOptions& to);

}  // namespace tocsin::store
