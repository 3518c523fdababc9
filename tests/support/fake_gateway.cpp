// FakeGateway: scripted outcomes for the dispatcher's unit tests.
#include "support/fake_gateway.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>

namespace tocsin::test {

using delivery::Outcome;
using delivery::OutcomeKind;

Outcome accepted(const std::string& provider_id) {
  return Outcome{.kind = OutcomeKind::kAccepted, .provider_id = provider_id};
}
Outcome transient(const std::string& error) { return Outcome{.kind = OutcomeKind::kRetry, .error = error}; }
Outcome throttled(std::optional<std::chrono::milliseconds> retry_after) {
  return Outcome{.kind = OutcomeKind::kThrottled, .retry_after = retry_after, .error = "http 429"};
}
Outcome permanent(const std::string& error) { return Outcome{.kind = OutcomeKind::kFailed, .error = error}; }
Outcome rejected_credentials() { return Outcome{.kind = OutcomeKind::kRetry, .error = "http 401"}; }

FakeGateway::FakeGateway(std::string name, Channel channel, FakeTime& time, std::size_t max_batch)
    : name_(std::move(name)), channel_(channel), time_(time), max_batch_(max_batch),
      script_([](const delivery::Outgoing&) { return accepted(); }) {}

std::size_t FakeGateway::messages() const {
  std::size_t n = 0;
  for (const auto& r : requests_) n += r.batch.size();
  return n;
}

void FakeGateway::send(std::vector<delivery::Outgoing> batch,
                       std::function<void(std::vector<Outcome>)> done) {
  requests_.push_back({time_.now(), batch});
  max_concurrent_ = std::max(max_concurrent_, ++in_flight_);
  Pending p{std::move(batch), std::move(done)};
  if (hold_) {
    held_.push_back(std::move(p));
    return;
  }
  // Answered later, never from inside send(), as a real gateway does.
  auto t = time_.timer();
  auto shared = std::make_shared<Pending>(std::move(p));
  t->start(latency_, [this, shared] { complete(std::move(*shared)); });
  timers_.push_back(std::move(t));
}

std::size_t FakeGateway::release() {
  std::size_t n = 0;
  while (!held_.empty()) {
    Pending p = std::move(held_.front());
    held_.pop_front();
    complete(std::move(p));
    ++n;
  }
  return n;
}

void FakeGateway::complete(Pending p) {
  std::vector<Outcome> out;
  for (const auto& m : p.batch) out.push_back(script_(m));
  --in_flight_;
  p.done(std::move(out));
}

}  // namespace tocsin::test
