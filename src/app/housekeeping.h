// The daemon's background chores, each on its own timer on the io thread and
// each a small store job, so reports and sends queued meanwhile go between
// them: recovery and purges at start, hourly purges (idempotency answers,
// audit, provider events, join prompts), the retention purge of old
// deliveries, due escalation timers each second, re-encryption under a new
// active key, and the summary line of refused requests (an attacker's flood
// is counted, never logged line by line). With several instances on one
// store (store/cluster.h) it also keeps this one's heartbeat, hands the
// live count to the dispatcher (each takes its share of the gateways'
// limits), and runs the once-only chores (purges, escalation timers,
// re-encryption) only while this instance leads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "app/config.h"
#include "app/metrics.h"
#include "core/clock.h"
#include "core/refusals.h"
#include "store/store_worker.h"

namespace tocsin::app {

class Housekeeping {
 public:
  // A heartbeat each second, good for five: an instance that dies gives its
  // share of the gateways' limits back, and its leadership, within 5 s.
  static constexpr std::chrono::milliseconds kHeartbeat{1'000};
  static constexpr int64_t kHeartbeatLifetimeMs = 5'000;

  struct Parts {
    boost::asio::io_context& io;
    store::StoreWorker& worker;
    const Clock& clock;
    Metrics& metrics;
    std::function<std::shared_ptr<const ActiveConfig>()> config;  // the running one
    std::function<void()> deliveries_planned;                     // wakes the dispatcher
    std::string instance;                 // this process's id in the store's membership
    std::function<void(int live)> share;  // instances alive (the dispatcher's share)
  };
  explicit Housekeeping(Parts parts);

  // At start, on the store thread before anything is served: releases the
  // leases of a previous run (one daemon per database, so every lease left
  // belongs to a run that ended abruptly) and purges what has expired.
  // Returns the number of deliveries released.
  static int64_t recover(store::Store& s, const Config& c, UnixMs now);

  // The first heartbeat, on the store thread before anything is sent: the
  // membership this instance starts with.
  store::Membership join(store::Store& s);
  void start();        // the timers, a first retention purge and re-encryption pass
  void stop_timers();  // at the drain: no more purges, escalations or heartbeats
  // After the drain, on the store thread: the others take this share back.
  void leave(store::Store& s);
  void reencrypt();    // a pass under the active key (after a reload changed it)
  // A refused request: counted, and summarised by the next summary line.
  void refused(std::string_view route, int status);
  // A signed request answered without changing anything (see Ignored):
  // counted, and in the same periodic summary line.
  void ignored(Ignored why);
  void log_refusals();  // what was refused since the last summary, if anything

 private:
  void schedule_heartbeat();
  void apply(const store::Membership& m);
  void schedule_purges();
  void schedule_escalations();
  void schedule_refusal_summary();
  void purge_expired(int64_t done_so_far);
  void reencrypt_from(int64_t done_so_far);

  Parts p_;
  boost::asio::steady_timer purges_;
  boost::asio::steady_timer escalations_;
  boost::asio::steady_timer refusal_timer_;
  boost::asio::steady_timer heartbeat_;
  store::Membership membership_;
  RefusalTally refusals_;
  std::chrono::steady_clock::time_point last_refusal_summary_ = std::chrono::steady_clock::now();
  bool reencrypting_ = false;  // a re-encryption pass is under way
};

}  // namespace tocsin::app
