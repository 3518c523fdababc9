// The command line: subcommands serve, check-config, submit, route,
// subscribers import, version. Returns the process exit code.
#pragma once

namespace tocsin::app {

int run_cli(int argc, char** argv);

}  // namespace tocsin::app
