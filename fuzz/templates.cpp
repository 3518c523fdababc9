// Fuzz target: a message template from the config, checked as check-config
// does and rendered (SMS, shortened to fit; email) as the dispatcher does.
#include "core/templates.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (tocsin::template_error(text)) return 0;  // check-config refuses it
  static const tocsin::Report report = std::get<tocsin::Report>(tocsin::parse_report(R"({
    "msg_type": "alert", "status": "exercise", "event": "enforcement_activity",
    "severity": "severe", "area": "la/boyle-heights",
    "location": {"lat": 34.0339, "lon": -118.2107, "description": "1st St & Soto St"},
    "observed_at": "2026-11-22T13:05:00Z",
    "headline": {"en": "ICE vehicles at 1st & Soto", "es": "Vehículos de ICE en 1st y Soto"},
    "instruction": {"en": "Legal observers needed"}})", 1796083200000));
  tocsin::MessageTemplates t;
  t.sms = {{"en", text}};
  t.email_subject = {{"en", text}};
  t.email_body = {{"en", text}};
  t = tocsin::with_defaults(t);
  tocsin::MessageContext ctx{.report = &report, .incident_code = "A72WYM", .max_sms_segments = 2};
  tocsin::render_message(t, tocsin::Channel::kSms, "en", ctx);
  tocsin::render_message(t, tocsin::Channel::kEmail, "es", ctx);
  tocsin::sms_worst_case(text);
  tocsin::language_gaps(t);
  return 0;
}
