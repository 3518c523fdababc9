// A picture instead of coordinates: a small, self-contained SVG of the area
// shapes that concern a report (its area's shape and every shape holding its
// point) with the point marked. No map tiles, no network, no script: shapes,
// a dot and escaped text. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/areas.h"
#include "core/report.h"

namespace tocsin {

// The SVG document (about 400 px wide) for a report in `area` at `point`
// (either may be absent). `caption` (e.g. an incident code) is shown as
// text, escaped. Shapes are drawn in an equirectangular projection around
// the picture's centre, longitudes unwrapped across the antimeridian;
// vertices closer than half a pixel are merged, so a 500-vertex shape stays
// a few kilobytes.
std::string area_svg(const AreaSet& areas, std::string_view area,
                     const std::optional<Location>& point, std::string_view caption);

}  // namespace tocsin
