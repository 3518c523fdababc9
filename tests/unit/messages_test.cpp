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

// A request answered at once: its units are dated at `now`.
static bool take(RateWindow& w, double cost, Millis now) {
  if (!w.try_take(cost, now)) return false;
  w.settle(cost, now);
  return true;
}

TEST_CASE("rate window: never more than the rate in any second", "[backoff]") {
  RateWindow w(10, Millis(0));
  int taken = 0;
  while (take(w, 1, Millis(0))) ++taken;
  CHECK(taken == 10);
  CHECK(w.wait_for(1, Millis(0)) == Millis(1000));
  CHECK_FALSE(take(w, 1, Millis(999)));
  CHECK(take(w, 1, Millis(1000)));
  // Under constant demand, count what passes in every sliding second.
  RateWindow v(7, Millis(20));
  std::vector<int> sent_at;
  for (int ms = 0; ms < 5000; ++ms)
    while (take(v, 1, Millis(ms))) sent_at.push_back(ms);
  for (int start = 0; start < 4000; ++start) {
    int in_window = 0;
    for (int t : sent_at) in_window += t >= start && t < start + 1000;
    REQUIRE(in_window <= 7);
  }
  CHECK(sent_at.size() >= 30);  // ~7 per 1.02 s over 5 s
  // Segments: a 3-segment SMS costs 3; a cost above capacity passes alone.
  RateWindow s(2, Millis(0));
  CHECK(take(s, 3, Millis(0)));
  CHECK_FALSE(take(s, 1, Millis(500)));
  CHECK(s.wait_for(1, Millis(500)) == Millis(500));
  // Below one per second the window stretches.
  RateWindow slow(0.5, Millis(0));
  CHECK(take(slow, 1, Millis(0)));
  CHECK_FALSE(take(slow, 1, Millis(1500)));
  CHECK(take(slow, 1, Millis(2000)));
}

TEST_CASE(
    "rate window: units are dated at the answer, so uneven latency cannot crowd a provider's "
    "second",
    "[backoff]") {
  // The provider counts each request somewhere between our send and its
  // answer. Requests that took their units at 0 and were answered at
  // 0..300 ms free them a second after each answer, not after the send.
  RateWindow w(4, Millis(0));
  for (int i = 0; i < 4; ++i) REQUIRE(w.try_take(1, Millis(0)));
  CHECK_FALSE(w.try_take(1, Millis(0)));
  // Nothing answered yet: the earliest room is a window from now; ask again then.
  CHECK(w.wait_for(1, Millis(0)) == Millis(1000));
  CHECK(w.wait_for(1, Millis(50)) == Millis(1000));
  for (int i = 0; i < 4; ++i) w.settle(1, Millis(100 * i));  // answered at 0, 100, 200, 300
  CHECK_FALSE(w.try_take(1, Millis(999)));
  CHECK(w.wait_for(1, Millis(999)) == Millis(1));
  CHECK(w.try_take(1, Millis(1000)));  // the unit answered at 0
  CHECK_FALSE(w.try_take(1, Millis(1099)));
  CHECK(w.wait_for(1, Millis(1099)) == Millis(1));
  CHECK(w.try_take(1, Millis(1100)));
  // Whatever the latencies, a request reusing a unit is sent a window after
  // the answer to the request that held it; simulate random latencies and
  // check the provider's view: arrivals (somewhere in [send, answer]) never
  // hold more than the rate in a second. Arrival at the send is the worst
  // case for the later request, arrival at the answer for the earlier one.
  RateWindow r(5, Millis(0));
  std::vector<std::pair<int, int>> requests;    // (sent, answered)
  std::vector<std::pair<int, double>> pending;  // (answer at, cost)
  unsigned seed = 7;
  for (int ms = 0; ms < 6000; ++ms) {
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->first == ms) {
        r.settle(it->second, Millis(ms));
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    while (r.try_take(1, Millis(ms))) {
      seed = seed * 1103515245u + 12345u;
      int latency = 1 + static_cast<int>((seed >> 16) % 400);
      requests.emplace_back(ms, ms + latency);
      pending.emplace_back(ms + latency, 1);
    }
  }
  // Six arrivals within a second are possible only if some request b and
  // five sent before it were all answered less than a second before b's
  // send: then all six could arrive together. Never:
  for (std::size_t b = 0; b < requests.size(); ++b) {
    int crowd = 0;
    for (std::size_t a = 0; a < b; ++a) crowd += requests[a].second > requests[b].first - 1000;
    REQUIRE(crowd <= 4);
  }
  CHECK(requests.size() >= 20);  // ~5 per 1.2 s over 6 s
}
