// A synthetic city for the areas benchmark (bench/areas_bench.cpp) and its
// measure test (tests/unit/areas_test.cpp): one parent area of 500 vertices
// holding `n` neighbourhoods of `vertices` vertices each, non-convex
// (a wavy outline, as drawn borders are), on a grid over Los Angeles, as
// the GeoJSON FeatureCollection text an operator's GIS tool would export.
#pragma once

#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

namespace tocsin::bench {

inline constexpr double kGridLat = 33.8, kGridLon = -118.6;  // south-west corner
inline constexpr double kGridSpan = 0.6;                     // degrees, each way

// The GeoJSON text; names "city" and "city/n0000"...
inline std::string area_grid_geojson(int n, int vertices) {
  int side = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  double cell = kGridSpan / side;
  std::string out = "{\"type\":\"FeatureCollection\",\"features\":[\n";
  char buf[64];
  auto ring = [&](double clat, double clon, double radius, int count, double wave) {
    out += "[";
    for (int i = 0; i <= count; ++i) {
      int k = i % count;  // closed: the last repeats the first exactly
      double a = 2 * std::numbers::pi * k / count;
      double r = radius * (1 + wave * std::sin(7 * a));
      std::snprintf(buf, sizeof buf, "%s[%.7f,%.7f]", i ? "," : "", clon + r * std::cos(a),
                    clat + r * std::sin(a));
      out += buf;
    }
    out += "]";
  };
  double mid = kGridSpan / 2;
  out +=
      "{\"type\":\"Feature\",\"properties\":{\"name\":\"city\"},\"geometry\":"
      "{\"type\":\"Polygon\",\"coordinates\":[";
  ring(kGridLat + mid, kGridLon + mid, mid * 1.5, 500, 0.02);
  out += "]}}";
  for (int i = 0; i < n; ++i) {
    double clat = kGridLat + (i / side + 0.5) * cell, clon = kGridLon + (i % side + 0.5) * cell;
    std::snprintf(buf, sizeof buf,
                  ",\n{\"type\":\"Feature\",\"properties\":{\"name\":\"city/n%04d\"},", i);
    out += buf;
    out += "\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[";
    ring(clat, clon, cell * 0.4, vertices, 0.1);
    out += "]}}";
  }
  out += "\n]}\n";
  return out;
}

}  // namespace tocsin::bench
