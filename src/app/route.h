// `tocsin route`: a dry run. Which groups a report would reach, how many
// subscribers per channel and language (read from the database beside a
// running daemon, without changing it), and what each message would say.
#pragma once

#include <string>

namespace tocsin::app {

// Prints the dry run to stdout. Returns 0, or 2 for an invalid config or
// report (problems on stdout as FILE: path: problem), including a report
// the areas' shapes refuse. With areas, says which shape held the point and
// how far it lies from its edge; `svg_path` (when not empty) receives the
// picture of the shapes and the point (area_svg).
int route(const std::string& config_path, const std::string& report_path,
          const std::string& svg_path = "");

}  // namespace tocsin::app
