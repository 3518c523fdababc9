// The HTTP API's front door: the route table (every path, its methods, who
// may call it), the dispatch through it, and the operations routes
// (/healthz, /readyz, /metrics, POST /-/reload). The resources' handlers are
// in reports_api.cpp, incidents_api.cpp, inbound_api.cpp, reach_api.cpp and
// admin_api.cpp (admin authentication, the audit log, subscribers).
#include "app/api.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api_common.h"
#include "app/console.h"
#include "app/ingest.h"
#include "core/refusals.h"

namespace tocsin::app {

using nlohmann::json;
using namespace api;

Api::Api(ConfigSource config, const Clock& clock, store::StoreWorker& store, Hooks hooks)
    : config_(std::move(config)),
      clock_(clock),
      store_(store),
      hooks_(std::move(hooks)),
      rng_(std::make_shared<std::mt19937_64>(std::random_device{}())),
      console_(std::make_unique<Console>(
          config_, clock_, store_, hooks_.deliveries_planned, hooks_.io, rng_,
          // A console report is counted as a webhook's is (the Api outlives
          // its console).
          [this](const IngestResult& r) {
            count_report(r.outcome, r.status);
            count_safety(r.incident_id, r.safety);
          })) {}

Api::~Api() = default;

// The table: a route's path is also its label in the refusal metric (a
// fixed set: a label per path would let anyone grow the metrics).
const std::vector<Api::Route>& Api::routes() {
  using M = Route::Match;
  static const std::vector<Route> table = {
      {"/healthz", M::kExact, "GET HEAD", false, nullptr,
       [](Api&, http::Request&, std::string_view, const Audit&, Respond respond) {
         respond(http::json_response(200, R"({"status":"ok"})"));
       }},
      {"/readyz", M::kExact, "GET HEAD", false, nullptr,
       [](Api& api, http::Request&, std::string_view, const Audit&, Respond respond) {
         if (api.hooks_.ready && !api.hooks_.ready()) return respond(problem(unavailable()));
         respond(http::json_response(200, R"({"status":"ready"})"));
       }},
      {"/metrics", M::kExact, "GET HEAD", false, [](const Api& api) { return api.hooks_.metrics != nullptr; },
       [](Api& api, http::Request&, std::string_view, const Audit&, Respond respond) {
         api.metrics(std::move(respond));
       }},
      {"/console", M::kTree, "", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.console_->handle(std::move(req), std::move(respond));
       }},
      {"/v1/reports", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.post_report(req, std::move(respond));
       }},
      {"/v1/receipts/twilio", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.receipt_twilio(req, std::move(respond));
       }},
      {"/v1/inbound/twilio", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.inbound_twilio(req, std::move(respond));
       }},
      {"/v1/inbound/twilio/voice/gather", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.voice_gather(req, std::move(respond));
       }},
      {"/v1/inbound/twilio/voice/status", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.voice_status(req, std::move(respond));
       }},
      {"/v1/receipts/sendgrid", M::kExact, "POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit&, Respond respond) {
         api.receipt_sendgrid(req, std::move(respond));
       }},
      {"/u", M::kUnder, "GET HEAD POST", false, nullptr,
       [](Api& api, http::Request& req, std::string_view token, const Audit&, Respond respond) {
         api.unsubscribe(req, token, std::move(respond));
       }},
      {"/v1/subscribers", M::kTree, "", true, nullptr,
       [](Api& api, http::Request& req, std::string_view rest, const Audit& audit, Respond respond) {
         api.subscribers(req, rest, audit, std::move(respond));
       }},
      {"/v1/incidents", M::kTree, "", true, nullptr,
       [](Api& api, http::Request& req, std::string_view rest, const Audit& audit, Respond respond) {
         api.incidents(req, rest, audit, std::move(respond));
       }},
      {"/v1/audit", M::kExact, "", true, nullptr,
       [](Api& api, http::Request& req, std::string_view, const Audit& audit, Respond respond) {
         api.audit_log(req, audit, std::move(respond));
       }},
      {"/-/reload", M::kExact, "POST", true, [](const Api& api) { return bool(api.hooks_.reload); },
       [](Api& api, http::Request&, std::string_view, const Audit&, Respond respond) {
         api.reload(std::move(respond));
       }},
  };
  return table;
}

bool Api::Route::takes(std::string_view method) const {
  for (std::string_view m = methods; !m.empty();) {
    auto sp = m.find(' ');
    if (m.substr(0, sp) == method) return true;
    m = sp == std::string_view::npos ? std::string_view() : m.substr(sp + 1);
  }
  return false;
}

const Api::Route* Api::route_of(std::string_view path, std::string_view& rest) {
  for (const auto& r : routes()) {
    const bool below = path.size() > r.path.size() && path.starts_with(r.path) &&
                       path[r.path.size()] == '/';
    if (path == r.path && r.match != Route::Match::kUnder) {
      rest = {};
      return &r;
    }
    if (below && r.match != Route::Match::kExact) {
      rest = path.substr(r.path.size() + (r.match == Route::Match::kUnder ? 1 : 0));
      return &r;
    }
  }
  return nullptr;
}

void Api::handle(http::Request req, Respond respond) {
  std::string_view rest;
  const Route* route = route_of(req.path(), rest);
  if (route && route->enabled && !route->enabled(*this)) route = nullptr;
  if (hooks_.refused) {
    respond = [label = route ? route->path : std::string_view("other"), hook = hooks_.refused,
               respond = std::move(respond)](http::Response r) {
      if (is_refusal(r.status)) hook(label, r.status);
      respond(std::move(r));
    };
  }
  if (!route) return respond(problem(not_found("no such resource")));
  if (route->admin) return admin(req, *route, rest, std::move(respond));
  if (!route->methods.empty() && !route->takes(req.method)) {
    if (route->path == "/v1/reports") count_report("refused", 405);
    return respond(problem(method_not_allowed()));
  }
  route->serve(*this, req, rest, nullptr, std::move(respond));
}

void Api::metrics(Respond respond) {
  store_.call<int64_t>(
      [](store::Store& s) { return s.pending_count(); },
      [this, respond = std::move(respond)](std::optional<int64_t> pending) {
        Metrics::Gauges g;
        if (hooks_.gauges) hooks_.gauges(g);
        g.store_queue_depth = static_cast<int64_t>(store_.queue_depth());
        g.deliveries_pending = pending;
        http::Response r;
        r.status = 200;
        r.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        r.body = hooks_.metrics->render(g);
        respond(std::move(r));
      });
}

// The config file is re-read with the running config's admin tokens: a
// reload that changes them answers to a holder of the old ones.
void Api::reload(Respond respond) {
  hooks_.reload([respond = std::move(respond)](ReloadOutcome outcome) {
    if (outcome.unavailable) return respond(problem(unavailable()));
    if (!outcome.problems.empty()) {
      for (auto& fp : outcome.problems)
        // push_back, not `= "$"`: GCC 12 at -O3 raises a false -Wrestrict on
        // assigning a literal here (the .deb build, scripts/check-deb).
        if (fp.path.empty()) fp.path.push_back('$');  // the file as a whole
      Problem p = field_problems(outcome.problems);
      p.type = "invalid-config";
      p.title = "Invalid config; the running config is kept";
      return respond(problem(p));
    }
    json answer = {{"reloaded", true},
                   {"changed", outcome.changes.applied},
                   {"restart_required", outcome.changes.restart_required}};
    respond(http::json_response(200, answer.dump()));
  });
}


}  // namespace tocsin::app
