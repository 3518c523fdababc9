// Flow-control arithmetic for delivery: retry delays and token buckets.
// Pure: time and randomness are arguments.
#pragma once

#include <chrono>
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

// A token bucket: `rate` tokens per second, holding at most `burst`.
// Time is a monotonic Millis passed by the caller.
class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double burst, Millis now);

  // Takes `n` tokens if available now.
  bool try_take(double n, Millis now);
  // How long until `n` tokens will be available (0 when they are now).
  Millis wait_for(double n, Millis now);
  void set_rate(double rate_per_s, double burst);
  double rate() const { return rate_; }

 private:
  void refill(Millis now);
  double rate_;
  double burst_;
  double tokens_;
  Millis last_;
};

}  // namespace tocsin
