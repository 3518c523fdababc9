#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

#include "core/dedup.h"
#include "core/routing.h"

using namespace tocsin;

namespace {

Report alert(std::string event, std::string area, std::optional<Location> loc = std::nullopt,
             std::string key = "") {
  Report r;
  r.msg_type = MsgType::kAlert;
  r.event = std::move(event);
  r.area = std::move(area);
  r.location = loc;
  r.dedup_key = std::move(key);
  return r;
}

IncidentCandidate incident(std::string id, std::string event, std::string area,
                           std::optional<Location> loc, UnixMs last, std::string key = "") {
  return {std::move(id), std::move(event), std::move(area), loc, std::move(key), last, false};
}

const Location kSoto{34.0339, -118.2107, ""};
// ~150 m north of kSoto.
const Location kNear{34.03525, -118.2107, ""};
// ~5 km east.
const Location kFar{34.0339, -118.1565, ""};

}  // namespace

TEST_CASE("distance is great-circle metres", "[dedup]") {
  CHECK(distance_m(kSoto, kNear) == Approx(150).margin(2));
  CHECK(distance_m(kSoto, kFar) == Approx(5000).margin(50));
  CHECK(distance_m(kSoto, kSoto) == Approx(0).margin(1e-6));
}

TEST_CASE("dedup: key, place, area, event and window", "[dedup]") {
  DedupRules rules{1800, 400};
  const UnixMs now = 10'000'000;
  std::vector<IncidentCandidate> open = {
      incident("AAAAAA", "enforcement_activity", "la/boyle-heights", kSoto, now - 60'000, "k1")};

  CHECK(find_duplicate(alert("other_event", "x", std::nullopt, "k1"), now, open, rules) == 0u);
  CHECK(find_duplicate(alert("enforcement_activity", "la/east-la", kNear), now, open, rules) == 0u);
  CHECK_FALSE(find_duplicate(alert("enforcement_activity", "la/east-la", kFar), now, open, rules));
  CHECK_FALSE(find_duplicate(alert("checkpoint", "la/boyle-heights", kNear), now, open, rules));
  // Without a location, the same area matches; another area does not.
  CHECK(find_duplicate(alert("enforcement_activity", "la/boyle-heights"), now, open, rules) == 0u);
  CHECK_FALSE(find_duplicate(alert("enforcement_activity", "la/east-la"), now, open, rules));
  // Drills never merge with actual incidents.
  Report drill = alert("enforcement_activity", "la/boyle-heights", kSoto);
  drill.status = ReportStatus::kExercise;
  CHECK_FALSE(find_duplicate(drill, now, open, rules));
  // Follow-ups never dedup.
  Report update = alert("enforcement_activity", "la/boyle-heights", kSoto);
  update.msg_type = MsgType::kUpdate;
  CHECK_FALSE(find_duplicate(update, now, open, rules));
}

TEST_CASE("dedup: radius and window edges", "[dedup]") {
  const UnixMs now = 10'000'000;
  std::vector<IncidentCandidate> open = {
      incident("AAAAAA", "e", "a", kSoto, now - 1800'000)};
  double d = distance_m(kSoto, kNear);
  CHECK(find_duplicate(alert("e", "a", kNear), now, open, {1800, d + 0.01}) == 0u);
  CHECK_FALSE(find_duplicate(alert("e", "a", kNear), now, open, {1800, d - 0.01}));
  // The window is inclusive at its edge and closed one millisecond past it.
  CHECK(find_duplicate(alert("e", "a", kSoto), now, open, {1800, 400}) == 0u);
  CHECK_FALSE(find_duplicate(alert("e", "a", kSoto), now + 1, open, {1800, 400}));
}

TEST_CASE("dedup: the nearest match wins whatever the candidates' order", "[dedup][property]") {
  const UnixMs now = 10'000'000;
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::uniform_real_distribution<double> jitter(-0.004, 0.004);  // about ±450 m
    std::vector<IncidentCandidate> open;
    for (int i = 0; i < 6; ++i)
      open.push_back(incident(std::string(6, static_cast<char>('A' + i)), i % 2 ? "e" : "f", "a",
                              Location{kSoto.lat + jitter(rng), kSoto.lon + jitter(rng), ""},
                              now - 1000 * i));
    Report r = alert("e", "a", kSoto);
    auto first = find_duplicate(r, now, open, {1800, 400});
    std::optional<std::string> winner = first ? std::optional(open[*first].id) : std::nullopt;
    std::shuffle(open.begin(), open.end(), rng);
    auto second = find_duplicate(r, now, open, {1800, 400});
    std::optional<std::string> again = second ? std::optional(open[*second].id) : std::nullopt;
    REQUIRE(winner == again);
    if (winner) {
      const auto& w = open[*second];
      CHECK(w.event == "e");  // never across events
      CHECK(distance_m(*w.location, kSoto) <= 400);
    }
  }
}

TEST_CASE("routing: areas by prefix, events, severity, drills", "[routing]") {
  Group east{"east", {"la/boyle-heights", "la/east-la"}, {"enforcement_activity"}, Severity::kModerate,
             {Channel::kSms}, false};
  Group all_la{"all-la", {"la"}, {}, std::nullopt, {Channel::kEmail}, true};
  Group sf{"sf", {"sf"}, {}, std::nullopt, {Channel::kSms}, true};
  std::vector<Group> groups = {east, all_la, sf};
  auto names = [&](const Report& r) {
    std::vector<std::string> out;
    for (auto* g : match_groups(groups, r)) out.push_back(g->name);
    return out;
  };
  Report r = alert("enforcement_activity", "la/boyle-heights");
  r.severity = Severity::kSevere;
  CHECK(names(r) == std::vector<std::string>{"east", "all-la"});
  r.severity = Severity::kMinor;
  CHECK(names(r) == std::vector<std::string>{"all-la"});
  r.severity = Severity::kModerate;
  r.event = "checkpoint";
  CHECK(names(r) == std::vector<std::string>{"all-la"});
  r.event = "enforcement_activity";
  r.area = "la/boyle-heights/mariachi-plaza";
  CHECK(names(r) == std::vector<std::string>{"east", "all-la"});
  r.status = ReportStatus::kTest;
  CHECK(names(r) == std::vector<std::string>{"all-la"});
  r.area = "oakland";
  CHECK(names(r).empty());
}
