// The admin's incident routes: GET /v1/incidents (open or all), one
// incident with its reports, deliveries per channel and gateway, safety
// timeline and area shapes, its map (SVG), and POST .../retry.
#include "app/api.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "app/api_common.h"
#include "core/area_svg.h"
#include "core/areas.h"

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

}  // namespace

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
