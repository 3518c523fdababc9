// SMS encoding, segments and shortening to sms.max_segments; languages and
// non-Latin text through the templates.
#include <catch2/catch.hpp>

#include "core/sms.h"
#include "core/templates.h"

using namespace tocsin;

namespace {

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

Report alert(LocalizedText headline, LocalizedText instruction = {}) {
  Report r;
  r.event = "enforcement_activity";
  r.severity = Severity::kSevere;
  r.area = "la/boyle-heights";
  r.observed_at = "2026-11-22T13:05:00Z";
  r.headline = std::move(headline);
  r.instruction = std::move(instruction);
  return r;
}

MessageTemplates sms_only(std::string en) {
  MessageTemplates t;
  t.sms["en"] = std::move(en);
  return with_defaults(t);
}

}  // namespace

TEST_CASE("GSM 03.38: exactly which accents are in the basic set", "[sms]") {
  // In the basic set: one septet each.
  for (std::string_view c : {"é", "è", "ù", "ì", "ò", "à", "Ç", "É", "Ä", "Ö", "Ñ", "Ü", "ä", "ö",
                             "ñ", "ü", "¿", "¡", "£", "¥", "§", "Å", "ß", "Δ", "@", "_", "\n"}) {
    INFO(c);
    auto s = sms_size(c);
    CHECK(s.encoding == SmsEncoding::kGsm7);
    CHECK(s.units == 1);
  }
  // The extension table: an escape plus the character, two septets.
  for (std::string_view c : {"€", "[", "]", "{", "}", "~", "^", "\\", "|"}) {
    INFO(c);
    auto s = sms_size(c);
    CHECK(s.encoding == SmsEncoding::kGsm7);
    CHECK(s.units == 2);
  }
  // Not in GSM-7: Spanish á í ó ú and their capitals (but É is), ç, the
  // typographic ellipsis and quotes, and anything non-Latin.
  for (std::string_view c : {"á", "í", "ó", "ú", "Á", "Í", "Ó", "Ú", "ç", "ê", "õ", "…", "“", "’",
                             "م", "ש", "中", "🚨"}) {
    INFO(c);
    CHECK(sms_size(c).encoding == SmsEncoding::kUcs2);
  }
  CHECK(sms_size("Niño, pingüino, café: ¿qué? ¡Ñoño!").encoding == SmsEncoding::kGsm7);
  CHECK(sms_size("¿Dónde está?").encoding == SmsEncoding::kUcs2);
}

TEST_CASE("segments: 160/153 septets, 70/67 units, known examples", "[sms]") {
  CHECK(sms_size(std::string(160, 'a')).segments == 1);
  CHECK(sms_size(std::string(161, 'a')).segments == 2);
  // The euro sign: 80 of them are 160 septets, one segment; 81 split, and
  // 76 fit in each 153-septet part (152 septets, the 77th would be cut).
  CHECK(sms_size(repeat("€", 80)).segments == 1);
  auto euros = sms_size(repeat("€", 81));
  CHECK(euros.units == 162);
  CHECK(euros.segments == 2);
  CHECK(sms_size(repeat("€", 153)).segments == 3);  // 306 septets, but 76 + 76 + 1
  // An escape pair is never split: 152 + € + 152 is 306 septets, yet 3 parts.
  auto straddling = sms_size(std::string(152, 'a') + "€" + std::string(152, 'a'));
  CHECK(straddling.units == 306);
  CHECK(straddling.segments == 3);
  CHECK(sms_size(std::string(153, 'a') + "€" + std::string(151, 'a')).segments == 2);

  CHECK(sms_size(repeat("á", 70)).segments == 1);
  CHECK(sms_size(repeat("á", 71)).segments == 2);
  CHECK(sms_size(repeat("á", 134)).segments == 2);
  CHECK(sms_size(repeat("á", 135)).segments == 3);
  // Emoji are surrogate pairs: 2 units, never split across parts.
  auto emoji = sms_size("Hello 😀");
  CHECK(emoji.encoding == SmsEncoding::kUcs2);
  CHECK(emoji.units == 8);
  CHECK(sms_size(repeat("🚨", 35)).segments == 1);  // 70 units
  CHECK(sms_size(repeat("🚨", 36)).segments == 2);  // 72 units: 33 + 3 pairs
  auto split = sms_size(repeat("á", 66) + "🚨" + repeat("á", 66));
  CHECK(split.units == 134);
  CHECK(split.segments == 3);              // 66 | 🚨 65 | 1: the pair does not straddle
  CHECK(sms_size("👍🏽").units == 4);  // emoji + skin-tone modifier
}

TEST_CASE("cuts end at whole characters", "[sms]") {
  CHECK(utf8_prefix("añb", 2) == "añ");
  CHECK(utf8_prefix("añb", 0).empty());
  CHECK(utf8_prefix("añb", 9) == "añb");
  CHECK(utf8_prefix("مرحبا بكم", 3) == "مرح");
  CHECK(utf8_prefix("中文消息", 2) == "中文");
  CHECK(utf8_prefix("🚨🚨🚨", 2) == "🚨🚨");
  // e + combining acute stays together; so does a ZWJ emoji sequence.
  CHECK(utf8_prefix("cafe\u0301s", 4) == "caf");
  CHECK(utf8_prefix("cafe\u0301s", 5) == "cafe\u0301");
  std::string health_worker = "\U0001F469\u200D\u2695\uFE0F";
  CHECK(utf8_prefix("a" + health_worker, 2) == "a");
  CHECK(utf8_prefix("a" + health_worker, 4) == "a");
  CHECK(utf8_prefix("a" + health_worker + "b", 5) == "a" + health_worker);
  CHECK(code_point_count("a" + health_worker) == 5);
  CHECK(code_point_count("añ🚨") == 3);
}

TEST_CASE("a long SMS is shortened by its instruction first, with ... in GSM-7",
          "[sms][templates]") {
  auto t = sms_only("{{headline}}. {{instruction}}");
  Report r = alert({{"en", "ICE at 1st & Soto"}}, {{"en", std::string(500, 'x')}});
  auto full = render_message(t, Channel::kSms, "en", {&r, "K7Q2M9"});
  CHECK(full.sms.segments == 4);
  CHECK_FALSE(full.shortened);
  for (std::size_t max : {1, 2, 3}) {
    auto m = render_message(t, Channel::kSms, "en", {&r, "K7Q2M9", max});
    INFO(max << ": " << m.body);
    CHECK(m.shortened);
    CHECK(m.sms.encoding == SmsEncoding::kGsm7);
    CHECK(m.sms.segments == max);
    CHECK(m.sms == sms_size(m.body));
    CHECK(m.body.starts_with("ICE at 1st & Soto. xxx"));
    CHECK(m.body.ends_with("x..."));
    // The longest that fits: the limit is filled exactly (no word breaks here).
    CHECK(m.sms.units == (max == 1 ? 160 : max * 153));
  }
  // Fits already: untouched.
  auto m = render_message(t, Channel::kSms, "en", {&r, "K7Q2M9", 4});
  CHECK(m.body == full.body);
  CHECK_FALSE(m.shortened);
}

TEST_CASE("a cut backs up to a word break and drops trailing separators", "[sms][templates]") {
  auto t = sms_only("{{headline}}{{#instruction}} - {{instruction}}{{/instruction}}");
  Report r = alert({{"en", std::string(139, 'h')}},
                   {{"en", "Legal observers needed, bring phones and water, meet at the corner"}});
  auto m = render_message(t, Channel::kSms, "en", {&r, "X", 1});
  INFO(m.body);
  CHECK(m.body == std::string(139, 'h') + " - Legal observers...");  // 160 septets
  CHECK(m.sms.units <= 160);
}

TEST_CASE("a UCS-2 message is cut with …, never inside an emoji", "[sms][templates]") {
  auto t = sms_only("{{headline}}: {{instruction}}");
  Report r = alert({{"en", "Vehículos"}}, {{"en", repeat("🚨", 100)}});
  auto m = render_message(t, Channel::kSms, "en", {&r, "X", 1});
  INFO(m.body);
  CHECK(m.sms.encoding == SmsEncoding::kUcs2);
  CHECK(m.sms.segments == 1);
  // "Vehículos: " is 11 units, "…" one: 29 whole emoji (58 units) fill 70.
  CHECK(m.body == "Vehículos: " + repeat("🚨", 29) + "…");
}

TEST_CASE("cutting the part that made it UCS-2 brings the message back to GSM-7",
          "[sms][templates]") {
  auto t = sms_only("{{headline}}. {{instruction}}");
  Report r = alert({{"en", "ICE at 1st & Soto"}}, {{"en", std::string(150, 'x') + " está"}});
  auto full = render_message(t, Channel::kSms, "en", {&r, "X"});
  CHECK(full.sms.encoding == SmsEncoding::kUcs2);
  CHECK(full.sms.segments == 3);
  auto m = render_message(t, Channel::kSms, "en", {&r, "X", 1});
  INFO(m.body);
  CHECK(m.sms.encoding == SmsEncoding::kGsm7);
  CHECK(m.sms.segments == 1);
  CHECK(m.body.ends_with("x..."));
}

TEST_CASE("the headline is never cut: the instruction, then the location, then over the limit",
          "[sms][templates]") {
  auto t = sms_only(
      "{{headline}}{{#location}} ({{location}}){{/location}}"
      "{{#instruction}}. {{instruction}}{{/instruction}}\nReply STOP to opt out");
  std::string headline(120, 'h');
  Report r = alert({{"en", headline}}, {{"en", "Legal observers needed"}});
  r.location = Location{34, -118, std::string(60, 'l')};
  // The instruction goes entirely (and its section with it), then the
  // location is cut.
  auto m = render_message(t, Channel::kSms, "en", {&r, "X", 1});
  INFO(m.body);
  CHECK(m.sms.segments == 1);
  CHECK(m.body.starts_with(headline + " (lll"));
  CHECK(m.body.find("Legal") == std::string::npos);
  CHECK(m.body.ends_with("...)\nReply STOP to opt out"));
  CHECK(m.sms.units == 160);

  // A headline too long for the limit goes out whole, over it, without the
  // instruction or location.
  std::string arabic = repeat("عاجل ", 40);  // 200 UCS-2 units
  Report big = alert({{"en", arabic}}, {{"en", "Legal observers needed"}});
  big.location = Location{34, -118, "1st St & Soto St"};
  auto over = render_message(t, Channel::kSms, "en", {&big, "X", 2});
  CHECK(over.shortened);
  CHECK(over.body == arabic + "\nReply STOP to opt out");
  CHECK(over.sms.segments == 4);

  // Nothing to cut: unchanged and not marked shortened.
  Report bare = alert({{"en", arabic}});
  auto same = render_message(t, Channel::kSms, "en", {&bare, "X", 2});
  CHECK_FALSE(same.shortened);
  CHECK(same.body == arabic + "\nReply STOP to opt out");
}

TEST_CASE("a long Spanish alert fits the default 3 UCS-2 segments, headline intact",
          "[sms][templates]") {
  auto t = with_defaults({});
  std::string headline =
      "Vehículos de ICE y agentes en la esquina de 1st y Soto, frente a la panadería";
  Report r = alert({{"es", headline}},
                   {{"es",
                     "Se necesitan observadores legales. Graben desde la acera, no obstruyan, "
                     "y llamen a la línea de respuesta rápida si ven detenciones."}});
  r.location = Location{34.03, -118.21, "1st St & Soto St"};
  auto full = render_message(t, Channel::kSms, "es-MX", {&r, "K7Q2M9"});
  CHECK(full.sms.segments > 3);
  auto m = render_message(t, Channel::kSms, "es-MX", {&r, "K7Q2M9", 3});
  INFO(m.body);
  CHECK(m.sms.encoding == SmsEncoding::kUcs2);
  CHECK(m.sms.segments == 3);
  CHECK(m.body.starts_with("ALERTA #K7Q2M9: " + headline + " (1st St & Soto St). Se necesitan"));
  CHECK(m.body.ends_with("…\nResponda STOP para salir"));
}

TEST_CASE("non-Latin and right-to-left text renders byte for byte", "[templates]") {
  MessageTemplates custom;
  custom.sms = {
      {"ar", "تنبيه #{{incident}}: {{headline}}{{#instruction}}. {{instruction}}{{/instruction}}"},
      {"he", "התראה #{{incident}}: {{headline}}"},
      {"zh", "警报 #{{incident}}：{{headline}}"}};
  custom.email_subject = {{"ar", "{{headline}}"}};
  custom.email_body = {{"ar", "{{headline}}\n{{instruction}}"}};
  auto t = with_defaults(custom);
  std::string ar = "مركبات إدارة الهجرة عند شارع ١ وسوتو";
  std::string ar_instr = "\u200Fنحتاج مراقبين قانونيين";  // with an RLM mark, kept as is
  std::string he = "רכבי ICE ברחוב 1 פינת סוטו";
  std::string zh = "移民局车辆在第一街和索托街";
  Report r =
      alert({{"ar", ar}, {"he", he}, {"zh", zh}, {"en", "ICE vehicles"}}, {{"ar", ar_instr}});
  CHECK(render_message(t, Channel::kSms, "ar", {&r, "K7Q2M9"}).body ==
        "تنبيه #K7Q2M9: " + ar + ". " + ar_instr);
  CHECK(render_message(t, Channel::kSms, "ar-EG", {&r, "K7Q2M9"}).body ==
        "تنبيه #K7Q2M9: " + ar + ". " + ar_instr);
  CHECK(render_message(t, Channel::kSms, "he", {&r, "K7Q2M9"}).body == "התראה #K7Q2M9: " + he);
  CHECK(render_message(t, Channel::kSms, "zh-Hans", {&r, "K7Q2M9"}).body == "警报 #K7Q2M9：" + zh);
  auto email = render_message(t, Channel::kEmail, "ar", {&r, "K7Q2M9"});
  CHECK(email.subject == ar);
  CHECK(email.body == ar + "\n" + ar_instr);
  // Characters HTML escaping would touch are left alone.
  Report amp = alert({{"en", "<b>\"1st\" & 'Soto'</b>"}});
  CHECK(render_message(t, Channel::kSms, "en", {&amp, "X"}).body.find("<b>\"1st\" & 'Soto'</b>") !=
        std::string::npos);
}

TEST_CASE("es-MX falls back to es, then en, in templates and report texts", "[templates]") {
  MessageTemplates custom;
  custom.sms = {{"en", "EN {{headline}}"}, {"es", "ES {{headline}}"}};
  auto t = with_defaults(custom);
  Report r = alert({{"en", "english"}, {"es", "español"}});
  CHECK(render_message(t, Channel::kSms, "es-MX", {&r, "X"}).body == "ES español");
  CHECK(render_message(t, Channel::kSms, "es", {&r, "X"}).body == "ES español");
  CHECK(render_message(t, Channel::kSms, "fr-CA", {&r, "X"}).body == "EN english");
  custom.sms["es-MX"] = "MX {{headline}}";
  t = with_defaults(custom);
  CHECK(render_message(t, Channel::kSms, "es-mx", {&r, "X"}).body == "MX español");
  Report en_only = alert({{"en", "english"}});
  CHECK(render_message(t, Channel::kSms, "es-MX", {&en_only, "X"}).body == "MX english");
}

TEST_CASE("worst case of an SMS template", "[sms][templates]") {
  for (const auto& [lang, text] : default_templates().sms) {
    INFO(lang);
    auto w = sms_worst_case(text);
    CHECK(w.size.segments == 3);  // the defaults fit the default limit
    CHECK(w.size.encoding == SmsEncoding::kUcs2);
    CHECK(w.drill);
    // "UPDATE " or "CONFIRMED " (en), "ACTUALIZACION " (es): the longest prefix.
    CHECK(w.msg_type == (lang == "en" ? MsgType::kAlert : MsgType::kUpdate));
    CHECK(w.confirmed == (lang == "en"));
  }
  // Only the headline and fixed text: 100 + 20 units of UCS-2 is two segments.
  auto small = sms_worst_case("ALERT: {{headline}} - reply STOP");
  CHECK(small.size.units == kWorstCaseHeadline + 20);
  CHECK(small.size.segments == 2);
  // Instruction and location do not count (they are cut first); area does.
  CHECK(sms_worst_case("{{headline}}{{instruction}}{{location}}").size.segments == 2);
  auto with_area = sms_worst_case("{{headline}} {{area}}");
  CHECK(with_area.size.segments == 5);  // 100 + 1 + 200 = 301 units
  auto cancel = sms_worst_case("{{#cancel}}" + std::string(400, 'c') + "{{/cancel}}{{headline}}");
  CHECK(cancel.msg_type == MsgType::kCancel);
  CHECK(cancel.size.segments == 8);  // 500 UCS-2 units
}

TEST_CASE("language gaps between template sets", "[templates]") {
  CHECK(language_gaps(default_templates()).empty());
  MessageTemplates custom;
  custom.sms = {{"en", "{{headline}}"},
                {"es", "{{headline}}"},
                {"ar", "{{headline}}"},
                {"es-MX", "{{headline}}"}};
  auto gaps = language_gaps(with_defaults(custom));
  std::vector<std::string> seen;
  for (const auto& g : gaps)
    seen.push_back(std::string(g.set) + " " + g.language + "→" + g.fallback);
  CHECK(seen == std::vector<std::string>{"email.subject ar→en", "email.subject es-MX→es",
                                         "email.body ar→en", "email.body es-MX→es", "help ar→en",
                                         "help es-MX→es", "covered ar→en", "covered es-MX→es",
                                         "voice ar→en", "voice es-MX→es"});
}
