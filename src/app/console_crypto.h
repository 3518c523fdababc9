// The console's secrets: random tokens (sessions, enrolment links, CSRF),
// their stored hashes, and passphrases as argon2id (libsodium's
// crypto_pwhash_str with the INTERACTIVE limits: 64 MiB and ~0.1 s per
// hash here, so that a burst of logins on a 2-core host cannot starve the
// delivery path; MODERATE's 256 MiB and ~0.7 s would). Internal to src/app.
#pragma once

#include <string>
#include <string_view>

namespace tocsin::app {

// `bytes` random bytes as lower-case hex (32 bytes: a 256-bit token).
std::string random_token(std::size_t bytes = 32);
// `bytes` random bytes, raw.
std::string random_bytes(std::size_t bytes);
// The hex BLAKE2b-256 of a token: what the database keeps instead of it.
std::string token_hash(std::string_view token);
// crypto_pwhash_str (argon2id, INTERACTIVE); "" when out of memory.
std::string hash_passphrase(std::string_view passphrase);
bool verify_passphrase(const std::string& stored, std::string_view passphrase);

inline constexpr std::size_t kMinPassphrase = 12;

}  // namespace tocsin::app
