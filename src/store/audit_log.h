// The audit log of admin actions: who, what, when and how it ended, never
// the personal data it touched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"

namespace tocsin::store {

// One admin action, as the audit log keeps it: who, what, when and how it
// ended, never the personal data it touched (ids and counts only).
struct AuditEntry {
  int64_t id = 0;  // assigned by insert_audit; the paging cursor
  UnixMs at = 0;
  std::string actor;   // admin token identity ("ops" or "token:1a2b3c4d"), or "signal" for SIGHUP
  std::string method;  // GET, POST, PATCH, DELETE, or RELOAD
  std::string route;   // route template, e.g. /v1/subscribers/{id}
  std::string object_id;  // subscriber id or incident code; "" for collections
  int status = 0;         // the HTTP status answered
  int64_t count = 0;      // rows in a batch or a page; 0 when not a batch
};

class AuditLog {
 public:
  virtual ~AuditLog() = default;

  // Audit log of admin actions. Returns the new entry's id.
  virtual int64_t insert_audit(const AuditEntry& entry) = 0;
  // Entries by id, ascending, after `after_id`, at most `limit`.
  virtual std::vector<AuditEntry> audit_after(int64_t after_id, int limit) = 0;
};

}  // namespace tocsin::store
