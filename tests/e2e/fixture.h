// A deployment for end-to-end tests: Twilio and SendGrid emulators on
// loopback and a config for the real daemon that points at them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/emulator.h"
#include "support/http.h"

struct sqlite3;

namespace tocsin::test {

inline constexpr const char* kCoordinatorSecret = "whsec_dGVzdC1jb29yZGluYXRvci1rZXktbGEtMDAwMQ==";
inline constexpr const char* kOtherSecret = "whsec_dGVzdC1jb29yZGluYXRvci1rZXktc2YtMDAwMg==";
inline constexpr const char* kObserverSecret = "whsec_dGVzdC1jb29yZGluYXRvci1rZXktb2ItMDAwMw==";
inline constexpr const char* kPublicUrl = "https://alerts.example.org";
inline constexpr const char* kAdminToken = "test-admin-token-0123456789";

struct Gateways {
  GatewayEmulator twilio;
  GatewayEmulator sendgrid;
};

// Config with coordinators "la-hotline" (areas: la), "la-observers"
// (la/boyle-heights, la/east-la) and "sf-hotline" (sf), public_url kPublicUrl,
// a Twilio and a SendGrid gateway on the emulators, and three groups:
//   eastside  la/east-la, la/boyle-heights, enforcement_activity, ≥ moderate: sms + email
//   lawyers   la, ≥ severe: email
//   drills    la, every event and severity, drills too: sms
nlohmann::json test_config(const Gateways& gw, int rate_per_s = 500, int max_in_flight = 16);

// The demo report body (config/example-report.json's shape) with overrides.
nlohmann::json report_body(const nlohmann::json& overrides = nlohmann::json::object());

// Signs and posts `body` (serialized once, exactly those bytes signed) as the
// holder of `secret`, with a fresh webhook-id unless one is given.
HttpResult post_report(const std::string& base_url, const std::string& body,
                       const std::string& secret = kCoordinatorSecret, std::string webhook_id = "");

// An inbound SMS as Twilio would post it (signed with the emulator's auth
// token unless `forged`), with a fresh MessageSid unless `message_sid` is
// given (the same one again is a replay).
HttpResult inbound_sms(const std::string& base_url, const Gateways& gw, const std::string& from,
                       const std::string& body, bool forged = false,
                       const std::string& message_sid = "");

// A Twilio voice callback (Gather or status) to `path` (with its query),
// form `fields`, signed like Twilio's unless `forged`.
HttpResult twilio_callback(const std::string& base_url, const std::string& auth_token,
                           const std::string& path,
                           std::vector<std::pair<std::string, std::string>> fields,
                           bool forged = false);

// A Twilio delivery receipt (StatusCallback) for message `sid`.
HttpResult twilio_receipt(const std::string& base_url, const Gateways& gw, const std::string& sid,
                          const std::string& status, bool forged = false);

// Admin API call with the test token.
HttpResult admin(const std::string& method, const std::string& url,
                 const nlohmann::json& body = nullptr);

// Creates subscribers concurrently (several connections, so their commits
// share transactions); returns their ids in order. REQUIREs each 201.
std::vector<int64_t> add_subscribers(const std::string& base_url,
                                     const std::vector<nlohmann::json>& subscribers);

// Creates `n` SMS subscribers in group "eastside", numbers phone_for(0..n-1).
std::vector<int64_t> add_eastside_subscribers(const std::string& base_url, int n);

// How many messages each recipient (number or address) got.
std::map<std::string, int> count_by_recipient(const std::vector<ReceivedMessage>& messages);

// Messages beyond the first to each recipient: the duplicates in `counts`.
int repeated_messages(const std::map<std::string, int>& counts);

// A wait_for predicate: `n` distinct recipients have had a message.
std::function<bool(const Observations&)> distinct_recipients(std::size_t n);

// Polls `pred` every 20 ms until it holds or `within` passes; returns
// whether it held. The way a test waits: on a condition, with a deadline.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds within = std::chrono::seconds(10));

// The value of the metric line `series` ("name" or "name{labels}") at the
// daemon's /metrics, or -1 when there is none.
double metric(const std::string& base_url, const std::string& series);

// Waits until the daemon has no delivery pending (due or waiting for a
// retry) and none in flight: every planned message has been sent and its
// result recorded, so no further message reaches a gateway until something
// new is planned. What a test waits for before it asserts that nothing
// more (a duplicate, a refused report's message) was sent.
bool settled(const Daemon& d, std::chrono::milliseconds within = std::chrono::seconds(15));
bool settled(const std::string& base_url, std::chrono::milliseconds within = std::chrono::seconds(15));

// A valid fictional US number, distinct for each i < 10,000.
std::string phone_for(int i);

// Runs `sql` on the daemon's database (var/tocsin.db) as another process
// would, waiting up to 5 s for a lock; returns the first column of each row
// as text. REQUIREs success.
std::vector<std::string> query_db(const Daemon& d, const std::string& sql);

// Another process's connection to the daemon's database holding its write
// lock (BEGIN IMMEDIATE, as a careless backup or a manual sqlite3 session
// could) from construction until release(), release_after()'s delay, or
// destruction. count() reads inside that transaction.
class OutsideWriteLock {
 public:
  explicit OutsideWriteLock(const Daemon& d);
  ~OutsideWriteLock();
  OutsideWriteLock(const OutsideWriteLock&) = delete;
  OutsideWriteLock& operator=(const OutsideWriteLock&) = delete;
  void release();  // ROLLBACK and close, at once (idempotent)
  void release_after(std::chrono::milliseconds delay);  // from a thread; returns at once
  int64_t count(const std::string& sql);  // a one-number query, e.g. "SELECT count(*) ..."

 private:
  ::sqlite3* db_ = nullptr;
  std::thread releaser_;
};

}  // namespace tocsin::test
