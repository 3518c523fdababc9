// The coordinators' web console under /console/ (README "Console"):
// sessions, login with passphrase + TOTP, enrolment, the report form with
// its preview, drafts under the two-person rule, the incident board.
// Every answer carries the console's security headers; every state-changing
// request is checked for its Origin / Sec-Fetch-Site and its CSRF token
// before anything else happens; every action is checked on the server
// against the person's role and areas, and audited with their name.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "app/config.h"
#include "core/clock.h"
#include "http/message.h"
#include "store/store_worker.h"

namespace tocsin::app {
struct IngestResult;
}

namespace tocsin::app {

class Console {
 public:
  using ConfigSource = std::function<std::shared_ptr<const ActiveConfig>()>;
  using Respond = std::function<void(http::Response)>;

  // `io` runs passphrase hashing's completions (null: hashing runs inline,
  // for tests without an io_context). `rng` draws incident codes in ingest
  // jobs (shared with the webhook path; both run on the store thread).
  // `ingested` is told of each report the console stored (sent or approved),
  // so that it is counted like a webhook's (reports and safety-rule steps).
  Console(ConfigSource config, const Clock& clock, store::StoreWorker& store,
          std::function<void()> deliveries_planned, boost::asio::io_context* io,
          std::shared_ptr<std::mt19937_64> rng,
          std::function<void(const IngestResult&)> ingested = {});
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // For /console and /console/...: 404 when console.enabled is false.
  void handle(http::Request req, Respond respond);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tocsin::app
