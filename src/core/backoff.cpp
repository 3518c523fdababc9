#include "core/backoff.h"

#include <algorithm>
#include <cmath>

namespace tocsin {

Millis retry_delay(const BackoffPolicy& policy, int attempt, double unit_random,
                   std::optional<Millis> retry_after) {
  int shift = std::clamp(attempt - 1, 0, 30);
  double ceiling = std::min(static_cast<double>(policy.cap.count()),
                            static_cast<double>(policy.base.count()) * std::ldexp(1.0, shift));
  Millis jittered{static_cast<int64_t>(std::clamp(unit_random, 0.0, 1.0) * ceiling)};
  if (retry_after && *retry_after > jittered) return *retry_after;
  return jittered;
}

TokenBucket::TokenBucket(double rate_per_s, double burst, Millis now)
    : rate_(rate_per_s), burst_(std::max(burst, 1.0)), tokens_(std::max(burst, 1.0)), last_(now) {}

void TokenBucket::refill(Millis now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>((now - last_).count()) / 1000.0);
    last_ = now;
  }
}

bool TokenBucket::try_take(double n, Millis now) {
  refill(now);
  // A request costing more than the whole bucket may go once the bucket is full.
  double need = std::min(n, burst_);
  if (tokens_ + 1e-9 < need) return false;
  tokens_ -= n;
  return true;
}

Millis TokenBucket::wait_for(double n, Millis now) {
  refill(now);
  double need = std::min(n, burst_);
  if (tokens_ + 1e-9 >= need) return Millis{0};
  return Millis{static_cast<int64_t>(std::ceil((need - tokens_) * 1000.0 / rate_))};
}

void TokenBucket::set_rate(double rate_per_s, double burst) {
  rate_ = rate_per_s;
  burst_ = std::max(burst, 1.0);
  tokens_ = std::min(tokens_, burst_);
}

}  // namespace tocsin
