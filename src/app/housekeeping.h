// The daemon's background chores, each on its own timer on the io thread and
// each a small store job, so reports and sends queued meanwhile go between
// them: recovery and purges at start, hourly purges (idempotency answers,
// audit, provider events, join prompts), the retention purge of old
// deliveries, due escalation timers each second, re-encryption under a new
// active key, and the summary line of refused requests (an attacker's flood
// is counted, never logged line by line).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "app/config.h"
#include "app/metrics.h"
#include "core/clock.h"
#include "core/refusals.h"
#include "store/store_worker.h"

namespace tocsin::app {

class Housekeeping {
 public:
  struct Parts {
    boost::asio::io_context& io;
    store::StoreWorker& worker;
    const Clock& clock;
    Metrics& metrics;
    std::function<std::shared_ptr<const ActiveConfig>()> config;  // the running one
    std::function<void()> deliveries_planned;                     // wakes the dispatcher
  };
  explicit Housekeeping(Parts parts);

  // At start, on the store thread before anything is served: releases the
  // leases of a previous run (one daemon per database, so every lease left
  // belongs to a run that ended abruptly) and purges what has expired.
  // Returns the number of deliveries released.
  static int64_t recover(store::Store& s, const Config& c, UnixMs now);

  void start();        // the timers, a first retention purge and re-encryption pass
  void stop_timers();  // at the drain: no more purges or escalations
  void reencrypt();    // a pass under the active key (after a reload changed it)
  // A refused request: counted, and summarised by the next summary line.
  void refused(std::string_view route, int status);
  void log_refusals();  // what was refused since the last summary, if anything

 private:
  void schedule_purges();
  void schedule_escalations();
  void schedule_refusal_summary();
  void purge_expired(int64_t done_so_far);
  void reencrypt_from(int64_t done_so_far);

  Parts p_;
  boost::asio::steady_timer purges_;
  boost::asio::steady_timer escalations_;
  boost::asio::steady_timer refusal_timer_;
  RefusalTally refusals_;
  std::chrono::steady_clock::time_point last_refusal_summary_ = std::chrono::steady_clock::now();
  bool reencrypting_ = false;  // a re-encryption pass is under way
};

}  // namespace tocsin::app
