// The delivery loop. For each channel it leases due deliveries from the
// store, sends them through the channel's first healthy gateway (each has a
// circuit breaker; the config's order is the failover chain) under its rate
// (a sliding window, as providers count) and concurrency cap, and writes
// results back in batches.
// A delivery stays leased in the store until its result is recorded, so a
// crash at any moment loses nothing: on restart the store releases leases
// and every delivery not recorded as accepted is sent again (at least once).
// Duplicates after a crash are bounded by what was sent and not yet
// recorded: at most max_in_flight requests (of max_batch messages) per
// gateway still at the gateway, plus fewer than max_unrecorded answered
// results waiting for their commit. A request's slot is freed as soon as
// its answer is queued for recording (the gateway, not the disk, paces
// sends), and results are group-committed: one store job records all
// that queued while the previous one committed. New requests wait while
// max_unrecorded results are queued.
//
// reconfigure() swaps gateways and limits while it runs (a config reload):
// see there what is kept.
//
// Its seams (tests/unit/dispatcher_test.cpp drives each): the queue is the
// store's DeliveryQueue role, reached through QueueJobs (the StoreWorker in
// production); time is a Clock (wall: deadlines, leases, stored times) and
// Timers (steady: breakers, rate windows, waits); gateways are the Gateway
// interface.
//
// Runs entirely on the io_context's thread; not thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/backoff.h"
#include "core/breaker.h"
#include "core/clock.h"
#include "delivery/gateway.h"
#include "delivery/timers.h"
#include "store/delivery_queue.h"
#include "store/store_worker.h"

namespace tocsin::delivery {

struct DispatcherOptions {
  int breaker_threshold = 5;                     // consecutive failures that open a gateway's circuit
  std::chrono::milliseconds breaker_cooldown{10'000};  // before an open circuit lets a probe through
  std::chrono::milliseconds lease{120'000};      // how long a claimed delivery stays ours
  BackoffPolicy backoff;                         // retry delays
  std::size_t max_claim = 5000;                  // deliveries leased per store round trip
  // Answered results not yet durable at which new sends wait for a commit:
  // with the requests at gateways, the bound on deliveries a crash sends
  // twice (see above).
  std::size_t max_unrecorded = 500;
  std::chrono::milliseconds idle_poll{1'000};    // look for due retries at least this often
  // Told each decided result, on the io thread: kSent, kFailed, kExpired, or
  // kPending for a retry; `gateway` is empty for a delivery that expired
  // before it was sent (metrics).
  std::function<void(std::string_view gateway, Channel channel, DeliveryState state)> on_result;
  // Told, on the io thread, the time from a report's acceptance to the
  // first of its deliveries on `channel` that a gateway accepted (`first`),
  // and to the last one, once none of them is pending any more (metrics).
  // A fan-out whose end the dispatcher does not see (it ended by deadline
  // while queued, by opt-outs, by an erasure) or that sent nothing has no
  // "last"; after a restart a fan-out already under way has no "first".
  std::function<void(Channel channel, bool first, std::chrono::milliseconds since_accepted)>
      on_report_sent;
};

struct GatewaySpec {
  std::string name;                  // the gateway's config name
  std::unique_ptr<Gateway> gateway;  // null in reconfigure(): keep the running gateway `name`
  double rate_per_s = 10;
  int max_in_flight = 16;
};

// A gateway's circuit, for metrics.
struct GatewayHealth {
  std::string name;
  Channel channel = Channel::kSms;
  CircuitBreaker::State state = CircuitBreaker::State::kClosed;
};

struct DispatcherStats {
  int64_t sent = 0;       // accepted by a gateway
  int64_t retried = 0;    // transient failures, scheduled again
  int64_t failed = 0;     // permanent failures
  int64_t expired = 0;    // deadline passed
  int64_t in_flight = 0;  // requests at gateways (sent, not yet answered)
  int64_t held = 0;       // deliveries leased and not yet recorded
};

class Dispatcher {
 public:
  // `gateways` in config order: the first of each channel is its primary.
  // The queue is the SQLite store through `store`, time the io_context's.
  Dispatcher(boost::asio::io_context& io, store::StoreWorker& store, const Clock& clock,
             DispatcherOptions options, std::vector<GatewaySpec> gateways);
  // Any queue and timers (tests: in memory, virtual time); both outlive it.
  Dispatcher(boost::asio::io_context& io, store::QueueJobs& queue, const Clock& clock,
             Timers& timers, DispatcherOptions options, std::vector<GatewaySpec> gateways);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Begins work (call once the store is open).
  void start();
  // New deliveries may be due: look now rather than at the next poll.
  void kick();
  // Stops leasing; waits up to `bound` for requests at gateways and for
  // results to be recorded; releases leases of what was never sent; then
  // calls `done`. What was still at a gateway when the bound passed keeps
  // its lease until the next start releases it (and is sent again).
  void stop(std::chrono::milliseconds bound, std::function<void()> done);

  // A config reload. `gateways` in the new config order (the failover
  // chains); the lease, backoff and breaker settings of `options` apply from
  // now (its callbacks and claim sizes are not changed). Decisions:
  //  - a spec without a gateway keeps the running one of that name as it
  //    is: its connections, circuit breaker state and rate window, with the
  //    new rate_per_s and max_in_flight;
  //  - a spec with a gateway (added, or changed: URL, credentials, type...)
  //    starts with a closed circuit (the change is usually the fix); one
  //    that replaces a gateway of the same name and channel keeps its rate
  //    window, since the provider still counts what was just sent;
  //  - a gateway left out (or replaced) takes no new sends; requests it
  //    has in flight finish (their results are recorded as any others)
  //    before it is destroyed.
  // Deliveries already leased go to the new chain; those of a channel left
  // without gateways are handed back to the store (they stay pending).
  void reconfigure(const DispatcherOptions& options, std::vector<GatewaySpec> gateways);

  // How many instances send through the same gateways' accounts (the
  // store's membership, store/cluster.h): each gateway's rate_per_s and
  // max_in_flight are divided among them. 1 (the default) is the whole.
  void set_share(int live);

  DispatcherStats stats() const;
  // Every configured gateway's circuit, in config order.
  std::vector<GatewayHealth> gateway_health() const;

 private:
  struct Lane;
  struct Slot;
  // One answered delivery until its result is recorded: the result, what it
  // keeps leased, and what the latency metrics need.
  struct Answered {
    store::DeliveryUpdate update;
    Lane* lane;
    int64_t report_id;
    UnixMs planned_at;
    UnixMs accepted_at;  // 0: not accepted
  };
  struct Fanout {  // a report's fan-out on one channel, while it runs
    UnixMs planned_at = 0;
    UnixMs last_accepted_at = 0;
    bool first_seen = false;
  };
  Dispatcher(boost::asio::io_context& io, std::unique_ptr<store::QueueJobs> queue,
             std::unique_ptr<Timers> timers, const Clock& clock, DispatcherOptions options,
             std::vector<GatewaySpec> gateways);
  void apply_share(Slot& slot) const;
  void pump();
  void claim(Lane& lane);
  void drain(Lane& lane);
  void expire_ready(Lane& lane);
  void on_outcomes(Lane& lane, Slot& slot, std::vector<store::ClaimedDelivery> batch,
                   std::vector<Outcome> outcomes);
  void flush();
  void observe_fanouts(const std::vector<Answered>& answered,
                       const std::vector<store::FanoutProgress>& progress);
  void release(std::vector<int64_t> ids, std::function<void()> done);
  void schedule_poll(Lane& lane, std::chrono::milliseconds after);
  void schedule_renewal();
  void maybe_finish_stop();
  std::chrono::milliseconds steady_now() const;

  boost::asio::io_context& io_;
  std::unique_ptr<store::QueueJobs> own_queue_;  // the StoreWorker constructor's
  std::unique_ptr<Timers> own_timers_;
  store::QueueJobs& queue_;
  Timers& timers_;
  const Clock& clock_;
  DispatcherOptions options_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // one per channel, in kAllChannels order
  // Gateways taken out by reconfigure() with requests still in flight;
  // destroyed after those are answered (at the next commit of results,
  // never from inside a gateway's own callback).
  std::vector<std::unique_ptr<Slot>> retired_;
  std::vector<Answered> unrecorded_;  // results waiting for the next flush, in answer order
  // Answered and not yet durable: unrecorded_ plus the flush being committed.
  std::size_t unrecorded_count_ = 0;
  std::map<std::pair<int64_t, Channel>, Fanout> fanouts_;
  int share_ = 1;  // instances sharing the gateways' accounts (set_share)
  bool flushing_ = false;
  bool pump_posted_ = false;
  bool stopping_ = false;
  bool started_ = false;  // start() was called: kick() may pump
  std::function<void()> stop_done_;
  std::unique_ptr<Timer> stop_timer_;   // the drain bound
  std::unique_ptr<Timer> flush_timer_;  // a failed write of results, tried again
  std::unique_ptr<Timer> renew_timer_;  // extends the leases of what is held
  std::unordered_set<int64_t> leased_;  // held by this dispatcher: claimed, not yet recorded
  std::mt19937_64 rng_{std::random_device{}()};
  DispatcherStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tocsin::delivery
