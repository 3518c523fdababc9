// Join-by-text classification and texts (core/join.h), and which numbers
// may get an unsolicited prompt (core/phone.h).
#include "core/join.h"

#include <catch2/catch.hpp>

#include "core/phone.h"

using namespace tocsin;

TEST_CASE("join: keywords, confirmations and LEAVE, whole message, any case", "[join]") {
  std::vector<Group> groups(2);
  groups[0].name = "eastside";
  groups[0].join_keywords = {"ESTE", "EASTSIDE"};
  groups[0].join_language = "es";
  groups[1].name = "lawyers";  // no join: cannot be joined by text
  auto j = classify_join("  este! ", groups);
  CHECK(j.action == JoinAction::kJoin);
  CHECK(j.group == &groups[0]);
  CHECK(j.keyword == "ESTE");
  CHECK(j.language == "es");
  CHECK(classify_join("Eastside", groups).keyword == "EASTSIDE");
  CHECK(classify_join("este please", groups).action == JoinAction::kNone);
  CHECK(classify_join("lawyers", groups).action == JoinAction::kNone);
  CHECK(classify_join("yes", groups).language == "en");
  CHECK(classify_join("Sí", groups).action == JoinAction::kConfirm);
  CHECK(classify_join("SÍ", groups).language == "es");
  CHECK(classify_join("si.", groups).language == "es");
  auto leave = classify_join("leave  ESTE", groups);
  CHECK(leave.action == JoinAction::kLeave);
  CHECK(leave.group == &groups[0]);
  CHECK(classify_join("SALIR eastside", groups).action == JoinAction::kLeave);
  CHECK(classify_join("LEAVE LAWYERS", groups).action == JoinAction::kNone);
  CHECK(classify_join("STOP", groups).action == JoinAction::kNone);
  CHECK(join_prompt("es-MX", "ESTE").find("responda SI") != std::string::npos);
  CHECK(join_prompt("en", "EASTSIDE").find("reply YES") != std::string::npos);
  CHECK(join_confirmed("es", "ESTE").find("LEAVE ESTE") != std::string::npos);
}

TEST_CASE("join: a keyword with its own language is answered in it", "[join]") {
  std::vector<Group> groups(1);
  groups[0].name = "eastside";
  groups[0].join_keywords = {"ESTE", "EASTSIDE"};
  groups[0].join_language = "es";
  groups[0].join_keyword_languages = {{"EASTSIDE", "en"}};
  CHECK(classify_join("este", groups).language == "es");  // the group's
  auto j = classify_join("eastside", groups);
  CHECK(j.action == JoinAction::kJoin);
  CHECK(j.keyword == "EASTSIDE");
  CHECK(j.language == "en");
  CHECK(join_prompt(j.language, j.keyword).starts_with("Rapid-response alerts EASTSIDE"));
}

TEST_CASE("join: the prompt fits one SMS and promises only what is true", "[join]") {
  const std::string longest(30, 'K');
  for (const char* lang : {"en", "es"}) {
    INFO(lang);
    const std::string p = join_prompt(lang, longest);
    CHECK(p.size() <= 160);  // plain GSM-7: one segment
    // A keyed hash of the number is kept two days (the limits): not "nothing".
    CHECK(p.find("keep nothing") == std::string::npos);
  }
  CHECK(join_prompt("en", "X").find("we do not keep your number") != std::string::npos);
  CHECK(join_prompt("es", "X").find("no guardamos su numero") != std::string::npos);
}

TEST_CASE("join: prompts only to numbers that can be a mobile phone", "[join]") {
  CHECK(may_text_back("+12135550142"));  // US: FIXED_LINE_OR_MOBILE
  CHECK(may_text_back("+5215512345678"));  // Mexico, mobile
  CHECK_FALSE(may_text_back("+18006427676"));  // toll-free
  CHECK_FALSE(may_text_back("+19003337777"));  // premium-rate
  CHECK_FALSE(may_text_back("+442079460000"));  // a London landline
  CHECK_FALSE(may_text_back("not a number"));
}
