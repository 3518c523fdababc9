// The delivery queue as the dispatcher sees it: the role a store plays for
// the engine that sends (lease due deliveries, record what gateways
// answered, say when the next one is due, give back leases, report a
// fan-out's progress) — exactly what delivery::Dispatcher uses, and no more.
// `Store` (SQLite) implements it on its own thread; tests implement it in
// memory. `QueueJobs` is where such work runs and how its completion comes
// back: the StoreWorker's thread and group commit in production
// (store/worker_queue.h), inline on the io_context in tests.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"

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

class DeliveryQueue {
 public:
  virtual ~DeliveryQueue() = default;

  // Expires the channel's unleased pending deliveries past their deadline,
  // then leases up to `limit` due ones (next attempt and any old lease at or
  // before `now`), earliest first, until `lease_until`.
  virtual ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                                UnixMs lease_until) = 0;
  // Writes each attempt's result (state, next attempt, gateway, provider
  // id, error; attempts + 1) and ends its lease; an opt-out also marks the
  // subscriber and cancels their pending SMS-number deliveries. Each id
  // at most once per call (one result per lease, as the dispatcher has).
  virtual void record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) = 0;
  // Earliest time at which a pending delivery of `channel` is due (its next
  // attempt or the end of its lease, whichever is later), if any.
  virtual std::optional<UnixMs> next_due(Channel channel) = 0;
  // Ends the leases of deliveries claimed but never sent (graceful stop).
  virtual void release_leases(const std::vector<int64_t>& ids) = 0;
  // Extends to `until` the leases this store holds on those of `ids` that
  // are still pending and leased (the sender still has them: waiting, at a
  // gateway, or answered and not yet recorded), so a lease can be short
  // enough to give a dead instance's work back soon without expiring under
  // a slow request. A delivery whose lease ended or went to another sender
  // is left as it is.
  virtual void renew_leases(const std::vector<int64_t>& ids, UnixMs until) = 0;
  // For each (report, channel) of `keys`: whether a delivery is still
  // pending and, when `count_accepted`, how many a gateway accepted (for the
  // first/last-send latency metrics).
  virtual std::vector<FanoutProgress> fanout_progress(
      const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) = 0;
};

// Runs queue work away from the caller and reports back on its io_context.
class QueueJobs {
 public:
  using Job = std::function<void(DeliveryQueue&)>;
  // `committed` is false when the job threw or its transaction failed to
  // commit (then none of its writes happened).
  using Done = std::function<void(bool committed)>;
  virtual ~QueueJobs() = default;
  virtual void submit(Job job, Done done) = 0;
};

}  // namespace tocsin::store
