// The keys that protect subscribers' personal data at rest (README "Privacy").
//
// A key file is text, one entry per line ('#' starts a comment):
//   hash-key <base64 of 32 bytes>     keys the BLAKE2b lookup hashes; never changes
//   key <N> <base64 of 32 bytes>      an XChaCha20-Poly1305 key, N = 1, 2, ...
// The highest-numbered key encrypts; the others only decrypt rows not yet
// re-encrypted under it (`tocsin keys rotate`). Keys are held in locked,
// guarded memory (sodium_malloc) that is zeroed when freed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tocsin::store {

class Keyring {
 public:
  static constexpr std::size_t kKeyBytes = 32;
  static constexpr std::size_t kHashBytes = 32;

  // Parses key file text; on failure returns nullptr and sets `error` to
  // "line N: what is wrong" (never a key).
  static std::shared_ptr<const Keyring> parse(std::string_view text, std::string& error);
  // Reads and parses the file at `path`; `error` names the problem.
  static std::shared_ptr<const Keyring> load(const std::string& path, std::string& error);
  // A new keyring: a random hash key and key 1.
  static std::shared_ptr<const Keyring> generate();

  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // This keyring plus a new random key numbered active_id() + 1, which becomes active.
  std::shared_ptr<const Keyring> with_new_key() const;
  // The key file text. The caller should sodium_memzero it once written.
  std::string serialize() const;

  uint32_t active_id() const { return active_; }
  bool has_key(uint32_t id) const { return keys_.count(id) != 0; }

  // nonce || ciphertext || tag of `plain` under the active key, bound to
  // `ad` (associated data: where the value belongs, e.g. its row id).
  std::string encrypt(std::string_view plain, std::string_view ad) const;
  // The plaintext, or nullopt when the key id is unknown or the blob was
  // altered, truncated, or belongs to another `ad`.
  std::optional<std::string> decrypt(uint32_t key_id, std::string_view blob,
                                     std::string_view ad) const;
  // Keyed BLAKE2b-256 of `value` (deterministic: for equality lookups).
  std::string hash(std::string_view value) const;

 private:
  class Secret;  // kKeyBytes of sodium_malloc'd memory
  Keyring();
  std::unique_ptr<Secret> hash_key_;
  std::map<uint32_t, std::unique_ptr<Secret>> keys_;
  uint32_t active_ = 0;
};

// Writes a new key file at `path` (mode 0600; refuses an existing file).
// Returns "" or what went wrong.
std::string write_new_key_file(const std::string& path, const Keyring& keyring);
// Replaces the key file at `path` atomically (a 0600 temporary file renamed
// over it). Returns "" or what went wrong.
std::string replace_key_file(const std::string& path, const Keyring& keyring);

}  // namespace tocsin::store
