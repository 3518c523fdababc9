// The config's groups: matching, channels, safety rules (corroboration,
// escalation, enough_responding), join keywords; and the message templates
// with the warnings check-config gives about them.
#include <algorithm>
#include <set>
#include <string>
#include <string_view>

#include "app/config_reading.h"
#include "core/join.h"
#include "core/safety.h"
#include "core/templates.h"

namespace tocsin::app::config_detail {

using nlohmann::json;

namespace {

// Safety rules (README "Safety rules"). Thresholds that can never be met
// are refused: a group that silently never hears of anything is worse than
// a config error.
void read_gates(JsonReader& m, Group& g) {
  if (auto s = m.string("min_certainty", Need::kOptional)) {
    if (auto c = parse_certainty(*s)) g.min_certainty = c;
    else m.problem("min_certainty", "must be one of observed, likely, possible, unlikely, unknown");
  }
  if (m.has("min_corroboration")) {
    if (const json* v = m.get("min_corroboration"); v->is_number_integer() && v->get<int64_t>() < 1)
      m.problem("min_corroboration", "must be at least 1 (1: one report suffices)");
    else if (auto v2 = m.integer("min_corroboration", Need::kOptional, 1, 1000))
      g.min_corroboration = static_cast<int>(*v2);
  }
}

void read_response_rules(JsonReader& r, Group& g) {
  if (r.has("enough_responding")) {
    if (const json* v = r.get("enough_responding"); v->is_number_integer() && v->get<int64_t>() < 1)
      r.problem("enough_responding", "must be at least 1: 0 responding can never cover an incident");
    else if (auto n = r.integer("enough_responding", Need::kOptional, 1, 1000000))
      g.enough_responding = static_cast<int>(*n);
  }
  if (!r.has("escalate")) return;
  JsonReader e = r.object("escalate", Need::kOptional);
  if (!e.ok()) return;
  e.reject_unknown({"after_s", "if_responding_below", "to"});
  EscalateRule rule;
  if (const json* v = e.get("after_s"); v && v->is_number() && v->get<double>() <= 0)
    e.problem("after_s", "must be more than 0 seconds");
  else if (auto s = e.integer("after_s", Need::kRequired, 1, 7 * 86400))
    rule.after_s = *s;
  if (const json* v = e.get("if_responding_below"); v && v->is_number() && v->get<double>() < 1)
    e.problem("if_responding_below", "must be at least 1: fewer than 0 responding never happens");
  else if (auto n = e.integer("if_responding_below", Need::kRequired, 1, 1000000))
    rule.if_responding_below = static_cast<int>(*n);
  if (auto to = e.strings("to", Need::kRequired)) {
    if (to->empty()) e.problem("to", "must name at least one group");
    rule.to = *to;
  }
  g.escalate = std::move(rule);
}

// A group's "join": {"keywords": [...], "language": "es"}. A keyword is a
// string (in the group's language) or {"word": "EASTSIDE", "language": "en"}.
// Keywords are one or two words, unique across groups, and none of the words
// tocsin answers itself (STOP, HELP, YES, LEAVE ...).
void read_join(JsonReader r, std::set<std::string>& taken, Group& g) {
  if (!r.ok()) return;
  r.reject_unknown({"keywords", "language"});
  static const std::set<std::string> kReserved = {
      "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP", "HELP",
      "INFO", "YES", "SI", "S\xc3\x8d", "LEAVE", "SALIR", "1", "Y", "OK"};
  const json* keywords = r.get("keywords");
  if (!keywords) {
    r.problem("keywords", "is required");
  } else if (!keywords->is_array() || keywords->size() > 20) {
    r.problem("keywords", "must be an array of at most 20 keywords");
  } else {
    if (keywords->empty()) r.problem("keywords", "must name at least one keyword");
    for (std::size_t i = 0; i < keywords->size(); ++i) {
      const json& item = (*keywords)[i];
      std::string at = index_path("keywords", i);
      std::optional<std::string> word, language;
      if (item.is_string()) {
        word = item.get<std::string>();
      } else if (item.is_object()) {
        std::vector<FieldProblem> problems;
        JsonReader e(item, "", problems);
        e.reject_unknown({"word", "language"});
        word = e.string("word", Need::kRequired, 120);
        language = e.string("language", Need::kOptional, 35);
        if (language && !valid_language(*language))
          e.problem("language", "must be a language tag like en or es");
        for (const auto& p : problems) r.problem(join_path(at, p.path), p.message);
        if (!problems.empty()) continue;
      } else {
        r.problem(at, "must be a keyword or {\"word\", \"language\"}");
        continue;
      }
      if (!word) continue;
      std::string k = normalize_keyword(*word);
      std::string word_at = item.is_object() ? join_path(at, "word") : at;
      if (k.empty() || k.size() > 30 || k.find_first_of("\r\n") != std::string::npos)
        r.problem(word_at, "must be a word of 1 to 30 characters");
      else if (kReserved.count(k))
        r.problem(word_at, "is a word tocsin answers itself (STOP, HELP, YES, LEAVE...)");
      else if (!taken.insert(k).second)
        r.problem(word_at, "is already another group's keyword");
      else {
        g.join_keywords.push_back(k);
        if (language) g.join_keyword_languages[k] = *language;
      }
    }
  }
  if (auto lang = r.string("language", Need::kOptional, 35)) {
    if (valid_language(*lang)) g.join_language = *lang;
    else r.problem("language", "must be a language tag like en or es");
  }
}

void read_template_set(JsonReader& r, std::string_view key, TemplateMap& out,
                       std::vector<FieldProblem>& problems) {
  const json* v = r.get(key);
  if (!v) return;
  if (!v->is_object()) {
    r.problem(key, "must be an object of language tag to template");
    return;
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    std::string path = join_path(r.child_path(key), it.key());
    if (!valid_language(it.key())) {
      problems.push_back({path, "is not a language tag"});
      continue;
    }
    if (!it->is_string()) {
      problems.push_back({path, "must be a string"});
      continue;
    }
    if (auto err = template_error(it->get<std::string>())) {
      problems.push_back({path, *err});
      continue;
    }
    out[it.key()] = it->get<std::string>();
  }
}

}  // namespace

// Checks across groups and coordinators: escalate targets exist, no cycle,
// and min_corroboration is reachable by those who can report in the group's
// areas. Without the console that is one reporter per coordinator whose
// areas overlap the group's; with it, several people of one such
// coordinator count apart (core/safety.h evidence_of), and how many people
// a coordinator has is in the database, not the config: any such
// coordinator makes the threshold reachable.
void check_safety_rules(const Config& c, std::vector<FieldProblem>& problems) {
  std::vector<std::vector<std::string>> reporter_areas;
  for (const auto& co : c.coordinators) reporter_areas.push_back(co.areas);
  for (std::size_t i = 0; i < c.groups.size(); ++i) {
    const Group& g = c.groups[i];
    std::string at = index_path("groups", i);
    if (g.min_corroboration > 1) {
      int n = possible_reporters(g, reporter_areas);
      if (n == 0)
        problems.push_back({at + ".match.min_corroboration",
                            "can never be met: no coordinator may report in the group's areas"});
      else if (g.min_corroboration > n && !c.console.enabled)
        problems.push_back(
            {at + ".match.min_corroboration",
             "can never be met: only " + std::to_string(n) +
                 " coordinator(s) may report in the group's areas, and without the console "
                 "(console.enabled) each coordinator counts as one reporter"});
    }
    if (!g.escalate) continue;
    for (std::size_t k = 0; k < g.escalate->to.size(); ++k) {
      const std::string& name = g.escalate->to[k];
      std::string p = index_path(at + ".escalate.to", k);
      if (!c.group(name)) problems.push_back({p, "no group named \"" + name + "\""});
      else if (name == g.name) problems.push_back({p, "a group cannot escalate to itself"});
    }
  }
  auto cycle = escalation_cycle(c.groups);
  if (cycle.size() > 2) {  // a self-loop is reported above
    std::string path;
    for (const auto& n : cycle) path += (path.empty() ? "" : " → ") + n;
    for (std::size_t i = 0; i < c.groups.size(); ++i)
      if (c.groups[i].name == cycle.front())
        problems.push_back({index_path("groups", i) + ".escalate.to", "escalation cycle: " + path});
  }
}

void read_groups(const json& arr, const std::string& path, std::vector<FieldProblem>& problems,
                 Config& c) {
  std::set<std::string> names;
  std::set<std::string> keywords;
  for_each_object(arr, path, problems, [&](JsonReader& r) {
    r.reject_unknown({"name", "match", "channels", "drills", "escalate", "enough_responding", "join"});
    Group g;
    if (auto n = r.string("name", Need::kRequired, 100)) {
      g.name = *n;
      if (!names.insert(*n).second) r.problem("name", "duplicate group name");
    }
    JsonReader m = r.object("match", Need::kRequired);
    if (m.ok()) {
      m.reject_unknown({"areas", "events", "min_severity", "min_certainty", "min_corroboration"});
      if (auto areas = m.strings("areas", Need::kRequired)) {
        if (areas->empty()) m.problem("areas", "must name at least one area");
        for (std::size_t k = 0; k < areas->size(); ++k)
          if (!valid_area((*areas)[k]))
            problems.push_back({index_path(m.child_path("areas"), k), "is not an area path"});
        g.areas = *areas;
      }
      if (auto events = m.strings("events", Need::kOptional)) g.events = *events;
      if (auto s = m.string("min_severity", Need::kOptional)) {
        if (auto sev = parse_severity(*s)) g.min_severity = sev;
        else m.problem("min_severity", "must be one of extreme, severe, moderate, minor");
      }
      read_gates(m, g);
    }
    if (auto chans = r.strings("channels", Need::kRequired)) {
      if (chans->empty()) r.problem("channels", "must name at least one channel");
      for (std::size_t k = 0; k < chans->size(); ++k) {
        auto ch = parse_channel((*chans)[k]);
        std::string at = index_path(r.child_path("channels"), k);
        if (!ch) {
          problems.push_back({at, "must be sms, email, signal or voice"});
          continue;
        }
        bool served = std::any_of(c.gateways.begin(), c.gateways.end(),
                                  [&](const GatewayConfig& gw) { return gw.channel == *ch; });
        if (!served) problems.push_back({at, "no gateway serves channel " + (*chans)[k]});
        g.channels.push_back(*ch);
      }
    }
    if (auto d = r.boolean("drills", Need::kOptional)) g.drills = *d;
    read_response_rules(r, g);
    if (r.has("join")) read_join(r.object("join", Need::kOptional), keywords, g);
    c.groups.push_back(std::move(g));
  });
}

void read_templates(JsonReader r, std::vector<FieldProblem>& problems, Config& c) {
  r.reject_unknown({"sms", "email", "help", "covered", "voice"});
  read_template_set(r, "sms", c.templates.sms, problems);
  read_template_set(r, "voice", c.templates.voice, problems);
  read_template_set(r, "help", c.templates.help, problems);
  read_template_set(r, "covered", c.templates.covered, problems);
  JsonReader e = r.object("email", Need::kOptional);
  if (e.ok()) {
    e.reject_unknown({"subject", "body"});
    read_template_set(e, "subject", c.templates.email_subject, problems);
    read_template_set(e, "body", c.templates.email_body, problems);
  }
}

// What check-config should point out in templates that are valid: a language
// one set has and another lacks (its subscribers get another language
// there), and an SMS template whose worst case exceeds sms.max_segments.
std::vector<FieldProblem> template_warnings(const Config& c) {
  std::vector<FieldProblem> out;
  MessageTemplates t = with_defaults(c.templates);
  for (const auto& gap : language_gaps(t)) {
    std::string got = gap.fallback.empty()
                          ? "nothing"
                          : "the \"" + gap.fallback + "\" one (fallback " + gap.language + " → " +
                                gap.fallback + ")";
    out.push_back({join_path("templates", gap.set),
                   "no \"" + gap.language + "\" template; subscribers in \"" + gap.language +
                       "\" get " + got});
  }
  bool built_in = c.templates.sms.empty();
  for (const auto& [lang, text] : t.sms) {
    SmsWorstCase w = sms_worst_case(text);
    if (w.size.segments <= static_cast<std::size_t>(c.sms.max_segments)) continue;
    out.push_back({join_path("templates.sms", lang),
                   std::string(built_in ? "built-in template: " : "") + "worst case " +
                       std::to_string(w.size.segments) + " " +
                       (w.size.encoding == SmsEncoding::kGsm7 ? "GSM-7" : "UCS-2") +
                       " segments, above sms.max_segments " + std::to_string(c.sms.max_segments) +
                       " (" + (w.drill ? "drill " : "") + (w.confirmed ? "confirmed " : "") +
                       std::string(to_string(w.msg_type)) +
                       ", " + std::to_string(kWorstCaseHeadline) +
                       "-character headline, instruction and location cut away): such messages "
                       "go out over the limit"});
  }
  return out;
}

}  // namespace tocsin::app::config_detail
