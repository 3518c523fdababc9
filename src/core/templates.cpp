#include "core/templates.h"

#include <kainjow/mustache.hpp>
#include <strings.h>

#include <algorithm>
#include <memory>
#include <unordered_map>

namespace tocsin {

namespace mstch = kainjow::mustache;

namespace {

MessageTemplates make_defaults() {
  MessageTemplates t;
  t.sms["en"] =
      "{{#drill}}[DRILL - NOT REAL] {{/drill}}"
      "{{#cancel}}ALL CLEAR #{{incident}}{{#headline}}: {{headline}}{{/headline}}{{/cancel}}"
      "{{^cancel}}{{#update}}UPDATE {{/update}}{{#confirmed}}CONFIRMED {{/confirmed}}ALERT #{{incident}}: {{headline}}"
      "{{#location}} ({{location}}){{/location}}{{#instruction}}. {{instruction}}{{/instruction}}"
      "{{/cancel}}\nReply STOP to opt out";
  t.sms["es"] =
      "{{#drill}}[SIMULACRO - NO ES REAL] {{/drill}}"
      "{{#cancel}}FIN DE ALERTA #{{incident}}{{#headline}}: {{headline}}{{/headline}}{{/cancel}}"
      "{{^cancel}}{{#update}}ACTUALIZACION {{/update}}ALERTA{{#confirmed}} CONFIRMADA{{/confirmed}} #{{incident}}: {{headline}}"
      "{{#location}} ({{location}}){{/location}}{{#instruction}}. {{instruction}}{{/instruction}}"
      "{{/cancel}}\nResponda STOP para salir";
  t.email_subject["en"] =
      "{{#drill}}[DRILL] {{/drill}}{{#cancel}}All clear: {{/cancel}}{{#update}}Update: "
      "{{/update}}{{#confirmed}}Confirmed: {{/confirmed}}{{headline}} (#{{incident}})";
  t.email_subject["es"] =
      "{{#drill}}[SIMULACRO] {{/drill}}{{#cancel}}Fin de alerta: {{/cancel}}{{#update}}"
      "Actualización: {{/update}}{{#confirmed}}Confirmada: {{/confirmed}}{{headline}} (#{{incident}})";
  t.email_body["en"] =
      "{{#drill}}THIS IS A DRILL. Nothing is happening.\n\n{{/drill}}"
      "{{#cancel}}All clear for incident #{{incident}}.\n{{/cancel}}"
      "{{#confirmed}}This alert is now confirmed.\n{{/confirmed}}"
      "{{headline}}\n\n{{#instruction}}{{instruction}}\n\n{{/instruction}}"
      "Area: {{area}}\n{{#location}}Location: {{location}}\n{{/location}}"
      "Observed: {{observed_at}}\nIncident: #{{incident}}\n";
  t.email_body["es"] =
      "{{#drill}}ESTO ES UN SIMULACRO. No está pasando nada.\n\n{{/drill}}"
      "{{#cancel}}Fin de alerta del incidente #{{incident}}.\n{{/cancel}}"
      "{{#confirmed}}Esta alerta ya está confirmada.\n{{/confirmed}}"
      "{{headline}}\n\n{{#instruction}}{{instruction}}\n\n{{/instruction}}"
      "Zona: {{area}}\n{{#location}}Lugar: {{location}}\n{{/location}}"
      "Observado: {{observed_at}}\nIncidente: #{{incident}}\n";
  t.voice["en"] =
      "{{#drill}}This is a drill. Nothing is happening. {{/drill}}"
      "{{#cancel}}All clear for incident {{incident}}. {{/cancel}}"
      "{{#update}}Update. {{/update}}{{^cancel}}Alert. {{/cancel}}{{headline}}. "
      "{{#location}}Location: {{location}}. {{/location}}"
      "{{#instruction}}{{instruction}}. {{/instruction}}"
      "{{^cancel}}Press 1 if you are responding.{{/cancel}}";
  t.voice["es"] =
      "{{#drill}}Esto es un simulacro. No está pasando nada. {{/drill}}"
      "{{#cancel}}Fin de alerta del incidente {{incident}}. {{/cancel}}"
      "{{#update}}Actualización. {{/update}}{{^cancel}}Alerta. {{/cancel}}{{headline}}. "
      "{{#location}}Lugar: {{location}}. {{/location}}"
      "{{#instruction}}{{instruction}}. {{/instruction}}"
      "{{^cancel}}Marque 1 si va a responder.{{/cancel}}";
  t.help["en"] = "Rapid-response alerts. Reply STOP to opt out, START to opt back in.";
  t.help["es"] = "Alertas de respuesta rapida. Responda STOP para salir, START para volver.";
  t.covered["en"] =
      "{{#drill}}[DRILL] {{/drill}}COVERED #{{incident}}: enough people are on the way. Stand "
      "down unless you are already close.";
  t.covered["es"] =
      "{{#drill}}[SIMULACRO] {{/drill}}CUBIERTO #{{incident}}: ya van suficientes personas. No "
      "vaya salvo que ya esté cerca.";
  return t;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

template <typename Range, typename KeyOf>
std::string resolve_in(std::string_view wanted, const Range& available, KeyOf key_of) {
  auto find = [&](std::string_view tag) -> std::string {
    for (const auto& item : available)
      if (iequals(key_of(item), tag)) return std::string(key_of(item));
    return {};
  };
  if (auto s = find(wanted); !s.empty()) return s;
  if (auto dash = wanted.find('-'); dash != std::string_view::npos)
    if (auto s = find(wanted.substr(0, dash)); !s.empty()) return s;
  if (auto s = find("en"); !s.empty()) return s;
  for (const auto& item : available) return std::string(key_of(item));
  return {};
}

std::string localized(const LocalizedText& text, std::string_view language) {
  std::string lang = resolve_language(language, text);
  return lang.empty() ? std::string() : text.at(lang);
}

}  // namespace

const MessageTemplates& default_templates() {
  static const MessageTemplates kDefaults = make_defaults();
  return kDefaults;
}

MessageTemplates with_defaults(MessageTemplates t) {
  const auto& d = default_templates();
  if (t.sms.empty()) t.sms = d.sms;
  if (t.email_subject.empty()) t.email_subject = d.email_subject;
  if (t.email_body.empty()) t.email_body = d.email_body;
  if (t.help.empty()) t.help = d.help;
  if (t.covered.empty()) t.covered = d.covered;
  if (t.voice.empty()) t.voice = d.voice;
  return t;
}

const std::vector<std::string_view>& template_variables() {
  static const std::vector<std::string_view> kVars = {
      "headline", "instruction", "event", "severity", "area",  "location", "observed_at",
      "incident", "msg_type",    "drill", "alert",    "update", "cancel", "confirmed"};
  return kVars;
}

std::optional<std::string> template_error(const std::string& text) {
  mstch::mustache tmpl{text};
  if (!tmpl.is_valid()) return "template: " + tmpl.error_message();
  // Every tag must name a known variable: a typo would otherwise render as
  // nothing in a live alert.
  std::size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string::npos) {
    auto end = text.find("}}", pos + 2);
    if (end == std::string::npos) break;
    std::string_view tag(text.data() + pos + 2, end - pos - 2);
    pos = end + 2;
    if (!tag.empty() && (tag[0] == '!' || tag[0] == '>' || tag[0] == '=')) continue;
    while (!tag.empty() && std::string_view("#^/&{ ").find(tag.front()) != std::string_view::npos)
      tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '}')) tag.remove_suffix(1);
    bool known = false;
    for (auto v : template_variables()) known = known || v == tag;
    if (!known) return "template uses unknown variable {{" + std::string(tag) + "}}";
  }
  return std::nullopt;
}

std::string resolve_language(std::string_view wanted, const std::vector<std::string>& available) {
  return resolve_in(wanted, available, [](const std::string& s) -> std::string_view { return s; });
}

std::string resolve_language(std::string_view wanted, const TemplateMap& available) {
  return resolve_in(wanted, available,
                    [](const auto& kv) -> std::string_view { return kv.first; });
}

std::string help_text(const MessageTemplates& templates, std::string_view language) {
  std::string lang = resolve_language(language, templates.help);
  return lang.empty() ? std::string() : templates.help.at(lang);
}

namespace {

// The variables of one rendering, as text ("" = absent: its section skips).
struct Vars {
  std::string headline, instruction, event, severity, area, location, observed_at, incident;
  MsgType msg_type = MsgType::kAlert;
  bool drill = false;
  bool confirmed = false;
};

// The parsed template of `text`. Parsing was 60% of rendering a message
// (callgrind, one message per report), so each thread keeps what it parsed,
// by text: a config has a few dozen templates, and a reload that changes
// them makes the old entries unreachable (the cache is emptied beyond 256).
std::shared_ptr<mstch::mustache> parsed(const std::string& text) {
  thread_local std::unordered_map<std::string, std::shared_ptr<mstch::mustache>> cache;
  auto it = cache.find(text);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 256) cache.clear();
  auto tmpl = std::make_shared<mstch::mustache>(text);
  // Plain-text channels: no HTML escaping ("1st & Soto" stays as written).
  tmpl->set_custom_escape([](const std::string& s) { return s; });
  return cache.emplace(text, std::move(tmpl)).first->second;
}

// One parsed template, rendered as often as the shortening needs.
class Renderer {
 public:
  explicit Renderer(const std::string& text) : tmpl_(parsed(text)) {}
  std::string render(const Vars& v) {
    mstch::data d;
    auto set_text = [&](const std::string& key, const std::string& value) {
      if (!value.empty()) d.set(key, value);
    };
    set_text("headline", v.headline);
    set_text("instruction", v.instruction);
    set_text("event", v.event);
    set_text("severity", v.severity);
    set_text("area", v.area);
    set_text("location", v.location);
    set_text("observed_at", v.observed_at);
    set_text("incident", v.incident);
    set_text("msg_type", std::string(to_string(v.msg_type)));
    if (v.drill) d.set("drill", mstch::data::type::bool_true);
    if (v.confirmed) d.set("confirmed", mstch::data::type::bool_true);
    if (v.msg_type == MsgType::kAlert) d.set("alert", mstch::data::type::bool_true);
    if (v.msg_type == MsgType::kUpdate) d.set("update", mstch::data::type::bool_true);
    if (v.msg_type == MsgType::kCancel) d.set("cancel", mstch::data::type::bool_true);
    return tmpl_->render(d);
  }

 private:
  std::shared_ptr<mstch::mustache> tmpl_;  // shared with the cache, which may drop it
};

Vars vars_of(const Report& r, std::string_view language, const std::string& incident) {
  Vars v;
  v.headline = localized(r.headline, language);
  v.instruction = localized(r.instruction, language);
  v.event = r.event;
  v.severity = std::string(to_string(r.severity));
  v.area = r.area;
  if (r.location) v.location = r.location->description;
  v.observed_at = r.observed_at;
  v.incident = incident;
  v.msg_type = r.msg_type;
  v.drill = r.is_drill();
  return v;
}

// `text` cut to at most `code_points`, backed up to a word break within the
// last 15 characters when there is one, and without trailing separators.
std::string cut_text(std::string_view text, std::size_t code_points) {
  std::string_view p = utf8_prefix(text, code_points);
  if (p.size() < text.size() && text[p.size()] != ' ') {  // a word is cut: drop it if short
    auto space = p.find_last_of(' ');
    if (space != std::string_view::npos && space > 0 && code_point_count(p.substr(space)) <= 15)
      p = p.substr(0, space);
  }
  while (!p.empty() && std::string_view(" ,;:-.").find(p.back()) != std::string_view::npos)
    p.remove_suffix(1);
  return std::string(p);
}

// `field` cut to `keep` code points plus an ellipsis (absent when keep is 0),
// and the segments of the message rendered with it. The ellipsis is the
// cheaper of "..." and "…" for the message.
struct Cut {
  std::string value;
  SmsSize size;
};
Cut render_cut(Renderer& r, Vars v, std::string Vars::*field, const std::string& original,
               std::size_t keep) {
  std::string text = keep == 0 ? std::string() : cut_text(original, keep);
  v.*field = text.empty() ? text : text + "...";
  SmsSize size = sms_size(r.render(v));
  if (size.encoding == SmsEncoding::kUcs2 && !text.empty()) {
    v.*field = text + "…";  // UCS-2 anyway: one unit instead of three
    size = sms_size(r.render(v));
  }
  return {v.*field, size};
}

// Sets `v.*field` to its longest cut with which the message fits in
// `max_segments` and returns true; when even dropping it does not suffice,
// drops it and returns false (the next field is cut then).
bool shorten(Renderer& r, Vars& v, std::string Vars::*field, std::size_t max_segments) {
  const std::string original = v.*field;
  if (original.empty()) return false;
  Cut best = render_cut(r, v, field, original, 0);
  v.*field = best.value;
  if (best.size.segments > max_segments) return false;
  // Invariant: keeping `lo` code points fits, keeping `hi` does not (the
  // whole text did not). Longer cuts never render shorter, so this finds
  // the longest that fits.
  std::size_t lo = 0, hi = code_point_count(original);
  while (hi - lo > 1) {
    std::size_t mid = lo + (hi - lo) / 2;
    Cut c = render_cut(r, v, field, original, mid);
    if (c.size.segments <= max_segments) {
      lo = mid;
      best = std::move(c);
    } else {
      hi = mid;
    }
  }
  v.*field = best.value;
  return true;
}

RenderedMessage render_sms(const std::string& text, Vars v, std::size_t max_segments) {
  Renderer r(text);
  RenderedMessage m;
  m.body = r.render(v);
  m.sms = sms_size(m.body);
  if (max_segments == 0 || m.sms.segments <= max_segments) return m;
  if (v.instruction.empty() && v.location.empty()) return m;  // nothing may be cut
  for (auto field : {&Vars::instruction, &Vars::location})
    if (shorten(r, v, field, max_segments)) break;
  m.body = r.render(v);
  m.sms = sms_size(m.body);
  m.shortened = true;
  return m;
}

}  // namespace

RenderedMessage render_message(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx) {
  Vars vars = vars_of(*ctx.report, language, ctx.incident_code);
  vars.confirmed = ctx.confirmed;
  auto text_of = [&](const TemplateMap& map) -> const std::string* {
    std::string lang = resolve_language(language, map);
    return lang.empty() ? nullptr : &map.at(lang);
  };
  RenderedMessage out;
  if (channel == Channel::kSms || channel == Channel::kSignal) {
    if (const auto* t = text_of(templates.sms))
      out = render_sms(*t, vars, channel == Channel::kSms ? ctx.max_sms_segments : 0);
  } else if (channel == Channel::kVoice) {
    if (const auto* t = text_of(templates.voice)) out.body = Renderer(*t).render(vars);
  } else {
    if (const auto* t = text_of(templates.email_subject)) out.subject = Renderer(*t).render(vars);
    if (const auto* t = text_of(templates.email_body)) out.body = Renderer(*t).render(vars);
  }
  return out;
}

RenderedMessage render_covered(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx) {
  RenderedMessage out;
  std::string lang = resolve_language(language, templates.covered);
  if (lang.empty()) return out;
  out.body = Renderer(templates.covered.at(lang)).render(vars_of(*ctx.report, language, ctx.incident_code));
  if (channel == Channel::kSms) out.sms = sms_size(out.body);
  else out.subject = out.body.substr(0, out.body.find('\n'));
  return out;
}

SmsWorstCase sms_worst_case(const std::string& sms_template) {
  Renderer r(sms_template);
  std::string latin(kWorstCaseHeadline, 'x');
  std::string accented;
  for (std::size_t i = 0; i < kWorstCaseHeadline; ++i) accented += "á";
  SmsWorstCase worst;
  for (MsgType type : {MsgType::kAlert, MsgType::kUpdate, MsgType::kCancel})
    for (bool drill : {false, true})
      for (bool confirmed : {false, true})
      for (const std::string* headline : {&latin, &accented}) {
        if (confirmed && type != MsgType::kAlert) continue;  // only alerts are released
        Vars v;
        v.confirmed = confirmed;
        v.headline = *headline;
        v.event = std::string(64, 'e');
        v.area = std::string(200, 'a');
        v.severity = "moderate";
        v.observed_at = "2026-11-22T13:05:00.000+05:30";
        v.incident = "XXXXXX";
        v.msg_type = type;
        v.drill = drill;
        SmsSize size = sms_size(r.render(v));
        if (size.segments > worst.size.segments ||
            (size.segments == worst.size.segments && size.units > worst.size.units))
          worst = {size, type, drill, confirmed};
      }
  return worst;
}

std::vector<LanguageGap> language_gaps(const MessageTemplates& t) {
  const std::pair<std::string_view, const TemplateMap*> sets[] = {
      {"sms", &t.sms}, {"email.subject", &t.email_subject}, {"email.body", &t.email_body},
      {"help", &t.help}, {"covered", &t.covered}, {"voice", &t.voice}};
  std::vector<std::string> languages;
  for (const auto& [name, map] : sets)
    for (const auto& entry : *map) {
      // Not a structured binding: C++20 lambdas cannot capture one (clang refuses).
      const std::string& lang = entry.first;
      if (std::none_of(languages.begin(), languages.end(),
                       [&](const std::string& l) { return iequals(l, lang); }))
        languages.push_back(lang);
    }
  std::sort(languages.begin(), languages.end());
  std::vector<LanguageGap> gaps;
  for (const auto& [name, map] : sets)
    for (const auto& lang : languages) {
      std::string got = resolve_language(lang, *map);
      if (!iequals(got, lang)) gaps.push_back({name, lang, got});
    }
  return gaps;
}

}  // namespace tocsin
