// The console's report handlers: the form (alert, update, all-clear), its
// live preview (the core's templates and segmenter, and route.cpp's dry
// run), sending a report through the webhook's own ingest path, and drafts
// under the two-person rule (approve or reject by a second person). What
// they render is console_report_view.cpp.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api_common.h"
#include "app/console_crypto.h"
#include "app/console_impl.h"
#include "app/console_report_view.h"
#include "app/ingest.h"
#include "app/route.h"
#include "core/area_svg.h"
#include "core/areas.h"
#include "core/sms.h"

namespace tocsin::app {

using nlohmann::json;
using namespace console;

namespace {

// The report a form describes, as the webhook would carry it.
json report_json_from(const FormFields& f, const ConsoleConfig& k) {
  json j;
  auto put = [&](const char* key) {
    auto v = form_value(f, key);
    if (!v.empty()) j[key] = std::string(v.substr(0, 300));
  };
  put("msg_type");
  put("status");
  put("event");
  put("severity");
  put("area");
  put("observed_at");
  put("references");
  auto lat = form_value(f, "lat"), lon = form_value(f, "lon");
  if (!lat.empty() || !lon.empty()) {
    json loc;
    char* end = nullptr;
    std::string la(lat), lo(lon);
    double dlat = std::strtod(la.c_str(), &end);
    bool lat_ok = !la.empty() && end && *end == '\0';
    double dlon = std::strtod(lo.c_str(), &end);
    bool lon_ok = !lo.empty() && end && *end == '\0';
    loc["lat"] = lat_ok ? json(dlat) : json(la);
    loc["lon"] = lon_ok ? json(dlon) : json(lo);
    auto d = form_value(f, "loc_desc");
    if (!d.empty()) loc["description"] = std::string(d.substr(0, 300));
    j["location"] = loc;
  }
  json headline = json::object(), instruction = json::object();
  for (const auto& l : k.languages) {
    auto h = form_value(f, "headline_" + l);
    auto i = form_value(f, "instruction_" + l);
    if (!h.empty()) headline[l] = std::string(h.substr(0, 1000));
    if (!i.empty()) instruction[l] = std::string(i.substr(0, 2000));
  }
  if (!headline.empty()) j["headline"] = headline;
  if (!instruction.empty()) j["instruction"] = instruction;
  return j;
}

// A report from the form, or the problems that keep it from being one: the
// webhook's own parse, then the point against the areas' shapes
// (decide_area, as api.cpp does): the area it derives when the form names
// none, or a refusal naming `location`. `point_areas` (when given) receives
// the areas holding the point within `co`'s scope, whose groups hear of it too.
std::variant<Report, std::vector<FieldProblem>> report_from(
    const json& j, const Config& c, UnixMs now, const CoordinatorConfig* co = nullptr,
    std::vector<std::string>* point_areas = nullptr) {
  auto parsed = parse_report(j.dump(), now);
  if (auto* p = std::get_if<std::vector<FieldProblem>>(&parsed)) return std::move(*p);
  if (auto* m = std::get_if<MalformedReport>(&parsed))
    return std::vector<FieldProblem>{{m->field, m->detail}};
  Report r = std::move(std::get<Report>(parsed));
  AreaDecision place = decide_area(c.areas.shapes.get(), r.area, r.location, c.areas.tolerance_m);
  if (place.problem) return std::vector<FieldProblem>{*place.problem};
  r.area = place.area;
  if (point_areas) {
    std::erase_if(place.point_areas, [&](const std::string& a) { return !coordinator_covers(co, a); });
    *point_areas = std::move(place.point_areas);
  }
  return r;
}


// `reporter`: who would send it (see dry_run; a draft's author).
Preview compute_preview(store::Store& s, const ActiveConfig& cfg, const Report& report,
                        UnixMs now, const std::vector<std::string>& point_areas = {},
                        const ReportEvidence* reporter = nullptr) {
  Preview p;
  if (cfg.config.areas.shapes && report.location)
    p.map_svg = area_svg(*cfg.config.areas.shapes, report.area, report.location,
                         "preview: " + report.area);
  if (report.msg_type == MsgType::kAlert) {
    p.run = dry_run(&s, cfg, report, now, point_areas, "XXXXXX", reporter);
    return p;
  }
  p.followup = s.followup_reach(report.references);
  MessageContext ctx{&report, report.references,
                     static_cast<std::size_t>(cfg.config.sms.max_segments)};
  for (Channel ch : kAllChannels)
    for (const auto& lang : s.recipient_languages(report.references, ch))
      p.run.messages.push_back({ch, lang, render_message(cfg.templates, ch, lang, ctx)});
  return p;
}

bool may_decide(const Who& who, const store::Draft& d) {
  const auto& u = who.user;
  if (u.role == "admin") return true;
  if (u.role == "verifier") return u.coordinator.empty() || u.coordinator == d.coordinator;
  return u.role == "coordinator" && u.coordinator == d.coordinator;
}

}  // namespace

void Console::Impl::report_form(const http::Request& req, const Who& who, const std::string& lang,
                                Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  if (!who.can_report())
    return respond(message_page(403, lang, &who, "forbidden", tr(lang, "not_allowed")));
  FormFields q = parse_form(req.query());
  std::string type(form_value(q, "msg_type"));
  std::string ref(form_value(q, "references").substr(0, 16));
  if (type != "update" && type != "cancel") {
    return respond(form_page(200, lang, who, *cfg, {{"status", "actual"}}, {}, std::nullopt, now));
  }
  for (auto& ch : ref) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  struct Found {
    std::optional<store::IncidentRecord> incident;
    store::FollowupReach reach;
    std::string latest;  // the latest alert or update as received: an update starts from it
  };
  store.call<Found>(
      [ref](store::Store& s) {
        Found fo;
        fo.incident = s.incident(ref);
        fo.reach = s.followup_reach(ref);
        if (fo.incident) fo.latest = s.latest_report_body(ref);
        return fo;
      },
      [cfg, who, lang, type, ref, now, respond](std::optional<Found> fo) {
        if (!fo) return respond(api::problem(api::unavailable()));
        if (!fo->incident)
          return respond(message_page(404, lang, &who, "not_found", tr(lang, "not_found")));
        const auto& i = *fo->incident;
        if (!who.covers(i.area))
          return respond(message_page(403, lang, &who, "forbidden", tr(lang, "out_of_scope")));
        if (!i.open)
          return respond(message_page(404, lang, &who, "not_found", tr(lang, "not_found")));
        FormFields f = {{"msg_type", type},
                        {"references", i.id},
                        {"status", std::string(to_string(i.status))},
                        {"event", i.event},
                        {"severity", std::string(to_string(i.severity))},
                        {"area", i.area}};
        if (type == "update") prefill_update(f, i, fo->latest, cfg->config.console);
        respond(form_page(200, lang, who, *cfg, f, {}, fo->reach, now));
      });
}

void Console::Impl::preview(const http::Request& req, const Who& who, const std::string&,
                            Respond respond) {
  auto cfg = config();
  FormFields f = parse_form(req.body);
  UnixMs now = clock.now_ms();
  auto point_areas = std::make_shared<std::vector<std::string>>();
  auto parsed = report_from(report_json_from(f, cfg->config.console), cfg->config, now,
                            coordinator_of(cfg->config, who.user.coordinator), point_areas.get());
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed)) {
    json list = json::array();
    for (const auto& p : *problems) list.push_back({{"field", p.path}, {"message", p.message}});
    return respond(http::json_response(200, json{{"problems", list}}.dump()));
  }
  auto report = std::make_shared<Report>(std::move(std::get<Report>(parsed)));
  if (!who.can_report()) return respond(http::json_response(403, R"({"error":"not allowed"})"));
  ReportEvidence reporter{who.user.coordinator, who.user.name, report->certainty};
  store.call<json>(
      [cfg, report, now, point_areas, reporter](store::Store& s) {
        return preview_json(compute_preview(s, *cfg, *report, now, *point_areas, &reporter));
      },
      [respond](std::optional<json> j) {
        if (!j) return respond(api::problem(api::unavailable()));
        respond(http::json_response(200, j->dump()));
      });
}

void Console::Impl::submit_report(const http::Request& req, const Who& who, const std::string& lang,
                                  Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  if (!who.can_report())
    return respond(message_page(403, lang, &who, "forbidden", tr(lang, "not_allowed")));
  FormFields f = parse_form(req.body);
  json body = report_json_from(f, cfg->config.console);
  const CoordinatorConfig* co = coordinator_of(cfg->config, who.user.coordinator);
  std::vector<std::string> point_areas;
  auto parsed = report_from(body, cfg->config, now, co, &point_areas);
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return respond(form_page(422, lang, who, *cfg, f, *problems, std::nullopt, now));
  auto report = std::make_shared<Report>(std::move(std::get<Report>(parsed)));
  if (report->msg_type == MsgType::kAlert && !coordinator_covers(co, report->area))
    return respond(message_page(403, lang, &who, "forbidden", tr(lang, "out_of_scope")));
  if (report->msg_type == MsgType::kCancel && form_value(f, "confirm") != "yes") {
    return store.call<store::FollowupReach>(
        [ref = report->references](store::Store& s) { return s.followup_reach(ref); },
        [cfg, who, lang, f, now, respond](std::optional<store::FollowupReach> n) {
          if (!n) return respond(api::problem(api::unavailable()));
          respond(form_page(422, lang, who, *cfg, f, {{"confirm", tr(lang, "must_confirm")}}, *n, now));
        });
  }
  std::string form_id(form_value(f, "form_id").substr(0, 32));
  if (form_id.empty()) form_id = random_token(12);
  auto self = shared_from_this();
  std::string name = who.user.name, coordinator = who.user.coordinator;

  if (report->msg_type == MsgType::kAlert && co->two_person) {
    store::Draft d;
    d.coordinator = coordinator;
    d.author = name;
    d.report_json = body.dump();
    d.created_at = now;
    return store.call<int64_t>(
        [d, now, name](store::Store& s) {
          int64_t id = s.insert_draft(d);
          s.insert_audit(
              {0, now, name, "POST", "/console/reports (draft)", std::to_string(id), 201, 0});
          return id;
        },
        [who, lang, respond](std::optional<int64_t> id) {
          if (!id) return respond(api::problem(api::unavailable()));
          spdlog::info("console: draft {} waits for a second person", *id);
          Page p;
          p.lang = lang;
          p.who = &who;
          p.title = tr(lang, "draft");
          p.body = "<h1>" + T(lang, "draft") + " " + std::to_string(*id) +
                   "</h1><p role=\"status\">" + T(lang, "draft_saved") +
                   "</p><p><a href=\"/console/drafts/" + std::to_string(*id) + "\">" +
                   T(lang, "open") + "</a></p>";
          respond(html_response(201, render_page(p)));
        });
  }
  auto ir = std::make_shared<IngestRequest>(
      IngestRequest{coordinator, "console-" + form_id, *report, body.dump(), now, point_areas, name});
  auto draws = rng;
  store.call<IngestResult>(
      [cfg, ir, draws, name, now](store::Store& s) {
        auto r = ingest_report(s, cfg->config, cfg->templates, *ir, *draws);
        if (!r.problem)
          s.insert_audit(
              {0, now, name, "POST", "/console/reports", r.incident_id, r.status, r.recipients});
        return r;
      },
      [self, cfg, who, lang, f, now, respond](std::optional<IngestResult> r) {
        if (!r) return respond(api::problem(api::unavailable()));
        if (r->problem) {
          self->audit(who.user.name, "POST", "/console/reports", "", r->status);
          return respond(form_page(r->status, lang, who, *cfg, f,
                                   {{r->problem->field, r->problem->detail}}, std::nullopt, now));
        }
        if (!r->replayed) {
          spdlog::info("console report {} from coordinator {}: incident {} {}, {} deliveries",
                       r->report_id, who.user.coordinator, r->incident_id, r->outcome,
                       r->recipients);
          if (self->ingested) self->ingested(*r);
          if (r->recipients > 0 && self->deliveries_planned) self->deliveries_planned();
        }
        auto j = json::parse(r->body, nullptr, false);
        std::string code = j.is_object() ? j.value("incident_id", "") : "";
        respond(redirect("/console/incidents/" + code));
      });
}

void Console::Impl::draft_page(int64_t id, const Who& who, const std::string& lang,
                               Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  struct Found {
    std::optional<store::Draft> draft;
    std::optional<Preview> preview;
    std::string area, status;
  };
  store.call<Found>(
      [cfg, id, now](store::Store& s) {
        Found fo;
        fo.draft = s.draft(id);
        if (!fo.draft) return fo;
        auto parsed = report_from(json::parse(fo.draft->report_json, nullptr, false), cfg->config, now);
        if (auto* r = std::get_if<Report>(&parsed)) {
          ReportEvidence author{fo.draft->coordinator, fo.draft->author, r->certainty};
          fo.preview = compute_preview(s, *cfg, *r, now, {}, &author);
          fo.area = r->area;
          fo.status = std::string(to_string(r->status));
        }
        return fo;
      },
      [who, lang, id, respond](std::optional<Found> fo) {
        if (!fo) return respond(api::problem(api::unavailable()));
        if (!fo->draft || !fo->preview)
          return respond(message_page(404, lang, &who, "not_found", tr(lang, "not_found")));
        const auto& d = *fo->draft;
        if (!may_decide(who, d) || !who.covers(fo->area))
          return respond(message_page(403, lang, &who, "forbidden", tr(lang, "out_of_scope")));
        Page p;
        p.lang = lang;
        p.who = &who;
        p.title = tr(lang, "draft") + std::string(" ") + std::to_string(id);
        p.drill = fo->status != "actual";
        std::string& b = p.body;
        b += "<h1>" + T(lang, "draft") + " " + std::to_string(id) + "</h1>";
        b += "<p>" + T(lang, "author") + ": <strong>" + esc(d.author) + "</strong> · " +
             esc(d.coordinator) + " · " + T(lang, "area") + " " + esc(fo->area) + " · " +
             esc(d.state) + "</p>";
        b += preview_html(lang, *fo->preview);
        if (d.state == "waiting") {
          if (d.author == who.user.name) b += "<p class=\"note\">" + T(lang, "own_draft") + "</p>";
          std::string base = "/console/drafts/" + std::to_string(id);
          b += "<div class=\"actions\"><form method=\"post\" action=\"" + base + "/approve\">" +
               csrf_field(who) + "<button type=\"submit\" id=\"approve\">" + T(lang, "approve") +
               "</button></form><form method=\"post\" action=\"" + base + "/reject\">" +
               csrf_field(who) + "<button type=\"submit\" id=\"reject\" class=\"secondary\">" +
               T(lang, "reject") + "</button></form></div>";
        } else if (!d.incident_id.empty()) {
          b += "<p><a href=\"/console/incidents/" + esc(d.incident_id) + "\">" +
               T(lang, "incident") + " " + esc(d.incident_id) + "</a></p>";
        }
        respond(html_response(200, render_page(p)));
      });
}

void Console::Impl::decide_draft(int64_t id, bool approve, const Who& who, const std::string& lang,
                                 Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  struct Outcome {
    int status = 200;
    std::string key;  // the message
    IngestResult ingest;
  };
  auto draws = rng;
  auto self = shared_from_this();
  store.call<Outcome>(
      [cfg, id, approve, who, now, draws](store::Store& s) {
        Outcome o;
        auto d = s.draft(id);
        std::string route =
            approve ? "/console/drafts/{id}/approve" : "/console/drafts/{id}/reject";
        auto finish = [&](int status, const char* key) {
          o.status = status;
          o.key = key;
          s.insert_audit({0, now, who.user.name, "POST", route, std::to_string(id), status,
                          o.ingest.recipients});
          return o;
        };
        if (!d) return finish(404, "not_found");
        std::vector<std::string> point_areas;
        auto parsed = report_from(json::parse(d->report_json, nullptr, false), cfg->config, now,
                                  coordinator_of(cfg->config, d->coordinator), &point_areas);
        auto* report = std::get_if<Report>(&parsed);
        if (!report) return finish(422, "not_found");
        if (!may_decide(who, *d) || !who.covers(report->area)) return finish(403, "out_of_scope");
        if (d->author == who.user.name) return finish(403, "own_draft");
        if (d->state != "waiting") return finish(409, "draft_decided");
        d->decided_by = who.user.name;
        d->decided_at = now;
        if (!approve) {
          d->state = "rejected";
          s.update_draft(*d);
          return finish(200, "rejected");
        }
        // The draft's author reported it (the approver checked it): the
        // author is the person corroboration counts.
        IngestRequest ir{d->coordinator, "console-draft-" + std::to_string(id), *report,
                         d->report_json, now, point_areas, d->author};
        o.ingest = ingest_report(s, cfg->config, cfg->templates, ir, *draws);
        if (o.ingest.problem) return finish(o.ingest.status, "not_found");
        d->state = "approved";
        d->incident_id = o.ingest.incident_id;
        s.update_draft(*d);
        return finish(200, "approved");
      },
      [self, who, lang, approve, respond](std::optional<Outcome> o) {
        if (!o) return respond(api::problem(api::unavailable()));
        if (o->ingest.problem)
          return respond(
              message_page(o->status, lang, &who, "forbidden", o->ingest.problem->detail));
        if (o->status != 200)
          return respond(message_page(o->status, lang, &who, "forbidden", tr(lang, o->key)));
        if (!approve) return respond(message_page(200, lang, &who, "draft", tr(lang, "rejected")));
        spdlog::info("console: draft approved: incident {} {}, {} deliveries",
                     o->ingest.incident_id, o->ingest.outcome, o->ingest.recipients);
        if (self->ingested) self->ingested(o->ingest);
        if (o->ingest.recipients > 0 && self->deliveries_planned) self->deliveries_planned();
        respond(redirect("/console/incidents/" + o->ingest.incident_id));
      });
}

}  // namespace tocsin::app
