// AsioTimers: the dispatcher's timers as asio steady_timers.
#include "delivery/timers.h"

#include <boost/asio/steady_timer.hpp>

namespace tocsin::delivery {

namespace {

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(boost::asio::io_context& io) : timer_(io) {}
  ~AsioTimer() override { cancel(); }

  void start(std::chrono::milliseconds after, std::function<void()> fire) override {
    // A wait that expired just before cancel() still gets a success code
    // from asio: the generation tells a current wait from a stale one.
    std::uint64_t gen = ++*generation_;
    timer_.expires_after(after);
    timer_.async_wait([fire = std::move(fire), gen, current = generation_](
                          boost::system::error_code ec) {
      if (!ec && *current == gen) fire();
    });
  }
  void cancel() override {
    ++*generation_;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  std::shared_ptr<std::uint64_t> generation_ = std::make_shared<std::uint64_t>(0);
};

}  // namespace

std::chrono::milliseconds AsioTimers::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

std::unique_ptr<Timer> AsioTimers::timer() { return std::make_unique<AsioTimer>(io_); }

}  // namespace tocsin::delivery
