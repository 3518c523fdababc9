// The PostgreSQL store's tables and their versioned migrations (schema.cpp).
#pragma once

#include "store/postgresql/connection.h"

namespace tocsin::store::postgresql {

// Brings the database's schema to the version this tocsin knows, under a
// session advisory lock, so that several instances starting at once
// migrate it once: the others wait, then find it done. Throws StoreError
// when the database is newer than this tocsin.
void migrate(Connection& c);

}  // namespace tocsin::store::postgresql
