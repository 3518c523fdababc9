// Subscribers' personal data under the keyring: the key check at open and
// reload, encryption of a row's fields, lookup hashes, re-encryption.
#include "store/sqlite/sqlite_store.h"

namespace tocsin::store::sqlite {

namespace {

// Associated data: the column and the row, so a ciphertext copied to
// another row or column does not decrypt.
std::string associated(std::string_view column, int64_t id) {
  return "tocsin.subscribers." + std::string(column) + "." + std::to_string(id);
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

void SqliteStore::set_keyring(std::shared_ptr<const Keyring> keyring) {
  if (!keyring) throw StoreError("no key file: subscribers' data is stored encrypted");
  // The hash key is checked with a keyed hash of a constant, which
  // reveals nothing of the key.
  std::string check = to_hex(keyring->hash("tocsin hash-key check"));
  auto& m = stmt("SELECT value FROM meta WHERE key = 'hash_key_check'");
  m.reset();
  if (m.step()) {
    bool same = m.text(0) == check;
    m.reset();
    if (!same)
      throw StoreError(
          "the key file's hash-key is not the one this database was written with "
          "(wrong key file?)");
  } else {
    m.reset();
    stmt("INSERT INTO meta (key, value) VALUES ('hash_key_check', ?)").reset().bind(check).run();
  }
  // One row per key in use must decrypt: a key file whose key N differs
  // from the database's is refused now, not at the first send.
  auto& s = stmt(
      "SELECT id, key_id, name, phone, email FROM subscribers WHERE id IN "
      "(SELECT min(id) FROM subscribers GROUP BY key_id)");
  s.reset();
  auto previous = std::move(keyring_);
  keyring_ = std::move(keyring);
  try {
    while (s.step()) {
      auto key_id = s.i64(1);
      if (!keyring_->has_key(static_cast<uint32_t>(key_id)))
        throw StoreError("subscribers are encrypted under key " + std::to_string(key_id) +
                         ", which the key file lacks");
      read_personal(s);
    }
  } catch (...) {
    s.reset();
    keyring_ = std::move(previous);
    throw;
  }
  s.reset();
}

int64_t SqliteStore::reencrypt_subscribers(int limit) {
  const Keyring& k = keyring();
  auto& s = stmt(
      "SELECT id, key_id, name, phone, email FROM subscribers WHERE key_id <> ? ORDER BY id "
      "LIMIT ?");
  s.reset().bind(static_cast<int64_t>(k.active_id())).bind(limit);
  std::vector<std::pair<int64_t, Personal>> rows;
  while (s.step()) rows.emplace_back(s.i64(0), read_personal(s));
  s.reset();
  for (const auto& [id, personal] : rows) write_personal(id, personal);
  // The old ciphertexts are overwritten in the file (secure_delete); the
  // WAL may hold them until the next checkpoint.
  return static_cast<int64_t>(rows.size());
}

const Keyring& SqliteStore::keyring() const {
  if (!keyring_) throw StoreError("opened without a key file: subscribers' data is unreadable");
  return *keyring_;
}

std::string SqliteStore::decrypt(int64_t key_id, std::string_view column, int64_t id, const std::string& blob) {
  if (blob.empty()) return "";
  auto plain = keyring().decrypt(static_cast<uint32_t>(key_id), blob, associated(column, id));
  if (!plain)
    throw StoreError("subscriber " + std::to_string(id) + ": " + std::string(column) +
                     " does not decrypt under key " + std::to_string(key_id) +
                     " (wrong key file, or the row was altered)");
  return std::move(*plain);
}

// Columns: 0 id, 1 key_id, 2 name, 3 phone, 4 email.
SqliteStore::Personal SqliteStore::read_personal(const Stmt& s) {
  int64_t id = s.i64(0), key_id = s.i64(1);
  return {decrypt(key_id, kName, id, s.blob(2)), decrypt(key_id, kPhone, id, s.blob(3)),
          decrypt(key_id, kEmail, id, s.blob(4))};
}

// Encrypts under the active key, with fresh lookup hashes.
void SqliteStore::write_personal(int64_t id, const Personal& p) {
  const Keyring& k = keyring();
  auto seal = [&](std::string_view column, const std::string& v) {
    return v.empty() ? std::string() : k.encrypt(v, associated(column, id));
  };
  stmt("UPDATE subscribers SET key_id = ?, name = ?, phone = ?, email = ?, phone_hash = ?, "
       "email_hash = ? WHERE id = ?")
      .reset()
      .bind(static_cast<int64_t>(k.active_id()))
      .bind_blob_or_null(seal(kName, p.name))
      .bind_blob_or_null(seal(kPhone, p.phone))
      .bind_blob_or_null(seal(kEmail, p.email))
      .bind_blob_or_null(p.phone.empty() ? std::string() : phone_hash(p.phone))
      .bind_blob_or_null(p.email.empty() ? std::string() : email_hash(p.email))
      .bind(id)
      .run();
}

// Lookup hashes: the field's name keeps a phone and an email apart; an
// email is compared without ASCII case (import dedup).
std::string SqliteStore::phone_hash(const std::string& e164) {
  return keyring().hash("phone:" + e164);
}

std::string SqliteStore::email_hash(std::string email) {
  for (char& c : email)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return keyring().hash("email:" + email);
}

}  // namespace tocsin::store::sqlite
