#include "app/api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "app/api_common.h"
#include "app/console.h"
#include "app/ingest.h"
#include "app/subscriber_input.h"
#include "core/area_svg.h"
#include "core/areas.h"
#include "core/form.h"
#include "core/inbound.h"
#include "core/phone.h"
#include "core/problem.h"
#include "core/refusals.h"
#include "core/report.h"
#include "core/signature.h"

namespace tocsin::app {

using nlohmann::json;
using namespace api;

namespace {

json incident_json(const store::IncidentRecord& i) {
  json j{{"id", i.id},
         {"event", i.event},
         {"area", i.area},
         {"severity", to_string(i.severity)},
         {"status", to_string(i.status)},
         {"state", i.open ? "open" : "closed"},
         {"opened_at", format_rfc3339(i.opened_at)},
         {"last_report_at", format_rfc3339(i.last_report_at)},
         {"report_count", i.report_count},
         {"spread_m", std::round(i.spread_m)}};
  if (i.location)
    j["location"] = {{"lat", i.location->lat},
                     {"lon", i.location->lon},
                     {"description", i.location->description}};
  if (!i.open) j["closed_at"] = format_rfc3339(i.closed_at);
  return j;
}

// Where an incident's point lies among the running config's area shapes
// (additive fields of GET /v1/incidents/{code}): the shape that held it (or
// that speaks for its area) and the distance to that shape's edge, and every
// area whose shape holds it. Computed when asked, so a reload's new shapes show.
void add_shape_fields(json& j, const store::IncidentRecord& i, const AreasConfig& areas) {
  if (!areas.shapes || !i.location) return;
  AreaDecision d = decide_area(areas.shapes.get(), i.area, i.location, areas.tolerance_m);
  j["point_areas"] = d.point_areas;
  if (d.shape)
    j["shape"] = {{"area", d.shape->area},
                  {"inside", d.shape->inside},
                  {"edge_m", std::round(d.shape->edge_m)}};
}

// The upper-cased incident code of `rest` ("/a72wym/retry") without the
// leading '/' and `suffix` characters ("/retry").
std::string incident_code(std::string_view rest, std::size_t suffix) {
  std::string code(rest.substr(1, rest.size() - 1 - suffix));
  for (auto& ch : code) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return code;
}

// The route of `path` as a metric label: one of a fixed set, whatever the
// path (a label per path would let anyone grow the metrics without bound).
std::string_view refused_route(std::string_view path) {
  for (std::string_view r : {"/v1/reports", "/v1/inbound/twilio", "/v1/receipts/twilio",
                             "/v1/receipts/sendgrid", "/v1/audit", "/-/reload", "/healthz",
                             "/readyz", "/metrics"})
    if (path == r) return r;
  if (path == "/v1/subscribers" || path.starts_with("/v1/subscribers/")) return "/v1/subscribers";
  if (path == "/v1/incidents" || path.starts_with("/v1/incidents/")) return "/v1/incidents";
  return "other";
}

}  // namespace

Api::Api(ConfigSource config, const Clock& clock, store::StoreWorker& store, Hooks hooks)
    : config_(std::move(config)),
      clock_(clock),
      store_(store),
      hooks_(std::move(hooks)),
      rng_(std::make_shared<std::mt19937_64>(std::random_device{}())),
      console_(std::make_unique<Console>(config_, clock_, store_, hooks_.deliveries_planned,
                                         hooks_.io, rng_)) {}

Api::~Api() = default;

void Api::handle(http::Request req, Respond respond) {
  if (hooks_.refused) {
    respond = [route = refused_route(req.path()), hook = hooks_.refused,
               respond = std::move(respond)](http::Response r) {
      if (is_refusal(r.status)) hook(route, r.status);
      respond(std::move(r));
    };
  }
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
  if (path == "/console" || path.starts_with("/console/"))
    return console_->handle(std::move(req), std::move(respond));
  if (path == "/v1/reports") {
    if (m != "POST") {
      count_report("refused", 405);
      return respond(problem(method_not_allowed()));
    }
    return post_report(req, std::move(respond));
  }
  if (path == "/v1/receipts/twilio") {
    if (m != "POST") return respond(problem(method_not_allowed()));
    return receipt_twilio(req, std::move(respond));
  }
  if (path == "/v1/inbound/twilio") {
    if (m != "POST") return respond(problem(method_not_allowed()));
    return inbound_twilio(req, std::move(respond));
  }
  if (path == "/v1/inbound/twilio/voice/gather" || path == "/v1/inbound/twilio/voice/status") {
    if (m != "POST") return respond(problem(method_not_allowed()));
    if (path.ends_with("/gather")) return voice_gather(req, std::move(respond));
    return voice_status(req, std::move(respond));
  }
  if (path == "/v1/receipts/sendgrid") {
    if (m != "POST") return respond(problem(method_not_allowed()));
    return receipt_sendgrid(req, std::move(respond));
  }
  if (path.starts_with("/u/")) {
    if (m != "GET" && m != "HEAD" && m != "POST") return respond(problem(method_not_allowed()));
    return unsubscribe(req, path.substr(3), std::move(respond));
  }
  if (path == "/v1/subscribers" || path.starts_with("/v1/subscribers/") ||
      path == "/v1/incidents" || path.starts_with("/v1/incidents/") || path == "/v1/audit" ||
      (path == "/-/reload" && hooks_.reload))
    return admin(req, std::move(respond));
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
    // No log line: anyone can send these (counted in metrics and the
    // periodic summary of refusals instead).
    count_report("refused", 401);
    return respond(problem(unauthorized(why)));
  }
  respond = trusted(std::move(respond));
  if (auto p = require_json(req)) {
    spdlog::warn("report refused: 415 Content-Type from coordinator {}", coordinator->name);
    count_report("refused", 415);
    return respond(problem(*p));
  }
  if (id.size() > 200) {
    count_report("refused", 400);
    return respond(problem(bad_request("webhook-id is longer than 200 characters", "webhook-id")));
  }

  auto parsed = parse_report(req.body, now);
  if (auto* bad = std::get_if<MalformedReport>(&parsed)) {
    spdlog::warn("report refused: 400 malformed from coordinator {}", coordinator->name);
    count_report("refused", 400);
    return respond(problem(bad_request(bad->detail, bad->field)));
  }
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed)) {
    spdlog::warn("report refused: 422 {} from coordinator {}", problems->front().path,
                 coordinator->name);
    count_report("refused", 422);
    return respond(problem(field_problems(*problems)));
  }
  Report& report = std::get<Report>(parsed);
  // The point against the areas' shapes: the area it derives (when left
  // out), or a refusal when it lies far outside the named one.
  const AreasConfig& areas = cfg->config.areas;
  AreaDecision place = decide_area(areas.shapes.get(), report.area, report.location, areas.tolerance_m);
  if (place.problem) {
    spdlog::warn("report refused: 422 {} from coordinator {}", place.problem->path,
                 coordinator->name);
    count_report("refused", 422);
    return respond(problem(field_problems({*place.problem})));
  }
  report.area = place.area;
  auto in_scope = [&](const std::string& area) {
    for (const auto& a : coordinator->areas)
      if (area_covers(a, area)) return true;
    return false;
  };
  if (!in_scope(report.area)) {
    spdlog::warn("report refused: 403 area {}{} outside coordinator {}'s scope", report.area,
                 place.derived ? " (of its location)" : "", coordinator->name);
    count_report("refused", 403);
    return respond(problem(Problem{
        .status = 403,
        .type = "out-of-scope",
        .title = "Area outside the coordinator's scope",
        .detail = "coordinator " + coordinator->name + " may not report in " + report.area +
                  (place.derived ? " (the area holding the location)" : ""),
        .field = place.derived ? "location" : "area"}));
  }
  // Areas holding the point route too, but only within the coordinator's
  // scope: a point named "pdx" but lying in la must not reach la's groups
  // through pdx's credentials.
  std::erase_if(place.point_areas, [&](const std::string& a) { return !in_scope(a); });

  IngestRequest ir{coordinator->name, std::string(id), std::move(report), std::move(req.body), now,
                   std::move(place.point_areas)};
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
          count_safety(r->incident_id, r->safety);
          if (r->recipients > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        }
        respond(http::json_response(r->status, std::move(r->body)));
      });
}

bool Api::twilio_verified(const http::Request& req, const ActiveConfig& cfg,
                          const FormFields& fields, Respond& respond) {
  const Config& c = cfg.config;
  // Twilio signs the URL it called: ours as the outside world sees it.
  if (c.server.public_url.empty()) {
    spdlog::error("Twilio callback refused: server.public_url is not configured, so its "
                  "signature cannot be checked");
    respond(problem(Problem{.status = 403, .type = "forbidden", .title = "Forbidden",
                            .detail = "Twilio callbacks need server.public_url"}));
    return false;
  }
  std::string url = c.server.public_url + std::string(req.target);
  auto offered = req.header("x-twilio-signature");
  bool valid = false;
  for (const auto& g : c.gateways)
    if ((g.type == GatewayType::kTwilio || g.type == GatewayType::kTwilioVoice) &&
        !g.auth_token.empty())
      valid = constant_time_equal(offered, twilio_signature(g.auth_token, url, fields)) || valid;
  if (!valid) {
    // No log line: anyone can send these (see Api::Hooks::refused).
    respond(problem(Problem{.status = 403, .type = "bad-signature", .title = "Bad signature",
                            .detail = "X-Twilio-Signature does not verify",
                            .field = "X-Twilio-Signature"}));
  }
  return valid;
}

void Api::receipt_twilio(http::Request& req, Respond respond) {
  twilio_status(req, std::move(respond), "MessageSid", "MessageStatus", [](std::string_view status) {
    std::optional<DeliveryState> target;
    if (status == "delivered" || status == "read") target = DeliveryState::kDelivered;
    else if (status == "undelivered" || status == "failed") target = DeliveryState::kUndelivered;
    return target;
  });
}

void Api::twilio_status(http::Request& req, Respond respond, std::string_view sid_field,
                        std::string_view status_field,
                        std::optional<DeliveryState> (*target_of)(std::string_view)) {
  auto cfg = config_();
  FormFields fields = parse_form(req.body);
  if (!twilio_verified(req, *cfg, fields, respond)) return;
  respond = trusted(std::move(respond));
  std::string sid(form_value(fields, sid_field));
  std::string_view status = form_value(fields, status_field);
  std::optional<DeliveryState> target = target_of(status);
  http::Response ok;
  ok.status = 204;
  if (!target || sid.empty()) return respond(std::move(ok));  // queued, sent, ringing: nothing new
  UnixMs now = clock_.now_ms();
  // Each (message, status) once: a replayed receipt changes nothing.
  std::string event = "receipt:" + sid.substr(0, 64) + ":" + std::string(status);
  store_.call<bool>(
      [sid, event, state = *target, now](store::Store& s) {
        return s.first_event("twilio", event, now) && s.apply_receipt(sid, state, now);
      },
      [state = *target, respond = std::move(respond), ok](std::optional<bool> changed) {
        if (!changed) return respond(problem(unavailable()));
        if (*changed) spdlog::debug("receipt: a delivery is now {}", to_string(state));
        respond(ok);
      });
}

void Api::inbound_twilio(http::Request& req, Respond respond) {
  auto cfg = config_();
  const Config& c = cfg->config;
  FormFields fields = parse_form(req.body);
  if (!twilio_verified(req, *cfg, fields, respond)) return;
  respond = trusted(std::move(respond));
  auto from = normalize_phone(form_value(fields, "From"), c.subscribers.default_region);
  if (!from) return respond(twiml());
  // Twilio's signature has no timestamp: a captured request verifies for
  // ever. Each MessageSid is applied once (remembered for
  // retention.provider_events_days); one without an id is not applied.
  std::string sid(form_value(fields, "MessageSid").substr(0, 64));
  if (sid.empty()) {
    spdlog::info("inbound SMS without a MessageSid: ignored");
    return respond(twiml());
  }
  if (inbound_join(cfg, *from, fields, respond)) return;
  inbound_reply(cfg, *from, fields, std::move(respond));
}

void Api::inbound_reply(const std::shared_ptr<const ActiveConfig>& cfg, const std::string& from,
                        const FormFields& fields, Respond respond) {
  const Config& c = cfg->config;
  std::string sid(form_value(fields, "MessageSid").substr(0, 64));
  InboundIntent intent = classify_sms_reply(form_value(fields, "Body"));
  UnixMs now = clock_.now_ms();
  UnixMs since = now - c.dedup.window_s * 1000;
  struct Outcome {
    std::size_t subscribers = 0;
    int64_t cancelled = 0;
    std::vector<std::string> acked;  // incident codes
    std::string language = "en";
    SafetySteps covered;  // "covered" sent because of this reply
    bool replayed = false;  // this MessageSid was applied before
  };
  store_.call<Outcome>(
      [cfg, from, sid, intent, now, since](store::Store& s) {
        Outcome o;
        if (!s.first_event("twilio", "sms:" + sid, now)) {
          o.replayed = true;
          return o;
        }
        // STOP also ends a join request the number has not confirmed.
        if (intent.action == InboundAction::kOptOut) s.close_join_requests(from);
        auto ids = s.subscribers_by_phone(from);
        o.subscribers = ids.size();
        for (int64_t id : ids) {
          if (auto sub = s.subscriber(id)) o.language = sub->language;
          switch (intent.action) {
            case InboundAction::kOptOut:
              o.cancelled += s.set_sms_opt_out(id, true, now);
              break;
            case InboundAction::kOptIn: s.set_sms_opt_out(id, false, now); break;
            case InboundAction::kHelp: break;
            case InboundAction::kAcknowledge:
              if (auto inc = s.last_sms_incident(id, since)) {
                if (s.insert_ack({*inc, id, intent.ack_kind, now})) {
                  o.acked.push_back(*inc);
                  if (intent.ack_kind == "responding")
                    o.covered += check_covered(s, cfg->config, cfg->templates, *inc, now);
                }
              }
              break;
          }
        }
        return o;
      },
      [this, cfg, intent, respond = std::move(respond)](std::optional<Outcome> o) {
        if (!o) return respond(problem(unavailable()));
        if (o->replayed) {
          spdlog::info("inbound SMS: MessageSid already applied; ignored (a replay or a retry)");
          return respond(twiml());
        }
        if (!o->acked.empty()) count_safety(o->acked.front(), o->covered);
        if (o->covered.recipients > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        if (o->subscribers == 0) {
          spdlog::info("inbound SMS from a number with no subscriber: ignored");
          return respond(twiml());
        }
        switch (intent.action) {
          case InboundAction::kOptOut:
            spdlog::info("inbound SMS: opt-out for {} subscriber(s); {} pending SMS cancelled",
                         o->subscribers, o->cancelled);
            return respond(twiml());
          case InboundAction::kOptIn:
            spdlog::info("inbound SMS: opt-in for {} subscriber(s)", o->subscribers);
            return respond(twiml());
          case InboundAction::kHelp:
            return respond(twiml(help_text(cfg->templates, o->language)));
          case InboundAction::kAcknowledge:
            for (const auto& inc : o->acked)
              spdlog::info("inbound SMS: acknowledgement ({}) on incident {}", intent.ack_kind, inc);
            return respond(twiml());
        }
        respond(twiml());
      });
}

void Api::count_report(std::string_view outcome, int status) {
  if (hooks_.metrics) hooks_.metrics->report_answered(outcome, status);
}

void Api::count_safety(const std::string& incident, const SafetySteps& steps) {
  if (steps.held + steps.released + steps.covered == 0) return;
  spdlog::info("incident {}: safety rules: {} group(s) held, {} released, {} covered; {} deliveries",
               incident, steps.held, steps.released, steps.covered, steps.recipients);
  if (!hooks_.metrics) return;
  hooks_.metrics->safety_step("held", steps.held);
  hooks_.metrics->safety_step("released", steps.released);
  hooks_.metrics->safety_step("covered", steps.covered);
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
        if (fp.path.empty()) fp.path = "$";  // the file as a whole
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

void Api::incidents(http::Request& req, std::string_view rest, const Audit& audit,
                    Respond respond) {
  auto cfg = config_();
  if (rest.ends_with("/retry") && rest.size() > 7) {
    audit->route = "/v1/incidents/{code}/retry";
    if (req.method != "POST") return respond(problem(method_not_allowed()));
    std::string code = incident_code(rest, 6);
    audit->object_id = audit_object(code);
    UnixMs now = clock_.now_ms();
    const auto& dc = cfg->config.delivery;
    UnixMs sms_deadline = now + dc.sms_deadline_s * 1000, email_deadline = now + dc.email_deadline_s * 1000;
    admin_job(
        audit,
        [code, now, sms_deadline, email_deadline, audit](store::Store& s) {
          if (!s.incident(code)) return problem(not_found("no such incident"));
          audit->count = s.requeue_failed(code, now, sms_deadline, email_deadline);
          return http::json_response(
              200, json{{"incident_id", code}, {"requeued", audit->count}}.dump());
        },
        std::move(respond),
        [this, code, audit](const http::Response& r) {
          if (r.status != 200) return;
          spdlog::info("incident {}: {} failed or expired deliveries queued again by an operator",
                       code, audit->count);
          if (audit->count > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        });
    return;
  }
  if (rest.empty() || rest == "/") {
    if (req.method != "GET") return respond(problem(method_not_allowed()));
    bool open_only = req.query().find("state=open") != std::string_view::npos;
    admin_job(
        audit,
        [open_only, audit](store::Store& s) {
          auto rows = s.list_incidents(open_only, 200);
          audit->count = static_cast<int64_t>(rows.size());
          json list = json::array();
          for (const auto& i : rows) list.push_back(incident_json(i));
          return http::json_response(200, json{{"incidents", list}}.dump());
        },
        std::move(respond));
    return;
  }
  if (rest.ends_with("/map.svg") && rest.size() > 9) {
    audit->route = "/v1/incidents/{code}/map.svg";
    if (req.method != "GET") return respond(problem(method_not_allowed()));
    std::string code = incident_code(rest, 8);
    audit->object_id = audit_object(code);
    admin_job(
        audit,
        [code, cfg](store::Store& s) {
          auto inc = s.incident(code);
          if (!inc) return problem(not_found("no such incident"));
          const auto& shapes = cfg->config.areas.shapes;
          if (!shapes) return problem(not_found("no area shapes are configured (areas_file, areas.circles)"));
          http::Response r;
          r.status = 200;
          r.set("Content-Type", "image/svg+xml; charset=utf-8");
          // A picture, never a document that runs anything.
          r.set("Content-Security-Policy", "default-src 'none'");
          r.set("X-Content-Type-Options", "nosniff");
          r.body = area_svg(*shapes, inc->area, inc->location, "incident " + inc->id + ": " + inc->area);
          return r;
        },
        std::move(respond));
    return;
  }
  audit->route = "/v1/incidents/{code}";
  if (req.method != "GET") return respond(problem(method_not_allowed()));
  std::string code = incident_code(rest, 0);
  audit->object_id = audit_object(code);
  admin_job(
      audit,
      [code, cfg](store::Store& s) {
        auto inc = s.incident(code);
        if (!inc) return problem(not_found("no such incident"));
        json j = incident_json(*inc);
        add_shape_fields(j, *inc, cfg->config.areas);
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
        std::vector<std::string> coordinators;
        json timeline = json::array();
        for (const auto& r : reports) {
          auto name = r["coordinator"].get<std::string>();
          if (std::find(coordinators.begin(), coordinators.end(), name) == coordinators.end())
            coordinators.push_back(name);
          timeline.push_back({{"at", r["received_at"]},
                              {"what", "report"},
                              {"outcome", r["outcome"]},
                              {"coordinator", name},
                              {"recipients", r["recipients"]}});
        }
        j["coordinators"] = coordinators;
        // Counts are of people: a subscriber counts once per kind however
        // many replies they sent (an erased one's replies, detached, each once).
        json acks = json::object({{"responding", 0}, {"reply", 0}});
        json ack_list = json::array();
        std::set<std::pair<std::string, int64_t>> counted;
        for (const auto& a : s.incident_acks(code)) {
          if (a.subscriber_id == 0 || counted.insert({a.kind, a.subscriber_id}).second)
            acks[a.kind] = acks.value(a.kind, 0) + 1;
          json item = {{"kind", a.kind}, {"at", format_rfc3339(a.received_at)}};
          if (a.subscriber_id) item["subscriber_id"] = a.subscriber_id;
          ack_list.push_back(item);
          timeline.push_back({{"at", item["at"]}, {"what", "acknowledgement"}, {"kind", a.kind}});
        }
        j["acknowledgements"] = {{"counts", acks}, {"list", ack_list}};
        // Safety rules: where each group stands, and each step on the timeline.
        json groups = json::array();
        for (const auto& g : s.incident_groups(code)) {
          json item = {{"group", g.group}, {"state", g.state}};
          if (g.state == "held") item["waiting_for"] = g.waiting;
          if (g.state == "sent") {
            item["via"] = g.via;
            item["sent_at"] = format_rfc3339(g.sent_at);
          }
          if (g.covered_at) item["covered_at"] = format_rfc3339(g.covered_at);
          groups.push_back(item);
        }
        j["groups"] = groups;
        for (const auto& e : s.safety_events(code))
          timeline.push_back({{"at", format_rfc3339(e.at)},
                              {"what", e.what},
                              {"group", e.group},
                              {"detail", e.detail},
                              {"recipients", e.recipients}});
        std::stable_sort(timeline.begin(), timeline.end(), [](const json& a, const json& b) {
          return a["at"].get<std::string>() < b["at"].get<std::string>();
        });
        j["timeline"] = timeline;
        json deliveries = json::object();
        for (const auto& c : s.incident_delivery_counts(code))
          deliveries[std::string(to_string(c.channel))][std::string(to_string(c.state))] = c.count;
        j["deliveries"] = deliveries;
        json by_gateway = json::object();
        for (const auto& [gateway, c] : s.incident_gateway_counts(code))
          by_gateway[gateway.empty() ? "(not tried)" : gateway][std::string(to_string(c.state))] =
              c.count;
        j["deliveries_by_gateway"] = by_gateway;
        return http::json_response(200, j.dump());
      },
      std::move(respond));
}

}  // namespace tocsin::app
