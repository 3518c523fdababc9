#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/report.h"

using namespace tocsin;
using nlohmann::json;

namespace {

json valid_report() {
  return json::parse(R"({
    "msg_type": "alert", "status": "actual", "event": "enforcement_activity",
    "severity": "severe", "area": "la/boyle-heights",
    "location": {"lat": 34.0339, "lon": -118.2107, "description": "1st St & Soto St"},
    "observed_at": "2026-11-22T13:05:00Z",
    "headline": {"en": "ICE vehicles at 1st & Soto", "es": "Vehículos de ICE en 1st y Soto"},
    "instruction": {"en": "Legal observers needed"},
    "dedup_key": "k1"})");
}

// The path of the first problem, or "" when the report is valid.
std::string first_problem(const json& j) {
  auto r = parse_report(j.dump());
  if (std::holds_alternative<Report>(r)) return "";
  if (auto* m = std::get_if<MalformedReport>(&r)) return "malformed: " + m->detail;
  return std::get<std::vector<FieldProblem>>(r).front().path;
}

}  // namespace

TEST_CASE("a valid report parses into every field", "[report]") {
  auto r = parse_report(valid_report().dump());
  REQUIRE(std::holds_alternative<Report>(r));
  const Report& rep = std::get<Report>(r);
  CHECK(rep.msg_type == MsgType::kAlert);
  CHECK(rep.severity == Severity::kSevere);
  CHECK(rep.area == "la/boyle-heights");
  REQUIRE(rep.location);
  CHECK(rep.location->lat == Approx(34.0339));
  CHECK(rep.location->description == "1st St & Soto St");
  CHECK(rep.headline.at("es") == "Vehículos de ICE en 1st y Soto");
  CHECK(rep.observed_at_ms == 1795352700000);
  CHECK_FALSE(rep.is_drill());
}

TEST_CASE("validation names the field at fault", "[report]") {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    std::string field;
  };
  std::vector<Case> cases = {
      {"missing msg_type", [](json& j) { j.erase("msg_type"); }, "msg_type"},
      {"bad msg_type", [](json& j) { j["msg_type"] = "panic"; }, "msg_type"},
      {"missing status", [](json& j) { j.erase("status"); }, "status"},
      {"bad status", [](json& j) { j["status"] = "real"; }, "status"},
      {"bad event", [](json& j) { j["event"] = "Raid!"; }, "event"},
      {"event not string", [](json& j) { j["event"] = 7; }, "event"},
      {"bad severity", [](json& j) { j["severity"] = "huge"; }, "severity"},
      {"missing area and location", [](json& j) { j.erase("area"), j.erase("location"); }, "area"},
      {"empty area beside a location", [](json& j) { j["area"] = ""; }, "area"},
      {"bad area", [](json& j) { j["area"] = "LA//x"; }, "area"},
      {"lat out of range", [](json& j) { j["location"]["lat"] = 91; }, "location.lat"},
      {"lon not number", [](json& j) { j["location"]["lon"] = "west"; }, "location.lon"},
      {"location not object", [](json& j) { j["location"] = 5; }, "location"},
      {"location unknown key", [](json& j) { j["location"]["alt"] = 5; }, "location.alt"},
      {"bad observed_at", [](json& j) { j["observed_at"] = "yesterday"; }, "observed_at"},
      {"impossible date", [](json& j) { j["observed_at"] = "2026-02-31T10:00:00Z"; }, "observed_at"},
      {"missing headline", [](json& j) { j.erase("headline"); }, "headline"},
      {"headline string", [](json& j) { j["headline"] = "hi"; }, "headline"},
      {"headline bad language", [](json& j) { j["headline"] = {{"english!", "x"}}; }, "headline"},
      {"headline empty text", [](json& j) { j["headline"]["en"] = ""; }, "headline.en"},
      {"instruction not text", [](json& j) { j["instruction"]["en"] = 1; }, "instruction.en"},
      {"dedup_key not string", [](json& j) { j["dedup_key"] = 3; }, "dedup_key"},
      {"references on alert", [](json& j) { j["references"] = "ABCDEF"; }, "references"},
      {"update without references", [](json& j) { j["msg_type"] = "update"; }, "references"},
      {"unknown field", [](json& j) { j["instrucion"] = {{"en", "typo"}}; }, "instrucion"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      json j = valid_report();
      c.edit(j);
      CHECK(first_problem(j) == c.field);
    }
  }
}

TEST_CASE("a report with a location may leave out area: the shapes decide it", "[report][areas]") {
  json j = valid_report();
  j.erase("area");
  auto r = parse_report(j.dump());
  REQUIRE(std::holds_alternative<Report>(r));
  CHECK(std::get<Report>(r).area.empty());
  CHECK(std::get<Report>(r).location);
}

TEST_CASE("cancel needs no headline, drills are flagged", "[report]") {
  json j = valid_report();
  j["msg_type"] = "cancel";
  j["references"] = "ABCDEF";
  j.erase("headline");
  j["status"] = "exercise";
  auto r = parse_report(j.dump());
  REQUIRE(std::holds_alternative<Report>(r));
  CHECK(std::get<Report>(r).is_drill());
}

TEST_CASE("malformed bodies are told apart from invalid fields", "[report]") {
  CHECK(std::holds_alternative<MalformedReport>(parse_report("{not json")));
  CHECK(std::holds_alternative<MalformedReport>(parse_report("[1,2]")));
  CHECK(std::holds_alternative<MalformedReport>(parse_report("")));
  std::string deep(5000, '[');
  CHECK(std::holds_alternative<MalformedReport>(parse_report(deep)));
  CHECK(json_too_deep(std::string(33, '{')));
  CHECK_FALSE(json_too_deep(std::string(32, '[')));
  CHECK_FALSE(json_too_deep(R"({"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})"));
}

TEST_CASE("areas are paths and scopes cover their sub-areas", "[report]") {
  CHECK(valid_area("la"));
  CHECK(valid_area("la/boyle-heights"));
  CHECK_FALSE(valid_area("la/"));
  CHECK_FALSE(valid_area("/la"));
  CHECK_FALSE(valid_area("La"));
  CHECK(area_covers("la", "la/east-la"));
  CHECK(area_covers("la/east-la", "la/east-la"));
  CHECK_FALSE(area_covers("la", "lax/terminal"));
  CHECK_FALSE(area_covers("la/east-la", "la"));
}

TEST_CASE("RFC 3339 times parse with offsets and fractions", "[report]") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("1970-01-01T01:00:00+01:00") == 0);
  CHECK(parse_rfc3339("1970-01-01T00:00:01.5Z") == 1500);
  CHECK_FALSE(parse_rfc3339("1970-01-01 00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("1970-01-01T00:00:00"));
  CHECK(format_rfc3339(1795352700000) == "2026-11-22T13:05:00Z");
}
