// Key files for tests: subscribers' data is always stored encrypted, so
// every config and store under test needs one.
#pragma once

#include <filesystem>
#include <string>

namespace tocsin::test {

// An absolute path to a key file made once per test process (removed at exit).
std::string shared_key_file();

// Writes a new key file at `path` (mode 0600), as `tocsin keys generate` does.
void write_key_file(const std::filesystem::path& path);

}  // namespace tocsin::test
