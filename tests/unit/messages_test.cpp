#include <catch2/catch.hpp>

#include "core/backoff.h"
#include "core/phone.h"
#include "core/sms.h"
#include "core/templates.h"

using namespace tocsin;

namespace {
Report sample() {
  Report r;
  r.msg_type = MsgType::kAlert;
  r.event = "enforcement_activity";
  r.severity = Severity::kSevere;
  r.area = "la/boyle-heights";
  r.location = Location{34.0, -118.2, "1st St & Soto St"};
  r.observed_at = "2026-11-22T13:05:00Z";
  r.headline = {{"en", "ICE vehicles at 1st & Soto"}, {"es", "Vehículos de ICE en 1st y Soto"}};
  r.instruction = {{"en", "Legal observers needed"}};
  return r;
}
}  // namespace

TEST_CASE("language fallback: exact, primary subtag, English, anything", "[templates]") {
  std::vector<std::string> en_es = {"en", "es"};
  CHECK(resolve_language("es-MX", en_es) == "es");
  CHECK(resolve_language("ES-mx", en_es) == "es");
  CHECK(resolve_language("es", en_es) == "es");
  CHECK(resolve_language("fr", en_es) == "en");
  CHECK(resolve_language("es-MX", std::vector<std::string>{"es-MX", "es"}) == "es-MX");
  CHECK(resolve_language("fr", std::vector<std::string>{"ar"}) == "ar");
  CHECK(resolve_language("fr", std::vector<std::string>{}).empty());
}

TEST_CASE("default templates render English and Spanish SMS", "[templates]") {
  auto t = with_defaults({});
  Report r = sample();
  MessageContext ctx{&r, "K7Q2M9"};
  auto en = render_message(t, Channel::kSms, "en", ctx);
  CHECK(en.body == "ALERT #K7Q2M9: ICE vehicles at 1st & Soto (1st St & Soto St). Legal observers "
                   "needed\nReply STOP to opt out");
  auto es = render_message(t, Channel::kSms, "es-MX", ctx);
  // Spanish template; the instruction has no Spanish text and falls back to English.
  CHECK(es.body == "ALERTA #K7Q2M9: Vehículos de ICE en 1st y Soto (1st St & Soto St). Legal "
                   "observers needed\nResponda STOP para salir");
  auto fr = render_message(t, Channel::kSms, "fr", ctx);
  CHECK(fr.body.starts_with("ALERT #K7Q2M9: ICE vehicles"));
}

TEST_CASE("drills, updates and cancels say so", "[templates]") {
  auto t = with_defaults({});
  Report r = sample();
  r.status = ReportStatus::kExercise;
  CHECK(render_message(t, Channel::kSms, "en", {&r, "X"}).body.starts_with("[DRILL - NOT REAL] ALERT"));
  CHECK(render_message(t, Channel::kEmail, "es", {&r, "X"}).subject.starts_with("[SIMULACRO]"));
  r.status = ReportStatus::kActual;
  r.msg_type = MsgType::kUpdate;
  CHECK(render_message(t, Channel::kSms, "en", {&r, "X"}).body.starts_with("UPDATE ALERT #X"));
  r.msg_type = MsgType::kCancel;
  r.headline.clear();
  CHECK(render_message(t, Channel::kSms, "en", {&r, "X"}).body == "ALL CLEAR #X\nReply STOP to opt out");
}

TEST_CASE("configured templates: per language, no HTML escaping", "[templates]") {
  MessageTemplates custom;
  custom.sms = {{"en", "{{headline}} @ {{location}} [{{severity}}/{{event}}/{{area}}]"},
                {"es", "ES: {{headline}}"}};
  auto t = with_defaults(custom);
  Report r = sample();
  CHECK(render_message(t, Channel::kSms, "en-US", {&r, "X"}).body ==
        "ICE vehicles at 1st & Soto @ 1st St & Soto St [severe/enforcement_activity/la/boyle-heights]");
  CHECK(render_message(t, Channel::kSms, "es", {&r, "X"}).body == "ES: Vehículos de ICE en 1st y Soto");
  // Email was not configured: built-in defaults.
  CHECK(render_message(t, Channel::kEmail, "en", {&r, "X"}).subject == "ICE vehicles at 1st & Soto (#X)");
}

TEST_CASE("template checks catch syntax errors and unknown variables", "[templates]") {
  CHECK_FALSE(template_error("{{headline}} {{#drill}}D{{/drill}}"));
  CHECK(template_error("{{#drill}}unclosed"));
  CHECK(template_error("{{headlien}}"));
  for (const auto& [lang, text] : default_templates().sms) CHECK_FALSE(template_error(text));
  for (const auto& [lang, text] : default_templates().email_body) CHECK_FALSE(template_error(text));
  for (const auto& [lang, text] : default_templates().email_subject) CHECK_FALSE(template_error(text));
}

TEST_CASE("SMS segments: GSM-7, extension characters, UCS-2", "[sms]") {
  CHECK(sms_size("").segments == 0);
  CHECK(sms_size(std::string(160, 'a')).segments == 1);
  CHECK(sms_size(std::string(161, 'a')).segments == 2);
  CHECK(sms_size(std::string(306, 'a')).segments == 2);
  CHECK(sms_size(std::string(307, 'a')).segments == 3);
  auto euro = sms_size("€10");  // € is an extension character: 2 septets
  CHECK(euro.encoding == SmsEncoding::kGsm7);
  CHECK(euro.units == 4);
  auto ene = sms_size("Año");  // ñ is in the basic GSM-7 set
  CHECK(ene.encoding == SmsEncoding::kGsm7);
  auto accent = sms_size("Vehículos");  // í is not in GSM-7: UCS-2
  CHECK(accent.encoding == SmsEncoding::kUcs2);
  CHECK(accent.units == 9);
  std::string seventy;
  for (int i = 0; i < 70; ++i) seventy += "í";
  CHECK(sms_size(seventy).segments == 1);
  CHECK(sms_size(seventy + "a").segments == 2);
  auto emoji = sms_size("🚨");  // outside the BMP: two UTF-16 units
  CHECK(emoji.encoding == SmsEncoding::kUcs2);
  CHECK(emoji.units == 2);
}

TEST_CASE("phones normalise to E.164 or are refused", "[phone]") {
  CHECK(normalize_phone("(213) 555-0123", "US") == std::optional<std::string>("+12135550123"));
  CHECK(normalize_phone("+52 55 1234 5678", "US") == std::optional<std::string>("+525512345678"));
  // E.164 is a fixed point, also for a Mexican mobile number written with
  // the old "1" (fuzz/phone.cpp found "+521..." normalising to "+52...").
  CHECK(normalize_phone("1 1 55 1234 5678", "MX") == std::optional<std::string>("+525512345678"));
  CHECK(normalize_phone("+52 1 55 1234 5678", "MX") == std::optional<std::string>("+525512345678"));
  CHECK_FALSE(normalize_phone("12345", "US"));
  CHECK_FALSE(normalize_phone("not a number", "US"));
  CHECK_FALSE(normalize_phone("", "US"));
}

TEST_CASE("backoff: full jitter under an exponential ceiling, Retry-After honoured", "[backoff]") {
  BackoffPolicy p{Millis(500), Millis(60'000)};
  CHECK(retry_delay(p, 1, 0.999, std::nullopt) <= Millis(500));
  CHECK(retry_delay(p, 3, 0.999, std::nullopt) <= Millis(2000));
  CHECK(retry_delay(p, 3, 0.999, std::nullopt) >= Millis(1990));
  CHECK(retry_delay(p, 40, 0.999, std::nullopt) <= Millis(60'000));
  CHECK(retry_delay(p, 1, 0.0, std::nullopt) == Millis(0));
  CHECK(retry_delay(p, 1, 0.5, Millis(7000)) == Millis(7000));
}

TEST_CASE("rate window: never more than the rate in any second", "[backoff]") {
  RateWindow w(10, Millis(0));
  int taken = 0;
  while (w.try_take(1, Millis(0))) ++taken;
  CHECK(taken == 10);
  CHECK(w.wait_for(1, Millis(0)) == Millis(1000));
  CHECK_FALSE(w.try_take(1, Millis(999)));
  CHECK(w.try_take(1, Millis(1000)));
  // Under constant demand, count what passes in every sliding second.
  RateWindow v(7, Millis(20));
  std::vector<int> sent_at;
  for (int ms = 0; ms < 5000; ++ms)
    while (v.try_take(1, Millis(ms))) sent_at.push_back(ms);
  for (int start = 0; start < 4000; ++start) {
    int in_window = 0;
    for (int t : sent_at) in_window += t >= start && t < start + 1000;
    REQUIRE(in_window <= 7);
  }
  CHECK(sent_at.size() >= 30);  // ~7 per 1.02 s over 5 s
  // Segments: a 3-segment SMS costs 3; a cost above capacity passes alone.
  RateWindow s(2, Millis(0));
  CHECK(s.try_take(3, Millis(0)));
  CHECK_FALSE(s.try_take(1, Millis(500)));
  CHECK(s.wait_for(1, Millis(500)) == Millis(500));
  // Below one per second the window stretches.
  RateWindow slow(0.5, Millis(0));
  CHECK(slow.try_take(1, Millis(0)));
  CHECK_FALSE(slow.try_take(1, Millis(1500)));
  CHECK(slow.try_take(1, Millis(2000)));
}
