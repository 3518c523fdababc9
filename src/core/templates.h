// Message text: mustache templates per channel and language, built-in
// English and Spanish defaults, and the language fallback es-MX → es → en.
// Pure: a report and an incident code in, text out.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/report.h"

namespace tocsin {

// Language tag → template text.
using TemplateMap = std::map<std::string, std::string>;

struct MessageTemplates {
  TemplateMap sms;
  TemplateMap email_subject;
  TemplateMap email_body;
  TemplateMap help;  // the answer to an SMS "HELP" (plain text, no variables)
  bool operator==(const MessageTemplates&) const = default;
};

// The built-in templates (en, es), used for any map a config leaves empty.
const MessageTemplates& default_templates();

// `configured` with each empty map replaced by the built-in one.
MessageTemplates with_defaults(MessageTemplates configured);

// Variables a template may use. Text variables: headline, instruction,
// event, severity, area, location, observed_at, incident, msg_type.
// Sections (true or absent): drill, alert, update, cancel.
const std::vector<std::string_view>& template_variables();

// nullopt when `text` is a valid template using only known variables, else
// the first problem ("unclosed section", "unknown variable {{foo}}").
std::optional<std::string> template_error(const std::string& text);

// The language to use for `wanted` among `available` keys: wanted itself,
// then its primary subtag (es-MX → es), then "en", then the first available.
// Comparison ignores case. Returns "" when nothing is available.
std::string resolve_language(std::string_view wanted, const std::vector<std::string>& available);
std::string resolve_language(std::string_view wanted, const TemplateMap& available);

struct RenderedMessage {
  std::string subject;  // email only
  std::string body;
};

// The HELP answer in `language` (with the usual fallback).
std::string help_text(const MessageTemplates& templates, std::string_view language);

// The variables of one outgoing message.
struct MessageContext {
  const Report* report = nullptr;
  std::string incident_code;
};

// Renders the message for `channel` in `language` (a subscriber's tag).
// Report texts (headline, instruction) follow the same language fallback.
RenderedMessage render_message(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx);

}  // namespace tocsin
