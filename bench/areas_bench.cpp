// The areas benchmark (issue 19): loading a file of 1,000 areas × 500
// vertices, and the per-report cost of finding which shapes hold a point
// (decide_area: the R-tree query, the point-in-polygon tests, the distance
// to the edge), on random points over the whole city. Prints one JSON line,
// with wall-clock and CPU (std::clock) time: on a shared machine the CPU
// time is the figure to compare.
//   build/bench/tocsin-areas-bench [AREAS] [VERTICES] [POINTS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

#include "area_grid.h"
#include "core/areas.h"

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  int vertices = argc > 2 ? std::atoi(argv[2]) : 500;
  int points = argc > 3 ? std::atoi(argv[3]) : 200000;
  using Clock = std::chrono::steady_clock;
  std::string text = tocsin::bench::area_grid_geojson(n, vertices);

  auto t0 = Clock::now();
  std::clock_t c0 = std::clock();
  auto loaded = tocsin::AreaSet::load(text, "areas_file", nullptr, "areas.circles", 200);
  double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  double load_cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  if (!loaded.set) {
    for (const auto& p : loaded.problems)
      std::fprintf(stderr, "%s: %s\n", p.path.c_str(), p.message.c_str());
    return 1;
  }

  std::mt19937_64 rng(19);
  std::uniform_real_distribution<double> lat(tocsin::bench::kGridLat,
                                             tocsin::bench::kGridLat + tocsin::bench::kGridSpan);
  std::uniform_real_distribution<double> lon(tocsin::bench::kGridLon,
                                             tocsin::bench::kGridLon + tocsin::bench::kGridSpan);
  std::vector<tocsin::Location> where;
  where.reserve(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) where.push_back({lat(rng), lon(rng), {}});

  std::size_t held = 0, in_neighbourhood = 0;
  auto t1 = Clock::now();
  std::clock_t c1 = std::clock();
  for (const auto& p : where) {
    auto d = tocsin::decide_area(loaded.set.get(), "", p, 200);
    held += d.point_areas.size();
    in_neighbourhood += d.point_areas.size() > 1;
  }
  double per_us = std::chrono::duration<double, std::micro>(Clock::now() - t1).count() / points;
  double per_cpu_us = static_cast<double>(std::clock() - c1) / CLOCKS_PER_SEC * 1e6 / points;
  std::printf(
      "{\"areas\":%d,\"vertices\":%d,\"file_mb\":%.1f,\"load_s\":%.3f,\"load_cpu_s\":%.3f,"
      "\"points\":%d,\"decide_us\":%.2f,\"decide_cpu_us\":%.2f,\"in_a_neighbourhood\":%.3f,\"mean_"
      "holding\":%.2f}\n",
      n + 1, vertices, text.size() / 1e6, load_s, load_cpu_s, points, per_us, per_cpu_us,
      static_cast<double>(in_neighbourhood) / points, static_cast<double>(held) / points);
  return 0;
}
