// Keys and retention, for housekeeping: a new keyring at reload,
// re-encryption under the active key, and the purges by age.
#pragma once

#include <cstdint>
#include <memory>

#include "core/model.h"

namespace tocsin::store {

class Keyring;

class MaintenanceStore {
 public:
  virtual ~MaintenanceStore() = default;

  // Uses `keyring` from now on (a reload). Throws StoreError, keeping the
  // current one, when it lacks a key that some row is encrypted under or its
  // hash key is not the one the database was written with.
  virtual void set_keyring(std::shared_ptr<const Keyring> keyring) = 0;
  // Re-encrypts up to `limit` subscribers not yet under the active key;
  // returns how many (0: every row is under it).
  virtual int64_t reencrypt_subscribers(int limit) = 0;
  // Retention: deletes up to `limit` ended deliveries created before
  // `before` (their counts stay with the incident), the rendered texts and
  // report bodies of reports received before it (texts once no delivery of
  // the report is pending), and detaches older acknowledgements from
  // subscribers. Returns how many deliveries were deleted (`limit`: call
  // again for more).
  virtual int64_t purge_deliveries(UnixMs before, int limit) = 0;
  // Forgets webhook-id answers older than `before`; returns how many.
  virtual int64_t purge_answers(UnixMs before) = 0;
  // Forgets join requests older than `before`.
  virtual int64_t purge_join_requests(UnixMs before) = 0;
  // Forgets provider events recorded before `before`; returns how many.
  virtual int64_t purge_events(UnixMs before) = 0;
  // Forgets audit entries older than `before`; returns how many.
  virtual int64_t purge_audit(UnixMs before) = 0;
};

}  // namespace tocsin::store
