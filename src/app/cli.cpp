#include "app/cli.h"

#include <cstdio>
#include <cstring>

namespace tocsin::app {

int run_cli(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "version") == 0) {
    std::printf("tocsin %s\n", TOCSIN_VERSION);
    return 0;
  }
  std::fprintf(stderr, "usage: tocsin SUBCOMMAND ...\n");
  return 2;
}

}  // namespace tocsin::app
