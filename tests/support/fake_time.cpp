// FakeTime: virtual time and timers for the dispatcher's unit tests.
#include "support/fake_time.h"

#include <optional>
#include <utility>

namespace tocsin::test {

class FakeTimer final : public delivery::Timer {
 public:
  explicit FakeTimer(FakeTime& time) : time_(time) {}
  ~FakeTimer() override { cancel(); }
  void start(std::chrono::milliseconds after, std::function<void()> fire) override {
    cancel();
    key_ = FakeTime::Key{time_.steady_ + std::max(after, std::chrono::milliseconds(0)), ++time_.seq_};
    time_.due_.emplace(*key_, [this, fire = std::move(fire)] {
      key_.reset();
      fire();
    });
  }
  void cancel() override {
    if (key_) time_.due_.erase(*key_);
    key_.reset();
  }

 private:
  FakeTime& time_;
  std::optional<FakeTime::Key> key_;
};

FakeTime::~FakeTime() = default;

std::unique_ptr<delivery::Timer> FakeTime::timer() { return std::make_unique<FakeTimer>(*this); }

void FakeTime::settle() {
  for (;;) {
    io_.restart();
    if (io_.poll() == 0) return;
  }
}

void FakeTime::move_to(std::chrono::milliseconds t) {
  if (t <= steady_) return;
  FakeClock::advance(t - steady_);
  steady_ = t;
}

bool FakeTime::fire_next(std::chrono::milliseconds until) {
  if (due_.empty() || due_.begin()->first.at > until) return false;
  auto node = due_.extract(due_.begin());
  move_to(node.key().at);
  node.mapped()();
  settle();
  return true;
}

void FakeTime::advance(std::chrono::milliseconds d) {
  settle();
  auto target = steady_ + d;
  while (fire_next(target)) {
  }
  move_to(target);
  settle();
}

bool FakeTime::run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  settle();
  auto end = steady_ + limit;
  while (!done()) {
    if (!fire_next(end)) return done();
  }
  return true;
}

}  // namespace tocsin::test
