#include <catch2/catch.hpp>

#include "core/form.h"
#include "core/inbound.h"

using namespace tocsin;

TEST_CASE("Twilio request signatures match Twilio's documented example", "[inbound]") {
  FormFields fields = {{"CallSid", "CA1234567890ABCDE"},
                       {"Caller", "+12349013030"},
                       {"Digits", "1234"},
                       {"From", "+12349013030"},
                       {"To", "+18005551212"}};
  CHECK(twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", fields) ==
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  CHECK(twilio_signature("54321", "https://mycompany.com/myapp.php?foo=1&bar=2", fields) !=
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
}

TEST_CASE("form bodies decode", "[inbound]") {
  auto f = parse_form("From=%2B12135550101&Body=On+my+way%21&Empty=&Flag&Bad=%zz");
  REQUIRE(f.size() == 5);
  CHECK(form_value(f, "From") == "+12135550101");
  CHECK(form_value(f, "Body") == "On my way!");
  CHECK(form_value(f, "Empty").empty());
  CHECK(form_value(f, "Bad") == "%zz");
  CHECK(form_value(f, "Missing").empty());
}

TEST_CASE("replies: keywords match the whole message, anything else acknowledges", "[inbound]") {
  for (const char* s : {"STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "CANCEL", "end", "Quit!"})
    CHECK(classify_sms_reply(s).action == InboundAction::kOptOut);
  for (const char* s : {"START", "unstop"}) CHECK(classify_sms_reply(s).action == InboundAction::kOptIn);
  for (const char* s : {"HELP", "help", "info"}) CHECK(classify_sms_reply(s).action == InboundAction::kHelp);
  for (const char* s : {"1", "yes", "Sí", "On my way", "omw", "voy"}) {
    auto i = classify_sms_reply(s);
    CHECK(i.action == InboundAction::kAcknowledge);
    CHECK(i.ack_kind == "responding");
  }
  auto other = classify_sms_reply("please don't stop sending these");
  CHECK(other.action == InboundAction::kAcknowledge);
  CHECK(other.ack_kind == "reply");
}
