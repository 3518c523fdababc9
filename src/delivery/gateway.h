// A gateway sends messages of one channel through one provider. Each type
// builds its provider's documented request and classifies the answer; the
// Dispatcher owns flow control, retries and bookkeeping.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"

namespace tocsin::delivery {

// One message to one recipient, as handed to a gateway.
struct Outgoing {
  int64_t delivery_id = 0;
  std::string to;  // E.164 phone or email address
  std::shared_ptr<const std::string> subject;  // email; shared by recipients of one text
  std::shared_ptr<const std::string> body;
  std::string incident_id;
  UnixMs deadline_at = 0;  // after this the message is worthless (Twilio ValidityPeriod)
  int64_t subscriber_id = 0;  // 0: unknown (tests); email threading and unsubscribe need it
  std::string language;       // the subscriber's tag: email footer, voice <Say language>
  bool followup = false;      // email: an update or all-clear, threaded under the alert
  // Email: {public_url}/u/TOKEN, filled in by the email gateways ("" = none:
  // no server.public_url).
  std::string unsubscribe_url;
};

enum class OutcomeKind {
  kAccepted = 0,   // the provider took it
  kRetry = 1,      // transient, the gateway is failing: 5xx, timeout, connection failure
  kFailed = 2,     // permanent for this message: invalid number, refused content
  kThrottled = 3,  // transient, the provider asks us to slow down (429): retried
                   // later, but the gateway is healthy (its circuit stays closed)
};

struct Outcome {
  OutcomeKind kind = OutcomeKind::kRetry;
  std::string provider_id;                            // the provider's message id
  std::optional<std::chrono::milliseconds> retry_after;  // the provider asked us to wait
  std::string error;     // short and free of personal data: "http 503", "twilio 21211"
  bool opt_out = false;  // the recipient opted out with the provider (Twilio 21610)
};

class Gateway {
 public:
  virtual ~Gateway() = default;
  virtual const std::string& name() const = 0;
  virtual Channel channel() const = 0;
  // How many messages one request may carry; messages of one request share
  // their subject and body.
  virtual std::size_t max_batch() const { return 1; }
  // What one request carrying `batch` costs against the gateway's rate:
  // SMS providers count segments (a 3-segment text costs 3), email APIs
  // count requests.
  virtual double cost(const std::vector<Outgoing>& batch) const = 0;
  // Sends `batch` (1..max_batch messages). `done` receives one Outcome per
  // message, in order, later, on the io thread.
  virtual void send(std::vector<Outgoing> batch,
                    std::function<void(std::vector<Outcome>)> done) = 0;
};

}  // namespace tocsin::delivery
