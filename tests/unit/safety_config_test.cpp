// check-config on the groups' safety rules: what loads, and what is refused
// (escalate cycles, unknown groups, thresholds that can never be met).
#include <catch2/catch.hpp>

#include "app/config.h"
#include "core/templates.h"
#include "support/keys.h"

using namespace tocsin::app;

namespace {

// Coordinators: la-hotline (la), la-observers (la/east-la), sf (sf).
std::string config_with_groups(const std::string& groups, const std::string& templates = "{}",
                               const std::string& extra = "") {
  return R"({)" + extra + R"(
  "storage": {"key_file": ")" + tocsin::test::shared_key_file() + R"("},
  "coordinators": [
    {"name": "la-hotline", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]},
    {"name": "la-observers", "secret": "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "areas": ["la/east-la"]},
    {"name": "sf", "secret": "whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBB", "areas": ["sf"]}],
  "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"}],
  "groups": )" + groups + R"(,
  "templates": )" + templates + R"(
})";
}

// With console = true the console is enabled (people of one coordinator
// corroborate each other there).
std::vector<std::string> problems(const std::string& groups, bool console = false) {
  std::string extra = console ? R"("server": {"public_url": "http://127.0.0.1:8080"},
                                   "console": {"enabled": true},)"
                              : "";
  std::vector<std::string> out;
  for (const auto& p : parse_config(config_with_groups(groups, "{}", extra), "").problems)
    out.push_back(p.path + ": " + p.message);
  return out;
}

}  // namespace

TEST_CASE("safety rules load into the groups", "[config][safety]") {
  auto r = parse_config(config_with_groups(R"([
    {"name": "east", "match": {"areas": ["la/east-la"], "min_certainty": "likely",
                               "min_corroboration": 2},
     "channels": ["sms"], "enough_responding": 8,
     "escalate": {"after_s": 300, "if_responding_below": 5, "to": ["wide"]}},
    {"name": "wide", "match": {"areas": ["la"]}, "channels": ["sms"]}])",
                                           R"({"covered": {"en": "Covered #{{incident}}"}})"),
                        "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  const auto& east = r.config.groups[0];
  CHECK(east.min_certainty == tocsin::Certainty::kLikely);
  CHECK(east.min_corroboration == 2);
  CHECK(east.enough_responding == 8);
  REQUIRE(east.escalate);
  CHECK(east.escalate->after_s == 300);
  CHECK(east.escalate->if_responding_below == 5);
  CHECK(east.escalate->to == std::vector<std::string>{"wide"});
  const auto& wide = r.config.groups[1];
  CHECK_FALSE(wide.min_certainty);
  CHECK(wide.min_corroboration == 1);
  CHECK_FALSE(wide.escalate);
  CHECK(wide.enough_responding == 0);
  CHECK(r.config.templates.covered.at("en") == "Covered #{{incident}}");
  // The built-in covered texts fill in what a config leaves out.
  CHECK(tocsin::with_defaults({}).covered.count("es") == 1);
}

TEST_CASE("check-config refuses safety rules that cannot work", "[config][safety]") {
  // Escalation cycles, also through several groups.
  CHECK(problems(R"([
    {"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 60, "if_responding_below": 1, "to": ["b"]}},
    {"name": "b", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 60, "if_responding_below": 1, "to": ["a"]}}])") ==
        std::vector<std::string>{"groups[0].escalate.to: escalation cycle: a → b → a"});
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 60, "if_responding_below": 1, "to": ["a"]}}])") ==
        std::vector<std::string>{"groups[0].escalate.to[0]: a group cannot escalate to itself"});
  // Unknown groups, an empty list.
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 60, "if_responding_below": 1, "to": ["la-wide"]}}])") ==
        std::vector<std::string>{"groups[0].escalate.to[0]: no group named \"la-wide\""});
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 60, "if_responding_below": 1, "to": []}}])") ==
        std::vector<std::string>{"groups[0].escalate.to: must name at least one group"});
  // Thresholds that can never be met.
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after_s": 0, "if_responding_below": 0, "to": ["a"]}}])") ==
        std::vector<std::string>{
            "groups[0].escalate.after_s: must be more than 0 seconds",
            "groups[0].escalate.if_responding_below: must be at least 1: fewer than 0 responding "
            "never happens",
            "groups[0].escalate.to[0]: a group cannot escalate to itself"});
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "enough_responding": 0}])") ==
        std::vector<std::string>{
            "groups[0].enough_responding: must be at least 1: 0 responding can never cover an "
            "incident"});
  // Two coordinators may report in la/east-la (la-hotline and la-observers),
  // one in la/west (la-hotline), none in ny.
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la/east-la"], "min_corroboration": 2},
                      "channels": ["sms"]}])")
            .empty());
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la/west"], "min_corroboration": 2},
                      "channels": ["sms"]}])") ==
        std::vector<std::string>{
            "groups[0].match.min_corroboration: can never be met: only 1 coordinator(s) may "
            "report in the group's areas, and without the console (console.enabled) each "
            "coordinator counts as one reporter"});
  // With the console, two people of la-hotline can corroborate in la/west;
  // nobody can in ny, console or not.
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la/west"], "min_corroboration": 3},
                      "channels": ["sms"]}])",
                 true)
            .empty());
  for (bool console : {false, true})
    CHECK(problems(R"([{"name": "a", "match": {"areas": ["ny"], "min_corroboration": 2},
                        "channels": ["sms"]}])",
                   console) ==
          std::vector<std::string>{"groups[0].match.min_corroboration: can never be met: no "
                                   "coordinator may report in the group's areas"});
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"], "min_corroboration": 0},
                      "channels": ["sms"]}])") ==
        std::vector<std::string>{
            "groups[0].match.min_corroboration: must be at least 1 (1: one report suffices)"});
  CHECK(problems(R"([{"name": "a", "match": {"areas": ["la"], "min_certainty": "sure"},
                      "channels": ["sms"]}])") ==
        std::vector<std::string>{
            "groups[0].match.min_certainty: must be one of observed, likely, possible, unlikely, "
            "unknown"});
  // A typo in the rule is refused like any unknown key.
  auto typo = problems(R"([{"name": "a", "match": {"areas": ["la"]}, "channels": ["sms"],
     "escalate": {"after": 60, "if_responding_below": 1, "to": ["a"]}}])");
  CHECK(std::find_if(typo.begin(), typo.end(), [](const std::string& p) {
          return p.starts_with("groups[0].escalate.after");
        }) != typo.end());
}
