// Implements console_report_view.h.
#include "app/console_report_view.h"

#include "app/console_crypto.h"
#include "core/sms.h"

namespace tocsin::app::console {

using nlohmann::json;

namespace {

// The headline in `l`, else English, else any.
std::string headline_in(const LocalizedText& t, const std::string& l) {
  for (const std::string& want : {l, std::string("en")})
    if (auto it = t.find(want); it != t.end()) return it->second;
  return t.empty() ? "" : t.begin()->second;
}

// Each group that matches, held or not, with its members per channel and
// language (as the live preview's table in app.js).
std::string groups_html(const std::string& l, const DryRun& run) {
  if (run.groups.empty()) return "";
  std::string h = "<table id=\"preview-groups\"><caption>" + T(l, "per_group") +
                  "</caption><tr><th scope=\"col\">" + T(l, "group") + "</th><th scope=\"col\">" +
                  T(l, "channel") + "</th><th scope=\"col\">lang</th><th scope=\"col\">#</th></tr>";
  for (const auto& g : run.groups) {
    std::string name =
        esc(g.name) + (g.waits.empty() ? "" : " (" + T(l, "held") + ": " + esc(g.waits) + ")");
    if (g.audience.empty()) h += "<tr><td>" + name + "</td><td>-</td><td>-</td><td>0</td></tr>";
    for (const auto& a : g.audience)
      h += "<tr><td>" + name + "</td><td>" + esc(to_string(a.channel)) + "</td><td>" +
           esc(a.language) + "</td><td>" + std::to_string(a.count) + "</td></tr>";
  }
  return h + "</table>";
}

std::string select(const std::string& l, const char* name, const char* label_key,
                   const std::vector<std::pair<std::string, std::string>>& options,
                   std::string_view chosen) {
  std::string h = "<label for=\"" + std::string(name) + "\">" + T(l, label_key) +
                  "</label><select id=\"" + name + "\" name=\"" + name + "\">";
  for (const auto& [value, text] : options)
    h += "<option value=\"" + esc(value) + "\"" + (value == chosen ? " selected" : "") + ">" +
         esc(text) + "</option>";
  return h + "</select>";
}

std::string input(const std::string& l, const std::string& name, const std::string& label,
                  std::string_view value, const char* extra = "") {
  (void)l;
  return "<label for=\"" + name + "\">" + esc(label) + "</label><input id=\"" + name +
         "\" name=\"" + name + "\" value=\"" + esc(value) + "\" " + extra + ">";
}

// "sms 2 · email 1": the messages per channel a follow-up sends.
std::string reach_channels(const std::string& l, const std::optional<store::FollowupReach>& reach) {
  std::string out;
  if (reach)
    for (const auto& [ch, n] : reach->by_channel)
      out += (out.empty() ? "" : " · ") + esc(to_string(ch)) + " " + std::to_string(n);
  return out.empty() ? T(l, "nobody") : out;
}

// The form, filled with `f` (a prefill or what was posted).
std::string form_html(const std::string& l, const Who& who, const ActiveConfig& cfg,
                      const FormFields& f, const std::vector<FieldProblem>& problems,
                      const std::optional<store::FollowupReach>& reach, UnixMs now) {
  const Config& c = cfg.config;
  const CoordinatorConfig* co = coordinator_of(c, who.user.coordinator);
  std::string type(form_value(f, "msg_type"));
  if (type.empty()) type = "alert";
  std::string h;
  if (!problems.empty()) {
    h += "<div class=\"error\" role=\"alert\"><p>" + T(l, "problems") + "</p><ul>";
    for (const auto& p : problems) h += "<li>" + esc(p.path) + ": " + esc(p.message) + "</li>";
    h += "</ul></div>";
  }
  if (co && co->two_person && type == "alert")
    h += "<p class=\"note\">" + T(l, "two_person_note") + "</p>";
  h += "<form method=\"post\" action=\"/console/reports\" id=\"report-form\" class=\"stack\">";
  h += csrf_field(who);
  std::string form_id(form_value(f, "form_id"));
  if (form_id.empty()) form_id = random_token(12);
  h += "<input type=\"hidden\" name=\"form_id\" value=\"" + esc(form_id) + "\">";
  if (type != "alert") {
    h += "<input type=\"hidden\" name=\"msg_type\" value=\"" + esc(type) + "\">";
    h += "<input type=\"hidden\" name=\"references\" value=\"" + esc(form_value(f, "references")) +
         "\">";
    h += "<input type=\"hidden\" name=\"status\" value=\"" + esc(form_value(f, "status")) + "\">";
    h += "<p><strong>" + T(l, type == "update" ? "update" : "all_clear") + "</strong> · " +
         T(l, "references") + " <code>" + esc(form_value(f, "references")) + "</code></p>";
    if (form_value(f, "status") != "actual")
      h += "<p class=\"drill-banner\">" + T(l, "drill_banner") + "</p>";
  } else {
    h += "<input type=\"hidden\" name=\"msg_type\" value=\"alert\">";
    h += select(
        l, "status", "status",
        {{"actual", tr(l, "actual")}, {"exercise", tr(l, "exercise")}, {"test", tr(l, "test")}},
        form_value(f, "status"));
    h += "<p class=\"drill-banner drill-when-selected\">" + T(l, "drill_banner") + "</p>";
  }
  std::vector<std::pair<std::string, std::string>> events;
  for (const auto& e : c.console.events) events.emplace_back(e, e);
  h += select(l, "event", "event", events, form_value(f, "event"));
  h += select(
      l, "severity", "severity",
      {{"extreme", "extreme"}, {"severe", "severe"}, {"moderate", "moderate"}, {"minor", "minor"}},
      form_value(f, "severity").empty() ? "severe" : form_value(f, "severity"));
  if (type == "alert") {
    std::vector<std::pair<std::string, std::string>> areas;
    if (co) {
      for (const auto& a : co->areas) areas.emplace_back(a, a);
      for (const auto& g : c.groups)
        for (const auto& a : g.areas)
          if (coordinator_covers(co, a) && std::find_if(areas.begin(), areas.end(), [&](auto& x) {
                                             return x.first == a;
                                           }) == areas.end())
            areas.emplace_back(a, a);
    }
    h += select(l, "area", "area", areas, form_value(f, "area"));
  } else {
    h += "<input type=\"hidden\" name=\"area\" value=\"" + esc(form_value(f, "area")) + "\">";
  }
  if (type != "cancel") {  // an update may move the location
    h += "<fieldset><legend>" + T(l, "location") + "</legend>";
    h += input(l, "lat", tr(l, "lat"), form_value(f, "lat"), "inputmode=\"decimal\"");
    h += input(l, "lon", tr(l, "lon"), form_value(f, "lon"), "inputmode=\"decimal\"");
    h += input(l, "loc_desc", tr(l, "loc_desc"), form_value(f, "loc_desc"), "maxlength=\"200\"");
    h += "</fieldset>";
  }
  std::string observed(form_value(f, "observed_at"));
  if (observed.empty()) observed = format_rfc3339(now);
  h += input(l, "observed_at", tr(l, "observed_at"), observed, "required");
  for (const auto& lang : c.console.languages) {
    h += "<fieldset lang=\"" + esc(lang) + "\"><legend>" + esc(lang) + "</legend>";
    h += input(l, "headline_" + lang, tr(l, "headline") + " (" + lang + ")",
               form_value(f, "headline_" + lang), "maxlength=\"200\"");
    h += "<label for=\"instruction_" + esc(lang) + "\">" + T(l, "instruction") + " (" + esc(lang) +
         ")</label><textarea id=\"instruction_" + esc(lang) + "\" name=\"instruction_" + esc(lang) +
         "\" rows=\"2\">" + esc(form_value(f, "instruction_" + lang)) + "</textarea>";
    h += "</fieldset>";
  }
  if (type == "cancel")
    h += "<p><input type=\"checkbox\" id=\"confirm\" name=\"confirm\" value=\"yes\"> <label "
         "for=\"confirm\" "
         "class=\"inline\">" +
         T(l, "confirm_all_clear") + " <strong id=\"confirm-count\">" +
         std::to_string(reach ? reach->people : 0) + "</strong> <span id=\"confirm-channels\">(" +
         reach_channels(l, reach) + ")</span></label></p>";
  h += "<section id=\"live-preview\" aria-live=\"polite\" aria-labelledby=\"lp\"><h2 id=\"lp\">" +
       T(l, "preview") + "</h2><p>" + T(l, "preview_hint") +
       "</p><div id=\"preview-out\" data-l-merge=\"" + T(l, "would_merge") + "\" data-l-groups=\"" +
       T(l, "per_group") + "\" data-l-group=\"" + T(l, "group") + "\" data-l-channel=\"" +
       T(l, "channel") + "\" data-l-held=\"" + T(l, "held") + "\"></div></section>";
  bool draft = co && co->two_person && type == "alert";
  h += "<button type=\"submit\">" + T(l, draft ? "send_draft" : "send") + "</button></form>";
  return h;
}

}  // namespace

const CoordinatorConfig* coordinator_of(const Config& c, const std::string& name) {
  for (const auto& co : c.coordinators)
    if (co.name == name) return &co;
  return nullptr;
}

bool coordinator_covers(const CoordinatorConfig* co, std::string_view area) {
  return co && any_area_covers(co->areas, area);
}

json preview_json(const Preview& p) {
  json messages = json::array();
  for (const auto& m : p.run.messages)
    messages.push_back(
        {{"channel", to_string(m.channel)},
         {"language", m.language},
         {"subject", m.rendered.subject},
         {"body", m.rendered.body},
         {"segments", m.rendered.sms.segments},
         {"encoding", m.rendered.sms.encoding == SmsEncoding::kGsm7 ? "GSM-7" : "UCS-2"},
         {"shortened", m.rendered.shortened}});
  json audience = json::array();
  for (const auto& a : p.run.audience)
    audience.push_back(
        {{"channel", to_string(a.channel)}, {"language", a.language}, {"count", a.count}});
  json groups = json::array();
  // Each group, what the safety rules hold it for ("" = sent at once), and
  // its own members per channel and language.
  for (const auto& g : p.run.groups) {
    json members = json::array();
    for (const auto& a : g.audience)
      members.push_back(
          {{"channel", to_string(a.channel)}, {"language", a.language}, {"count", a.count}});
    groups.push_back({{"name", g.name}, {"waits", g.waits}, {"audience", members}});
  }
  json j{{"map_svg", p.map_svg},
         {"messages", messages},
         {"audience", audience},
         {"groups", groups},
         {"total", p.run.total},
         {"merge_into", p.run.merge_into},
         {"merge_headline", p.run.merge_headline}};
  if (p.followup) {
    json channels = json::array();
    for (const auto& [ch, n] : p.followup->by_channel)
      channels.push_back({{"channel", to_string(ch)}, {"count", n}});
    j["followup_recipients"] = p.followup->people;
    j["followup_channels"] = channels;
  }
  return j;
}

std::string preview_html(const std::string& l, const Preview& p) {
  std::string h = "<section aria-labelledby=\"pv\"><h2 id=\"pv\">" + T(l, "preview") + "</h2>";
  if (!p.run.merge_into.empty())
    h += "<p class=\"warn\" id=\"preview-merge\">" + T(l, "would_merge") + " " +
         esc(p.run.merge_into) + ": \u201c" + esc(headline_in(p.run.merge_headline, l)) +
         "\u201d</p>";
  h += groups_html(l, p.run);
  h += "<table><caption>" + T(l, "recipients") + "</caption><tr><th scope=\"col\">" +
       T(l, "channel") + "</th><th scope=\"col\">lang</th><th scope=\"col\">#</th></tr>";
  for (const auto& a : p.run.audience)
    h += "<tr><td>" + esc(to_string(a.channel)) + "</td><td>" + esc(a.language) + "</td><td>" +
         std::to_string(a.count) + "</td></tr>";
  h += "<tr><th scope=\"row\" colspan=\"2\">total</th><td>" +
       std::to_string(p.followup ? p.followup->people : p.run.total) +
       "</td></tr></table>";
  for (const auto& m : p.run.messages) {
    h += "<figure class=\"sms\"><figcaption>" + esc(to_string(m.channel)) + " · " + esc(m.language);
    if (m.channel == Channel::kSms)
      h += " · " + std::to_string(m.rendered.sms.segments) + " " + T(l, "segments") + " · " +
           (m.rendered.sms.encoding == SmsEncoding::kGsm7 ? "GSM-7" : "UCS-2");
    h += "</figcaption><pre>" + esc(m.rendered.subject.empty() ? "" : m.rendered.subject + "\n") +
         esc(m.rendered.body) + "</pre></figure>";
  }
  return h + "</section>";
}

http::Response form_page(int status, const std::string& l, const Who& who, const ActiveConfig& cfg,
                         const FormFields& f, const std::vector<FieldProblem>& problems,
                         const std::optional<store::FollowupReach>& reach, UnixMs now) {
  Page p;
  p.lang = l;
  p.who = &who;
  p.title = tr(l, "new_report");
  p.drill = !form_value(f, "status").empty() && form_value(f, "status") != "actual";
  p.body = "<h1>" + T(l, "new_report") + "</h1>" +
           form_html(l, who, cfg, f, problems, reach, now);
  return html_response(status, render_page(p));
}

// An update starts from what the incident says now: the headline and
// instruction of its latest alert or update (`latest`, as received) in each
// configured language, and the incident's location.
void prefill_update(FormFields& f, const store::IncidentRecord& i, const std::string& latest,
                    const ConsoleConfig& k) {
  auto j = json::parse(latest, nullptr, false);
  for (const auto& l : k.languages)
    for (const char* key : {"headline", "instruction"})
      if (j.is_object() && j.contains(key) && j[key].is_object() && j[key].contains(l) &&
          j[key][l].is_string())
        f.emplace_back(std::string(key) + "_" + l, j[key][l].get<std::string>());
  if (i.location) {
    f.emplace_back("lat", json(i.location->lat).dump());
    f.emplace_back("lon", json(i.location->lon).dump());
    f.emplace_back("loc_desc", i.location->description);
  }
}

}  // namespace tocsin::app::console
