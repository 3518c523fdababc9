#include "core/templates.h"

#include <kainjow/mustache.hpp>
#include <strings.h>

namespace tocsin {

namespace mstch = kainjow::mustache;

namespace {

MessageTemplates make_defaults() {
  MessageTemplates t;
  t.sms["en"] =
      "{{#drill}}[DRILL - NOT REAL] {{/drill}}"
      "{{#cancel}}ALL CLEAR #{{incident}}{{#headline}}: {{headline}}{{/headline}}{{/cancel}}"
      "{{^cancel}}{{#update}}UPDATE {{/update}}ALERT #{{incident}}: {{headline}}"
      "{{#location}} ({{location}}){{/location}}{{#instruction}}. {{instruction}}{{/instruction}}"
      "{{/cancel}}\nReply STOP to opt out";
  t.sms["es"] =
      "{{#drill}}[SIMULACRO - NO ES REAL] {{/drill}}"
      "{{#cancel}}FIN DE ALERTA #{{incident}}{{#headline}}: {{headline}}{{/headline}}{{/cancel}}"
      "{{^cancel}}{{#update}}ACTUALIZACION {{/update}}ALERTA #{{incident}}: {{headline}}"
      "{{#location}} ({{location}}){{/location}}{{#instruction}}. {{instruction}}{{/instruction}}"
      "{{/cancel}}\nResponda STOP para salir";
  t.email_subject["en"] =
      "{{#drill}}[DRILL] {{/drill}}{{#cancel}}All clear: {{/cancel}}{{#update}}Update: "
      "{{/update}}{{headline}} (#{{incident}})";
  t.email_subject["es"] =
      "{{#drill}}[SIMULACRO] {{/drill}}{{#cancel}}Fin de alerta: {{/cancel}}{{#update}}"
      "Actualización: {{/update}}{{headline}} (#{{incident}})";
  t.email_body["en"] =
      "{{#drill}}THIS IS A DRILL. Nothing is happening.\n\n{{/drill}}"
      "{{#cancel}}All clear for incident #{{incident}}.\n{{/cancel}}"
      "{{headline}}\n\n{{#instruction}}{{instruction}}\n\n{{/instruction}}"
      "Area: {{area}}\n{{#location}}Location: {{location}}\n{{/location}}"
      "Observed: {{observed_at}}\nIncident: #{{incident}}\n";
  t.email_body["es"] =
      "{{#drill}}ESTO ES UN SIMULACRO. No está pasando nada.\n\n{{/drill}}"
      "{{#cancel}}Fin de alerta del incidente #{{incident}}.\n{{/cancel}}"
      "{{headline}}\n\n{{#instruction}}{{instruction}}\n\n{{/instruction}}"
      "Zona: {{area}}\n{{#location}}Lugar: {{location}}\n{{/location}}"
      "Observado: {{observed_at}}\nIncidente: #{{incident}}\n";
  t.help["en"] = "Rapid-response alerts. Reply STOP to opt out, START to opt back in.";
  t.help["es"] = "Alertas de respuesta rapida. Responda STOP para salir, START para volver.";
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
  return t;
}

const std::vector<std::string_view>& template_variables() {
  static const std::vector<std::string_view> kVars = {
      "headline", "instruction", "event", "severity", "area",  "location", "observed_at",
      "incident", "msg_type",    "drill", "alert",    "update", "cancel"};
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

RenderedMessage render_message(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx) {
  const Report& r = *ctx.report;
  mstch::data vars;
  auto set_text = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) vars.set(key, value);  // absent, so {{#key}} sections skip it
  };
  set_text("headline", localized(r.headline, language));
  set_text("instruction", localized(r.instruction, language));
  set_text("event", r.event);
  set_text("severity", std::string(to_string(r.severity)));
  set_text("area", r.area);
  if (r.location) set_text("location", r.location->description);
  set_text("observed_at", r.observed_at);
  set_text("incident", ctx.incident_code);
  set_text("msg_type", std::string(to_string(r.msg_type)));
  if (r.is_drill()) vars.set("drill", mstch::data::type::bool_true);
  if (r.msg_type == MsgType::kAlert) vars.set("alert", mstch::data::type::bool_true);
  if (r.msg_type == MsgType::kUpdate) vars.set("update", mstch::data::type::bool_true);
  if (r.msg_type == MsgType::kCancel) vars.set("cancel", mstch::data::type::bool_true);

  auto render = [&](const TemplateMap& map) {
    std::string lang = resolve_language(language, map);
    if (lang.empty()) return std::string();
    mstch::mustache tmpl{map.at(lang)};
    // Plain-text channels: no HTML escaping ("1st & Soto" stays as written).
    tmpl.set_custom_escape([](const std::string& s) { return s; });
    return tmpl.render(vars);
  };
  RenderedMessage out;
  if (channel == Channel::kSms) {
    out.body = render(templates.sms);
  } else {
    out.subject = render(templates.email_subject);
    out.body = render(templates.email_body);
  }
  return out;
}

}  // namespace tocsin
