// Languages and SMS size end to end: what subscribers' phones and inboxes
// get, through the real daemon and the provider emulators.
#include <catch2/catch.hpp>
#include <thread>

#include "core/sms.h"
#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {
const ReceivedMessage* to(const std::vector<ReceivedMessage>& messages, const std::string& who) {
  for (const auto& m : messages)
    if (m.to == who) return &m;
  return nullptr;
}
}  // namespace

TEST_CASE("Arabic, Hebrew and Chinese reach the providers byte for byte", "[e2e][messages]") {
  Gateways gw;
  json config = test_config(gw);
  const std::string ar_sms =
      "تنبيه #{{incident}}: {{headline}}{{#instruction}}. {{instruction}}{{/instruction}}"
      "\nأرسل STOP لإلغاء الاشتراك";
  config["templates"] = {
      {"sms", {{"en", "ALERT #{{incident}}: {{headline}}"}, {"ar", ar_sms}}},
      {"email",
       {{"subject", {{"en", "{{headline}} (#{{incident}})"}, {"ar", "تنبيه: {{headline}}"}}},
        {"body", {{"en", "{{headline}}"}, {"ar", "{{headline}}\n{{instruction}}"}}}}}};
  Daemon d(config);
  d.start();
  add_subscribers(
      d.url(), {json{{"phone", phone_for(1)},
                     {"email", "layla@example.org"},
                     {"language", "ar"},
                     {"groups", {"eastside"}}},
                json{{"phone", phone_for(2)}, {"language", "he"}, {"groups", {"eastside"}}},
                json{{"phone", phone_for(3)}, {"language", "zh-Hant"}, {"groups", {"eastside"}}}});
  // Right-to-left text with a right-to-left mark, digits in Arabic-Indic and
  // Latin, an emoji: none of it may be altered.
  const std::string ar = "🚨 مركبات إدارة الهجرة عند شارع ١ و Soto";
  const std::string ar_instruction = "\u200Fنحتاج مراقبين قانونيين";
  const std::string he = "רכבי ICE ברחוב 1 פינת סוטו";
  const std::string zh = "移民局车辆在第一街和索托街";
  auto r = post_report(
      d.url(),
      report_body(
          {{"headline", {{"en", "ICE vehicles at 1st & Soto"}, {"ar", ar}, {"he", he}, {"zh", zh}}},
           {"instruction", {{"ar", ar_instruction}}}})
          .dump());
  REQUIRE(r.status == 202);
  std::string incident = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(3, 10s));
  REQUIRE(gw.sendgrid.wait_for(1, 10s));
  auto sms = gw.twilio.messages();
  const auto* layla = to(sms, phone_for(1));
  REQUIRE(layla);
  CHECK(layla->body ==
        "تنبيه #" + incident + ": " + ar + ". " + ar_instruction + "\nأرسل STOP لإلغاء الاشتراك");
  CHECK(layla->fields.at("Body") == layla->body);
  // No Hebrew or Chinese template: the English one, with their headlines.
  const auto* hebrew = to(sms, phone_for(2));
  REQUIRE(hebrew);
  CHECK(hebrew->body == "ALERT #" + incident + ": " + he);
  const auto* chinese = to(sms, phone_for(3));
  REQUIRE(chinese);
  CHECK(chinese->body == "ALERT #" + incident + ": " + zh);
  auto mail = gw.sendgrid.messages();
  REQUIRE(mail.size() == 1);
  CHECK(mail[0].subject == "تنبيه: " + ar);
  // Then the unsubscribe footer (in English: there is no Arabic one).
  CHECK(mail[0].body.starts_with(ar + "\n" + ar_instruction + "\n-- \nTo stop receiving"));
}

TEST_CASE("a long Spanish report arrives within 3 UCS-2 segments, headline intact",
          "[e2e][messages]") {
  Gateways gw;
  Daemon d(test_config(gw));  // sms.max_segments: the default, 3
  d.start();
  add_subscribers(d.url(),
                  {json{{"phone", phone_for(1)}, {"language", "es-MX"}, {"groups", {"eastside"}}},
                   json{{"phone", phone_for(2)}, {"language", "en"}, {"groups", {"eastside"}}}});
  const std::string headline =
      "Vehículos de ICE y agentes armados en la esquina de 1st y Soto, frente a la panadería";
  const std::string instruction =
      "Se necesitan observadores legales. Graben desde la acera, no obstruyan el paso, mantengan "
      "la "
      "calma y llamen a la línea de respuesta rápida si ven detenciones o niños solos.";
  auto r = post_report(
      d.url(),
      report_body({{"headline", {{"en", "ICE vehicles at 1st & Soto"}, {"es", headline}}},
                   {"instruction", {{"en", "Legal observers needed"}, {"es", instruction}}}})
          .dump());
  REQUIRE(r.status == 202);
  std::string incident = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(2, 10s));
  auto sms = gw.twilio.messages();
  const auto* es = to(sms, phone_for(1));
  REQUIRE(es);
  INFO(es->body);
  auto size = tocsin::sms_size(es->body);
  CHECK(size.encoding == tocsin::SmsEncoding::kUcs2);
  CHECK(size.segments == 3);
  CHECK(es->body.starts_with("ALERTA #" + incident + ": " + headline +
                             " (1st St & Soto St). Se necesitan"));
  CHECK(es->body.ends_with("…\nResponda STOP para salir"));
  // The instruction was cut, not the whole of it dropped, and filled the room.
  CHECK(es->body.find("observadores legales") != std::string::npos);
  CHECK(size.units > 2 * 67);
  // The English message was short enough: whole.
  const auto* en = to(sms, phone_for(2));
  REQUIRE(en);
  CHECK(en->body == "ALERT #" + incident +
                        ": ICE vehicles at 1st & Soto (1st St & Soto St). Legal observers needed\n"
                        "Reply STOP to opt out");
}
