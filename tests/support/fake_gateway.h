// A scripted gateway for the dispatcher's unit tests: it answers each
// message with what the test's script says (accepted, throttled,
// transient, permanent, rejected credentials...), after a virtual latency
// or when the test lets held answers go, and remembers every request and
// when it was made (for rate and failover checks).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "delivery/gateway.h"
#include "support/fake_time.h"

namespace tocsin::test {

// Outcomes as the real gateways classify their providers' answers.
delivery::Outcome accepted(const std::string& provider_id = "SM1");
delivery::Outcome transient(const std::string& error = "http 503");
delivery::Outcome throttled(std::optional<std::chrono::milliseconds> retry_after = std::nullopt);
delivery::Outcome permanent(const std::string& error = "twilio 21211");
delivery::Outcome rejected_credentials();  // a 401: the operator must fix it; the gateway fails

struct SentRequest {
  std::chrono::milliseconds at;  // steady (FakeTime::now)
  std::vector<delivery::Outgoing> batch;
};

class FakeGateway final : public delivery::Gateway {
 public:
  using Script = std::function<delivery::Outcome(const delivery::Outgoing&)>;
  FakeGateway(std::string name, Channel channel, FakeTime& time, std::size_t max_batch = 1);

  // Every message answered by `script` (default: accepted).
  void answer(Script script) { script_ = std::move(script); }
  // Answers come this long after the request (0: on the next turn of the io_context).
  void latency(std::chrono::milliseconds l) { latency_ = l; }
  // Answers wait until release() while held.
  void hold(bool h) { hold_ = h; }
  std::size_t release();  // returns how many requests were answered
  std::size_t held() const { return held_.size(); }

  const std::vector<SentRequest>& requests() const { return requests_; }
  std::size_t messages() const;  // across all requests
  int max_concurrent() const { return max_concurrent_; }
  int in_flight() const { return in_flight_; }

  const std::string& name() const override { return name_; }
  Channel channel() const override { return channel_; }
  std::size_t max_batch() const override { return max_batch_; }
  double cost(const std::vector<delivery::Outgoing>& batch) const override {
    return static_cast<double>(max_batch_ > 1 ? 1 : batch.size());  // per request (email APIs) or message
  }
  void send(std::vector<delivery::Outgoing> batch,
            std::function<void(std::vector<delivery::Outcome>)> done) override;

 private:
  struct Pending {
    std::vector<delivery::Outgoing> batch;
    std::function<void(std::vector<delivery::Outcome>)> done;
  };
  void complete(Pending p);

  std::string name_;
  Channel channel_;
  FakeTime& time_;
  std::size_t max_batch_;
  Script script_;
  std::chrono::milliseconds latency_{0};
  bool hold_ = false;
  std::deque<Pending> held_;
  std::vector<SentRequest> requests_;
  std::vector<std::unique_ptr<delivery::Timer>> timers_;
  int in_flight_ = 0;
  int max_concurrent_ = 0;
};

}  // namespace tocsin::test
