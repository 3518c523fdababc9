// GatewayEmulator: a loopback HTTP/1.1 server that speaks the wire formats of
// the real SMS and email providers tocsin sends through, including their
// failures, so that end-to-end tests can run the real daemon against it.
//
//   Twilio   POST /2010-04-01/Accounts/{AccountSid}/Messages.json
//            basic auth account_sid:auth_token; form fields To, From, Body
//            (required), StatusCallback, ValidityPeriod, ... (recorded);
//            201 {"sid":"SM<32 hex>","status":"queued",...}; errors are
//            Twilio JSON {"code","message","more_info","status"}.
//   SendGrid POST /v3/mail/send
//            Authorization: Bearer <api_key>; JSON v3 mail body validated as
//            SendGrid does; 202 with X-Message-Id; errors are
//            {"errors":[{"message","field","help"}]}.
//   Twilio voice POST /2010-04-01/Accounts/{AccountSid}/Calls.json: form To,
//            From, Twiml (or Url) required; 201 {"sid":"CA<32 hex>",...};
//            each call is one ReceivedMessage (provider "twilio_voice",
//            body = the TwiML, fields = the form).
//   Signal   POST /v2/send (signal-cli-rest-api): JSON {"message","number",
//            "recipients":[...]}; "number" must be Options::signal_number;
//            201 {"timestamp"}; an unregistered recipient is 400 {"error"}.
//            One ReceivedMessage (provider "signal") per recipient.
//   Webhook  POST /hook (tocsin's webhook gateway, as a Signal/ntfy/Matrix
//            bridge would receive it): Standard Webhooks headers verified
//            with Options::webhook_secret (401 otherwise, also when stale),
//            JSON body {"channel","to","body","incident","delivery_id"}
//            (+ "subject") required (400 otherwise); 200 {"ok":true}.
//            Faults answer 503 {"error"} and 429 with Retry-After.
//
// Each accepted Twilio request is one ReceivedMessage; each recipient of each
// personalization of an accepted SendGrid request is one ReceivedMessage;
// each accepted webhook request is one ReceivedMessage (a repeated
// webhook-id is recorded again: tests count repeats).
//
// Order of checks: drop and stall (any request); then, for a Twilio or
// SendGrid or webhook path (else 404): down, random 503, strict rate limit, random 429,
// authentication, validation, per-recipient Twilio errors, acceptance.
//
// Threads: one acceptor thread, one thread per connection (keep-alive). All
// setters and observers may be called from any thread while it runs; one
// mutex (inside Impl) guards faults, error codes, observations and the PRNG.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tocsin::test {

struct ReceivedMessage {
  std::string provider;  // "twilio" | "sendgrid" | "webhook"
  std::string id;        // Twilio sid "SM…", SendGrid X-Message-Id, or the webhook-id
  std::string to;        // E.164 number or email address
  std::string from;      // number or email address
  std::string subject;   // email only
  std::string body;      // SMS text, or the email's text/plain (else first) content
  // Twilio: every decoded form field (To, From, Body, StatusCallback,
  // ValidityPeriod, ...). SendGrid: "to_name", "from_name", "html" when
  // present, "personalization" (its index in the request), "header.NAME"
  // and "custom_args.KEY" (the request's, overridden by the
  // personalization's), and `body` has the personalization's substitutions
  // applied. Webhook:
  // "channel", "incident", "delivery_id", and the three webhook-* headers.
  std::map<std::string, std::string> fields;
  std::string raw;  // the raw request body, exactly as received
  std::chrono::steady_clock::time_point accepted_at;
};

// Faults injected before a request is looked at. Probabilities are in [0, 1]
// and drawn from the emulator's seeded PRNG, so a sequential test is
// reproducible for a given seed.
struct Faults {
  double p_drop = 0;   // close the connection after reading the request, no answer
  double p_stall = 0;  // wait `stall` before doing anything else
  std::chrono::milliseconds stall{0};
  double p_503 = 0;  // answer 503 (provider-shaped body)
  double p_429 = 0;  // answer 429 with retry_after_s (see below)
  int retry_after_s = 1;
  bool down = false;  // every request answers 503
  // At most this many requests per sliding second pass the rate limit
  // (0 = unlimited); beyond it, 429. Every request that passes takes a slot,
  // even one then refused for auth or validation.
  int rate_limit_per_s = 0;
};
// A 429 carries, for Twilio, "Retry-After: N" and code 20429; for SendGrid,
// X-RateLimit-Limit, X-RateLimit-Remaining: 0 and X-RateLimit-Reset (unix
// seconds N ahead). N is retry_after_s for a random 429 and the seconds until
// a slot frees (at least 1) for the strict rate limit.

// A consistent snapshot of what the emulator has seen since start or reset().
// A request counts as answered once its answer is decided, just before it is
// written: a client holding an answer never sees observations lag behind.
struct Observations {
  std::vector<ReceivedMessage> messages;  // in acceptance order
  std::map<int, std::size_t> statuses;    // answers, by HTTP status
  std::size_t requests = 0;               // complete requests read (any route)
  std::size_t dropped = 0;                // requests answered by closing the connection
  std::size_t in_flight = 0;              // requests read and not yet answered
  std::size_t peak_in_flight = 0;         // highest in_flight seen
  std::size_t connections = 0;            // connections accepted

  std::size_t count(int status) const {
    auto it = statuses.find(status);
    return it == statuses.end() ? 0 : it->second;
  }
};

class GatewayEmulator {
 public:
  struct Options {
    std::string account_sid = "AC00000000000000000000000000000001";
    std::string auth_token = "5f4dcc3b5aa765d61d8327deb882cf99";  // 32 hex, as Twilio's
    std::string api_key = "SG.tocsin-emulator-key-0.tocsin-emulator-secret-00000000000000000000";  // SendGrid's form
    std::string webhook_secret = "whsec_dGVzdC13ZWJob29rLXJlY2VpdmVyLWtleS0wMDAx";
    std::string signal_number = "+12135550199";  // the bridge's registered number
    uint64_t seed = 42;
  };

  // Binds 127.0.0.1 on an ephemeral port and starts serving at once.
  // Throws boost::system::system_error when it cannot bind.
  GatewayEmulator();
  explicit GatewayEmulator(Options options);
  // Stops promptly even with connections open or stalled: closes the
  // acceptor and every client socket, wakes stalls, joins all threads.
  ~GatewayEmulator();
  GatewayEmulator(const GatewayEmulator&) = delete;
  GatewayEmulator& operator=(const GatewayEmulator&) = delete;

  const Options& options() const;
  uint16_t port() const;
  // "http://127.0.0.1:PORT": the base_url of a twilio or sendgrid gateway.
  std::string base_url() const;
  // base_url() + "/hook": the url of a webhook gateway.
  std::string webhook_url() const;

  // Faults. Each setter takes effect for requests read after it returns.
  void set_faults(const Faults& faults);
  Faults faults() const;
  void set_down(bool down);
  void set_rate_limit(int per_second);
  void set_p_503(double p);
  void set_p_429(double p, int retry_after_s = 1);
  void set_stall(double p, std::chrono::milliseconds duration);
  void set_p_drop(double p);
  // Restarts the fault PRNG from `seed`.
  void set_seed(uint64_t seed);
  // Twilio answers a message to `to` (exact form field value) with 400 and
  // `code`, with Twilio's message: 21610 (unsubscribed recipient), 21211
  // (invalid 'To' number), 21614 (not a mobile number), 21408 (region not
  // enabled), 21612 (not reachable). Throws std::invalid_argument otherwise.
  void set_twilio_error(const std::string& to, int code);
  void clear_twilio_errors();
  // signal-cli-rest-api answers a message to `number` with 400 "...:
  // Unregistered user" (the recipient has no Signal account).
  void set_signal_unregistered(const std::string& number);
  // base_url(): the base_url of a signal gateway.
  std::string signal_url() const;

  // Observations.
  Observations observations() const;
  std::vector<ReceivedMessage> messages() const;
  std::size_t message_count() const;
  std::size_t count(int status) const;  // responses sent with this status
  std::size_t requests() const;
  std::size_t peak_in_flight() const;
  // Blocks until at least `n` messages were accepted, or `timeout` passes;
  // returns whether they were.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout);
  // Blocks until `pred` holds, re-evaluated after every change, or `timeout`
  // passes; returns whether it held. `pred` runs under the emulator's lock
  // on the live state and must not call back into the emulator.
  bool wait_for(const std::function<bool(const Observations&)>& pred,
                std::chrono::milliseconds timeout);
  // Forgets all observations (messages, counts, peak; in_flight is kept as it
  // is live) and the rate-limit window. Faults and error codes stay.
  void reset();

 private:
  struct Impl;  // state, sockets and threads; Beast lives only in emulator.cpp
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin::test
