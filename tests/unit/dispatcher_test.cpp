// The Dispatcher alone, deterministically: an in-memory queue
// (support/memory_queue.h), scripted gateways (support/fake_gateway.h) and
// virtual time (support/fake_time.h). No socket, no thread, no sleep: each
// case moves time by hand and checks what was sent when, and what the
// queue recorded.
#include "delivery/dispatcher.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/fake_gateway.h"
#include "support/fake_time.h"
#include "support/memory_queue.h"

using namespace tocsin;
using namespace tocsin::test;
using delivery::Dispatcher;
using delivery::DispatcherOptions;
using delivery::GatewaySpec;
using std::chrono::milliseconds;
using std::chrono::seconds;
using State = CircuitBreaker::State;

namespace {

constexpr int64_t kMinute = 60'000;

struct Rig {
  boost::asio::io_context io;
  FakeTime time{io};
  MemoryQueue queue{io};
  DispatcherOptions options;
  std::vector<GatewaySpec> specs;
  std::unique_ptr<Dispatcher> dispatcher;
  int share = 1;  // instances sharing the gateways (Dispatcher::set_share) from the start

  Rig() { options.idle_poll = milliseconds(1'000); }
  ~Rig() {
    dispatcher.reset();
    time.settle();
  }

  FakeGateway& gateway(const std::string& name, double rate_per_s = 100, int max_in_flight = 16,
                       Channel channel = Channel::kSms) {
    auto g = std::make_unique<FakeGateway>(name, channel, time);
    FakeGateway& ref = *g;
    specs.push_back(GatewaySpec{name, std::move(g), rate_per_s, max_in_flight});
    return ref;
  }
  void start() {
    dispatcher = std::make_unique<Dispatcher>(io, queue, time, time, options, std::move(specs));
    dispatcher->set_share(share);
    dispatcher->start();
    time.settle();
  }
  std::vector<int64_t> add(int n, int64_t deadline_ms = 30 * kMinute, Channel ch = Channel::kSms) {
    auto ids = queue.add(n, ch, time.now_ms(), time.now_ms() + deadline_ms);
    if (dispatcher) dispatcher->kick();
    return ids;
  }
  State health(const std::string& name) const {
    for (const auto& h : dispatcher->gateway_health())
      if (h.name == name) return h.state;
    FAIL("no gateway " << name);
    return State::kClosed;
  }
  bool settled_sent(int64_t n, milliseconds limit = milliseconds(600'000)) {
    return time.run_until([&] { return queue.count(DeliveryState::kSent) == n; }, limit);
  }
};

// The most requests in any window of `window` starting at a request.
std::size_t most_in_window(const std::vector<SentRequest>& r, milliseconds window) {
  std::size_t most = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    std::size_t n = 0;
    for (std::size_t j = i; j < r.size() && r[j].at < r[i].at + window; ++j) n += r[j].batch.size();
    most = std::max(most, n);
  }
  return most;
}

}  // namespace

TEST_CASE("dispatcher: no more than rate_per_s sends in any second, resuming as the window slides",
          "[dispatcher]") {
  Rig rig;
  auto& g = rig.gateway("twilio", 5);
  rig.add(23);
  rig.start();
  rig.time.advance(milliseconds(0));
  CHECK(g.messages() == 5);  // the first window is full at once
  rig.time.advance(milliseconds(900));
  CHECK(g.messages() == 5);  // and stays full until it slides
  rig.time.advance(milliseconds(200));
  CHECK(g.messages() == 10);
  REQUIRE(rig.settled_sent(23, milliseconds(10'000)));
  CHECK(most_in_window(g.requests(), milliseconds(1'000)) == 5);
  // 23 at 5 per second: the last goes out in the fifth window, not earlier.
  CHECK(g.requests().back().at - g.requests().front().at >= milliseconds(4'000));
  CHECK(g.requests().back().at - g.requests().front().at < milliseconds(5'000));
  CHECK(rig.queue.duplicate_records() == 0);
}

TEST_CASE("dispatcher: transient failures are retried after growing, jittered delays",
          "[dispatcher]") {
  Rig rig;
  rig.options.backoff = BackoffPolicy{milliseconds(1'000), milliseconds(8'000)};
  auto& g = rig.gateway("twilio");
  int calls = 0;
  g.answer([&](const delivery::Outgoing&) { return ++calls <= 4 ? transient() : accepted(); });
  auto id = rig.add(1)[0];
  rig.start();
  REQUIRE(rig.settled_sent(1, milliseconds(60'000)));
  REQUIRE(g.requests().size() == 5);
  CHECK(rig.queue.row(id).attempts == 5);
  CHECK(rig.dispatcher->stats().retried == 4);
  // Retry k waits at most base * 2^(k-1) (full jitter), capped, plus the
  // queue's poll (idle_poll bounds how late a due retry is seen... a due
  // time is looked at when it comes: within 5 ms).
  const milliseconds ceiling[] = {milliseconds(1'000), milliseconds(2'000), milliseconds(4'000),
                                  milliseconds(8'000)};
  for (std::size_t k = 1; k < g.requests().size(); ++k) {
    auto gap = g.requests()[k].at - g.requests()[k - 1].at;
    INFO("retry " << k << " after " << gap.count() << " ms");
    CHECK(gap <= ceiling[k - 1] + milliseconds(10));
  }
}

TEST_CASE("dispatcher: a provider's Retry-After is honoured, and a 429 keeps the circuit closed",
          "[dispatcher]") {
  Rig rig;
  rig.options.breaker_threshold = 1;  // one failure would open it
  rig.options.backoff = BackoffPolicy{milliseconds(100), milliseconds(100)};
  auto& g = rig.gateway("twilio");
  int calls = 0;
  g.answer([&](const delivery::Outgoing&) {
    return ++calls <= 2 ? throttled(milliseconds(3'000)) : accepted();
  });
  rig.add(1);
  rig.start();
  rig.time.advance(milliseconds(0));
  REQUIRE(g.requests().size() == 1);
  CHECK(rig.health("twilio") == State::kClosed);
  rig.time.advance(milliseconds(2'990));
  CHECK(g.requests().size() == 1);  // not before the provider said
  REQUIRE(rig.settled_sent(1, milliseconds(20'000)));
  REQUIRE(g.requests().size() == 3);
  CHECK(g.requests()[1].at - g.requests()[0].at >= milliseconds(3'000));
  CHECK(g.requests()[2].at - g.requests()[1].at >= milliseconds(3'000));
  CHECK(rig.health("twilio") == State::kClosed);
  CHECK(rig.dispatcher->stats().retried == 2);
}

TEST_CASE("dispatcher: breaker opens after the threshold, traffic fails over, one probe after "
          "the cooldown, closed again on success",
          "[dispatcher]") {
  Rig rig;
  rig.options.breaker_threshold = 3;
  rig.options.breaker_cooldown = milliseconds(10'000);
  auto& primary = rig.gateway("primary", 100, 1);
  auto& backup = rig.gateway("backup", 100, 1);
  bool primary_up = false;
  primary.answer([&](const delivery::Outgoing&) {
    return primary_up ? accepted() : rejected_credentials();
  });
  rig.add(10);
  rig.start();
  REQUIRE(rig.settled_sent(10, milliseconds(5'000)));
  CHECK(primary.requests().size() == 3);  // the threshold, then no more
  CHECK(backup.messages() == 10);         // including the three that failed on the primary
  CHECK(rig.health("primary") == State::kOpen);
  CHECK(rig.health("backup") == State::kClosed);

  // Past the cooldown: one probe to the primary; the rest keeps flowing to
  // the backup while it is out.
  rig.time.advance(milliseconds(10'000));
  CHECK(rig.health("primary") == State::kHalfOpen);
  primary_up = true;
  primary.hold(true);
  rig.add(6);
  rig.time.advance(milliseconds(0));
  CHECK(primary.requests().size() == 4);
  CHECK(primary.held() == 1);
  REQUIRE(rig.settled_sent(15, milliseconds(5'000)));
  CHECK(backup.messages() == 15);
  CHECK(primary.release() == 1);
  rig.time.advance(milliseconds(0));
  CHECK(rig.queue.count(DeliveryState::kSent) == 16);
  CHECK(rig.health("primary") == State::kClosed);

  // Closed: the primary takes the traffic again.
  primary.hold(false);
  rig.add(5);
  REQUIRE(rig.settled_sent(21, milliseconds(5'000)));
  CHECK(primary.messages() == 9);
  CHECK(backup.messages() == 15);
}

TEST_CASE("dispatcher: a delivery whose retry would pass its deadline expires, and one found "
          "past it is never sent",
          "[dispatcher]") {
  Rig rig;
  rig.options.backoff = BackoffPolicy{milliseconds(2'000), milliseconds(2'000)};
  rig.options.breaker_threshold = 1'000;  // the circuit stays closed (see the next case)
  auto& g = rig.gateway("twilio");
  g.answer([](const delivery::Outgoing&) { return transient(); });
  auto late = rig.queue.add(3, Channel::kSms, rig.time.now_ms() - 5'000, rig.time.now_ms() - 1);
  auto id = rig.add(1, 10'000)[0];
  UnixMs deadline = rig.time.now_ms() + 10'000;
  int expired_unsent = 0;
  rig.options.on_result = [&](std::string_view gw, Channel, DeliveryState s) {
    if (gw.empty() && s == DeliveryState::kExpired) ++expired_unsent;
  };
  rig.start();
  REQUIRE(rig.time.run_until([&] { return rig.queue.count(DeliveryState::kExpired) == 4; },
                             milliseconds(60'000)));
  for (int64_t l : late) CHECK(rig.queue.row(l).attempts == 0);
  CHECK(expired_unsent == 3);
  CHECK(rig.queue.row(id).state == DeliveryState::kExpired);
  CHECK(rig.queue.row(id).error == "http 503 (deadline passed)");
  CHECK(rig.dispatcher->stats().expired == 4);
  for (const auto& r : g.requests()) {
    INFO("request at " << (r.at - g.requests().front().at).count() << " ms");
    CHECK(r.batch.size() == 1);
    CHECK(r.batch[0].delivery_id == id);
    CHECK(rig.time.now_ms() - (rig.time.now() - r.at).count() <= deadline);
  }
  std::size_t tries = g.requests().size();
  CHECK(tries >= 2);
  rig.time.advance(milliseconds(60'000));
  CHECK(g.requests().size() == tries);  // nothing after it ended
}

TEST_CASE("dispatcher: deliveries leased while every circuit is open expire at their deadline, "
          "unsent",
          "[dispatcher]") {
  Rig rig;
  rig.options.breaker_threshold = 1;
  rig.options.breaker_cooldown = milliseconds(60'000);
  auto& g = rig.gateway("twilio", 100, 1);
  g.answer([](const delivery::Outgoing&) { return transient(); });
  rig.add(3, 10'000);
  rig.start();
  rig.time.advance(milliseconds(9'000));
  CHECK(g.requests().size() == 1);  // the circuit opened on it
  CHECK(rig.queue.count(DeliveryState::kExpired) == 0);
  rig.time.advance(milliseconds(2'000));
  CHECK(rig.queue.count(DeliveryState::kExpired) == 3);
  CHECK(rig.dispatcher->stats().held == 0);
  rig.time.advance(milliseconds(60'000));  // the probe finds nothing stale to send
  CHECK(g.requests().size() == 1);
}

TEST_CASE("dispatcher: new sends wait while max_unrecorded results wait for their commit",
          "[dispatcher]") {
  Rig rig;
  rig.options.max_unrecorded = 4;
  auto& g = rig.gateway("twilio", 100, 2);
  rig.add(20);
  rig.start();  // the claim has run; two requests are out
  REQUIRE(g.messages() == 2);
  rig.queue.hold_jobs(true);  // the first write of results will not commit yet
  rig.time.advance(milliseconds(5'000));
  // Answered and unrecorded: at least max_unrecorded, then nothing new; what
  // was at the gateway when the bound was reached still came back.
  CHECK(g.in_flight() == 0);
  CHECK(g.messages() >= 4);
  CHECK(g.messages() <= 4 + 2 - 1);
  std::size_t stopped_at = g.messages();
  rig.time.advance(milliseconds(5'000));
  CHECK(g.messages() == stopped_at);
  CHECK(rig.queue.count(DeliveryState::kSent) == 0);
  // The commit lands: sending resumes, each result written once.
  rig.queue.hold_jobs(false);
  CHECK(rig.queue.release_jobs() >= 1);
  REQUIRE(rig.settled_sent(20, milliseconds(10'000)));
  CHECK(g.messages() == 20);
  CHECK(rig.queue.duplicate_records() == 0);
}

TEST_CASE("dispatcher: stop drains requests in flight, records their answers and hands back "
          "what was never sent",
          "[dispatcher]") {
  Rig rig;
  auto& g = rig.gateway("twilio", 100, 4);
  g.latency(milliseconds(500));
  rig.add(10);
  rig.start();
  REQUIRE(g.in_flight() == 4);
  bool done = false;
  rig.dispatcher->stop(milliseconds(5'000), [&] { done = true; });
  rig.time.advance(milliseconds(499));
  CHECK_FALSE(done);  // answers still out
  rig.time.advance(milliseconds(1));
  CHECK(done);
  CHECK(g.messages() == 4);
  CHECK(rig.queue.count(DeliveryState::kSent) == 4);
  CHECK(rig.queue.count(DeliveryState::kPending) == 6);
  CHECK(rig.queue.leased(rig.time.now_ms()) == 0);  // the next start sends them at once
  rig.time.advance(milliseconds(10'000));
  CHECK(g.messages() == 4);
}

TEST_CASE("dispatcher: stop gives up at its bound, and a request still out keeps its lease",
          "[dispatcher]") {
  Rig rig;
  auto& g = rig.gateway("twilio", 100, 1);
  g.hold(true);
  rig.add(3);
  rig.start();
  REQUIRE(g.held() == 1);
  bool done = false;
  rig.dispatcher->stop(milliseconds(2'000), [&] { done = true; });
  rig.time.advance(milliseconds(1'999));
  CHECK_FALSE(done);
  rig.time.advance(milliseconds(1));
  CHECK(done);
  // The request still out and the two behind it keep their leases: the
  // next start releases every lease and sends them.
  CHECK(rig.queue.leased(rig.time.now_ms()) == 3);
  CHECK(rig.queue.count(DeliveryState::kSent) == 0);
}

TEST_CASE("dispatcher: a failed write of results keeps them and writes them again, sending "
          "nothing twice",
          "[dispatcher]") {
  Rig rig;
  auto& g = rig.gateway("twilio", 100, 5);
  g.hold(true);
  rig.add(5);
  rig.queue.fail_records(2);
  rig.start();
  REQUIRE(g.held() == 5);
  CHECK(g.release() == 5);
  rig.time.settle();
  // The first write failed: the results wait, their deliveries stay ours.
  CHECK(rig.queue.count(DeliveryState::kSent) == 0);
  CHECK(rig.dispatcher->stats().held == 5);
  CHECK(rig.queue.leased(rig.time.now_ms()) == 5);
  rig.time.advance(milliseconds(200));  // the second write fails too
  CHECK(rig.queue.count(DeliveryState::kSent) == 0);
  CHECK(rig.dispatcher->stats().held == 5);
  rig.time.advance(milliseconds(200));
  CHECK(rig.queue.count(DeliveryState::kSent) == 5);
  CHECK(rig.queue.record_jobs() == 1);  // all five in the one write that committed
  CHECK(rig.dispatcher->stats().held == 0);
  CHECK(g.messages() == 5);
  CHECK(rig.queue.duplicate_records() == 0);
  for (int64_t id = 1; id <= 5; ++id) CHECK(rig.queue.row(id).attempts == 1);
}

TEST_CASE("dispatcher: a permanent error fails one delivery, not the gateway", "[dispatcher]") {
  Rig rig;
  rig.options.breaker_threshold = 1;
  auto& g = rig.gateway("twilio", 100, 1);
  g.answer([](const delivery::Outgoing& m) { return m.delivery_id == 2 ? permanent() : accepted(); });
  rig.add(4);
  rig.start();
  REQUIRE(rig.settled_sent(3, milliseconds(5'000)));
  CHECK(rig.queue.row(2).state == DeliveryState::kFailed);
  CHECK(rig.queue.row(2).error == "twilio 21211");
  CHECK(rig.health("twilio") == State::kClosed);
  CHECK(g.messages() == 4);
}

TEST_CASE("dispatcher: with several instances each takes its share of a gateway's rate and "
          "in-flight bound, and the whole again when the others are gone",
          "[dispatcher]") {
  Rig rig;
  auto& g = rig.gateway("twilio", 6, 4);
  g.hold(true);  // answers wait: what is in flight stays there
  rig.add(40);
  rig.share = 3;
  rig.start();
  // 4 / 3 instances: one request in flight at a time.
  CHECK(g.in_flight() == 1);
  g.hold(false);
  g.release();
  rig.time.advance(milliseconds(100));
  CHECK(most_in_window(g.requests(), milliseconds(1'000)) <= 2);  // 6 / 3 per second
  rig.time.advance(milliseconds(5'000));
  CHECK(most_in_window(g.requests(), milliseconds(1'000)) == 2);
  // The others are gone: the whole rate again.
  std::size_t before = g.requests().size();
  rig.dispatcher->set_share(1);
  rig.time.advance(milliseconds(2'100));
  std::vector<SentRequest> after(g.requests().begin() + static_cast<std::ptrdiff_t>(before),
                                 g.requests().end());
  CHECK(most_in_window(after, milliseconds(1'000)) == 6);
  REQUIRE(rig.settled_sent(40, milliseconds(20'000)));
  CHECK(rig.queue.duplicate_records() == 0);
}

TEST_CASE("dispatcher: a delivery at a slow gateway keeps its lease, renewed until its answer is "
          "recorded, and the lease ends then",
          "[dispatcher]") {
  Rig rig;
  rig.options.lease = milliseconds(3'000);
  auto& g = rig.gateway("twilio", 100, 4);
  g.hold(true);  // the provider takes its time: far longer than the lease
  auto ids = rig.add(2);
  rig.start();
  REQUIRE(g.in_flight() == 2);
  rig.time.advance(milliseconds(20'000));
  // Still ours: another instance could not claim them.
  for (int64_t id : ids) CHECK(rig.queue.row(id).lease_until > rig.time.now_ms());
  g.hold(false);
  g.release();
  REQUIRE(rig.settled_sent(2, milliseconds(5'000)));
  rig.time.advance(milliseconds(5'000));
  CHECK(rig.queue.leased(rig.time.now_ms()) == 0);
  CHECK(g.messages() == 2);
  CHECK(rig.queue.duplicate_records() == 0);
}
