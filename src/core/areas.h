// Areas as shapes: the polygons of a GeoJSON FeatureCollection and the
// circles of the config, validated as a whole, and the point lookup that
// tells which areas hold a report's location and how far it lies from their
// edges. Pure: text and JSON in, an immutable AreaSet (with its R-tree) or
// every problem with its JSON path out.
//
// Geometry, decided once for all of tocsin:
// - Polygons are read as RFC 7946 says: positions [lon, lat] in WGS 84, edges
//   straight in lon/lat. Containment is therefore exact in lon/lat
//   (Boost.Geometry, cartesian), and a point on an edge or a vertex is inside.
//   Either ring winding is accepted (GIS tools disagree); holes are inner rings.
// - Distances in metres: to a polygon's edge in a local equirectangular
//   projection centred on the point (under 0.5 % off within 100 km, which is
//   what tolerances and "how far from the edge" need); to a circle with the
//   great-circle distance of dedup (distance_m).
// - The antimeridian: as RFC 7946 §3.1.9 asks, a shape that crosses it is a
//   MultiPolygon cut at ±180. An edge spanning more than 180° of longitude is
//   refused (it is an uncut crossing, read the wrong way round the globe).
//   A point at longitude ±180 is looked up on both sides. Circles are measured
//   on the sphere and may cross it freely.
// - Tiny areas are kept as drawn: containment is exact however small the
//   shape. A shape narrower than the tolerance gets a check-config warning,
//   since a report naming it is then accepted anywhere within the tolerance.
//   Rings with no area (all points on a line) are refused.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_reader.h"
#include "core/report.h"

namespace tocsin {

struct LonLat {
  double lon = 0;
  double lat = 0;
  bool operator==(const LonLat&) const = default;
};
using Ring = std::vector<LonLat>;  // closed: the last position repeats the first

struct PolygonPart {
  Ring outer;
  std::vector<Ring> holes;
};

struct AreaShape {
  std::string name;                // area path, "la/boyle-heights"
  std::string defined_at;          // JSON path of its definition, "areas_file.features[3]"
  std::vector<PolygonPart> parts;  // a polygon or multipolygon; empty for a circle
  std::optional<Location> center;  // set for a circle
  double radius_m = 0;             // circle
  double area_m2 = 0;              // approximate surface, to rank equally deep areas
};

// Where a report's point lies relative to one area's shape.
struct ShapeRelation {
  std::string area;
  bool inside = false;  // the shape holds the point (an edge counts)
  double edge_m = 0;    // distance from the point to the shape's edge
};

class AreaSet {
 public:
  struct Load;
  // Reads the FeatureCollection `geojson` (empty: no file) and the array
  // `circles` (nullptr or null: none), then validates everything together:
  // closed rings, valid and not self-intersecting shapes (Boost.Geometry
  // is_valid), names unique and area paths, each shape inside the shape of
  // its nearest ancestor that has one within `tolerance_m`. `file_path` and
  // `circles_path` prefix the JSON paths of problems ("areas_file",
  // "areas.circles"); each problem names the feature's index and name.
  static Load load(std::string_view geojson, const std::string& file_path,
                   const nlohmann::json* circles, const std::string& circles_path,
                   double tolerance_m);

  AreaSet(const AreaSet&) = delete;
  AreaSet& operator=(const AreaSet&) = delete;
  ~AreaSet();

  const std::vector<AreaShape>& areas() const { return areas_; }
  bool empty() const { return areas_.empty(); }
  // The area called `name`, or nullptr.
  const AreaShape* find(std::string_view name) const;
  // The shape that speaks for area `name`: its own, else its nearest
  // ancestor's ("la/downtown" without a shape is checked against "la"), or nullptr.
  const AreaShape* shape_for(std::string_view name) const;
  // Indices of the areas whose shapes hold the point, most specific first:
  // deepest path, then smallest surface, then name. Through the R-tree.
  std::vector<std::size_t> holding(double lat, double lon) const;
  bool holds(const AreaShape& a, double lat, double lon) const;
  // Distance in metres from the point to the shape's edge (inside or out).
  double edge_distance_m(const AreaShape& a, double lat, double lon) const;
  ShapeRelation relation(const AreaShape& a, double lat, double lon) const;
  // Identifies the inputs (file text and circles), to tell a reload what changed.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  struct Index;
  AreaSet();
  std::vector<AreaShape> areas_;
  std::map<std::string, std::size_t, std::less<>> by_name_;  // name → index into areas_
  std::unique_ptr<Index> index_;
  std::string fingerprint_;
};

struct AreaSet::Load {
  std::shared_ptr<const AreaSet> set;  // null when there are problems
  std::vector<FieldProblem> problems;  // each names the feature's index and name
  std::vector<FieldProblem> warnings;  // tiny shapes
};

// What the areas make of a report: its area (named, or derived from the
// point), the areas whose shapes hold the point, or why it is refused.
struct AreaDecision {
  std::string area;                      // the report's area ("" when refused)
  bool derived = false;                  // the report left out `area`: the point chose it
  std::vector<std::string> point_areas;  // areas whose shapes hold the point, most specific first
  // The point against the report's area's shape (or the ancestor's that
  // speaks for it); without one, the most specific shape holding the point.
  std::optional<ShapeRelation> shape;
  std::optional<FieldProblem> problem;  // 422: the report is refused
};

// Decides a report's area. `areas` may be null (no shapes configured: the
// report's `area` is required, as before). With a location and no `area`,
// the most specific area holding the point is the report's area (422
// naming `location` when none holds it). With both, the point must lie
// inside the named area's shape or within `tolerance_m` of its edge (422
// naming `location` otherwise); an area without a shape of its own or of an
// ancestor is not checked.
AreaDecision decide_area(const AreaSet* areas, std::string_view named_area,
                         const std::optional<Location>& location, double tolerance_m);

// "12 m", "1.4 km", "301 km": a distance for people.
std::string format_distance(double metres);

}  // namespace tocsin
