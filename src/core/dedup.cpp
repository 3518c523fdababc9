#include "core/dedup.h"

#include <algorithm>
#include <boost/geometry.hpp>
#include <cmath>
#include <numbers>

namespace tocsin {

namespace {
// Mean Earth radius (IUGG), as the haversine strategy expects.
constexpr double kEarthRadiusM = 6371008.8;
constexpr double kPi = std::numbers::pi;
}  // namespace

double distance_m(const Location& a, const Location& b) {
  namespace bg = boost::geometry;
  using Point = bg::model::point<double, 2, bg::cs::spherical_equatorial<bg::degree>>;
  return bg::distance(Point(a.lon, a.lat), Point(b.lon, b.lat),
                      bg::strategy::distance::haversine<double>(kEarthRadiusM));
}

GeoBox bounding_box(const Location& centre, double radius_m) {
  // The spherical cap of angular radius d around (lat, lon) spans lat ± d and,
  // when it holds no pole, lon ± asin(sin d / cos lat). 1% and a micro-degree
  // of slack absorb rounding, so the box is never smaller than the circle.
  const double d = std::max(radius_m, 0.0) / kEarthRadiusM * 1.01 + 1e-8;
  const double deg = 180.0 / kPi;
  const double lat = centre.lat / deg;
  GeoBox box;
  box.lat_min = std::max(-90.0, (lat - d) * deg);
  box.lat_max = std::min(90.0, (lat + d) * deg);
  if (lat - d <= -kPi / 2 || lat + d >= kPi / 2) return box;  // reaches a pole: every longitude
  double s = std::sin(d) / std::cos(lat);
  if (s >= 1) return box;
  double dlon = std::asin(s) * deg;
  if (centre.lon - dlon < -180 || centre.lon + dlon > 180) return box;  // crosses the antimeridian
  box.lon_min = centre.lon - dlon;
  box.lon_max = centre.lon + dlon;
  return box;
}

std::optional<std::size_t> find_duplicate(const Report& report, UnixMs now,
                                          const std::vector<IncidentCandidate>& candidates,
                                          const DedupRules& rules) {
  if (report.msg_type != MsgType::kAlert) return std::nullopt;
  const UnixMs window_ms = rules.window_s * 1000;
  std::optional<std::size_t> best;
  int best_rank = 0;        // 2: dedup_key match, 1: place match
  double best_distance = 0;  // metres; 0 for an area match
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (now - c.last_report_at > window_ms || c.drill != report.is_drill()) continue;
    int rank = 0;
    double dist = 0;
    if (!report.dedup_key.empty() && report.dedup_key == c.dedup_key) {
      rank = 2;
    } else if (c.event == report.event) {
      if (report.location && c.location) {
        dist = distance_m(*report.location, *c.location);
        if (dist <= rules.radius_m) rank = 1;
      } else if (c.area == report.area) {
        rank = 1;
      }
    }
    if (rank == 0) continue;
    bool better = !best || rank > best_rank ||
                  (rank == best_rank && dist < best_distance) ||
                  (rank == best_rank && dist == best_distance &&
                   (c.last_report_at > candidates[*best].last_report_at ||
                    (c.last_report_at == candidates[*best].last_report_at &&
                     c.id < candidates[*best].id)));
    if (better) {
      best = i;
      best_rank = rank;
      best_distance = dist;
    }
  }
  return best;
}

}  // namespace tocsin
