// Small file helpers shared by the config loader and the CLI.
#pragma once

#include <optional>
#include <string>

namespace tocsin::app {

// The whole file, or nullopt when it cannot be read.
std::optional<std::string> read_file(const std::string& path);

// `s` without leading and trailing white space (secrets read from files end in a newline).
std::string trim(std::string s);

}  // namespace tocsin::app
