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
// (longer for rates below one per second), plus a `margin` for the latency
// between our send and the provider's clock. A token bucket lets rate+burst
// through in some second; this never does, so tocsin is never the cause of
// a provider's 429.
class RateWindow {
 public:
  RateWindow(double rate_per_s, Millis margin = Millis(50));

  // Takes `cost` units at `now` if the window has room. A cost above the
  // whole window's capacity passes alone, in an empty window.
  bool try_take(double cost, Millis now);
  // How long until `cost` units would fit (0 when they fit now).
  Millis wait_for(double cost, Millis now);
  void set_rate(double rate_per_s);

 private:
  void expire(Millis now);
  double capacity_;
  Millis window_;
  Millis margin_;
  std::deque<std::pair<Millis, double>> taken_;  // (when, cost), oldest first
  double used_ = 0;
};

}  // namespace tocsin
