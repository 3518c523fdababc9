// Storage behind one interface, Store, made of narrow roles (one header
// each: incident_store.h, safety_store.h, subscriber_store.h,
// console_store.h, audit_log.h, provider_events.h, maintenance_store.h,
// cluster.h) so that code can depend on the role it uses; Store adds the
// transactions and the delivery queue. The SQLite store (src/store/sqlite/) is the
// embedded default; a PostgreSQL store implementing the same interface will
// let several instances share one queue. open_store() (open_store.h) opens
// the one a config names.
//
// A Store is used by one thread at a time (the StoreWorker's). Methods throw
// StoreError on database failure; the worker turns that into a failed job
// and a rolled-back transaction, so callers see a value, never a throw.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/report.h"
#include "store/audit_log.h"
#include "store/cluster.h"
#include "store/delivery_queue.h"
#include "store/console_store.h"
#include "store/incident_store.h"
#include "store/maintenance_store.h"
#include "store/provider_events.h"
#include "store/safety_store.h"
#include "store/store_error.h"
#include "store/subscriber_store.h"

namespace tocsin::store {

class Store : public DeliveryQueue,
              public IncidentStore,
              public SafetyStore,
              public SubscriberStore,
              public ConsoleStore,
              public AuditLog,
              public ProviderEvents,
              public MaintenanceStore,
              public Cluster {
 public:
  ~Store() override = default;

  // Transactions. The worker batches jobs into one transaction (group
  // commit); each job runs inside its own savepoint.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() = 0;
  virtual void savepoint() = 0;
  virtual void release_savepoint() = 0;
  virtual void rollback_to_savepoint() = 0;
  // Releases the savepoint of the job that just succeeded and opens the
  // next job's: one round trip where the store is across a socket.
  virtual void next_savepoint() {
    release_savepoint();
    savepoint();
  }

  // The end of a job, inside its savepoint: a store that sends statements
  // ahead of their answers (PostgreSQL's pipeline) reads them here, so that
  // a failure is thrown while it is still this job's to roll back.
  virtual void end_job() {}

  // The delivery queue (DeliveryQueue: claim, record, next due, release,
  // fan-out progress) and what only the daemon and the API use of it:
  // A provider's delivery receipt for the message it called `provider_id`:
  // moves a sent delivery to delivered or undelivered, never back (receipts
  // arrive out of order). Returns whether anything changed.
  virtual bool apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) = 0;
  // Ends every lease (start-up of the only instance on this store).
  virtual int64_t release_all_leases() = 0;
  virtual int64_t pending_count() = 0;
};

}  // namespace tocsin::store
