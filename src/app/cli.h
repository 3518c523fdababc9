// The command line: subcommands serve, check-config, submit, route,
// deliveries, keys, version. Returns the process exit code.
#pragma once

namespace tocsin::app {

int run_cli(int argc, char** argv);

}  // namespace tocsin::app
