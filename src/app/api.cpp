#include "app/api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "app/ingest.h"
#include "app/subscriber_input.h"
#include "core/problem.h"
#include "core/report.h"
#include "core/signature.h"

namespace tocsin::app {

using nlohmann::json;

namespace {

http::Response problem(const Problem& p) { return to_response(p); }

Problem unauthorized(std::string detail) {
  return Problem{.status = 401, .type = "unauthorized", .title = "Unauthorized", .detail = std::move(detail)};
}

Problem not_found(std::string detail) {
  return Problem{.status = 404, .type = "not-found", .title = "Not found", .detail = std::move(detail)};
}

Problem method_not_allowed() {
  return Problem{.status = 405, .type = "method-not-allowed", .title = "Method not allowed",
                 .detail = "this resource does not take that method"};
}

Problem unavailable() {
  return Problem{.status = 503,
                 .type = "unavailable",
                 .title = "Storage unavailable",
                 .detail = "the request could not be stored durably; nothing was accepted, retry",
                 .retry_after_s = 2};
}

Problem field_problems(const std::vector<FieldProblem>& problems) {
  Problem p = unprocessable(problems.front().path, problems.front().message);
  p.detail = problems.front().path + ": " + problems.front().message;
  for (const auto& fp : problems) p.errors.push_back({fp.path, fp.message});
  return p;
}

json subscriber_json(const store::Subscriber& s) {
  json channels = json::array();
  for (Channel c : s.channels) channels.push_back(to_string(c));
  return json{{"id", s.id},
              {"name", s.name},
              {"phone", s.phone.empty() ? json() : json(s.phone)},
              {"email", s.email.empty() ? json() : json(s.email)},
              {"language", s.language},
              {"groups", s.groups},
              {"channels", channels},
              {"sms_opted_out", s.sms_opted_out},
              {"created_at", format_rfc3339(s.created_at)}};
}

json incident_json(const store::IncidentRecord& i) {
  json j{{"id", i.id},
         {"event", i.event},
         {"area", i.area},
         {"severity", to_string(i.severity)},
         {"status", to_string(i.status)},
         {"state", i.open ? "open" : "closed"},
         {"opened_at", format_rfc3339(i.opened_at)},
         {"last_report_at", format_rfc3339(i.last_report_at)},
         {"report_count", i.report_count}};
  if (i.location)
    j["location"] = {{"lat", i.location->lat},
                     {"lon", i.location->lon},
                     {"description", i.location->description}};
  if (!i.open) j["closed_at"] = format_rfc3339(i.closed_at);
  return j;
}

std::optional<int64_t> parse_id(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace

Api::Api(ConfigSource config, const Clock& clock, store::StoreWorker& store, Hooks hooks)
    : config_(std::move(config)),
      clock_(clock),
      store_(store),
      hooks_(std::move(hooks)),
      rng_(std::make_shared<std::mt19937_64>(std::random_device{}())) {}

void Api::handle(http::Request req, Respond respond) {
  std::string_view path = req.path();
  const std::string& m = req.method;
  if (path == "/healthz") {
    if (m != "GET" && m != "HEAD") return respond(problem(method_not_allowed()));
    return respond(http::json_response(200, R"({"status":"ok"})"));
  }
  if (path == "/readyz") {
    if (m != "GET" && m != "HEAD") return respond(problem(method_not_allowed()));
    bool ready = !hooks_.ready || hooks_.ready();
    if (!ready) return respond(problem(unavailable()));
    return respond(http::json_response(200, R"({"status":"ready"})"));
  }
  if (path == "/metrics") {
    if (m != "GET" && m != "HEAD") return respond(problem(method_not_allowed()));
    if (!hooks_.metrics) return respond(problem(not_found("no such resource")));
    return metrics(std::move(respond));
  }
  if (path == "/v1/reports") {
    if (m != "POST") {
      count_report("refused", 405);
      return respond(problem(method_not_allowed()));
    }
    return post_report(req, std::move(respond));
  }
  if (path == "/v1/subscribers" || path.starts_with("/v1/subscribers/"))
    return subscribers(req, path.substr(std::string_view("/v1/subscribers").size()),
                       std::move(respond));
  if (path == "/v1/incidents" || path.starts_with("/v1/incidents/"))
    return incidents(req, path.substr(std::string_view("/v1/incidents").size()), std::move(respond));
  respond(problem(not_found("no such resource")));
}

void Api::post_report(http::Request& req, Respond respond) {
  auto cfg = config_();
  const UnixMs now = clock_.now_ms();
  // Authenticate over the raw bytes before parsing anything.
  auto id = req.header("webhook-id");
  auto ts = req.header("webhook-timestamp");
  auto sig = req.header("webhook-signature");
  const CoordinatorConfig* coordinator = nullptr;
  SignatureCheck worst = SignatureCheck::kNoMatch;
  for (const auto& c : cfg->config.coordinators) {
    auto res = verify_webhook(id, ts, sig, req.body, c.keys, now / 1000);
    if (res.check == SignatureCheck::kValid) {
      coordinator = &c;
      break;
    }
    worst = res.check;
  }
  if (!coordinator) {
    std::string why = worst == SignatureCheck::kMissingHeaders
                          ? "webhook-id, webhook-timestamp and webhook-signature are required"
                      : worst == SignatureCheck::kBadTimestamp ? "webhook-timestamp is not a Unix time"
                      : worst == SignatureCheck::kStale
                          ? "webhook-timestamp is more than 5 minutes from now"
                          : "no coordinator's key verifies webhook-signature";
    spdlog::warn("report refused: 401 ({}) from {}", why, req.remote);
    count_report("refused", 401);
    return respond(problem(unauthorized(why)));
  }
  if (id.size() > 200) {
    count_report("refused", 400);
    return respond(problem(bad_request("webhook-id is longer than 200 characters", "webhook-id")));
  }

  auto parsed = parse_report(req.body);
  if (auto* bad = std::get_if<MalformedReport>(&parsed)) {
    spdlog::warn("report refused: 400 malformed from coordinator {}", coordinator->name);
    count_report("refused", 400);
    return respond(problem(bad_request(bad->detail)));
  }
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed)) {
    spdlog::warn("report refused: 422 {} from coordinator {}", problems->front().path,
                 coordinator->name);
    count_report("refused", 422);
    return respond(problem(field_problems(*problems)));
  }
  Report& report = std::get<Report>(parsed);
  bool in_scope = false;
  for (const auto& a : coordinator->areas) in_scope = in_scope || area_covers(a, report.area);
  if (!in_scope) {
    spdlog::warn("report refused: 403 area {} outside coordinator {}'s scope", report.area,
                 coordinator->name);
    count_report("refused", 403);
    return respond(problem(Problem{.status = 403,
                                   .type = "out-of-scope",
                                   .title = "Area outside the coordinator's scope",
                                   .detail = "coordinator " + coordinator->name +
                                             " may not report in " + report.area,
                                   .field = "area"}));
  }

  IngestRequest ir{coordinator->name, std::string(id), std::move(report), std::move(req.body), now};
  auto request = std::make_shared<IngestRequest>(std::move(ir));
  auto rng = rng_;
  store_.call<IngestResult>(
      [cfg, request, rng](store::Store& s) {
        return ingest_report(s, cfg->config, cfg->templates, *request, *rng);
      },
      [this, request, respond = std::move(respond)](std::optional<IngestResult> r) {
        if (!r) {
          spdlog::error("report from coordinator {} not stored: answering 503",
                        request->coordinator);
          count_report("refused", 503);
          return respond(problem(unavailable()));
        }
        if (r->problem) {
          spdlog::warn("report refused: {} {} from coordinator {}", r->status, r->problem->field,
                       request->coordinator);
          count_report("refused", r->status);
          return respond(problem(*r->problem));
        }
        if (r->replayed) {
          spdlog::info("report repeated: webhook-id already answered for coordinator {}",
                       request->coordinator);
          count_report("replayed", r->status);
        } else {
          spdlog::info("report {} accepted from coordinator {}: incident {} {}, {} deliveries",
                       r->report_id, request->coordinator, r->incident_id, r->outcome,
                       r->recipients);
          count_report(r->outcome, r->status);
          if (r->recipients > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        }
        respond(http::json_response(r->status, std::move(r->body)));
      });
}

void Api::count_report(std::string_view outcome, int status) {
  if (hooks_.metrics) hooks_.metrics->report_answered(outcome, status);
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

bool Api::authorized_admin(const http::Request& req, const ActiveConfig& cfg) const {
  auto auth = req.header("authorization");
  if (!auth.starts_with("Bearer ")) return false;
  auto token = auth.substr(7);
  bool ok = false;
  for (const auto& t : cfg.config.admin_tokens) ok = constant_time_equal(token, t) || ok;
  return ok;
}

void Api::subscribers(http::Request& req, std::string_view rest, Respond respond) {
  auto cfg = config_();
  if (!authorized_admin(req, *cfg)) {
    auto r = problem(unauthorized("an admin bearer token is required"));
    r.set("WWW-Authenticate", "Bearer");
    return respond(std::move(r));
  }
  const std::string& m = req.method;
  if (rest.empty() || rest == "/") {
    if (m != "POST") return respond(problem(method_not_allowed()));
    auto parsed = parse_subscriber(req.body, cfg->config);
    if (auto* bad = std::get_if<MalformedBody>(&parsed))
      return respond(problem(bad_request(bad->detail)));
    if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
      return respond(problem(field_problems(*problems)));
    auto sub = std::make_shared<store::Subscriber>(std::move(std::get<store::Subscriber>(parsed)));
    UnixMs now = clock_.now_ms();
    store_.call<int64_t>(
        [sub, now](store::Store& s) { return s.insert_subscriber(*sub, now); },
        [sub, now, respond = std::move(respond)](std::optional<int64_t> id) {
          if (!id) return respond(problem(unavailable()));
          sub->id = *id;
          sub->created_at = now;
          spdlog::info("subscriber {} created", *id);
          auto r = http::json_response(201, subscriber_json(*sub).dump());
          r.set("Location", "/v1/subscribers/" + std::to_string(*id));
          respond(std::move(r));
        });
    return;
  }
  auto id = parse_id(rest.substr(1));
  if (!id) return respond(problem(not_found("no such subscriber")));
  if (m == "GET") {
    store_.call<std::optional<store::Subscriber>>(
        [id = *id](store::Store& s) { return s.subscriber(id); },
        [respond = std::move(respond)](std::optional<std::optional<store::Subscriber>> r) {
          if (!r) return respond(problem(unavailable()));
          if (!*r) return respond(problem(not_found("no such subscriber")));
          respond(http::json_response(200, subscriber_json(**r).dump()));
        });
  } else if (m == "DELETE") {
    store_.call<bool>([id = *id](store::Store& s) { return s.delete_subscriber(id); },
                      [id = *id, respond = std::move(respond)](std::optional<bool> r) {
                        if (!r) return respond(problem(unavailable()));
                        if (!*r) return respond(problem(not_found("no such subscriber")));
                        spdlog::info("subscriber {} erased", id);
                        http::Response resp;
                        resp.status = 204;
                        respond(std::move(resp));
                      });
  } else {
    respond(problem(method_not_allowed()));
  }
}

void Api::incidents(http::Request& req, std::string_view rest, Respond respond) {
  auto cfg = config_();
  if (!authorized_admin(req, *cfg)) {
    auto r = problem(unauthorized("an admin bearer token is required"));
    r.set("WWW-Authenticate", "Bearer");
    return respond(std::move(r));
  }
  if (req.method != "GET") return respond(problem(method_not_allowed()));
  if (rest.empty() || rest == "/") {
    bool open_only = req.query().find("state=open") != std::string_view::npos;
    store_.call<std::vector<store::IncidentRecord>>(
        [open_only](store::Store& s) { return s.list_incidents(open_only, 200); },
        [respond = std::move(respond)](std::optional<std::vector<store::IncidentRecord>> r) {
          if (!r) return respond(problem(unavailable()));
          json list = json::array();
          for (const auto& i : *r) list.push_back(incident_json(i));
          respond(http::json_response(200, json{{"incidents", list}}.dump()));
        });
    return;
  }
  std::string code(rest.substr(1));
  for (auto& c : code) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  store_.call<std::optional<json>>(
      [code](store::Store& s) -> std::optional<json> {
        auto inc = s.incident(code);
        if (!inc) return std::nullopt;
        json j = incident_json(*inc);
        json reports = json::array();
        for (const auto& r : s.incident_reports(code))
          reports.push_back({{"id", r.id},
                             {"coordinator", r.coordinator},
                             {"msg_type", r.msg_type},
                             {"outcome", r.outcome},
                             {"severity", r.severity},
                             {"received_at", format_rfc3339(r.received_at)},
                             {"recipients", r.recipients}});
        j["reports"] = reports;
        json deliveries = json::object();
        for (const auto& c : s.incident_delivery_counts(code))
          deliveries[std::string(to_string(c.channel))][std::string(to_string(c.state))] = c.count;
        j["deliveries"] = deliveries;
        return j;
      },
      [respond = std::move(respond)](std::optional<std::optional<json>> r) {
        if (!r) return respond(problem(unavailable()));
        if (!*r) return respond(problem(not_found("no such incident")));
        respond(http::json_response(200, (*r)->dump()));
      });
}

}  // namespace tocsin::app
