// Flow-control arithmetic for delivery: retry delays and rate windows.
// Pure: time and randomness are arguments.
#pragma once

#include <chrono>
#include <deque>
#include <utility>
#include <optional>

namespace tocsin {

using Millis = std::chrono::milliseconds;

struct BackoffPolicy {
  Millis base{500};   // ceiling of the first retry's delay
  Millis cap{60'000};  // no delay is longer (except a provider's Retry-After)
};

// Delay before retry number `attempt` (1 = first retry): "full jitter",
// uniform in [0, min(cap, base * 2^(attempt-1))] scaled by `unit_random` in
// [0, 1), and never less than the provider's `retry_after`.
Millis retry_delay(const BackoffPolicy& policy, int attempt, double unit_random,
                   std::optional<Millis> retry_after = std::nullopt);

// A sliding-window rate limit, counted the way providers count: at most
// `rate_per_s` units (SMS segments, requests) in any window of one second
// (longer for rates below one per second) of the provider's clock. A token
// bucket lets rate+burst through in some second; this never does, so tocsin
// is never the cause of a provider's 429.
//
// The provider counts a request when it arrives, which is somewhere between
// our send and its answer; the latency between (a connection queue, a
// loaded machine) varies from request to request. So a request holds its
// units from try_take() until settle(), and settle() dates them at the
// answer: the request that reuses them is sent a window after the provider
// can have counted them, whatever the latencies. The cost is throughput at
// the rate over (window + latency), the price of never being refused.
// `margin` is added to the window for a provider's clock granularity.
class RateWindow {
 public:
  explicit RateWindow(double rate_per_s, Millis margin = Millis(10));

  // Reserves `cost` units for a request about to be sent, if the window
  // has room. A cost above the whole window's capacity passes alone, in an
  // empty window (nothing in it, nothing in flight).
  bool try_take(double cost, Millis now);
  // The request that took `cost` units was answered (or failed) at `now`.
  void settle(double cost, Millis now);
  // The earliest time from `now` at which `cost` units may fit (0 when they
  // fit now). Units still in flight free a window after their answer, so
  // the wait they cause is a lower bound: ask again when it has passed.
  Millis wait_for(double cost, Millis now);
  void set_rate(double rate_per_s);

 private:
  void expire(Millis now);
  bool empty() const { return taken_.empty() && in_flight_ <= 1e-9; }
  double capacity_;
  Millis window_;
  Millis margin_;
  std::deque<std::pair<Millis, double>> taken_;  // (answered at, cost), oldest first
  double used_ = 0;                              // sum of taken_
  double in_flight_ = 0;                         // reserved, not yet answered
};

}  // namespace tocsin
