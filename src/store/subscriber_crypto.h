// Subscribers' personal data at rest, for every store (README "Privacy"):
// name, phone and email sealed with XChaCha20-Poly1305 under the keyring's
// active key, each bound to its column and row id, and keyed BLAKE2b hashes
// of phone and email for equality lookups. A store keeps what seal() gives
// and hands back what it kept to open(); it never sees a key.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/keyring.h"

namespace tocsin::store {

// One subscriber's personal data, in clear (on the store thread only).
struct PersonalData {
  std::string name, phone, email;  // "" when absent
};

// The same, as stored: ciphertexts and lookup hashes ("" when absent).
struct SealedPersonal {
  uint32_t key_id = 0;
  std::string name, phone, email;
  std::string phone_hash, email_hash;
};

class SubscriberCrypto {
 public:
  static constexpr std::string_view kName = "name", kPhone = "phone", kEmail = "email";

  // `keyring` may be null (a read-only look): then every call but
  // has_keyring() throws StoreError.
  explicit SubscriberCrypto(std::shared_ptr<const Keyring> keyring = nullptr)
      : keyring_(std::move(keyring)) {}

  bool has_keyring() const { return keyring_ != nullptr; }
  const Keyring& keyring() const;
  uint32_t active_key() const { return keyring().active_id(); }

  // Seals `p` for subscriber `id` under the active key, with fresh lookup hashes.
  SealedPersonal seal(int64_t id, const PersonalData& p) const;
  // One field (kName, kPhone or kEmail) of subscriber `id` sealed under
  // `key_id`; "" for "". Throws StoreError when it does not decrypt (wrong
  // key file, or the row was altered or moved).
  std::string open(int64_t id, uint32_t key_id, std::string_view column,
                   std::string_view blob) const;
  PersonalData open(int64_t id, uint32_t key_id, std::string_view name, std::string_view phone,
                    std::string_view email) const;

  // Lookup hashes: the field's name keeps a phone and an email apart; an
  // email is compared without ASCII case (import dedup).
  std::string phone_hash(const std::string& e164) const;
  std::string email_hash(std::string email) const;
  // A keyed hash of a constant, in hex, kept beside the data: equal for two
  // keyrings exactly when they have the same hash key. Reveals nothing of it.
  std::string hash_key_check() const;

 private:
  std::shared_ptr<const Keyring> keyring_;
};

}  // namespace tocsin::store
