// The delivery loop. For each channel it leases due deliveries from the
// store, sends them through the channel's first healthy gateway (each has a
// circuit breaker; the config's order is the failover chain) under its rate
// (a sliding window, as providers count) and concurrency cap, and writes
// results back in batches.
// A delivery stays leased in the store until its result is recorded, so a
// crash at any moment loses nothing: on restart the store releases leases
// and every delivery not recorded as accepted is sent again (at least once).
// Duplicates after a crash are bounded by max_in_flight requests (of
// max_batch messages) per gateway: a request's slot is freed only once its
// result is recorded.
//
// Runs entirely on the io_context's thread; not thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "core/backoff.h"
#include "core/breaker.h"
#include "core/clock.h"
#include "delivery/gateway.h"
#include "store/store_worker.h"

namespace tocsin::delivery {

struct DispatcherOptions {
  int breaker_threshold = 5;                     // consecutive failures that open a gateway's circuit
  std::chrono::milliseconds breaker_cooldown{10'000};  // before an open circuit lets a probe through
  std::chrono::milliseconds lease{120'000};      // how long a claimed delivery stays ours
  BackoffPolicy backoff;                         // retry delays
  std::size_t max_claim = 5000;                  // deliveries leased per store round trip
  std::chrono::milliseconds idle_poll{1'000};    // look for due retries at least this often
  // Told each decided result, on the io thread: kSent, kFailed, kExpired, or
  // kPending for a retry; `gateway` is empty for a delivery that expired
  // before it was sent (metrics).
  std::function<void(std::string_view gateway, Channel channel, DeliveryState state)> on_result;
};

struct GatewaySpec {
  std::unique_ptr<Gateway> gateway;
  double rate_per_s = 10;
  int max_in_flight = 16;
};

struct DispatcherStats {
  int64_t sent = 0;       // accepted by a gateway
  int64_t retried = 0;    // transient failures, scheduled again
  int64_t failed = 0;     // permanent failures
  int64_t expired = 0;    // deadline passed
  int64_t in_flight = 0;  // requests sent whose results are not yet recorded
  int64_t held = 0;       // deliveries leased and not yet recorded
};

class Dispatcher {
 public:
  // `gateways` in config order: the first of each channel is its primary.
  Dispatcher(boost::asio::io_context& io, store::StoreWorker& store, const Clock& clock,
             DispatcherOptions options, std::vector<GatewaySpec> gateways);
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

  DispatcherStats stats() const;

 private:
  struct Lane;
  void pump();
  void claim(Lane& lane);
  void drain(Lane& lane);
  void on_outcomes(Lane& lane, std::size_t gateway, std::vector<store::ClaimedDelivery> batch,
                   std::vector<Outcome> outcomes);
  void flush();
  void schedule_poll(Lane& lane, std::chrono::milliseconds after);
  void maybe_finish_stop();
  std::chrono::milliseconds steady_now() const;

  boost::asio::io_context& io_;
  store::StoreWorker& store_;
  const Clock& clock_;
  DispatcherOptions options_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // one per channel that has gateways
  std::vector<store::DeliveryUpdate> unrecorded_;  // results waiting for the next flush
  struct Hold {  // what one answered request keeps until its results are recorded
    Lane* lane;
    std::size_t slot;
    std::size_t deliveries;
  };
  std::vector<Hold> unrecorded_holds_;
  bool flushing_ = false;
  bool pump_posted_ = false;
  bool stopping_ = false;
  std::function<void()> stop_done_;
  std::unique_ptr<boost::asio::steady_timer> stop_timer_;
  std::mt19937_64 rng_{std::random_device{}()};
  DispatcherStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tocsin::delivery
