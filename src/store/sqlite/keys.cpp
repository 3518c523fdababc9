// The SQLite side of subscribers' encryption (the sealing itself is
// SubscriberCrypto's): the key check at open and reload, reading and
// writing a row's sealed fields, re-encryption under the active key.
#include "store/sqlite/sqlite_store.h"

namespace tocsin::store::sqlite {

void SqliteStore::set_keyring(std::shared_ptr<const Keyring> keyring) {
  if (!keyring) throw StoreError("no key file: subscribers' data is stored encrypted");
  SubscriberCrypto next(std::move(keyring));
  std::string check = next.hash_key_check();
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
  try {
    while (s.step()) {
      auto key_id = s.i64(1);
      if (!next.keyring().has_key(static_cast<uint32_t>(key_id)))
        throw StoreError("subscribers are encrypted under key " + std::to_string(key_id) +
                         ", which the key file lacks");
      read_personal(next, s);
    }
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
  crypto_ = std::move(next);
}

int64_t SqliteStore::reencrypt_subscribers(int limit) {
  auto& s = stmt(
      "SELECT id, key_id, name, phone, email FROM subscribers WHERE key_id <> ? ORDER BY id "
      "LIMIT ?");
  s.reset().bind(static_cast<int64_t>(crypto_.active_key())).bind(limit);
  std::vector<std::pair<int64_t, PersonalData>> rows;
  while (s.step()) rows.emplace_back(s.i64(0), read_personal(crypto_, s));
  s.reset();
  for (const auto& [id, personal] : rows) write_personal(id, personal);
  // The old ciphertexts are overwritten in the file (secure_delete); the
  // WAL may hold them until the next checkpoint.
  return static_cast<int64_t>(rows.size());
}

// Columns: 0 id, 1 key_id, 2 name, 3 phone, 4 email.
PersonalData SqliteStore::read_personal(const SubscriberCrypto& crypto, const Stmt& s) {
  return crypto.open(s.i64(0), static_cast<uint32_t>(s.i64(1)), s.blob(2), s.blob(3), s.blob(4));
}

void SqliteStore::write_personal(int64_t id, const PersonalData& p) {
  SealedPersonal sealed = crypto_.seal(id, p);
  stmt("UPDATE subscribers SET key_id = ?, name = ?, phone = ?, email = ?, phone_hash = ?, "
       "email_hash = ? WHERE id = ?")
      .reset()
      .bind(static_cast<int64_t>(sealed.key_id))
      .bind_blob_or_null(sealed.name)
      .bind_blob_or_null(sealed.phone)
      .bind_blob_or_null(sealed.email)
      .bind_blob_or_null(sealed.phone_hash)
      .bind_blob_or_null(sealed.email_hash)
      .bind(id)
      .run();
}

}  // namespace tocsin::store::sqlite
