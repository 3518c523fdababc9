// POST /v1/reports: a coordinator's signed report — signature over the raw
// body first, then strict parsing, validation, the area and its scope; the
// ingest job (app/ingest) stores it and answers once committed.
#include "app/api.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api_common.h"
#include "app/ingest.h"
#include "core/areas.h"
#include "core/report.h"
#include "core/signature.h"

namespace tocsin::app {

using nlohmann::json;
using namespace api;

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
  auto in_scope = [&](const std::string& area) { return any_area_covers(coordinator->areas, area); };
  if (!in_scope(report.area)) {
    spdlog::warn("report refused: 403 area {}{} outside coordinator {}'s scope", report.area,
                 place.derived ? " (of its location)" : "", coordinator->name);
    count_report("refused", 403);
    return respond(problem(out_of_scope(
        "coordinator " + coordinator->name + " may not report in " + report.area +
            (place.derived ? " (the area holding the location)" : ""),
        place.derived ? "location" : "area")));
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
      [this, request, respond = std::move(respond)](store::JobResult<IngestResult> r) {
        if (!r) {
          Problem p = store_failure(r.failure);
          spdlog::error("report from coordinator {} not stored: answering {}",
                        request->coordinator, p.status);
          count_report("refused", p.status);
          return respond(problem(p));
        }
        if (r->problem) {
          spdlog::warn("report refused: {} {} from coordinator {}", r->status, r->problem->field,
                       request->coordinator);
          count_report("refused", r->status);
          return respond(problem(*r->problem));
        }
        if (r->replayed) {
          // A captured signed request verifies until its timestamp is 5
          // minutes old: replayed at full speed, a line each would fill the
          // log. Counted, and in the periodic summary.
          ignored(Ignored::kAlreadyApplied);
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


}  // namespace tocsin::app
