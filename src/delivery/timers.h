// The dispatcher's time seam: a steady clock (breakers, rate windows) and
// one-shot timers (polls, pacing waits, the drain bound, write retries).
// AsioTimers runs them on the io_context's steady_timers; tests use a fake
// whose time they advance by hand (tests/support/fake_time.h), so the rate
// window, backoff, cooldowns and deadlines run in virtual time.
//
// Why an interface and not asio's basic_waitable_timer over a fake clock
// with its own wait_traits: the timer type would be a template parameter
// (the Dispatcher a template, or two builds of it), and the io_context
// would still wait in real time for a fake clock to move. A Timer here is
// a callback at a time, which is all the dispatcher needs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

namespace tocsin::delivery {

class Timer {
 public:
  // Destroying a timer cancels it.
  virtual ~Timer() = default;
  // Calls `fire` once, `after` from now, on the io thread; replaces a wait
  // already set. A cancelled or replaced wait never fires.
  virtual void start(std::chrono::milliseconds after, std::function<void()> fire) = 0;
  virtual void cancel() = 0;
};

class Timers {
 public:
  virtual ~Timers() = default;
  // Steady time (not the wall clock): only differences mean anything.
  virtual std::chrono::milliseconds now() const = 0;
  virtual std::unique_ptr<Timer> timer() = 0;
};

// Steady time and timers of the io_context.
class AsioTimers final : public Timers {
 public:
  explicit AsioTimers(boost::asio::io_context& io) : io_(io) {}
  std::chrono::milliseconds now() const override;
  std::unique_ptr<Timer> timer() override;

 private:
  boost::asio::io_context& io_;
};

}  // namespace tocsin::delivery
