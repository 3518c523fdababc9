// A circuit breaker per gateway: after `threshold` consecutive failures it
// opens and the channel's traffic moves to the next gateway of its chain;
// after `cooldown` one probe request is let through (half-open); success
// closes it and traffic returns. Pure: time is an argument.
#pragma once

#include <chrono>

namespace tocsin {

class CircuitBreaker {
 public:
  using Millis = std::chrono::milliseconds;
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(int threshold = 5, Millis cooldown = Millis(10'000))
      : threshold_(threshold), cooldown_(cooldown) {}

  // New limits (a config reload); the state so far is kept.
  void set_limits(int threshold, Millis cooldown) {
    threshold_ = threshold;
    cooldown_ = cooldown;
  }
  // Whether a request may go to this gateway now. Half-open allows one probe
  // at a time.
  bool allows(Millis now) const {
    switch (state(now)) {
      case State::kClosed: return true;
      case State::kOpen: return false;
      case State::kHalfOpen: return !probing_;
    }
    return false;
  }
  // A request was sent (it becomes the probe when half-open).
  void on_request(Millis now) {
    if (state(now) == State::kHalfOpen) probing_ = true;
  }
  void on_success() {
    failures_ = 0;
    open_ = probing_ = false;
  }
  // Returns true when this failure opened the breaker.
  bool on_failure(Millis now) {
    bool was_open = open_;
    probing_ = false;
    if (++failures_ >= threshold_ || open_) {
      open_ = true;
      opened_at_ = now;
    }
    return open_ && !was_open;
  }
  State state(Millis now) const {
    if (!open_) return State::kClosed;
    return now - opened_at_ >= cooldown_ ? State::kHalfOpen : State::kOpen;
  }

 private:
  int threshold_;
  Millis cooldown_;
  int failures_ = 0;  // consecutive
  bool open_ = false;
  bool probing_ = false;
  Millis opened_at_{0};
};

}  // namespace tocsin
