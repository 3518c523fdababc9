#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/report.h"

using namespace tocsin;
using nlohmann::json;

namespace {

constexpr UnixMs kNow = 1796083200000;  // 2026-12-01T00:00:00Z

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
  auto r = parse_report(j.dump(), kNow);
  if (std::holds_alternative<Report>(r)) return "";
  if (auto* m = std::get_if<MalformedReport>(&r)) return "malformed: " + m->detail;
  return std::get<std::vector<FieldProblem>>(r).front().path;
}

}  // namespace

TEST_CASE("a valid report parses into every field", "[report]") {
  auto r = parse_report(valid_report().dump(), kNow);
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
  auto r = parse_report(j.dump(), kNow);
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
  auto r = parse_report(j.dump(), kNow);
  REQUIRE(std::holds_alternative<Report>(r));
  CHECK(std::get<Report>(r).is_drill());
}

TEST_CASE("malformed bodies are told apart from invalid fields", "[report]") {
  CHECK(std::holds_alternative<MalformedReport>(parse_report("{not json", kNow)));
  CHECK(std::holds_alternative<MalformedReport>(parse_report("[1,2]", kNow)));
  CHECK(std::holds_alternative<MalformedReport>(parse_report("", kNow)));
  std::string deep(5000, '[');
  CHECK(std::holds_alternative<MalformedReport>(parse_report(deep, kNow)));
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

TEST_CASE("a duplicate key anywhere in a report is malformed, naming the key", "[report][strict]") {
  // The sender's JSON library may have kept the first: a drill must not
  // become an alert because ours keeps the last.
  std::string body = valid_report().dump();
  body.insert(body.size() - 1, R"(,"status":"exercise")");
  auto r = parse_report(body, kNow);
  auto* m = std::get_if<MalformedReport>(&r);
  REQUIRE(m);
  CHECK(m->field == "status");
  CHECK(m->detail == "duplicate key \"status\"");

  auto nested = parse_report(
      R"({"msg_type":"alert","location":{"lat":1,"lon":2,"lat":3},"headline":{"en":"a","en":"b"}})", kNow);
  REQUIRE(std::get_if<MalformedReport>(&nested));
  CHECK(std::get<MalformedReport>(nested).field == "location.lat");
}

TEST_CASE("report texts refuse control characters, instructions may break lines", "[report][strict]") {
  auto j = valid_report();
  j["headline"]["en"] = std::string("ICE\0 at 1st", 11);
  CHECK(first_problem(j) == "headline.en");
  j = valid_report();
  j["headline"]["es"] = "line\nbreak";
  CHECK(first_problem(j) == "headline.es");
  j = valid_report();
  j["instruction"]["en"] = "Bring water.\nStay on the sidewalk.";
  CHECK(first_problem(j) == "");
  j["instruction"]["en"] = "bell\x07";
  CHECK(first_problem(j) == "instruction.en");
  j = valid_report();
  j["location"]["description"] = "1st\x1b[31m";
  CHECK(first_problem(j) == "location.description");
  j = valid_report();
  j["dedup_key"] = std::string("k\0", 2);
  CHECK(first_problem(j) == "dedup_key");
}

TEST_CASE("observed_at must be a plausible time: 2000 to a day from now, offsets within 14 h",
          "[report][strict]") {
  auto with = [](const std::string& t) {
    auto j = valid_report();
    j["observed_at"] = t;
    return first_problem(j);
  };
  CHECK(with("0000-01-01T00:00:00-23:59") == "observed_at");
  CHECK(with("1999-12-31T23:59:59Z") == "observed_at");
  CHECK(with("2000-01-01T00:00:00Z") == "");
  CHECK(with("2026-12-01T23:59:00Z") == "");  // within a day of now (clock skew)
  CHECK(with("2026-12-02T00:00:01Z") == "observed_at");
  CHECK(with("2026-11-30T10:00:00+14:00") == "");
  CHECK(with("2026-11-30T10:00:00-14:01") == "observed_at");
  CHECK(with("2026-11-30T10:00:00+15:00") == "observed_at");
  CHECK_FALSE(parse_rfc3339("2026-11-30T10:00:00-23:59"));
  CHECK(parse_rfc3339("2026-11-30T10:00:00-14:00"));
}
