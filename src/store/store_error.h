// The errors every store throws: StoreError on a database failure (the
// StoreWorker turns it into a failed job and a rolled-back transaction),
// StoreLocked when another process holds the database.
#pragma once

#include <stdexcept>

namespace tocsin::store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Another tocsin process holds the database's lock file.
class StoreLocked : public StoreError {
 public:
  using StoreError::StoreError;
};

}  // namespace tocsin::store
