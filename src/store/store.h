// Storage behind one interface, Store, made of narrow roles (one header
// each: incident_store.h, safety_store.h, subscriber_store.h,
// console_store.h, audit_log.h, provider_events.h, maintenance_store.h) so
// that code can depend on the role it uses; Store adds the transactions
// and the delivery queue. The SQLite store (src/store/sqlite/) is the
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
#include "store/console_store.h"
#include "store/incident_store.h"
#include "store/maintenance_store.h"
#include "store/provider_events.h"
#include "store/safety_store.h"
#include "store/store_error.h"
#include "store/subscriber_store.h"

namespace tocsin::store {

// A pending delivery leased to a sender, with everything needed to send it.
struct ClaimedDelivery {
  int64_t id = 0;
  Channel channel = Channel::kSms;
  std::string incident_id;
  std::string to;        // phone or email
  std::string language;  // the message's language
  std::shared_ptr<const std::string> subject;  // shared by every recipient of one text
  std::shared_ptr<const std::string> body;
  int attempts = 0;      // attempts made before this one
  UnixMs deadline_at = 0;
  int64_t report_id = 0;  // the report that planned it
  UnixMs planned_at = 0;  // when it was planned: when that report was accepted
  int64_t subscriber_id = 0;
  bool followup = false;  // email: not the incident's first report (threads under the alert)
};

// The result of one attempt, written back in batches.
struct DeliveryUpdate {
  int64_t id = 0;
  DeliveryState state = DeliveryState::kPending;  // pending = retry at next_attempt_at
  UnixMs next_attempt_at = 0;
  std::string gateway;
  std::string provider_id;  // e.g. Twilio's message SID
  std::string error;        // provider code or transport error; never personal data
  bool opt_out = false;     // the provider says the number opted out (Twilio 21610)
};

// How far one report's fan-out on one channel has come.
struct FanoutProgress {
  int64_t report_id = 0;
  Channel channel = Channel::kSms;
  int64_t accepted = 0;  // deliveries a gateway accepted (sent, delivered or undelivered)
  bool pending = false;  // some delivery is still pending
};

struct ClaimResult {
  std::vector<ClaimedDelivery> claimed;
  int64_t expired = 0;    // pending deliveries found past their deadline and expired
  int64_t cancelled = 0;  // found without a reachable recipient and cancelled
};

class Store : public IncidentStore,
              public SafetyStore,
              public SubscriberStore,
              public ConsoleStore,
              public AuditLog,
              public ProviderEvents,
              public MaintenanceStore {
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

  // Delivery queue.
  // Leases up to `limit` due deliveries of `channel` until `lease_until`.
  virtual ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                                UnixMs lease_until) = 0;
  virtual void record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) = 0;
  // A provider's delivery receipt for the message it called `provider_id`:
  // moves a sent delivery to delivered or undelivered, never back (receipts
  // arrive out of order). Returns whether anything changed.
  virtual bool apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) = 0;
  // Earliest next_attempt_at among unleased pending deliveries, if any.
  virtual std::optional<UnixMs> next_due(Channel channel) = 0;
  // Ends every lease (start-up of the only instance on this store).
  virtual int64_t release_all_leases() = 0;
  // Ends the leases of deliveries claimed but never sent (graceful stop).
  virtual void release_leases(const std::vector<int64_t>& ids) = 0;
  virtual int64_t pending_count() = 0;
  // For each (report, channel) of `keys`: whether a delivery is still
  // pending and, when `count_accepted`, how many a gateway accepted (for the
  // first/last-send latency metrics).
  virtual std::vector<FanoutProgress> fanout_progress(
      const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) = 0;
};

}  // namespace tocsin::store
