// Sealing and opening subscribers' personal data, and their lookup hashes:
// see subscriber_crypto.h.
#include "store/subscriber_crypto.h"

#include "store/store_error.h"

namespace tocsin::store {
namespace {

// Associated data: the column and the row, so a ciphertext copied to
// another row or column does not decrypt.
std::string associated(std::string_view column, int64_t id) {
  std::string ad = "tocsin.subscribers.";
  ad += column;
  ad += '.';
  ad += std::to_string(id);
  return ad;
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

const Keyring& SubscriberCrypto::keyring() const {
  if (!keyring_) throw StoreError("opened without a key file: subscribers' data is unreadable");
  return *keyring_;
}

SealedPersonal SubscriberCrypto::seal(int64_t id, const PersonalData& p) const {
  const Keyring& k = keyring();
  auto seal_one = [&](std::string_view column, const std::string& v) {
    return v.empty() ? std::string() : k.encrypt(v, associated(column, id));
  };
  SealedPersonal s;
  s.key_id = k.active_id();
  s.name = seal_one(kName, p.name);
  s.phone = seal_one(kPhone, p.phone);
  s.email = seal_one(kEmail, p.email);
  if (!p.phone.empty()) s.phone_hash = phone_hash(p.phone);
  if (!p.email.empty()) s.email_hash = email_hash(p.email);
  return s;
}

std::string SubscriberCrypto::open(int64_t id, uint32_t key_id, std::string_view column,
                                   std::string_view blob) const {
  if (blob.empty()) return "";
  auto plain = keyring().decrypt(key_id, blob, associated(column, id));
  if (!plain)
    throw StoreError("subscriber " + std::to_string(id) + ": " + std::string(column) +
                     " does not decrypt under key " + std::to_string(key_id) +
                     " (wrong key file, or the row was altered)");
  return std::move(*plain);
}

PersonalData SubscriberCrypto::open(int64_t id, uint32_t key_id, std::string_view name,
                                    std::string_view phone, std::string_view email) const {
  return {open(id, key_id, kName, name), open(id, key_id, kPhone, phone),
          open(id, key_id, kEmail, email)};
}

std::string SubscriberCrypto::phone_hash(const std::string& e164) const {
  return keyring().hash("phone:" + e164);
}

std::string SubscriberCrypto::email_hash(std::string email) const {
  for (char& c : email)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return keyring().hash("email:" + email);
}

std::string SubscriberCrypto::hash_key_check() const {
  return to_hex(keyring().hash("tocsin hash-key check"));
}

}  // namespace tocsin::store
