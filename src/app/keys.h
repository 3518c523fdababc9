// `tocsin keys`: the key file that protects subscribers' data at rest
// (README "Privacy"). Returns process exit codes: 0 done, 1 failed, 2 bad
// arguments or an invalid config.
#pragma once

#include <string>

namespace tocsin::app {

// Writes a new key file (a hash key and key 1), mode 0600; refuses to
// overwrite an existing file.
int keys_generate(const std::string& file);

// Adds a new encryption key to `file`, or to the key_file of the config at
// `config_path`, and makes it the active one. With a config and no daemon
// holding the database, also re-encrypts every subscriber under it; with a
// daemon running, it does so in the background once it reads the new key.
int keys_rotate(const std::string& file, const std::string& config_path);

}  // namespace tocsin::app
