// The incident board: open incidents in the person's areas with live
// progress per channel and acknowledgements (board.json, polled by the ES
// module), waiting drafts (flagged when late), one incident's page with its
// reports and timeline, and "retry failed".
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api_common.h"
#include "app/console_impl.h"
#include "core/area_svg.h"

namespace tocsin::app {

using nlohmann::json;
using namespace console;

namespace {

struct Progress {
  int64_t planned = 0, sent = 0, delivered = 0, failed = 0, expired = 0;
};

struct Row {
  store::IncidentRecord incident;
  std::map<std::string, Progress> channels;  // "sms", "email"
  int64_t responding = 0, reply = 0;
};

Row row_of(store::Store& s, const store::IncidentRecord& i) {
  Row r;
  r.incident = i;
  for (const auto& c : s.incident_delivery_counts(i.id)) {
    auto& p = r.channels[std::string(to_string(c.channel))];
    p.planned += c.count;
    switch (c.state) {
      case DeliveryState::kSent:
        p.sent += c.count;
        break;
      case DeliveryState::kDelivered:
        p.sent += c.count;
        p.delivered += c.count;
        break;
      case DeliveryState::kUndelivered:
        p.sent += c.count;
        p.failed += c.count;
        break;
      case DeliveryState::kFailed:
        p.failed += c.count;
        break;
      case DeliveryState::kExpired:
        p.expired += c.count;
        break;
      default:
        break;
    }
  }
  for (const auto& a : s.incident_acks(i.id))
    (a.kind == "responding" ? r.responding : r.reply) += 1;
  return r;
}

json row_json(const Row& r) {
  json ch = json::object();
  for (const auto& [name, p] : r.channels)
    ch[name] = {{"planned", p.planned},
                {"sent", p.sent},
                {"delivered", p.delivered},
                {"failed", p.failed},
                {"expired", p.expired}};
  const auto& i = r.incident;
  return {{"id", i.id},
          {"event", i.event},
          {"area", i.area},
          {"severity", to_string(i.severity)},
          {"status", to_string(i.status)},
          {"drill", i.status != ReportStatus::kActual},
          {"opened_at", format_rfc3339(i.opened_at)},
          {"reports", i.report_count},
          {"channels", ch},
          {"acks", {{"responding", r.responding}, {"reply", r.reply}}}};
}

std::string progress_text(const std::string& l, const Progress& p) {
  return std::to_string(p.planned) + " " + std::string(tr(l, "planned")) + " · " +
         std::to_string(p.sent) + " " + std::string(tr(l, "sent")) + " · " +
         std::to_string(p.delivered) + " " + std::string(tr(l, "delivered")) + " · " +
         std::to_string(p.failed) + " " + std::string(tr(l, "failed")) + " · " +
         std::to_string(p.expired) + " " + std::string(tr(l, "expired"));
}

std::string acks_text(const std::string& l, int64_t responding, int64_t reply) {
  return std::to_string(responding) + " " + std::string(tr(l, "responding")) + " · " +
         std::to_string(reply) + " " + std::string(tr(l, "reply"));
}

// The labels the ES module writes progress with, in the page's language.
std::string label_attrs(const std::string& l) {
  std::string a;
  for (const char* k :
       {"planned", "sent", "delivered", "failed", "expired", "responding", "reply", "drill"})
    a += std::string(" data-l-") + k + "=\"" + T(l, k) + "\"";
  return a;
}

std::string progress_cells(const std::string& l, const Row& r) {
  auto get = [&](const char* ch) {
    auto it = r.channels.find(ch);
    return it == r.channels.end() ? Progress{} : it->second;
  };
  return "<td class=\"p-sms\" data-label=\"SMS\">" + esc(progress_text(l, get("sms"))) +
         "</td><td class=\"p-email\" data-label=\"email\">" + esc(progress_text(l, get("email"))) +
         "</td><td class=\"acks\" data-label=\"" + T(l, "acks") + "\">" +
         esc(acks_text(l, r.responding, r.reply)) + "</td>";
}

struct BoardData {
  std::vector<Row> rows;
  std::vector<store::Draft> drafts;
};

BoardData board_data(store::Store& s, const Who& who) {
  BoardData b;
  for (const auto& i : s.list_incidents(true, 200))
    if (who.covers(i.area)) b.rows.push_back(row_of(s, i));
  for (auto& d : s.waiting_drafts()) {
    auto j = json::parse(d.report_json, nullptr, false);
    std::string area = j.is_object() ? j.value("area", "") : "";
    bool mine = who.user.role == "admin" || who.user.coordinator.empty() ||
                who.user.coordinator == d.coordinator;
    if (mine && who.covers(area)) b.drafts.push_back(std::move(d));
  }
  return b;
}

}  // namespace

void Console::Impl::board(const Who& who, const std::string& lang, Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  store.call<BoardData>(
      [who](store::Store& s) { return board_data(s, who); },
      [cfg, who, lang, now, respond](std::optional<BoardData> b) {
        if (!b) return respond(api::problem(api::unavailable()));
        const std::string& l = lang;
        Page p;
        p.lang = l;
        p.who = &who;
        p.title = tr(l, "board");
        std::string& h = p.body;
        h += "<h1>" + T(l, "board") + "</h1>";
        if (!b->drafts.empty()) {
          h += "<section aria-labelledby=\"dr\"><h2 id=\"dr\">" + T(l, "drafts") +
               "</h2><ul class=\"drafts\">";
          for (const auto& d : b->drafts) {
            auto j = json::parse(d.report_json, nullptr, false);
            bool drill = j.is_object() && j.value("status", "actual") != "actual";
            bool late = now - d.created_at > cfg->config.console.draft_flag_after_s * 1000;
            h += "<li" + std::string(late ? " class=\"late\"" : "") +
                 "><a href=\"/console/drafts/" + std::to_string(d.id) + "\">" + T(l, "draft") +
                 " " + std::to_string(d.id) + "</a> · " + esc(d.author) + " · " +
                 esc(j.is_object() ? j.value("area", "") : "") +
                 (drill ? " <strong class=\"drill\">" + T(l, "drill") + "</strong>" : "") +
                 (late ? " <strong class=\"flag\">" + T(l, "draft_late") + "</strong>" : "") +
                 "</li>";
          }
          h += "</ul></section>";
        }
        h += "<p class=\"hint\">" + T(l, "live") + "</p>";
        h += "<div class=\"scroll\" tabindex=\"0\"><table id=\"board\"" + label_attrs(l) +
             "><caption>" + T(l, "board") + "</caption><thead><tr><th scope=\"col\">" +
             T(l, "incident") + "</th><th scope=\"col\">" + T(l, "event") + " / " + T(l, "area") +
             "</th><th scope=\"col\">" + T(l, "severity") +
             "</th><th scope=\"col\">SMS</th><th scope=\"col\">email</th><th scope=\"col\">" +
             T(l, "acks") + "</th></tr></thead><tbody>";
        for (const auto& r : b->rows) {
          const auto& i = r.incident;
          bool drill = i.status != ReportStatus::kActual;
          h += "<tr data-incident=\"" + esc(i.id) + "\"" + (drill ? " class=\"drill-row\"" : "") +
               "><td><a href=\"/console/incidents/" + esc(i.id) + "\">" + esc(i.id) + "</a>" +
               (drill ? " <strong class=\"drill\">" + T(l, "drill") + "</strong>" : "") +
               "</td><td data-label=\"" + T(l, "area") + "\">" + esc(i.event) + " · " +
               esc(i.area) + "</td><td data-label=\"" + T(l, "severity") + "\">" +
               esc(to_string(i.severity)) + "</td>" + progress_cells(l, r) + "</tr>";
        }
        h += "</tbody></table></div>";
        if (b->rows.empty()) h += "<p id=\"no-incidents\">" + T(l, "no_incidents") + "</p>";
        respond(html_response(200, render_page(p)));
      });
}

void Console::Impl::board_json(const Who& who, Respond respond) {
  store.call<json>(
      [who](store::Store& s) {
        auto b = board_data(s, who);
        json list = json::array();
        for (const auto& r : b.rows) list.push_back(row_json(r));
        json drafts = json::array();
        for (const auto& d : b.drafts) drafts.push_back({{"id", d.id}, {"author", d.author}});
        return json{{"incidents", list}, {"drafts", drafts}};
      },
      [respond](std::optional<json> j) {
        if (!j) return respond(api::problem(api::unavailable()));
        respond(http::json_response(200, j->dump()));
      });
}

void Console::Impl::incident_page(const std::string& code, const Who& who, const std::string& lang,
                                  Respond respond) {
  struct Found {
    std::optional<Row> row;
    std::vector<store::ReportSummary> reports;
    std::vector<store::Acknowledgement> acks;
    std::vector<store::SafetyEvent> safety;  // held, released, escalated, covered...
  };
  auto cfg = config();
  store.call<Found>(
      [code](store::Store& s) {
        Found f;
        if (auto i = s.incident(code)) {
          f.row = row_of(s, *i);
          f.reports = s.incident_reports(code);
          f.acks = s.incident_acks(code);
          f.safety = s.safety_events(code);
        }
        return f;
      },
      [cfg, who, lang, code, respond](std::optional<Found> f) {
        if (!f) return respond(api::problem(api::unavailable()));
        if (!f->row)
          return respond(message_page(404, lang, &who, "not_found", tr(lang, "not_found")));
        const auto& i = f->row->incident;
        if (!who.covers(i.area))
          return respond(message_page(403, lang, &who, "forbidden", tr(lang, "out_of_scope")));
        const std::string& l = lang;
        bool drill = i.status != ReportStatus::kActual;
        Page p;
        p.lang = l;
        p.who = &who;
        p.title = tr(l, "incident") + std::string(" ") + i.id;
        p.drill = drill;
        std::string& h = p.body;
        h += "<h1>" + T(l, "incident") + " " + esc(i.id) +
             (drill ? " <strong class=\"drill\">" + T(l, "drill") + "</strong>" : "") + "</h1>";
        h += "<dl class=\"facts\"><dt>" + T(l, "event") + "</dt><dd>" + esc(i.event) + "</dd><dt>" +
             T(l, "area") + "</dt><dd>" + esc(i.area) + "</dd><dt>" + T(l, "severity") +
             "</dt><dd>" + esc(to_string(i.severity)) + "</dd><dt>" + T(l, "opened") + "</dt><dd>" +
             esc(format_rfc3339(i.opened_at)) + "</dd>";
        if (i.location)
          h += "<dt>" + T(l, "location") + "</dt><dd>" + esc(i.location->description) + "</dd>";
        h += "<dt>state</dt><dd>" + std::string(i.open ? "open" : "closed") + "</dd></dl>";
        // The area shapes with the incident's point (areas as shapes): an
        // inline SVG whose texts area_svg escapes; it holds no script.
        if (cfg->config.areas.shapes && i.location)
          h += "<figure class=\"map\" id=\"incident-map\">" +
               area_svg(*cfg->config.areas.shapes, i.area, i.location, i.id + ": " + i.area) +
               "</figure>";
        h += "<h2>" + T(l, "progress") + "</h2><p class=\"hint\">" + T(l, "live") + "</p>";
        h +=
            "<div class=\"scroll\" tabindex=\"0\"><table id=\"incident-progress\"" +
            label_attrs(l) +
            "><thead><tr><th scope=\"col\">SMS</th><th scope=\"col\">email</th><th scope=\"col\">" +
            T(l, "acks") + "</th></tr></thead><tbody><tr data-incident=\"" + esc(i.id) + "\">" +
            progress_cells(l, *f->row) + "</tr></tbody></table></div>";
        if (i.open && who.can_report()) {
          h += "<div class=\"actions\"><a class=\"button\" id=\"update\" "
               "href=\"/console/reports/new?msg_type=update&amp;references=" +
               esc(i.id) + "\">" + T(l, "update") +
               "</a><a class=\"button danger\" id=\"all-clear\" "
               "href=\"/console/reports/new?msg_type=cancel&amp;references=" +
               esc(i.id) + "\">" + T(l, "all_clear") +
               "</a><form method=\"post\" action=\"/console/incidents/" + esc(i.id) + "/retry\">" +
               csrf_field(who) + "<button type=\"submit\" class=\"secondary\">" + T(l, "retry") +
               "</button></form></div>";
        }
        h += "<h2>" + T(l, "timeline") + "</h2><ol class=\"timeline\">";
        struct Ev {
          UnixMs at;
          std::string text;
        };
        std::vector<Ev> ev;
        for (const auto& r : f->reports)
          ev.push_back({r.received_at, r.msg_type + " · " + r.outcome + " · " + r.coordinator +
                                           " · " + r.severity + " · " +
                                           std::to_string(r.recipients)});
        for (const auto& a : f->acks)
          ev.push_back(
              {a.received_at, std::string(tr(l, a.kind == "responding" ? "responding" : "reply"))});
        for (const auto& e : f->safety)
          ev.push_back({e.at, e.what + " · " + e.group + (e.detail.empty() ? "" : " · " + e.detail) +
                                  (e.recipients > 0 ? " · " + std::to_string(e.recipients) : "")});
        std::stable_sort(ev.begin(), ev.end(),
                         [](const Ev& a, const Ev& b) { return a.at < b.at; });
        for (const auto& e : ev)
          h += "<li><time>" + esc(format_rfc3339(e.at)) + "</time> " + esc(e.text) + "</li>";
        h += "</ol>";
        respond(html_response(200, render_page(p)));
      });
}

void Console::Impl::retry(const std::string& code, const Who& who, const std::string& lang,
                          Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  const auto& dc = cfg->config.delivery;
  UnixMs sms_deadline = now + dc.sms_deadline_s * 1000,
         email_deadline = now + dc.email_deadline_s * 1000;
  auto self = shared_from_this();
  store.call<std::pair<int, int64_t>>(
      [code, who, now, sms_deadline, email_deadline](store::Store& s) -> std::pair<int, int64_t> {
        auto i = s.incident(code);
        int status = !i ? 404 : !who.covers(i->area) || !who.can_report() ? 403 : 200;
        int64_t n = status == 200 ? s.requeue_failed(code, now, sms_deadline, email_deadline) : 0;
        s.insert_audit(
            {0, now, who.user.name, "POST", "/console/incidents/{code}/retry", code, status, n});
        return {status, n};
      },
      [self, who, lang, respond](std::optional<std::pair<int, int64_t>> r) {
        if (!r) return respond(api::problem(api::unavailable()));
        if (r->first != 200)
          return respond(message_page(r->first, lang, &who, "forbidden", tr(lang, "out_of_scope")));
        if (r->second > 0 && self->deliveries_planned) self->deliveries_planned();
        respond(message_page(200, lang, &who, "retry",
                             tr(lang, "retried") + std::string(" ") + std::to_string(r->second)));
      });
}

}  // namespace tocsin::app
