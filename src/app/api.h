// The HTTP API: translates requests into domain calls and results into
// responses. Authentication, validation and scope checks happen here, before
// anything is queued for the store; a refused request stores nothing.
#pragma once

#include <functional>
#include <memory>
#include <random>

#include <boost/asio/io_context.hpp>

#include "app/config.h"
#include "app/metrics.h"
#include "app/reload.h"
#include "app/safety.h"
#include "core/clock.h"
#include "core/form.h"
#include "core/refusals.h"
#include "http/message.h"
#include "store/store_worker.h"

namespace tocsin::app {

class Api {
 public:
  using ConfigSource = std::function<std::shared_ptr<const ActiveConfig>()>;
  // What a reload did: the config problems that refused it (the running
  // config is kept), or what changed.
  struct ReloadOutcome {
    std::vector<FieldProblem> problems;
    ConfigChanges changes;
    bool unavailable = false;  // the store could not check the key file: nothing applied, retry
  };
  using ReloadDone = std::function<void(ReloadOutcome)>;
  struct Hooks {
    std::function<void()> deliveries_planned;  // new deliveries are committed: wake the dispatcher
    std::function<bool()> ready;               // for /readyz
    Metrics* metrics = nullptr;                // counts answers; serves /metrics (404 without)
    std::function<void(Metrics::Gauges&)> gauges;  // fills in what the daemon knows, for /metrics
    // POST /-/reload (404 without): calls back, on the io thread, once the
    // reload is applied or refused (after the store has checked the key file).
    std::function<void(ReloadDone)> reload;
    // Each refused request (a 4xx answer), with a bounded route label: for
    // the metric and the periodic summary line that replace a log line per
    // refusal (an attacker must not be able to fill the logs).
    std::function<void(std::string_view route, int status)> refused;
    // Each signed request answered without changing anything (a replay or
    // a retry of one already applied, a text tocsin does not act on): for
    // a metric and the same summary line, not a line each.
    std::function<void(Ignored)> ignored;
    // Runs the console's passphrase hashing completions (null: inline).
    boost::asio::io_context* io = nullptr;
  };

  // Paging of GET /v1/subscribers and GET /v1/audit.
  static constexpr int kDefaultPage = 100;
  static constexpr int kMaxPage = 500;

  Api(ConfigSource config, const Clock& clock, store::StoreWorker& store, Hooks hooks);
  ~Api();

  // Called on the io thread for every request; answers through `respond`.
  void handle(http::Request req, std::function<void(http::Response)> respond);

 private:
  using Respond = std::function<void(http::Response)>;
  // The audit entry of the admin request being answered: handlers fill in
  // the route template, object id and count; the answer, its status.
  using Audit = std::shared_ptr<store::AuditEntry>;
  // The route table (api.cpp): every path, its methods, who may call it.
  struct Route;
  static const std::vector<Route>& routes();
  // The route `path` goes to, and what follows the route's path (`rest`).
  static const Route* route_of(std::string_view path, std::string_view& rest);
  void post_report(http::Request& req, Respond respond);
  void metrics(Respond respond);
  void reload(Respond respond);
  void count_report(std::string_view outcome, int status);
  void ignored(Ignored why) const {
    if (hooks_.ignored) hooks_.ignored(why);
  }
  // Safety-rule steps of one report or reply: metrics and a log line.
  void count_safety(const std::string& incident, const SafetySteps& steps);
  // Admin routes (admin_api.cpp): authenticates the bearer token, then
  // answers through a responder that writes the audit entry first, unless
  // the answer's own store job (admin_job) has.
  void admin(http::Request& req, const Route& route, std::string_view rest, Respond respond);
  // Answers an admin request from one store job: `job` reads or writes and
  // returns the answer; the request's audit entry, with that answer's
  // status, is inserted by the same job, so it commits in the same
  // transaction as the writes: both are durable or neither. Once committed,
  // `after` (logs, wake-ups) runs on the io thread and the answer goes out.
  // When the job fails nothing of it is kept and the answer is 503, audited
  // on its own. `respond` is the audited responder admin() made.
  void admin_job(const Audit& audit, std::function<http::Response(store::Store&)> job,
                 Respond respond, std::function<void(const http::Response&)> after = {});
  void subscribers(http::Request& req, std::string_view rest, const Audit& audit, Respond respond);
  void list_subscribers(http::Request& req, const Audit& audit, Respond respond);
  void patch_one(http::Request& req, int64_t id, const Audit& audit, Respond respond);
  void import_subscribers(http::Request& req, const Audit& audit, Respond respond);
  void audit_log(http::Request& req, const Audit& audit, Respond respond);
  void incidents(http::Request& req, std::string_view rest, const Audit& audit, Respond respond);
  void inbound_twilio(http::Request& req, Respond respond);
  // Join by text (reach_api.cpp): a keyword, its confirmation, LEAVE.
  // Answers and returns true when `body` is one of those.
  bool inbound_join(const std::shared_ptr<const ActiveConfig>& cfg, const std::string& from,
                    const FormFields& fields, Respond& respond);
  // STOP, START, HELP and acknowledgements from `from` (E.164).
  void inbound_reply(const std::shared_ptr<const ActiveConfig>& cfg, const std::string& from,
                     const FormFields& fields, Respond respond);
  // Reach (reach_api.cpp): GET|POST /u/{token}, the email unsubscribe link.
  void unsubscribe(http::Request& req, std::string_view token, Respond respond);
  // POST /v1/inbound/twilio/voice/gather?d=DELIVERY (a key pressed during an
  // alert call) and /v1/inbound/twilio/voice/status (the call's end).
  void voice_gather(http::Request& req, Respond respond);
  void voice_status(http::Request& req, Respond respond);
  // POST /v1/receipts/sendgrid: the Event Webhook, ECDSA-verified.
  void receipt_sendgrid(http::Request& req, Respond respond);
  void receipt_twilio(http::Request& req, Respond respond);
  // A Twilio status callback: the provider id in `sid_field` moves from sent
  // to what `target_of` makes of `status_field` (nullopt: nothing new).
  void twilio_status(http::Request& req, Respond respond, std::string_view sid_field,
                     std::string_view status_field,
                     std::optional<DeliveryState> (*target_of)(std::string_view));
  // Checks X-Twilio-Signature of a form POST against server.public_url and
  // the Twilio gateways' auth tokens; answers 403 itself when it fails.
  bool twilio_verified(const http::Request& req, const ActiveConfig& cfg, const FormFields& fields,
                       Respond& respond);
  // The name of the admin token the request bears, or nullopt.
  std::optional<std::string> admin_identity(const http::Request& req,
                                            const ActiveConfig& cfg) const;

  ConfigSource config_;
  const Clock& clock_;
  store::StoreWorker& store_;
  Hooks hooks_;
  // Draws incident codes; used only by ingest jobs, which run one at a time
  // on the store thread.
  std::shared_ptr<std::mt19937_64> rng_;
  std::unique_ptr<class Console> console_;  // /console/ (console.h)
};

}  // namespace tocsin::app
