// Virtual time for tests: FakeClock is a Clock (wall time) a test sets or
// moves; FakeTime adds the dispatcher's Timers (steady time and one-shot
// timers) on the same virtual time, and moves it by running every timer due
// on the way, in time order, with the io_context's ready work run after
// each (what a timer starts — a claim, a send, a commit — happens before
// time moves on). Nothing waits in real time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "core/clock.h"
#include "delivery/timers.h"

namespace tocsin::test {

class FakeClock : public Clock {
 public:
  explicit FakeClock(UnixMs start = 1'700'000'000'000) : now_(start) {}
  UnixMs now_ms() const override { return now_; }
  void set(UnixMs now) { now_ = now; }
  void advance(std::chrono::milliseconds d) { now_ += d.count(); }

 protected:
  UnixMs now_;
};

class FakeTime final : public FakeClock, public delivery::Timers {
 public:
  explicit FakeTime(boost::asio::io_context& io) : io_(io) {}
  ~FakeTime() override;

  std::chrono::milliseconds now() const override { return steady_; }
  std::unique_ptr<delivery::Timer> timer() override;

  // Runs what is ready on the io_context (posted work, completions).
  void settle();
  // Moves time forward by `d`, firing the timers due on the way.
  void advance(std::chrono::milliseconds d);
  // Moves time timer by timer until `done()` holds; false if it does not
  // within `limit` (or nothing is left to happen).
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit);
  std::size_t pending_timers() const { return due_.size(); }

 private:
  friend class FakeTimer;
  struct Key {
    std::chrono::milliseconds at;
    uint64_t seq;  // timers due at one time fire in the order they were set
    bool operator<(const Key& o) const { return at != o.at ? at < o.at : seq < o.seq; }
  };
  void move_to(std::chrono::milliseconds t);
  bool fire_next(std::chrono::milliseconds until);

  boost::asio::io_context& io_;
  std::chrono::milliseconds steady_{1'000'000};
  uint64_t seq_ = 0;
  std::map<Key, std::function<void()>> due_;
};

}  // namespace tocsin::test
