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

namespace {

// Folds `reports` (arriving in this order, one second apart) into incidents
// as ingest does: a report joins the incident find_duplicate picks, else
// opens one located at itself. Returns, for each report, its incident's
// first report index: a partition of the reports.
std::vector<std::size_t> fold(const std::vector<Report>& reports, const std::vector<std::size_t>& order,
                              const DedupRules& rules) {
  std::vector<IncidentCandidate> open;
  std::vector<std::size_t> founder_of_incident;
  std::vector<std::size_t> incident_of(reports.size());
  UnixMs now = 1'000'000;
  for (std::size_t idx : order) {
    now += 1000;
    const Report& r = reports[idx];
    if (auto hit = find_duplicate(r, now, open, rules)) {
      open[*hit].last_report_at = now;
      incident_of[idx] = *hit;
    } else {
      open.push_back({std::to_string(open.size()), r.event, r.area, r.location, r.dedup_key, now,
                      r.is_drill()});
      founder_of_incident.push_back(idx);
      incident_of[idx] = open.size() - 1;
    }
  }
  // Name each incident by its smallest report index, so partitions compare.
  std::vector<std::size_t> smallest(open.size(), reports.size());
  for (std::size_t i = 0; i < reports.size(); ++i)
    smallest[incident_of[i]] = std::min(smallest[incident_of[i]], i);
  std::vector<std::size_t> out(reports.size());
  for (std::size_t i = 0; i < reports.size(); ++i) out[i] = smallest[incident_of[i]];
  return out;
}

}  // namespace

TEST_CASE("dedup: arrival order does not change which reports end up together",
          "[dedup][property]") {
  std::mt19937 rng(2026);
  const DedupRules rules{1800, 400};
  for (int round = 0; round < 300; ++round) {
    // Events happening at places kilometres apart; each reported 1-5 times
    // from within 150 m of where it happens (so any two reports of one
    // event lie within 300 m < radius), sometimes without a location.
    std::vector<Report> reports;
    std::vector<std::size_t> truth;  // which event each report is about
    std::uniform_int_distribution<int> n_events(1, 6), n_reports(1, 5);
    std::uniform_real_distribution<double> jitter(-0.00095, 0.00095);  // ≤ ~105 m per axis
    int events = n_events(rng);
    for (int e = 0; e < events; ++e) {
      Location centre{34.0 + 0.05 * e, -118.2 + 0.03 * (e % 3), ""};  // ≥ 3 km apart
      std::string kind = e % 4 == 3 ? "checkpoint" : "enforcement_activity";
      for (int k = n_reports(rng); k > 0; --k) {
        Report r = alert(kind, "la/area-" + std::to_string(e));
        if (rng() % 5 != 0) r.location = Location{centre.lat + jitter(rng), centre.lon + jitter(rng), ""};
        reports.push_back(r);
        truth.push_back(static_cast<std::size_t>(e));
      }
    }
    std::vector<std::size_t> order(reports.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    auto first = fold(reports, order, rules);
    for (int shuffle = 0; shuffle < 5; ++shuffle) {
      std::shuffle(order.begin(), order.end(), rng);
      REQUIRE(fold(reports, order, rules) == first);
    }
    // And the grouping is the true one: together exactly when about one event.
    for (std::size_t i = 0; i < reports.size(); ++i)
      for (std::size_t j = 0; j < reports.size(); ++j)
        CHECK((first[i] == first[j]) == (truth[i] == truth[j]));
  }
}

TEST_CASE("dedup: the bounding box holds every point within the radius", "[dedup][property]") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> unit(0, 1);
  constexpr double kR = 6371008.8, kPi = 3.14159265358979323846, deg = 180 / kPi;
  for (int round = 0; round < 20000; ++round) {
    // Centres anywhere, often near a pole or the antimeridian; radii up to the config's 100 km.
    double lat = round % 4 == 0 ? (unit(rng) < 0.5 ? -1 : 1) * (89.0 + unit(rng)) : unit(rng) * 180 - 90;
    double lon = round % 4 == 1 ? (unit(rng) < 0.5 ? -1 : 1) * (179.0 + unit(rng)) : unit(rng) * 360 - 180;
    double radius = round % 3 == 0 ? unit(rng) * 500 : unit(rng) * 100000;
    Location c{lat, lon, ""};
    GeoBox box = bounding_box(c, radius);
    // A point at a random bearing, at the radius or just inside it.
    double d = radius * (round % 2 ? 1.0 : unit(rng)) / kR, theta = unit(rng) * 2 * kPi;
    double p1 = lat / deg, l1 = lon / deg;
    double p2 = std::asin(std::sin(p1) * std::cos(d) + std::cos(p1) * std::sin(d) * std::cos(theta));
    double l2 = l1 + std::atan2(std::sin(theta) * std::sin(d) * std::cos(p1),
                                std::cos(d) - std::sin(p1) * std::sin(p2));
    Location p{p2 * deg, std::remainder(l2 * deg, 360.0), ""};
    if (distance_m(c, p) > radius) continue;
    INFO("centre " << lat << "," << lon << " radius " << radius << " point " << p.lat << "," << p.lon);
    REQUIRE(p.lat >= box.lat_min);
    REQUIRE(p.lat <= box.lat_max);
    REQUIRE(p.lon >= box.lon_min);
    REQUIRE(p.lon <= box.lon_max);
  }
  // And it filters: 400 m around Los Angeles is a few hundred metres wide.
  GeoBox la = bounding_box(kSoto, 400);
  CHECK(la.lat_max - la.lat_min < 0.01);
  CHECK(la.lon_max - la.lon_min < 0.01);
}
