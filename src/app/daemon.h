// `tocsin serve`: builds the daemon from a config file and runs it in the
// foreground until SIGTERM/SIGINT (systemd Type=notify).
#pragma once

#include <string>

namespace tocsin::app {

// Returns the process exit code: 0 after a clean stop, 1 on a start-up
// failure (logged), 2 for an invalid config (each problem printed).
int serve(const std::string& config_path);

}  // namespace tocsin::app
