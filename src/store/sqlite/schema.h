// The SQLite store's schema and its migrations (see schema.cpp).
#pragma once

#include "store/sqlite/database.h"

namespace tocsin::store::sqlite {

// Creates the schema in a new database, or migrates an older one to the
// current version, in one transaction. Throws StoreError for a database of
// a newer schema than this tocsin understands.
void migrate(Database& db);

}  // namespace tocsin::store::sqlite
