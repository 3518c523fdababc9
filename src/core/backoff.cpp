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

RateWindow::RateWindow(double rate_per_s, Millis margin) : margin_(margin) { set_rate(rate_per_s); }

void RateWindow::set_rate(double rate_per_s) {
  // Below one per second the window grows so that it holds one unit.
  window_ = rate_per_s >= 1 ? Millis(1000) : Millis(static_cast<int64_t>(std::ceil(1000.0 / rate_per_s)));
  capacity_ = std::max(1.0, rate_per_s * static_cast<double>(window_.count()) / 1000.0);
}

void RateWindow::expire(Millis now) {
  while (!taken_.empty() && taken_.front().first + window_ + margin_ <= now) {
    used_ -= taken_.front().second;
    taken_.pop_front();
  }
  if (taken_.empty()) used_ = 0;  // no drift from floating-point sums
}

bool RateWindow::try_take(double cost, Millis now) {
  expire(now);
  if (used_ + in_flight_ + cost > capacity_ + 1e-9 && !empty()) return false;
  in_flight_ += cost;
  return true;
}

void RateWindow::settle(double cost, Millis now) {
  in_flight_ = std::max(0.0, in_flight_ - cost);
  if (in_flight_ <= 1e-9) in_flight_ = 0;  // no drift from floating-point sums
  // Answers arrive in time order on the dispatcher's clock, so taken_ stays sorted.
  Millis when = taken_.empty() ? now : std::max(now, taken_.back().first);
  taken_.emplace_back(when, cost);
  used_ += cost;
}

Millis RateWindow::wait_for(double cost, Millis now) {
  expire(now);
  if (used_ + in_flight_ + cost <= capacity_ + 1e-9 || empty()) return Millis(0);
  double freed = 0;
  for (const auto& [when, c] : taken_) {
    freed += c;
    if (used_ - freed + in_flight_ + cost <= capacity_ + 1e-9 ||
        (freed >= used_ - 1e-9 && in_flight_ <= 1e-9))
      return std::max(Millis(1), when + window_ + margin_ - now);
  }
  // Only units in flight stand in the way: answered now, they free a window from now.
  return window_ + margin_;
}

}  // namespace tocsin
