#include "core/dedup.h"

#include <boost/geometry.hpp>

namespace tocsin {

double distance_m(const Location& a, const Location& b) {
  namespace bg = boost::geometry;
  using Point = bg::model::point<double, 2, bg::cs::spherical_equatorial<bg::degree>>;
  // Mean Earth radius (IUGG), as the haversine strategy expects.
  constexpr double kEarthRadiusM = 6371008.8;
  return bg::distance(Point(a.lon, a.lat), Point(b.lon, b.lat),
                      bg::strategy::distance::haversine<double>(kEarthRadiusM));
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
