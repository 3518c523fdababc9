// Reading, validating and indexing area shapes, and the point lookup (see
// areas.h for the geometry decisions).
#include "core/areas.h"

// GCC 12 sees a maybe-uninitialized box inside Boost.Geometry 1.74's
// envelope (reached from covered_by of two multipolygons); Boost assigns it
// before use. Silenced here only, for Boost's code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <boost/geometry.hpp>
#include <boost/geometry/geometries/box.hpp>
#include <boost/geometry/geometries/multi_polygon.hpp>
#include <boost/geometry/geometries/point_xy.hpp>
#include <boost/geometry/geometries/polygon.hpp>
#include <boost/geometry/index/rtree.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>

#include "core/dedup.h"
#include "core/signature.h"

namespace tocsin {

namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;
using nlohmann::json;

namespace {

using Point = bg::model::d2::point_xy<double>;  // x = lon, y = lat
using Polygon = bg::model::polygon<Point>;
using MultiPolygon = bg::model::multi_polygon<Polygon>;
using Box = bg::model::box<Point>;
using Entry = std::pair<Box, std::size_t>;  // a polygon part's (or circle's) box, its area index

constexpr double kEarthRadiusM = 6371008.8;
constexpr double kMetresPerDegree = kEarthRadiusM * std::numbers::pi / 180;

double wrap_lon(double d) {
  while (d > 180) d -= 360;
  while (d < -180) d += 360;
  return d;
}

// Distance in metres from (lat0, lon0) to the nearest edge of `rings`, in an
// equirectangular projection centred on the point.
double rings_distance_m(const std::vector<const Ring*>& rings, double lat0, double lon0) {
  const double kx = kMetresPerDegree * std::cos(lat0 * std::numbers::pi / 180);
  const double ky = kMetresPerDegree;
  double best = INFINITY;
  for (const Ring* ring : rings) {
    for (std::size_t i = 1; i < ring->size(); ++i) {
      const LonLat& a = (*ring)[i - 1];
      const LonLat& b = (*ring)[i];
      double ax = wrap_lon(a.lon - lon0) * kx, ay = (a.lat - lat0) * ky;
      double bx = wrap_lon(b.lon - lon0) * kx, by = (b.lat - lat0) * ky;
      double dx = bx - ax, dy = by - ay;
      double len2 = dx * dx + dy * dy;
      double t = len2 > 0 ? std::clamp(-(ax * dx + ay * dy) / len2, 0.0, 1.0) : 0.0;
      double px = ax + t * dx, py = ay + t * dy;
      best = std::min(best, px * px + py * py);
    }
  }
  return std::sqrt(best);
}

std::vector<const Ring*> rings_of(const AreaShape& a) {
  std::vector<const Ring*> out;
  for (const auto& p : a.parts) {
    out.push_back(&p.outer);
    for (const auto& h : p.holes) out.push_back(&h);
  }
  return out;
}

std::string area_label(const std::string& name) {
  return name.empty() ? "(unnamed)" : "\"" + name + "\"";
}

std::size_t depth(std::string_view name) {
  return std::count(name.begin(), name.end(), '/');
}

const char* validity_words(bg::validity_failure_type f) {
  switch (f) {
    case bg::failure_few_points:
      return "has too few distinct points";
    case bg::failure_wrong_topological_dimension:
      return "has no area (its points lie on a line)";
    case bg::failure_spikes:
      return "has a spike (an edge that doubles back)";
    case bg::failure_duplicate_points:
      return "repeats a point";
    case bg::failure_not_closed:
      return "has a ring that is not closed";
    case bg::failure_self_intersections:
      return "crosses itself (a self-intersection, or overlapping rings or parts)";
    // Rings are oriented first (either winding is fine): one that still
    // cannot be oriented crosses itself.
    case bg::failure_wrong_orientation:
      return "crosses itself (a ring with no consistent winding)";
    case bg::failure_interior_rings_outside:
      return "has a hole outside its polygon";
    case bg::failure_nested_interior_rings:
      return "has a hole inside another hole";
    case bg::failure_disconnected_interior:
      return "is cut in pieces by its holes";
    case bg::failure_intersecting_interiors:
      return "has parts that overlap";
    case bg::failure_wrong_corner_order:
      return "has a box with corners in the wrong order";
    case bg::failure_invalid_coordinate:
      return "has a coordinate that is not a number";
    default:
      return "is not a valid shape";
  }
}

// Reads one GeoJSON ring ([[lon, lat], ...]) at `path`; problems go to `problems`.
std::optional<Ring> read_ring(const json& j, const std::string& path, const std::string& who,
                              const char* what, std::vector<FieldProblem>& problems) {
  auto bad = [&](std::string p, std::string m) {
    problems.push_back({std::move(p), who + ": " + m});
    return std::nullopt;
  };
  if (!j.is_array())
    return bad(path, std::string(what) + " must be an array of [lon, lat] positions");
  Ring ring;
  ring.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    const json& pos = j[i];
    if (!pos.is_array() || pos.size() < 2 || pos.size() > 3 || !pos[0].is_number() ||
        !pos[1].is_number())
      return bad(index_path(path, i), "must be a position [lon, lat]");
    double lon = pos[0].get<double>(), lat = pos[1].get<double>();
    if (!std::isfinite(lon) || lon < -180 || lon > 180)
      return bad(index_path(path, i),
                 "longitude " + json(lon).dump() + " is outside -180..180 (GeoJSON is [lon, lat])");
    if (!std::isfinite(lat) || lat < -90 || lat > 90)
      return bad(index_path(path, i),
                 "latitude " + json(lat).dump() +
                     " is outside -90..90 (GeoJSON is [lon, lat], not [lat, lon])");
    ring.push_back({lon, lat});
  }
  if (ring.size() < 4)
    return bad(path,
               std::string(what) + " needs at least 4 positions (3 corners and the first again)");
  if (ring.front() != ring.back())
    return bad(path, std::string(what) + " is not closed: its last position must repeat the first");
  for (std::size_t i = 1; i < ring.size(); ++i)
    if (std::abs(ring[i].lon - ring[i - 1].lon) > 180)
      return bad(index_path(path, i),
                 "an edge crosses the antimeridian: cut the shape at ±180 into a MultiPolygon "
                 "(RFC 7946 §3.1.9)");
  return ring;
}

std::optional<PolygonPart> read_polygon(const json& j, const std::string& path,
                                        const std::string& who,
                                        std::vector<FieldProblem>& problems) {
  if (!j.is_array() || j.empty()) {
    problems.push_back({path, who + ": a polygon must be an array of rings (outer, then holes)"});
    return std::nullopt;
  }
  PolygonPart part;
  bool good = true;
  for (std::size_t r = 0; r < j.size(); ++r) {
    auto ring =
        read_ring(j[r], index_path(path, r), who, r == 0 ? "the outer ring" : "a hole", problems);
    if (!ring) {
      good = false;
      continue;
    }
    if (r == 0)
      part.outer = std::move(*ring);
    else
      part.holes.push_back(std::move(*ring));
  }
  if (!good) return std::nullopt;
  return part;
}

Polygon to_boost(const PolygonPart& part) {
  Polygon p;
  for (const auto& q : part.outer) p.outer().emplace_back(q.lon, q.lat);
  for (const auto& h : part.holes) {
    p.inners().emplace_back();
    for (const auto& q : h) p.inners().back().emplace_back(q.lon, q.lat);
  }
  bg::correct(p);  // either winding: orient as Boost.Geometry expects
  return p;
}

// A polygon's bounding box (by hand: Boost's envelope of polygons trips
// GCC 12's -Wmaybe-uninitialized inside Boost).
Box bounds(const Polygon& p) {
  double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
  for (const auto& q : p.outer()) {  // holes lie inside the outer ring
    x0 = std::min(x0, q.x()), x1 = std::max(x1, q.x());
    y0 = std::min(y0, q.y()), y1 = std::max(y1, q.y());
  }
  return Box(Point(x0, y0), Point(x1, y1));
}

Box bounds(const MultiPolygon& mp) {
  Box out = bounds(mp.front());
  for (const auto& p : mp) {
    Box b = bounds(p);
    out = Box(Point(std::min(out.min_corner().x(), b.min_corner().x()),
                    std::min(out.min_corner().y(), b.min_corner().y())),
              Point(std::max(out.max_corner().x(), b.max_corner().x()),
                    std::max(out.max_corner().y(), b.max_corner().y())));
  }
  return out;
}

double surface_m2(const MultiPolygon& mp) {
  double total = 0;
  for (const auto& p : mp) {
    Box b = bounds(p);
    double mid = (b.min_corner().y() + b.max_corner().y()) / 2;
    total += std::abs(bg::area(p)) * kMetresPerDegree * kMetresPerDegree *
             std::cos(mid * std::numbers::pi / 180);
  }
  return total;
}

// The smaller of a shape's width and height in metres (for the tiny-area warning).
double narrowest_m(const MultiPolygon& mp) {
  Box b = bounds(mp);
  double mid = (b.min_corner().y() + b.max_corner().y()) / 2;
  double w = (b.max_corner().x() - b.min_corner().x()) * kMetresPerDegree *
             std::cos(mid * std::numbers::pi / 180);
  double h = (b.max_corner().y() - b.min_corner().y()) * kMetresPerDegree;
  return std::min(w, h);
}

}  // namespace

struct AreaSet::Index {
  std::vector<MultiPolygon> shapes;  // per area; empty for a circle
  bgi::rtree<Entry, bgi::rstar<16>> tree;
};

AreaSet::AreaSet() : index_(std::make_unique<Index>()) {}
AreaSet::~AreaSet() = default;

const AreaShape* AreaSet::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &areas_[it->second];
}

const AreaShape* AreaSet::shape_for(std::string_view name) const {
  while (!name.empty()) {
    if (const AreaShape* a = find(name)) return a;
    auto slash = name.rfind('/');
    if (slash == std::string_view::npos) break;
    name = name.substr(0, slash);
  }
  return nullptr;
}

bool AreaSet::holds(const AreaShape& a, double lat, double lon) const {
  if (a.center) return distance_m(*a.center, Location{lat, lon, {}}) <= a.radius_m;
  const MultiPolygon& mp = index_->shapes[static_cast<std::size_t>(&a - areas_.data())];
  Point p(lon, lat);
  if (bg::covered_by(p, mp)) return true;
  return std::abs(lon) == 180 && bg::covered_by(Point(-lon, lat), mp);
}

double AreaSet::edge_distance_m(const AreaShape& a, double lat, double lon) const {
  if (a.center) return std::abs(a.radius_m - distance_m(*a.center, Location{lat, lon, {}}));
  return rings_distance_m(rings_of(a), lat, lon);
}

ShapeRelation AreaSet::relation(const AreaShape& a, double lat, double lon) const {
  return {a.name, holds(a, lat, lon), edge_distance_m(a, lat, lon)};
}

std::vector<std::size_t> AreaSet::holding(double lat, double lon) const {
  std::vector<std::size_t> out;
  auto visit = [&](double x) {
    Point p(x, lat);
    for (auto it = index_->tree.qbegin(bgi::intersects(p)); it != index_->tree.qend(); ++it) {
      std::size_t i = it->second;
      if (std::find(out.begin(), out.end(), i) != out.end()) continue;
      const AreaShape& a = areas_[i];
      bool in = a.center ? distance_m(*a.center, Location{lat, x, {}}) <= a.radius_m
                         : bg::covered_by(p, index_->shapes[i]);
      if (in) out.push_back(i);
    }
  };
  visit(lon);
  if (std::abs(lon) == 180) visit(-lon);
  std::sort(out.begin(), out.end(), [&](std::size_t x, std::size_t y) {
    const AreaShape &a = areas_[x], &b = areas_[y];
    if (depth(a.name) != depth(b.name)) return depth(a.name) > depth(b.name);
    if (a.area_m2 != b.area_m2) return a.area_m2 < b.area_m2;
    return a.name < b.name;
  });
  return out;
}

AreaSet::Load AreaSet::load(std::string_view geojson, const std::string& file_path,
                            const json* circles, const std::string& circles_path,
                            double tolerance_m) {
  Load out;
  auto& problems = out.problems;
  std::shared_ptr<AreaSet> set(new AreaSet());
  auto& areas = set->areas_;
  auto& shapes = set->index_->shapes;
  std::vector<std::pair<std::string, std::string>> defined;  // (name, JSON path) of each definition

  if (!geojson.empty()) {
    // A repeated key (a second "name" or "coordinates") is refused, not
    // read as its last value.
    auto parsed = parse_json_strict(geojson);
    auto* bad = std::get_if<JsonSyntaxError>(&parsed);
    json doc = bad ? json() : std::move(std::get<json>(parsed));
    if (bad && !bad->path.empty()) {
      problems.push_back({join_path(file_path, bad->path), "is given twice: " + bad->detail});
    } else if (!doc.is_object()) {
      problems.push_back({file_path, "is not a GeoJSON object"});
    } else if (doc.value("type", json()) != "FeatureCollection" || !doc.contains("features") ||
               !doc["features"].is_array()) {
      problems.push_back({file_path, "must be a GeoJSON FeatureCollection with a features array"});
    } else {
      const json& features = doc["features"];
      std::string fpath = join_path(file_path, "features");
      for (std::size_t i = 0; i < features.size(); ++i) {
        const json& f = features[i];
        std::string at = index_path(fpath, i);
        if (!f.is_object() || f.value("type", json()) != "Feature") {
          problems.push_back({at, "must be a GeoJSON Feature"});
          continue;
        }
        std::string name;
        const json* props = f.contains("properties") ? &f["properties"] : nullptr;
        if (!props || !props->is_object() || !props->contains("name") ||
            !(*props)["name"].is_string()) {
          problems.push_back({join_path(at, "properties.name"),
                              "is required: the area's path, e.g. \"la/boyle-heights\""});
        } else {
          name = (*props)["name"].get<std::string>();
          if (!valid_area(name))
            problems.push_back({join_path(at, "properties.name"),
                                area_label(name) + " is not an area path (lower-case segments "
                                                   "joined by '/', e.g. \"la/boyle-heights\")"});
        }
        if (!name.empty()) defined.emplace_back(name, at);
        std::string who = "feature " + std::to_string(i) + " " + area_label(name);
        std::string gpath = join_path(at, "geometry");
        const json* g = f.contains("geometry") ? &f["geometry"] : nullptr;
        if (!g || !g->is_object() || !g->contains("coordinates")) {
          problems.push_back({gpath, who + ": must be a Polygon or MultiPolygon geometry"});
          continue;
        }
        std::string type = g->value("type", "");
        std::string cpath = join_path(gpath, "coordinates");
        const json& coords = (*g)["coordinates"];
        AreaShape area{name, at, {}, std::nullopt, 0, 0};
        bool good = true;
        if (type == "Polygon") {
          auto part = read_polygon(coords, cpath, who, problems);
          if (part)
            area.parts.push_back(std::move(*part));
          else
            good = false;
        } else if (type == "MultiPolygon") {
          if (!coords.is_array() || coords.empty()) {
            problems.push_back({cpath, who + ": a MultiPolygon must be an array of polygons"});
            good = false;
          } else {
            for (std::size_t k = 0; k < coords.size(); ++k) {
              auto part = read_polygon(coords[k], index_path(cpath, k), who, problems);
              if (part)
                area.parts.push_back(std::move(*part));
              else
                good = false;
            }
          }
        } else {
          problems.push_back(
              {join_path(gpath, "type"), who + ": must be Polygon or MultiPolygon, not " +
                                             (type.empty() ? "nothing" : type)});
          good = false;
        }
        if (!good) continue;
        MultiPolygon mp;
        for (const auto& part : area.parts) mp.push_back(to_boost(part));
        bg::validity_failure_type failure;
        if (!bg::is_valid(mp, failure)) {
          problems.push_back({gpath, who + ": " + validity_words(failure)});
          continue;
        }
        if (bg::area(mp) == 0) {
          problems.push_back({gpath, who + ": has no area (its points lie on a line)"});
          continue;
        }
        area.area_m2 = surface_m2(mp);
        if (double w = narrowest_m(mp); w < tolerance_m) {
          char buf[160];
          std::snprintf(buf, sizeof buf,
                        ": is %s across, under areas.tolerance_m (%s): a report naming it is "
                        "accepted anywhere within that distance of it",
                        format_distance(w).c_str(), format_distance(tolerance_m).c_str());
          out.warnings.push_back({gpath, who + buf});
        }
        areas.push_back(std::move(area));
        shapes.push_back(std::move(mp));
      }
    }
  }

  if (circles && !circles->is_null()) {
    if (!circles->is_array()) {
      problems.push_back(
          {circles_path, "must be an array of {name, center: {lat, lon}, radius_m}"});
    } else {
      for (std::size_t i = 0; i < circles->size(); ++i) {
        JsonReader r((*circles)[i], index_path(circles_path, i), problems);
        if (!r.ok()) {
          r.problem("", "must be an object {name, center: {lat, lon}, radius_m}");
          continue;
        }
        r.reject_unknown({"name", "center", "radius_m"});
        auto name = r.string("name", Need::kRequired, 200);
        if (name && !valid_area(*name)) {
          r.problem("name", area_label(*name) + " is not an area path");
          name.reset();
        }
        if (name) defined.emplace_back(*name, r.path());
        JsonReader c = r.object("center", Need::kRequired);
        std::optional<double> lat, lon;
        if (c.ok()) {
          c.reject_unknown({"lat", "lon"});
          lat = c.number("lat", Need::kRequired, -90, 90);
          lon = c.number("lon", Need::kRequired, -180, 180);
        }
        auto radius = r.number("radius_m", Need::kRequired, 1, 1'000'000);
        if (!name || !lat || !lon || !radius) continue;
        AreaShape area{*name,   r.path(),
                       {},      Location{*lat, *lon, {}},
                       *radius, std::numbers::pi * *radius * *radius};
        if (2 * *radius < tolerance_m)
          out.warnings.push_back(
              {r.child_path("radius_m"),
               "circle " + std::to_string(i) + " " + area_label(*name) + ": is " +
                   format_distance(2 * *radius) + " across, under areas.tolerance_m (" +
                   format_distance(tolerance_m) +
                   "): a report naming it is accepted anywhere within that distance of it"});
        areas.push_back(std::move(area));
        shapes.emplace_back();
      }
    }
  }

  // Names unique, among every definition (a broken one too: fixing it must
  // not reveal a second problem).
  std::map<std::string, std::string, std::less<>> first_at;
  for (const auto& [name, at] : defined)
    if (auto [it, fresh] = first_at.emplace(name, at); !fresh)
      problems.push_back({at, area_label(name) + ": the name is already used by " + it->second});
  if (!problems.empty()) return out;
  auto& by_name = set->by_name_;
  for (std::size_t i = 0; i < areas.size(); ++i) by_name.emplace(areas[i].name, i);

  // Each shape inside its nearest ancestor's, within the tolerance.
  for (std::size_t i = 0; i < areas.size(); ++i) {
    const AreaShape& child = areas[i];
    std::string_view parent_name = child.name;
    const AreaShape* parent = nullptr;
    while (!parent) {
      auto slash = parent_name.rfind('/');
      if (slash == std::string_view::npos) break;
      parent_name = parent_name.substr(0, slash);
      if (auto it = by_name.find(parent_name); it != by_name.end()) parent = &areas[it->second];
    }
    if (!parent) continue;
    const std::size_t pi = static_cast<std::size_t>(parent - areas.data());
    double overhang = 0;  // how far the child reaches outside the parent, metres
    if (child.center) {
      if (parent->center) {
        overhang = distance_m(*child.center, *parent->center) + child.radius_m - parent->radius_m;
      } else {
        double d = rings_distance_m(rings_of(*parent), child.center->lat, child.center->lon);
        bool in = bg::covered_by(Point(child.center->lon, child.center->lat), shapes[pi]);
        overhang = in ? child.radius_m - d : child.radius_m + d;
      }
    } else if (parent->center) {
      for (const Ring* ring : rings_of(child))
        for (const auto& q : *ring)
          overhang = std::max(
              overhang, distance_m(*parent->center, Location{q.lat, q.lon, {}}) - parent->radius_m);
    } else if (!bg::covered_by(shapes[i], shapes[pi])) {
      // Only the vertices outside are measured: a concave parent's edge
      // could still cut between two of them, by less than their spacing.
      auto parent_rings = rings_of(*parent);
      for (const auto& part : shapes[i])
        for (const auto& q : part.outer())
          if (!bg::covered_by(q, shapes[pi]))
            overhang = std::max(overhang, rings_distance_m(parent_rings, q.y(), q.x()));
    }
    if (overhang > tolerance_m)
      problems.push_back(
          {child.defined_at, area_label(child.name) + ": reaches " + format_distance(overhang) +
                                 " outside its parent " + area_label(parent->name) + " (" +
                                 parent->defined_at + "), more than areas.tolerance_m (" +
                                 format_distance(tolerance_m) + ")"});
  }
  if (!problems.empty()) return out;

  // The R-tree, packed in one go (bulk loading is the fast way to build it).
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < areas.size(); ++i) {
    if (areas[i].center) {
      GeoBox b = bounding_box(*areas[i].center, areas[i].radius_m);
      entries.emplace_back(Box(Point(b.lon_min, b.lat_min), Point(b.lon_max, b.lat_max)), i);
    } else {
      for (const auto& part : shapes[i]) entries.emplace_back(bounds(part), i);
    }
  }
  set->index_->tree = bgi::rtree<Entry, bgi::rstar<16>>(entries.begin(), entries.end());
  set->fingerprint_ = hmac_sha256("tocsin areas", geojson) +
                      hmac_sha256("tocsin circles", circles ? circles->dump() : "");
  out.set = std::move(set);
  return out;
}

AreaDecision decide_area(const AreaSet* areas, std::string_view named,
                         const std::optional<Location>& location, double tolerance_m) {
  AreaDecision d;
  if (!areas || areas->empty() || !location) {
    if (named.empty())
      d.problem = FieldProblem{"area", areas && !areas->empty()
                                           ? "is required (or a location inside a configured area)"
                                           : "is required"};
    d.area = std::string(named);
    return d;
  }
  const double lat = location->lat, lon = location->lon;
  const auto held = areas->holding(lat, lon);
  for (std::size_t i : held) d.point_areas.push_back(areas->areas()[i].name);
  if (named.empty()) {
    if (held.empty()) {
      d.problem = FieldProblem{"location", "lies in no configured area: give the report's area"};
      return d;
    }
    d.area = d.point_areas.front();
    d.derived = true;
    const AreaShape& a = areas->areas()[held.front()];
    d.shape = ShapeRelation{a.name, true, areas->edge_distance_m(a, lat, lon)};
    return d;
  }
  d.area = std::string(named);
  if (const AreaShape* s = areas->shape_for(named)) {
    // `held` is exact: whether it lists the shape is whether the shape holds the point.
    const auto index = static_cast<std::size_t>(s - areas->areas().data());
    const bool inside = std::find(held.begin(), held.end(), index) != held.end();
    d.shape = ShapeRelation{s->name, inside, areas->edge_distance_m(*s, lat, lon)};
    if (!d.shape->inside && d.shape->edge_m > tolerance_m) {
      d.problem = FieldProblem{
          "location",
          "lies " + format_distance(d.shape->edge_m) + " outside " +
              (s->name == named ? "area " : "area " + std::string(named) + "'s parent ") + s->name +
              " (areas.tolerance_m is " + format_distance(tolerance_m) +
              "): check the coordinates and the area"};
      d.area.clear();
    }
  } else if (!held.empty()) {
    const AreaShape& a = areas->areas()[held.front()];
    d.shape = ShapeRelation{a.name, true, areas->edge_distance_m(a, lat, lon)};
  }
  return d;
}

std::string format_distance(double m) {
  char buf[32];
  if (m < 1000)
    std::snprintf(buf, sizeof buf, "%.0f m", m);
  else if (m < 10000)
    std::snprintf(buf, sizeof buf, "%.1f km", m / 1000);
  else
    std::snprintf(buf, sizeof buf, "%.0f km", m / 1000);
  return buf;
}

}  // namespace tocsin
