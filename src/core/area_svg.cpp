// Drawing area shapes and a report's point as SVG (see area_svg.h).
#include "core/area_svg.h"

#include "core/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

namespace tocsin {

namespace {

constexpr double kMetresPerDegree = 6371008.8 * std::numbers::pi / 180;
constexpr double kSize = 400;   // the longer side of the drawing, px
constexpr double kMargin = 12;  // px around it
constexpr double kLegendLine = 16;

// Distinct outline colours, one per drawn area.
constexpr const char* kColours[] = {"#1f77b4", "#2ca02c", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf"};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

std::string area_svg(const AreaSet& areas, std::string_view area,
                     const std::optional<Location>& point, std::string_view caption) {
  // Which shapes: the one that speaks for the report's area, then those
  // holding the point (most specific first), each once.
  std::vector<const AreaShape*> drawn;
  if (const AreaShape* s = area.empty() ? nullptr : areas.shape_for(area)) drawn.push_back(s);
  if (point)
    for (std::size_t i : areas.holding(point->lat, point->lon))
      if (std::find(drawn.begin(), drawn.end(), &areas.areas()[i]) == drawn.end())
        drawn.push_back(&areas.areas()[i]);

  // Longitudes are unwrapped around a reference so a shape cut at ±180 is
  // drawn in one piece.
  double ref_lon = point ? point->lon : 0;
  if (!point && !drawn.empty())
    ref_lon = drawn[0]->center ? drawn[0]->center->lon : drawn[0]->parts[0].outer[0].lon;
  auto unwrap = [&](double lon) {
    double d = lon - ref_lon;
    while (d > 180) d -= 360;
    while (d < -180) d += 360;
    return ref_lon + d;
  };

  double lon0 = INFINITY, lon1 = -INFINITY, lat0 = INFINITY, lat1 = -INFINITY;
  auto extend = [&](double lat, double lon) {
    lon0 = std::min(lon0, lon), lon1 = std::max(lon1, lon);
    lat0 = std::min(lat0, lat), lat1 = std::max(lat1, lat);
  };
  for (const AreaShape* a : drawn) {
    if (a->center) {
      double dlat = a->radius_m / kMetresPerDegree;
      double dlon = dlat / std::max(0.01, std::cos(a->center->lat * std::numbers::pi / 180));
      double c = unwrap(a->center->lon);
      extend(a->center->lat - dlat, c - dlon);
      extend(a->center->lat + dlat, c + dlon);
    } else {
      for (const auto& part : a->parts)
        for (const auto& q : part.outer) extend(q.lat, unwrap(q.lon));
    }
  }
  if (point) extend(point->lat, unwrap(point->lon));
  if (!std::isfinite(lon0)) lon0 = lon1 = lat0 = lat1 = 0;

  const double mid = (lat0 + lat1) / 2;
  const double kx = std::max(0.01, std::cos(mid * std::numbers::pi / 180));
  double w = (lon1 - lon0) * kx, h = lat1 - lat0;
  double span = std::max({w, h, 1e-6});
  // A little room around the shapes (and around a lone point).
  lon0 -= span * 0.05 / kx, lon1 += span * 0.05 / kx, lat0 -= span * 0.05, lat1 += span * 0.05;
  w = (lon1 - lon0) * kx, h = lat1 - lat0;
  span = std::max({w, h, 1e-6});
  const double scale = kSize / span;
  auto px = [&](double lon) { return kMargin + (unwrap(lon) - lon0) * kx * scale; };
  auto py = [&](double lat) { return kMargin + (lat1 - lat) * scale; };

  const double width = w * scale + 2 * kMargin;
  const double legend_lines =
      static_cast<double>(drawn.size()) + (caption.empty() ? 0 : 1) + (drawn.empty() ? 1 : 0);
  const double height = h * scale + 2 * kMargin + legend_lines * kLegendLine;

  std::string out;
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" +
         num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n";
  for (std::size_t k = 0; k < drawn.size(); ++k) {
    const AreaShape* a = drawn[k];
    const char* colour = kColours[k % std::size(kColours)];
    std::string style = std::string(" fill=\"") + colour + "\" fill-opacity=\"0.12\" stroke=\"" +
                        colour + "\" stroke-width=\"1.5\"";
    if (a->center) {
      out += "<circle cx=\"" + num(px(a->center->lon)) + "\" cy=\"" + num(py(a->center->lat)) +
             "\" r=\"" + num(a->radius_m / kMetresPerDegree * scale) + "\"" + style + ">";
    } else {
      std::string d;
      for (const auto& part : a->parts) {
        std::vector<const Ring*> rings{&part.outer};
        for (const auto& hole : part.holes) rings.push_back(&hole);
        for (const Ring* ring : rings) {
          double lx = NAN, ly = NAN;
          for (std::size_t i = 0; i + 1 < ring->size(); ++i) {
            double x = px((*ring)[i].lon), y = py((*ring)[i].lat);
            if (i > 0 && std::abs(x - lx) < 0.5 && std::abs(y - ly) < 0.5) continue;
            // Appended piece by piece: GCC 12 at -O3 sees a false overlap
            // (-Wrestrict) in "literal" + std::string&&.
            d += i == 0 ? 'M' : 'L';
            d += num(x);
            d += ' ';
            d += num(y);
            lx = x, ly = y;
          }
          d += "Z";
        }
      }
      out += "<path fill-rule=\"evenodd\" d=\"" + d + "\"" + style + ">";
    }
    out += "<title>" + xml_escape(a->name) + "</title>";
    out += a->center ? "</circle>\n" : "</path>\n";
  }
  if (point) {
    char where[64];
    std::snprintf(where, sizeof where, "%.5f, %.5f", point->lat, point->lon);
    out +=
        "<circle cx=\"" + num(px(point->lon)) + "\" cy=\"" + num(py(point->lat)) +
        "\" r=\"5\" fill=\"#d62728\" stroke=\"#fff\" stroke-width=\"1.5\"><title>" +
        xml_escape(point->description.empty() ? where : point->description + " (" + where + ")") +
        "</title></circle>\n";
  }
  double y = h * scale + 2 * kMargin + 12;
  if (!caption.empty()) {
    out += "<text x=\"" + num(kMargin) + "\" y=\"" + num(y) + "\">" + xml_escape(caption) +
           "</text>\n";
    y += kLegendLine;
  }
  if (drawn.empty()) {
    out += "<text x=\"" + num(kMargin) + "\" y=\"" + num(y) +
           "\">no area shape holds the point</text>\n";
  }
  for (std::size_t k = 0; k < drawn.size(); ++k) {
    std::string line = drawn[k]->name;
    if (point) {
      ShapeRelation rel = areas.relation(*drawn[k], point->lat, point->lon);
      line += rel.inside ? ": inside, " + format_distance(rel.edge_m) + " from the edge"
                         : ": outside, " + format_distance(rel.edge_m) + " from the edge";
    }
    out += "<text x=\"" + num(kMargin) + "\" y=\"" + num(y) + "\" fill=\"" +
           kColours[k % std::size(kColours)] + "\">" + xml_escape(line) + "</text>\n";
    y += kLegendLine;
  }
  out += "</svg>\n";
  return out;
}

}  // namespace tocsin
