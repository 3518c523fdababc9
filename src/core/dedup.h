// Duplicate detection: several coordinators report one event; they must
// become one incident. Pure: the report, the open incidents near it in time,
// the configuration and `now` in; which incident it joins out.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/report.h"

namespace tocsin {

struct DedupRules {
  int64_t window_s = 1800;  // an incident stays joinable this long after its last report
  double radius_m = 400;    // reports of one event within this distance are one incident
  bool operator==(const DedupRules&) const = default;
};

// What dedup needs to know of an open incident.
struct IncidentCandidate {
  std::string id;
  std::string event;
  std::string area;
  std::optional<Location> location;  // of its first located report
  std::string dedup_key;             // of its first report, may be ""
  UnixMs last_report_at = 0;
  bool drill = false;  // opened by an exercise/test report: never merges with actual ones
};

// Great-circle distance in metres (Boost.Geometry haversine, mean Earth radius).
double distance_m(const Location& a, const Location& b);

// A latitude/longitude box holding every point within radius_m of a centre:
// what a store pre-filters on so a report reads only the incidents near it
// (find_duplicate still measures each). A little larger than exact, never
// smaller; the whole longitude range when the circle reaches a pole or
// crosses the antimeridian.
struct GeoBox {
  double lat_min = -90, lat_max = 90, lon_min = -180, lon_max = 180;
};
GeoBox bounding_box(const Location& centre, double radius_m);

// Index into `candidates` of the incident an `alert` report joins, or
// nullopt for a new incident. A shared dedup_key matches first; otherwise the
// same event and, when both have locations, distance within radius_m, else
// the same area; always within window_s of the incident's last report.
// Among several matches the nearest (then most recent) wins, so the answer
// does not depend on the candidates' order.
std::optional<std::size_t> find_duplicate(const Report& report, UnixMs now,
                                          const std::vector<IncidentCandidate>& candidates,
                                          const DedupRules& rules);

}  // namespace tocsin
