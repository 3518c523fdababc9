// End-to-end: areas as shapes (issue 19). The report's point decides who
// hears (an area left out is derived, groups match through the shapes
// holding the point), a point far from its named area is refused before
// anything is stored or sent, and a coordinator's scope holds for derived
// areas too.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPdxSecret = "whsec_dGVzdC1jb29yZGluYXRvci1rZXktcGR4LTAwMDQ=";

json box(double lon0, double lat0, double lon1, double lat1) {
  return json::array({{lon0, lat0}, {lon1, lat0}, {lon1, lat1}, {lon0, lat1}, {lon0, lat0}});
}

json feature(const std::string& name, const json& ring) {
  return {{"type", "Feature"},
          {"properties", {{"name", name}}},
          {"geometry", {{"type", "Polygon"}, {"coordinates", json::array({ring})}}}};
}

// la, with Boyle Heights (holding 1st & Soto) and East LA inside it, and Portland.
std::string areas_geojson(double boyle_north = 34.05) {
  return json{{"type", "FeatureCollection"},
              {"features",
               {feature("la", box(-118.7, 33.7, -118.0, 34.35)),
                feature("la/boyle-heights", box(-118.23, 34.02, -118.19, boyle_north)),
                feature("la/east-la", box(-118.19, 34.01, -118.14, 34.06)),
                feature("pdx", box(-122.9, 45.4, -122.4, 45.7))}}}
      .dump(1);
}

// The fixture's deployment plus the areas file, a Portland coordinator and
// an SMS group for Portland.
json areas_config(const Gateways& gw) {
  json c = test_config(gw);
  c["areas_file"] = "areas.geojson";
  c["areas"] = {{"tolerance_m", 200},
                {"circles",
                 {{{"name", "la/courthouse"},
                   {"center", {{"lat", 34.0522}, {"lon", -118.2437}}},
                   {"radius_m", 800}}}}};
  c["coordinators"].push_back(
      {{"name", "pdx-hotline"}, {"secret", kPdxSecret}, {"areas", {"pdx"}}});
  c["groups"].push_back(
      {{"name", "pdx-responders"}, {"match", {{"areas", {"pdx"}}}}, {"channels", {"sms"}}});
  return c;
}

void write_areas(const Daemon& d, const std::string& text) {
  std::ofstream(d.path("areas.geojson")) << text;
}

json at(double lat, double lon) {
  return {{"lat", lat}, {"lon", lon}, {"description", "corner"}};
}

// One SMS subscriber in eastside (phone_for(0)) and one in pdx-responders (phone_for(1)).
void add_two(const Daemon& d) {
  add_subscribers(
      d.url(), {{{"phone", phone_for(0)}, {"groups", {"eastside"}}, {"channels", {"sms"}}},
                {{"phone", phone_for(1)}, {"groups", {"pdx-responders"}}, {"channels", {"sms"}}}});
}

int64_t reports_stored(const Daemon& d) {
  return std::stoll(query_db(d, "SELECT count(*) FROM reports")[0]);
}

// The deployment most tests use: the areas file written, the daemon
// started, the two subscribers added.
struct Deployment {
  Gateways gw;
  Daemon d{areas_config(gw)};
  Deployment() {
    write_areas(d, areas_geojson());
    d.start();
    add_two(d);
  }
};

// A report body with a location and no area.
std::string only_location(double lat, double lon) {
  return report_body({{"area", nullptr}, {"location", at(lat, lon)}}).dump();
}

}  // namespace

TEST_CASE("areas: a report with only a location reaches the groups of the area that holds it",
          "[e2e][areas]") {
  Deployment dep;
  auto& gw = dep.gw;
  auto& d = dep.d;

  auto r = post_report(d.url(), only_location(34.0339, -118.2107));
  REQUIRE(r.status == 202);
  const std::string code = r.json()["incident_id"];
  REQUIRE(gw.twilio.wait_for(1, 10s));
  auto msgs = gw.twilio.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].to == phone_for(0));

  auto inc = admin("GET", d.url() + "/v1/incidents/" + code).json();
  CHECK(inc["area"] == "la/boyle-heights");
  CHECK(inc["point_areas"] == json({"la/boyle-heights", "la"}));
  CHECK(inc["shape"]["area"] == "la/boyle-heights");
  CHECK(inc["shape"]["inside"] == true);
  CHECK(inc["shape"]["edge_m"].get<double>() == Approx(1546).margin(30));  // 0.0139° to 34.02

  auto svg = admin("GET", d.url() + "/v1/incidents/" + code + "/map.svg");
  CHECK(svg.status == 200);
  CHECK(svg.header("content-type") == "image/svg+xml; charset=utf-8");
  CHECK(svg.header("content-security-policy") == "default-src 'none'");  // a picture, no document
  CHECK(svg.header("x-content-type-options") == "nosniff");
  CHECK_THAT(svg.body,
             Catch::StartsWith("<svg ") && Catch::Contains("<title>la/boyle-heights</title>"));
  CHECK(request("GET", d.url() + "/v1/incidents/" + code + "/map.svg").status == 401);

  SECTION("a report naming only la reaches eastside when its point is in Boyle Heights") {
    // 1.2 km north of the first: a new incident, named with the wide area.
    auto wide = post_report(
        d.url(), report_body({{"area", "la"}, {"location", at(34.0459, -118.2107)}}).dump());
    REQUIRE(wide.status == 202);
    CHECK(wide.json()["outcome"] == "new_incident");
    REQUIRE(gw.twilio.wait_for(2, 10s));
    CHECK(count_by_recipient(gw.twilio.messages()) ==
          std::map<std::string, int>{{phone_for(0), 2}});
  }
  SECTION("the dry run says which shape held the point and draws it") {
    std::ofstream(d.path("only-location.json")) << only_location(34.0339, -118.2107);
    auto out =
        run_cli({"route", "--config", "config.json", "only-location.json", "--svg", "map.svg"}, 10s,
                d.dir());
    INFO(out.out << out.err);
    CHECK(out.exit_code == 0);
    CHECK_THAT(out.out, Catch::Contains(
                            "area: la/boyle-heights, the most specific area holding the location"));
    CHECK_THAT(
        out.out,
        Catch::Contains("shape: the location is inside la/boyle-heights, 1.5 km from its edge"));
    CHECK_THAT(out.out, Catch::Contains("eastside"));
    std::ifstream in(d.path("map.svg"));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    CHECK_THAT(text, Catch::StartsWith("<svg ") && Catch::Contains("la/boyle-heights"));
  }
}

TEST_CASE("areas: a point 300 km from its named area is refused and nothing is sent",
          "[e2e][areas]") {
  Deployment dep;
  auto& gw = dep.gw;
  auto& d = dep.d;

  // The longitude's digits slipped: 34.0339, -114.95 is ~300 km east of Boyle Heights.
  auto r = post_report(d.url(), report_body({{"location", at(34.0339, -114.95)}}).dump());
  REQUIRE(r.status == 422);
  CHECK(r.json()["errors"][0]["field"] == "location");
  CHECK_THAT(r.json()["detail"].get<std::string>(),
             Catch::Contains("outside area la/boyle-heights"));
  CHECK(reports_stored(d) == 0);

  // Another report afterwards goes out; once its one message is in, the
  // refused one has had every chance to have been sent too.
  REQUIRE(post_report(d.url(), report_body().dump()).status == 202);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  REQUIRE(settled(d));
  CHECK(gw.twilio.message_count() == 1);
  CHECK(gw.sendgrid.message_count() == 0);
  CHECK(reports_stored(d) == 1);

  SECTION("the dry run refuses it the same way") {
    std::ofstream(d.path("far.json")) << report_body({{"location", at(34.0339, -114.95)}}).dump();
    auto out = run_cli({"route", "--config", "config.json", "far.json"}, 10s, d.dir());
    CHECK(out.exit_code == 2);
    CHECK_THAT(out.out,
               Catch::Contains("far.json: location: lies 299 km outside area la/boyle-heights"));
  }
}

TEST_CASE("areas: a coordinator of pdx cannot report a point in la by leaving out area",
          "[e2e][areas]") {
  Deployment dep;
  auto& gw = dep.gw;
  auto& d = dep.d;

  auto derived = post_report(d.url(), only_location(34.0339, -118.2107), kPdxSecret);
  REQUIRE(derived.status == 403);
  CHECK(derived.json()["field"] == "location");
  // Naming pdx with the same point: the point is far outside pdx's shape.
  auto named = post_report(
      d.url(), report_body({{"area", "pdx"}, {"location", at(34.0339, -118.2107)}}).dump(),
      kPdxSecret);
  CHECK(named.status == 422);
  CHECK(reports_stored(d) == 0);

  // A Portland report by the Portland hotline goes to Portland only.
  auto ok = post_report(d.url(), only_location(45.52, -122.68), kPdxSecret);
  REQUIRE(ok.status == 202);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  REQUIRE(settled(d));
  CHECK(count_by_recipient(gw.twilio.messages()) == std::map<std::string, int>{{phone_for(1), 1}});
}

TEST_CASE("areas: a point's areas route only within the coordinator's scope",
          "[e2e][areas]") {
  // Portland without a shape: a report naming pdx is not measured against
  // one, so its point may lie anywhere, here in Boyle Heights. The areas
  // holding that point (la/boyle-heights, la) are outside the Portland
  // hotline's scope: its alert reaches Portland's group, never eastside.
  Gateways gw;
  Daemon d{areas_config(gw)};
  json areas = json::parse(areas_geojson());
  auto& features = areas["features"];
  features.erase(std::remove_if(features.begin(), features.end(),
                                [](const json& f) { return f["properties"]["name"] == "pdx"; }),
                 features.end());
  write_areas(d, areas.dump());
  d.start();
  add_two(d);

  auto r = post_report(
      d.url(), report_body({{"area", "pdx"}, {"location", at(34.0339, -118.2107)}}).dump(),
      kPdxSecret);
  REQUIRE(r.status == 202);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  REQUIRE(settled(d));
  CHECK(count_by_recipient(gw.twilio.messages()) == std::map<std::string, int>{{phone_for(1), 1}});
  CHECK(gw.sendgrid.message_count() == 0);

  // A point in Boyle Heights from the LA hotline reaches eastside through
  // the shape (1.2 km north of the first: a new incident, not a merge).
  REQUIRE(post_report(d.url(), only_location(34.0459, -118.2107)).status == 202);
  REQUIRE(gw.twilio.wait_for(2, 10s));
  REQUIRE(settled(d));
  CHECK(count_by_recipient(gw.twilio.messages()) ==
        std::map<std::string, int>{{phone_for(0), 1}, {phone_for(1), 1}});
}

TEST_CASE("areas: a reload picks up new shapes", "[e2e][areas][reload]") {
  Gateways gw;
  Daemon d(areas_config(gw));
  write_areas(d, areas_geojson(/*boyle_north=*/34.03));  // 1st & Soto ~430 m north of it
  d.start();
  auto body = report_body().dump();
  REQUIRE(post_report(d.url(), body).status == 422);

  write_areas(d, "{\"type\": \"FeatureCollection\", \"features\": [{}]}");
  auto refused = admin("POST", d.url() + "/-/reload");
  CHECK(refused.status == 422);
  CHECK(refused.json()["errors"][0]["field"] == "areas_file.features[0]");
  REQUIRE(post_report(d.url(), body).status == 422);  // the running shapes are kept

  write_areas(d, areas_geojson());
  auto reloaded = admin("POST", d.url() + "/-/reload");
  REQUIRE(reloaded.status == 200);
  CHECK(reloaded.json()["changed"] == json({"areas"}));
  CHECK(post_report(d.url(), body).status == 202);
}

TEST_CASE("areas: without shapes a report that leaves out area is refused as before",
          "[e2e][areas]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  auto r = post_report(d.url(), report_body({{"area", nullptr}}).dump());
  REQUIRE(r.status == 422);
  CHECK(r.json()["errors"][0]["field"] == "area");
  CHECK(r.json()["errors"][0]["detail"] == "is required");
  CHECK(reports_stored(d) == 0);
  // And a point anywhere is taken as before, by name alone.
  CHECK(post_report(d.url(), report_body({{"location", at(34.0339, -114.95)}}).dump()).status ==
        202);
}

TEST_CASE("areas: check-config loads the shipped example shapes and names each broken feature",
          "[e2e][areas][cli]") {
  Gateways gw;
  Daemon d{areas_config(gw)};
  // The example the README points operators to (its names are la's).
  std::filesystem::copy_file(std::filesystem::path(TOCSIN_SOURCE_DIR) / "config/example-areas.geojson",
                             d.path("areas.geojson"));
  auto ok = run_cli({"check-config", "--config", "config.json"}, 10s, d.dir());
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Matches("(.|\n)*config\\.json: ok \\(.* [0-9]+ area shapes\\)\n"));

  // A bow-tie and a shape under the tolerance: a problem (exit 2) and a
  // warning, each naming its feature.
  json bowtie = {{"type", "Feature"},
                 {"properties", {{"name", "la/bowtie"}}},
                 {"geometry",
                  {{"type", "Polygon"},
                   {"coordinates",
                    {{{-118.3, 34.0}, {-118.2, 34.1}, {-118.2, 34.0}, {-118.3, 34.1}, {-118.3, 34.0}}}}}}};
  json broken = {{"type", "FeatureCollection"},
                 {"features",
                  {feature("la", box(-118.7, 33.7, -118.0, 34.35)), bowtie,
                   feature("la/corner", box(-118.3, 34.0, -118.2999, 34.0001))}}};
  write_areas(d, broken.dump());
  auto bad = run_cli({"check-config", "--config", "config.json"}, 10s, d.dir());
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.out, Catch::Contains("config.json: areas_file.features[1].geometry: feature 1 "
                                      "\"la/bowtie\": crosses itself"));
  CHECK_THAT(bad.out, Catch::Contains("config.json: areas_file.features[2].geometry: warning: "
                                      "feature 2 \"la/corner\": is 9 m across, under "
                                      "areas.tolerance_m (200 m)"));
  CHECK(bad.out.find(": ok (") == std::string::npos);

  // Once every shape is valid, a child reaching far outside its parent.
  broken["features"] = {feature("la", box(-118.7, 33.7, -118.0, 34.35)),
                        feature("la/north", box(-118.3, 34.3, -118.2, 34.5))};
  write_areas(d, broken.dump());
  bad = run_cli({"check-config", "--config", "config.json"}, 10s, d.dir());
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.out, Catch::Contains("config.json: areas_file.features[1]: \"la/north\": reaches "));
  CHECK_THAT(bad.out, Catch::Contains("outside its parent \"la\" (areas_file.features[0])"));
  CHECK(bad.out.find(": ok (") == std::string::npos);
}
