// Message text: mustache templates per channel and language, built-in
// English and Spanish defaults, the language fallback es-MX → es → en, and
// SMS that fits in a number of segments. Pure: a report and an incident code
// in, text out. Texts pass through byte for byte (no HTML escaping, no
// normalisation), so Arabic, Hebrew or Chinese arrive as written.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/report.h"
#include "core/sms.h"

namespace tocsin {

// Language tag → template text.
using TemplateMap = std::map<std::string, std::string>;

struct MessageTemplates {
  TemplateMap sms;
  TemplateMap email_subject;
  TemplateMap email_body;
  TemplateMap help;  // the answer to an SMS "HELP" (plain text, no variables)
  // "Covered, stand down": to a group's non-responders once enough respond
  // (SMS body, email subject and body alike); the alert's variables.
  TemplateMap covered;
  TemplateMap voice;  // what a call says (read twice, then "press 1" is gathered)
  bool operator==(const MessageTemplates&) const = default;
};

// The built-in templates (en, es), used for any map a config leaves empty.
const MessageTemplates& default_templates();

// `configured` with each empty map replaced by the built-in one.
MessageTemplates with_defaults(MessageTemplates configured);

// Variables a template may use. Text variables: headline, instruction,
// event, severity, area, location, observed_at, incident, msg_type.
// Sections (true or absent): drill, alert, update, cancel, confirmed (an
// alert sent late to a group that waited for corroboration or certainty).
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
  std::string subject;     // email only
  std::string body;
  SmsSize sms;             // SMS only: encoding and segments of `body`
  bool shortened = false;  // SMS only: the instruction (or location) was cut to fit
};

// The HELP answer in `language` (with the usual fallback).
std::string help_text(const MessageTemplates& templates, std::string_view language);

// The variables of one outgoing message.
struct MessageContext {
  const Report* report = nullptr;
  std::string incident_code;
  std::size_t max_sms_segments = 0;  // SMS: shorten to fit this many segments (0: no limit)
  bool confirmed = false;  // the {{#confirmed}} section: released after being held
};

// Renders the message for `channel` in `language` (a subscriber's tag):
// sms and signal from templates.sms (signal never shortened: it has no
// segments), email from templates.email, voice from templates.voice.
// Report texts (headline, instruction) follow the same language fallback.
//
// An SMS longer than ctx.max_sms_segments is shortened, rendering the same
// template again with shorter texts (binary search over code points):
//  1. the instruction is cut, down to nothing (its {{#instruction}} section
//     then disappears); the longest prefix that fits is kept;
//  2. then, the same way, the location description;
//  3. the headline, the template's own text and every other variable are
//     never cut: if the message still does not fit, it goes out whole, over
//     the limit (check-config warns of templates that can get there).
// A cut ends at a whole character (never inside a UTF-8 sequence, a
// surrogate pair, a GSM escape pair or before a combining mark), backs up to
// a word break when one is near, and is marked "..." when the message is
// GSM-7 ("…" is not in GSM-7 and would make the whole message UCS-2, less
// than half the room), "…" when it is UCS-2 anyway (one unit instead of three).
RenderedMessage render_message(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx);

// The "covered" message (templates.covered) for `channel` in `language`:
// the same text as SMS body, email subject and email body (the subject is
// its first line).
RenderedMessage render_covered(const MessageTemplates& templates, Channel channel,
                               std::string_view language, const MessageContext& ctx);

// The headline length (in characters) check-config assumes for the worst
// case of an SMS template: coordinators are asked (README) to keep headlines
// within it.
inline constexpr std::size_t kWorstCaseHeadline = 100;

// The largest an SMS template can render after shortening: the most
// segments among every msg_type (alert, update, cancel) with and without
// drill (and alerts with confirmed), with a kWorstCaseHeadline-character headline in Latin (GSM-7) and in
// accented or non-Latin text (UCS-2), event and area at the report limits
// (64 and 200 characters), the longest severity and observed_at, and no
// instruction or location (those are cut first).
struct SmsWorstCase {
  SmsSize size;
  MsgType msg_type = MsgType::kAlert;
  bool drill = false;
  bool confirmed = false;  // an alert with {{#confirmed}} (a held group's, released)
};
SmsWorstCase sms_worst_case(const std::string& sms_template);

// A language that one template set has and another lacks: subscribers in
// `language` get `fallback` from that set ("" when the set is empty).
struct LanguageGap {
  std::string_view set;  // "sms", "email.subject", "email.body", "help", "covered" or "voice"
  std::string language;
  std::string fallback;
};
// Every gap among the sets of `templates` (with defaults filled in), in set
// then language order. "es-MX" in one set and only "es" in another is a gap
// too (es-MX subscribers get the "es" text there).
std::vector<LanguageGap> language_gaps(const MessageTemplates& templates);

}  // namespace tocsin
