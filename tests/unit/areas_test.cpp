// Unit tests of core/areas: reading and validating shapes, point lookup at
// edges, in holes, in MultiPolygons, across the antimeridian, in tiny areas,
// and the decision a report's area gets from its point.
#include "core/areas.h"

#include <catch2/catch.hpp>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "../../bench/area_grid.h"
#include "core/area_svg.h"
#include "core/routing.h"

using namespace tocsin;
using nlohmann::json;

namespace {

// A closed rectangle ring [lon, lat] from (lon0, lat0) to (lon1, lat1).
json box(double lon0, double lat0, double lon1, double lat1) {
  return json::array({{lon0, lat0}, {lon1, lat0}, {lon1, lat1}, {lon0, lat1}, {lon0, lat0}});
}

json feature(const std::string& name, const json& geometry) {
  return {{"type", "Feature"}, {"properties", {{"name", name}}}, {"geometry", geometry}};
}

// (Vectors, not braced json: nlohmann reads a one-element brace list as a copy.)
json polygon(const std::vector<json>& rings) {
  return {{"type", "Polygon"}, {"coordinates", json(rings)}};
}
json multipolygon(const std::vector<json>& polys) {
  return {{"type", "MultiPolygon"}, {"coordinates", json(polys)}};
}

std::string collection(const std::vector<json>& features) {
  return json{{"type", "FeatureCollection"}, {"features", features}}.dump();
}

std::string all_problems(const AreaSet::Load& l) {
  std::string out;
  for (const auto& p : l.problems) out += p.path + ": " + p.message + "\n";
  return out;
}

AreaSet::Load load(const std::vector<json>& features, const json& circles = nullptr,
                   double tolerance = 200) {
  auto l = AreaSet::load(features.empty() ? "" : collection(features), "areas_file", &circles,
                         "areas.circles", tolerance);
  UNSCOPED_INFO(all_problems(l));
  return l;
}

// LA as a 0.2° × 0.1° box with a hole (a "not la" enclave), and Boyle
// Heights inside it.
std::vector<json> la_features() {
  return {feature("la",
                  polygon({box(-118.3, 34.0, -118.1, 34.1), box(-118.29, 34.08, -118.27, 34.09)})),
          feature("la/boyle-heights", polygon({box(-118.23, 34.02, -118.19, 34.05)}))};
}

std::vector<std::string> names(const AreaSet& set, double lat, double lon) {
  std::vector<std::string> out;
  for (std::size_t i : set.holding(lat, lon)) out.push_back(set.areas()[i].name);
  return out;
}

}  // namespace

TEST_CASE("areas: a point is held by every shape around it, most specific first", "[areas]") {
  auto l = load(la_features());
  REQUIRE(l.problems.empty());
  const AreaSet& set = *l.set;
  CHECK(names(set, 34.0339, -118.2107) == std::vector<std::string>{"la/boyle-heights", "la"});
  CHECK(names(set, 34.07, -118.15) == std::vector<std::string>{"la"});
  CHECK(names(set, 35.0, -118.2).empty());
  // Far from the edge inside, measured in metres: 0.01° of latitude ≈ 1112 m.
  CHECK(set.edge_distance_m(*set.find("la/boyle-heights"), 34.04, -118.21) ==
        Approx(1112).epsilon(0.01));
}

TEST_CASE("areas: edges and vertices are inside, a step beyond is not", "[areas]") {
  auto l = load(la_features());
  REQUIRE(l.problems.empty());
  const AreaSet& set = *l.set;
  CHECK(names(set, 34.02, -118.21) == std::vector<std::string>{"la/boyle-heights", "la"});  // edge
  CHECK(names(set, 34.02, -118.23) ==
        std::vector<std::string>{"la/boyle-heights", "la"});  // vertex
  CHECK(names(set, 34.0199, -118.21) == std::vector<std::string>{"la"});
  CHECK(set.edge_distance_m(*set.find("la/boyle-heights"), 34.0199, -118.21) ==
        Approx(11.1).epsilon(0.02));
}

TEST_CASE("areas: a point in a hole is outside", "[areas]") {
  auto l = load(la_features());
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, 34.085, -118.28).empty());
  CHECK(names(*l.set, 34.075, -118.28) == std::vector<std::string>{"la"});
  // The hole's edge is the shape's edge too.
  CHECK(l.set->edge_distance_m(*l.set->find("la"), 34.085, -118.28) == Approx(556).epsilon(0.01));
}

TEST_CASE("areas: each part of a MultiPolygon holds its points", "[areas]") {
  auto l = load({feature(
      "islands", multipolygon({json::array({box(0, 0, 1, 1)}), json::array({box(5, 5, 6, 6)})}))});
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, 0.5, 0.5) == std::vector<std::string>{"islands"});
  CHECK(names(*l.set, 5.5, 5.5) == std::vector<std::string>{"islands"});
  CHECK(names(*l.set, 3, 3).empty());
}

TEST_CASE("areas: a shape cut at the antimeridian holds points on both sides", "[areas]") {
  auto l = load({feature("fiji", multipolygon({json::array({box(177, -19, 180, -16)}),
                                               json::array({box(-180, -19, -179, -16)})}))});
  REQUIRE(l.problems.empty());
  const AreaSet& set = *l.set;
  CHECK(names(set, -17, 179.9) == std::vector<std::string>{"fiji"});
  CHECK(names(set, -17, -179.9) == std::vector<std::string>{"fiji"});
  CHECK(names(set, -17, 180) == std::vector<std::string>{"fiji"});
  CHECK(names(set, -17, -180) == std::vector<std::string>{"fiji"});
  CHECK(names(set, -17, -178).empty());
  // Distances wrap: -178.9 is 0.1° (≈ 10.6 km at 17°S) east of the cut part's edge.
  CHECK(set.edge_distance_m(*set.find("fiji"), -17, -178.9) == Approx(10630).epsilon(0.01));

  SECTION("an uncut crossing is refused, naming the feature") {
    json ring = json::array({{179, -19}, {-179, -19}, {-179, -16}, {179, -16}, {179, -19}});
    auto bad = load({feature("fiji", polygon({ring}))});
    REQUIRE(bad.problems.size() == 1);
    CHECK(bad.problems[0].path == "areas_file.features[0].geometry.coordinates[0][1]");
    CHECK_THAT(bad.problems[0].message,
               Catch::Contains("feature 0 \"fiji\"") && Catch::Contains("antimeridian"));
  }
  SECTION("a circle across it is measured on the sphere") {
    auto c = load({}, json::array({{{"name", "dateline"},
                                    {"center", {{"lat", 0}, {"lon", 179.99}}},
                                    {"radius_m", 5000}}}));
    REQUIRE(c.problems.empty());
    CHECK(names(*c.set, 0, -179.98) == std::vector<std::string>{"dateline"});
    CHECK(names(*c.set, 0, -179.9).empty());
  }
}

TEST_CASE("areas: a tiny area holds exactly its points, with a warning", "[areas]") {
  // About 1 m × 1 m at the corner of 1st and Soto.
  double lon = -118.2107, lat = 34.0339, d = 0.00001;
  auto l = load({feature("la", polygon({box(-118.3, 34.0, -118.1, 34.1)})),
                 feature("la/corner", polygon({box(lon, lat, lon + d, lat + d)}))});
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, lat + d / 2, lon + d / 2) == std::vector<std::string>{"la/corner", "la"});
  CHECK(names(*l.set, lat + 3 * d, lon + d / 2) == std::vector<std::string>{"la"});
  REQUIRE(l.warnings.size() == 1);
  CHECK(l.warnings[0].path == "areas_file.features[1].geometry");
  CHECK_THAT(l.warnings[0].message,
             Catch::Contains("\"la/corner\"") && Catch::Contains("areas.tolerance_m"));
  SECTION("a ring with no area is refused") {
    json line = json::array({{0, 0}, {1, 1}, {2, 2}, {0, 0}});
    auto bad = load({feature("flat", polygon({line}))});
    REQUIRE(bad.problems.size() == 1);
    CHECK_THAT(bad.problems[0].message, Catch::Contains("\"flat\""));
  }
}

TEST_CASE("areas: either winding is accepted", "[areas]") {
  json cw = json::array({{0, 0}, {0, 1}, {1, 1}, {1, 0}, {0, 0}});
  auto l = load({feature("a", polygon({cw})), feature("b", polygon({box(2, 0, 3, 1)}))});
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, 0.5, 0.5) == std::vector<std::string>{"a"});
  CHECK(names(*l.set, 0.5, 2.5) == std::vector<std::string>{"b"});
}

TEST_CASE("areas: broken shapes are each reported with the feature's index and name",
          "[areas][config]") {
  json open = json::array({{0, 0}, {1, 0}, {1, 1}, {0, 1}});
  json bowtie = json::array({{0, 0}, {1, 1}, {1, 0}, {0, 1}, {0, 0}});
  json swapped = json::array({{34.0, -118.3}, {34.1, -118.3}, {34.1, -118.1}, {34.0, -118.3}});
  auto l = load({feature("open", polygon({open})),                                  // 0
                 feature("bowtie", polygon({bowtie})),                              // 1
                 feature("swapped", polygon({swapped})),                            // 2
                 feature("Not A Path", polygon({box(0, 0, 1, 1)})),                 // 3
                 feature("line", {{"type", "LineString"}, {"coordinates", open}}),  // 4
                 {{"type", "Feature"},
                  {"properties", json::object()},
                  {"geometry", polygon({box(0, 0, 1, 1)})}},                          // 5
                 feature("three", polygon({json::array({{0, 0}, {1, 0}, {0, 0}})})),  // 6
                 feature("holey", polygon({box(0, 0, 1, 1), box(2, 2, 3, 3)}))});     // 7
  std::string all = all_problems(l);
  INFO(all);
  CHECK(l.set == nullptr);
  CHECK_THAT(all, Catch::Contains("areas_file.features[0].geometry.coordinates[0]: feature 0 "
                                  "\"open\": the outer ring is not closed"));
  CHECK_THAT(all, Catch::Contains(
                      "areas_file.features[1].geometry: feature 1 \"bowtie\": crosses itself"));
  CHECK_THAT(all, Catch::Contains("areas_file.features[2].geometry.coordinates[0][0]: feature 2 "
                                  "\"swapped\": latitude -118.3 is outside"));
  CHECK_THAT(all,
             Catch::Contains(
                 "areas_file.features[3].properties.name: \"Not A Path\" is not an area path"));
  CHECK_THAT(all,
             Catch::Contains("areas_file.features[4].geometry.type: feature 4 \"line\": must be "
                             "Polygon or MultiPolygon, not LineString"));
  CHECK_THAT(all, Catch::Contains("areas_file.features[5].properties.name: is required"));
  CHECK_THAT(all, Catch::Contains("areas_file.features[6].geometry.coordinates[0]: feature 6 "
                                  "\"three\": the outer ring needs at least 4 positions"));
  CHECK_THAT(all, Catch::Contains(
                      "areas_file.features[7].geometry: feature 7 \"holey\": has a hole outside"));
}

TEST_CASE("areas: names are unique and children lie inside their parents", "[areas][config]") {
  SECTION("a duplicate name names both definitions") {
    auto l =
        load({feature("la", polygon({box(0, 0, 1, 1)}))},
             json::array(
                 {{{"name", "la"}, {"center", {{"lat", 0.5}, {"lon", 0.5}}}, {"radius_m", 100}}}));
    REQUIRE(l.problems.size() == 1);
    CHECK(l.problems[0].path == "areas.circles[0]");
    CHECK_THAT(l.problems[0].message, Catch::Contains("areas_file.features[0]"));
  }
  SECTION("a duplicate is found even when one of the two is broken") {
    auto l = load({feature("la", polygon({box(0, 0, 1, 1)})),
                   feature("la", polygon({json::array({{0, 0}, {1, 1}, {1, 0}, {0, 1}, {0, 0}})}))});
    REQUIRE(l.problems.size() == 2);
    CHECK(l.problems[1].path == "areas_file.features[1]");
    CHECK_THAT(l.problems[1].message, Catch::Contains("already used by areas_file.features[0]"));
  }
  SECTION("a child reaching out of its parent beyond the tolerance") {
    // 0.01° of latitude beyond la's north edge: ≈ 1.1 km.
    auto l = load({feature("la", polygon({box(-118.3, 34.0, -118.1, 34.1)})),
                   feature("la/north", polygon({box(-118.2, 34.05, -118.15, 34.11)}))});
    REQUIRE(l.problems.size() == 1);
    CHECK(l.problems[0].path == "areas_file.features[1]");
    CHECK_THAT(l.problems[0].message,
               Catch::Contains("\"la/north\": reaches 1.1 km outside its parent \"la\""));
  }
  SECTION("a child that overhangs by less than the tolerance is fine") {
    // 0.001° ≈ 111 m beyond the edge.
    auto l = load({feature("la", polygon({box(-118.3, 34.0, -118.1, 34.1)})),
                   feature("la/north", polygon({box(-118.2, 34.05, -118.15, 34.101)}))});
    CHECK(l.problems.empty());
  }
  SECTION("the grandparent speaks when the parent has no shape") {
    auto l = load({feature("la", polygon({box(-118.3, 34.0, -118.1, 34.1)}))},
                  json::array({{{"name", "la/east/courthouse"},
                                {"center", {{"lat", 34.2}, {"lon", -118.2}}},
                                {"radius_m", 800}}}));
    REQUIRE(l.problems.size() == 1);
    CHECK(l.problems[0].path == "areas.circles[0]");
    CHECK_THAT(l.problems[0].message, Catch::Contains("outside its parent \"la\""));
  }
  SECTION("circles inside circles") {
    json circles = json::array(
        {{{"name", "la"}, {"center", {{"lat", 34.05}, {"lon", -118.2}}}, {"radius_m", 5000}},
         {{"name", "la/in"}, {"center", {{"lat", 34.05}, {"lon", -118.2}}}, {"radius_m", 800}},
         {{"name", "la/out"}, {"center", {{"lat", 34.1}, {"lon", -118.2}}}, {"radius_m", 800}}});
    auto l = load({}, circles);
    REQUIRE(l.problems.size() == 1);
    CHECK(l.problems[0].path == "areas.circles[2]");
  }
  SECTION("a circle's fields are checked like the rest of the config") {
    auto l = load({}, json::array({{{"name", "x"},
                                    {"center", {{"lat", 95}, {"lon", 0}}},
                                    {"radius_m", 0},
                                    {"colour", 1}}}));
    std::string all = all_problems(l);
    CHECK_THAT(all, Catch::Contains("areas.circles[0].colour: unknown field"));
    CHECK_THAT(all, Catch::Contains("areas.circles[0].center.lat: must be between"));
    CHECK_THAT(all, Catch::Contains("areas.circles[0].radius_m: must be between"));
  }
  SECTION("not a FeatureCollection") {
    auto l = AreaSet::load(R"({"type":"Feature"})", "areas_file", nullptr, "areas.circles", 200);
    REQUIRE(l.problems.size() == 1);
    CHECK(l.problems[0].path == "areas_file");
  }
}

TEST_CASE("areas: circles hold points within their radius", "[areas]") {
  auto l = load(la_features(), json::array({{{"name", "la/courthouse"},
                                             {"center", {{"lat", 34.0522}, {"lon", -118.2437}}},
                                             {"radius_m", 800}}}));
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, 34.0522, -118.2437) == std::vector<std::string>{"la/courthouse", "la"});
  // 0.01° north ≈ 1112 m: outside, 312 m from the edge.
  CHECK(names(*l.set, 34.0622, -118.2437) == std::vector<std::string>{"la"});
  CHECK(l.set->edge_distance_m(*l.set->find("la/courthouse"), 34.0622, -118.2437) ==
        Approx(312).margin(3));
}

TEST_CASE("areas: equally deep areas rank the smaller first", "[areas]") {
  auto l = load(
      {feature("big", polygon({box(0, 0, 2, 2)})), feature("small", polygon({box(0, 0, 1, 1)}))});
  REQUIRE(l.problems.empty());
  CHECK(names(*l.set, 0.5, 0.5) == std::vector<std::string>{"small", "big"});
}

TEST_CASE("areas: the point decides a report's area", "[areas]") {
  auto l = load(la_features());
  REQUIRE(l.problems.empty());
  const AreaSet* set = l.set.get();
  const Location soto{34.0339, -118.2107, ""};

  SECTION("left out: the most specific area holding the point") {
    auto d = decide_area(set, "", soto, 200);
    CHECK_FALSE(d.problem);
    CHECK(d.area == "la/boyle-heights");
    CHECK(d.derived);
    CHECK(d.point_areas == std::vector<std::string>{"la/boyle-heights", "la"});
    REQUIRE(d.shape);
    CHECK(d.shape->area == "la/boyle-heights");
    CHECK(d.shape->inside);
  }
  SECTION("left out, and no shape holds the point") {
    auto d = decide_area(set, "", Location{36.0, -118.2, ""}, 200);
    REQUIRE(d.problem);
    CHECK(d.problem->path == "location");
  }
  SECTION("named and holding the point") {
    auto d = decide_area(set, "la/boyle-heights", soto, 200);
    CHECK_FALSE(d.problem);
    CHECK(d.area == "la/boyle-heights");
    CHECK_FALSE(d.derived);
  }
  SECTION("named, just outside but within the tolerance") {
    auto d = decide_area(set, "la/boyle-heights", Location{34.0191, -118.21, ""}, 200);
    CHECK_FALSE(d.problem);
    REQUIRE(d.shape);
    CHECK_FALSE(d.shape->inside);
    CHECK(d.shape->edge_m == Approx(100).margin(2));
    CHECK(d.point_areas == std::vector<std::string>{"la"});
  }
  SECTION("named, 300 km away (a dropped sign)") {
    auto d = decide_area(set, "la/boyle-heights", Location{34.0339, -114.95, ""}, 200);
    REQUIRE(d.problem);
    CHECK(d.problem->path == "location");
    CHECK_THAT(d.problem->message, Catch::Contains("outside area la/boyle-heights"));
    CHECK(d.area.empty());
  }
  SECTION("named without a shape: its ancestor's shape speaks") {
    CHECK_FALSE(decide_area(set, "la/downtown", soto, 200).problem);
    auto d = decide_area(set, "la/downtown", Location{36.0, -118.2, ""}, 200);
    REQUIRE(d.problem);
    CHECK_THAT(d.problem->message, Catch::Contains("la/downtown's parent la"));
  }
  SECTION("named, with no shape in its line: not checked") {
    auto d = decide_area(set, "pdx", soto, 200);
    CHECK_FALSE(d.problem);
    CHECK(d.area == "pdx");
    CHECK(d.point_areas == std::vector<std::string>{"la/boyle-heights", "la"});
  }
  SECTION("without a location, or without shapes, as before") {
    CHECK(decide_area(set, "la", std::nullopt, 200).area == "la");
    CHECK(decide_area(set, "", std::nullopt, 200).problem->path == "area");
    CHECK(decide_area(nullptr, "", soto, 200).problem->path == "area");
    auto d = decide_area(nullptr, "la", soto, 200);
    CHECK_FALSE(d.problem);
    CHECK(d.point_areas.empty());
  }
}

TEST_CASE("areas: routing counts the areas holding the point", "[areas][routing]") {
  Group la{"la-responders", {"la"}, {}, std::nullopt, {Channel::kSms}, false};
  Group east{"east", {"la/east-la"}, {}, std::nullopt, {Channel::kSms}, false};
  Report r;
  r.event = "enforcement_activity";
  r.area = "pdx";
  CHECK_FALSE(group_matches(la, r));
  CHECK(group_matches(la, r, {"la/boyle-heights", "la"}));
  CHECK_FALSE(group_matches(east, r, {"la/boyle-heights", "la"}));
  r.area = "la/boyle-heights";
  CHECK(match_groups({la, east}, r).size() == 1);
}

TEST_CASE("areas: the picture shows the shapes and the point, text escaped", "[areas][svg]") {
  auto l = load(la_features(), json::array({{{"name", "la/courthouse"},
                                             {"center", {{"lat", 34.0522}, {"lon", -118.2437}}},
                                             {"radius_m", 800}}}));
  REQUIRE(l.problems.empty());
  Location soto{34.0339, -118.2107, "1st & Soto <script>alert(1)</script>"};
  std::string svg = area_svg(*l.set, "la/boyle-heights", soto, "incident A72WYM: \"x\" & <y>");
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK_THAT(svg, Catch::Contains("<title>la/boyle-heights</title>"));
  CHECK_THAT(svg, Catch::Contains("<title>la</title>"));
  CHECK_THAT(svg, !Catch::Contains("la/courthouse"));  // neither the report's nor holding the point
  CHECK_THAT(svg, Catch::Contains("fill-rule=\"evenodd\""));  // la's hole stays a hole
  CHECK_THAT(svg, Catch::Contains("1st &amp; Soto &lt;script&gt;alert(1)&lt;/script&gt;"));
  CHECK_THAT(svg, Catch::Contains("incident A72WYM: &quot;x&quot; &amp; &lt;y&gt;"));
  CHECK_THAT(svg, !Catch::Contains("<script"));
  CHECK_THAT(svg, Catch::Contains("la/boyle-heights: inside, "));
  SECTION("a circle is drawn as a circle") {
    std::string c = area_svg(*l.set, "la/courthouse", Location{34.0522, -118.2437, ""}, "");
    CHECK_THAT(c, Catch::Contains("<title>la/courthouse</title></circle>"));
  }
  SECTION("500 vertices stay small") {
    auto grid = AreaSet::load(bench::area_grid_geojson(4, 500), "areas_file", nullptr,
                              "areas.circles", 200);
    REQUIRE(grid.set);
    std::string g = area_svg(*grid.set, "city/n0000",
                             Location{bench::kGridLat + 0.15, bench::kGridLon + 0.15, ""}, "");
    CHECK(g.size() < 30000);
  }
}

TEST_CASE("areas: the synthetic city of the benchmark loads and answers", "[areas]") {
  auto l =
      AreaSet::load(bench::area_grid_geojson(16, 60), "areas_file", nullptr, "areas.circles", 200);
  INFO(all_problems(l));
  REQUIRE(l.set);
  CHECK(l.set->areas().size() == 17);
  // The centre of the first cell is in its neighbourhood and the city.
  CHECK(names(*l.set, bench::kGridLat + 0.075, bench::kGridLon + 0.075) ==
        std::vector<std::string>{"city/n0000", "city"});
}

// Figures for BENCHMARKS.md (hidden: run by name). CPU time (std::clock),
// which a shared machine does not inflate as it does wall-clock time.
//   build/tocsin_tests "measure: areas*"
TEST_CASE("measure: areas of 1,000 × 500 vertices: load and point lookup", "[.measure]") {
  auto cpu_s = [](std::clock_t since) {
    return static_cast<double>(std::clock() - since) / CLOCKS_PER_SEC;
  };
  std::string text = bench::area_grid_geojson(1000, 500);
  std::clock_t c0 = std::clock();
  auto l = AreaSet::load(text, "areas_file", nullptr, "areas.circles", 200);
  double load_s = cpu_s(c0);
  REQUIRE(l.set);
  std::mt19937_64 rng(19);
  std::uniform_real_distribution<double> lat(bench::kGridLat, bench::kGridLat + bench::kGridSpan);
  std::uniform_real_distribution<double> lon(bench::kGridLon, bench::kGridLon + bench::kGridSpan);
  const int n = 100000;
  std::size_t held = 0;
  std::clock_t c1 = std::clock();
  for (int i = 0; i < n; ++i)
    held += decide_area(l.set.get(), "", Location{lat(rng), lon(rng), {}}, 200).point_areas.size();
  double per_us = cpu_s(c1) * 1e6 / n;
  WARN("load " << load_s << " s CPU (" << text.size() / 1e6 << " MB); decide_area " << per_us
               << " µs CPU per report; mean areas holding a point "
               << static_cast<double>(held) / n);
  CHECK(load_s < 1.0);
  CHECK(per_us < 20);
}
