// The PostgreSQL side of subscribers' encryption (the sealing itself is
// SubscriberCrypto's): the key check at open and reload, reading and
// writing a row's sealed fields, re-encryption under the active key.
#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

void PgStore::set_keyring(std::shared_ptr<const Keyring> keyring) {
  if (!keyring) throw StoreError("no key file: subscribers' data is stored encrypted");
  SubscriberCrypto next(std::move(keyring));
  std::string check = next.hash_key_check();
  // The first instance to open the database writes the check; every other
  // one (started at the same moment or later) compares against it.
  q("INSERT INTO meta (key, value) VALUES ('hash_key_check', $1) ON CONFLICT (key) DO NOTHING")
      .bind(check)
      .run();
  auto m = q("SELECT value FROM meta WHERE key = 'hash_key_check'").rows();
  if (!m.rows() || m.text(0, 0) != check)
    throw StoreError(
        "the key file's hash-key is not the one this database was written with "
        "(wrong key file?)");
  // One row per key in use must decrypt: a key file whose key N differs
  // from the database's is refused now, not at the first send.
  auto r = q("SELECT id, key_id, name, phone, email FROM subscribers WHERE id IN "
             "(SELECT min(id) FROM subscribers GROUP BY key_id)")
               .rows();
  for (int i = 0; i < r.rows(); ++i) {
    auto key_id = r.i64(i, 1);
    if (!next.keyring().has_key(static_cast<uint32_t>(key_id)))
      throw StoreError("subscribers are encrypted under key " + std::to_string(key_id) +
                       ", which the key file lacks");
    read_personal(next, r, i);
  }
  crypto_ = std::move(next);
}

int64_t PgStore::reencrypt_subscribers(int limit) {
  // Rows locked while they are rewritten: an edit another instance makes
  // meanwhile waits, or is passed by now and re-encrypted next time, and
  // is never overwritten with what was read before it.
  auto r = q("SELECT id, key_id, name, phone, email FROM subscribers WHERE key_id <> $1 "
             "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED")
               .bind(static_cast<int64_t>(crypto_.active_key()))
               .bind(limit)
               .rows();
  for (int i = 0; i < r.rows(); ++i) write_personal(r.i64(i, 0), read_personal(crypto_, r, i));
  return r.rows();
}

// Columns: 0 id, 1 key_id, 2 name, 3 phone, 4 email.
PersonalData PgStore::read_personal(const SubscriberCrypto& crypto, const Result& r, int row) {
  return crypto.open(r.i64(row, 0), static_cast<uint32_t>(r.i64(row, 1)), r.bytea(row, 2),
                     r.bytea(row, 3), r.bytea(row, 4));
}

void PgStore::write_personal(int64_t id, const PersonalData& p) {
  SealedPersonal sealed = crypto_.seal(id, p);
  q("UPDATE subscribers SET key_id = $1, name = $2, phone = $3, email = $4, phone_hash = $5, "
    "email_hash = $6 WHERE id = $7")
      .bind(static_cast<int64_t>(sealed.key_id))
      .bind_bytea_or_null(sealed.name)
      .bind_bytea_or_null(sealed.phone)
      .bind_bytea_or_null(sealed.email)
      .bind_bytea_or_null(sealed.phone_hash)
      .bind_bytea_or_null(sealed.email_hash)
      .bind(id)
      .run();
}

}  // namespace tocsin::store::postgresql
