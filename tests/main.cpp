// The one Catch2 test binary: unit tests (tests/unit) and end-to-end tests
// that start build/tocsin against loopback gateway emulators (tests/e2e).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
