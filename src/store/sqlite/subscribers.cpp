// Subscribers (their rows, groups, opt-outs, lookups by hash), join by text
// and consents. Tables: subscribers, subscriber_groups, join_requests, consents.
#include "store/sqlite/sqlite_store.h"

#include <algorithm>

namespace tocsin::store::sqlite {

namespace {

// The first five are what read_personal decrypts.
#define SUBSCRIBER_COLUMNS                                                                   \
  "s.id, s.key_id, s.name, s.phone, s.email, s.language, s.sms, s.email_on, s.sms_opted_out, " \
  "s.created_at, s.signal_on, s.voice_on, s.email_opted_out"

int has_channel(const Subscriber& sub, Channel c) {
  return std::find(sub.channels.begin(), sub.channels.end(), c) != sub.channels.end() ? 1 : 0;
}

// Binds the editable plain columns, in this order: language, sms,
// email_on, signal_on, voice_on. Name, phone and email go through write_personal (encrypted).
Stmt& bind_subscriber(Stmt& s, const Subscriber& sub) {
  return s.bind(sub.language)
      .bind(has_channel(sub, Channel::kSms))
      .bind(has_channel(sub, Channel::kEmail))
      .bind(has_channel(sub, Channel::kSignal))
      .bind(has_channel(sub, Channel::kVoice));
}

}  // namespace

int64_t SqliteStore::insert_subscriber(const Subscriber& sub, UnixMs now) {
  // The row id is part of the ciphertexts' associated data, so the
  // personal data is written once the row has its id.
  auto& ins = stmt(
      "INSERT INTO subscribers (key_id, language, sms, email_on, signal_on, voice_on, "
      "sms_opted_out, email_opted_out, created_at) VALUES (0,?,?,?,?,?,?,?,?)")
      .reset();
  bind_subscriber(ins, sub)
      .bind(sub.sms_opted_out ? 1 : 0)
      .bind(sub.email_opted_out ? 1 : 0)
      .bind(now)
      .run();
  int64_t id = db_.last_insert_id();
  insert_groups(id, sub.groups);
  write_personal(id, {sub.name, sub.phone, sub.email});
  return id;
}

std::optional<Subscriber> SqliteStore::subscriber(int64_t id) {
  auto& s = stmt("SELECT " SUBSCRIBER_COLUMNS " FROM subscribers s WHERE s.id = ?");
  s.reset().bind(id);
  if (!s.step()) return std::nullopt;
  Subscriber sub = read_subscriber(s);
  s.reset();
  return sub;
}

bool SqliteStore::update_subscriber(const Subscriber& sub) {
  auto& upd = stmt(
      "UPDATE subscribers SET language=?, sms=?, email_on=?, signal_on=?, voice_on=? WHERE id=?")
      .reset();
  bind_subscriber(upd, sub).bind(sub.id).run();
  if (db_.changes() == 0) return false;
  write_personal(sub.id, {sub.name, sub.phone, sub.email});
  stmt("DELETE FROM subscriber_groups WHERE subscriber_id = ?").reset().bind(sub.id).run();
  insert_groups(sub.id, sub.groups);
  return true;
}

std::vector<Subscriber> SqliteStore::list_subscribers(const std::string& group, int64_t after_id,
                                         int limit) {
  auto& s = group.empty()
                ? stmt("SELECT " SUBSCRIBER_COLUMNS
                       " FROM subscribers s WHERE s.id > ?1 AND ?2 = '' ORDER BY s.id LIMIT ?3")
                : stmt("SELECT " SUBSCRIBER_COLUMNS
                       " FROM subscriber_groups g JOIN subscribers s ON s.id = g.subscriber_id "
                       "WHERE s.id > ?1 AND g.group_name = ?2 ORDER BY s.id LIMIT ?3");
  s.reset().bind(after_id).bind(group).bind(limit);
  std::vector<Subscriber> out;
  while (s.step()) out.push_back(read_subscriber(s));
  return out;
}

bool SqliteStore::delete_subscriber(int64_t id) {
  stmt("UPDATE deliveries SET state = 6, last_error = 'recipient erased' WHERE subscriber_id = ? "
       "AND state = 0")
      .reset()
      .bind(id)
      .run();
  stmt("UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id = ?").reset().bind(id).run();
  stmt("UPDATE acknowledgements SET subscriber_id = 0 WHERE subscriber_id = ?").reset().bind(id).run();
  stmt("DELETE FROM subscribers WHERE id = ?").reset().bind(id).run();
  bool erased = db_.changes() > 0;
  scrub_pending_ = scrub_pending_ || erased;
  return erased;
}

std::vector<int64_t> SqliteStore::subscribers_by_phone(const std::string& e164) {
  if (e164.empty()) return {};
  return ids_by_hash(stmt("SELECT id FROM subscribers WHERE phone_hash = ? ORDER BY id"),
                     crypto_.phone_hash(e164));
}

std::vector<int64_t> SqliteStore::subscribers_by_email(const std::string& email) {
  if (email.empty()) return {};
  return ids_by_hash(stmt("SELECT id FROM subscribers WHERE email_hash = ? ORDER BY id"),
                     crypto_.email_hash(email));
}

int64_t SqliteStore::set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) {
  stmt("UPDATE subscribers SET sms_opted_out = ? WHERE id = ?")
      .reset()
      .bind(opted_out ? 1 : 0)
      .bind(subscriber_id)
      .run();
  if (!opted_out) return 0;
  stmt("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ? WHERE "
       "subscriber_id = ? AND channel <> 1 AND state = 0")
      .reset()
      .bind(now)
      .bind(subscriber_id)
      .run();
  return db_.changes();
}

std::optional<int64_t> SqliteStore::set_email_opt_out(int64_t subscriber_id, UnixMs now) {
  stmt("UPDATE subscribers SET email_opted_out = 1 WHERE id = ?").reset().bind(subscriber_id).run();
  if (db_.changes() == 0) return std::nullopt;
  stmt("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ? WHERE "
       "subscriber_id = ? AND channel = 1 AND state = 0")
      .reset()
      .bind(now)
      .bind(subscriber_id)
      .run();
  return db_.changes();
}

std::optional<std::string> SqliteStore::subscriber_language(int64_t id) {
  auto& s = stmt("SELECT language FROM subscribers WHERE id = ?");
  s.reset().bind(id);
  if (!s.step()) return std::nullopt;
  auto lang = s.text(0);
  s.reset();
  return lang;
}

int64_t SqliteStore::join_prompts_since(const std::string& e164, UnixMs since) {
  auto& s = stmt("SELECT count(*) FROM join_requests WHERE phone_hash = ? AND created_at >= ?");
  s.reset().bind_blob(crypto_.phone_hash(e164)).bind(since);
  int64_t n = s.step() ? s.i64(0) : 0;
  s.reset();
  return n;
}

int64_t SqliteStore::all_join_prompts_since(UnixMs since) {
  auto& s = stmt("SELECT count(*) FROM join_requests WHERE created_at >= ?");
  s.reset().bind(since);
  int64_t n = s.step() ? s.i64(0) : 0;
  s.reset();
  return n;
}

void SqliteStore::insert_join_request(const std::string& e164, const JoinRequest& r) {
  stmt("INSERT INTO join_requests (phone_hash, group_name, language, keyword, message_id, "
       "created_at) VALUES (?,?,?,?,?,?)")
      .reset()
      .bind_blob(crypto_.phone_hash(e164))
      .bind(r.group)
      .bind(r.language)
      .bind(r.keyword)
      .bind(r.provider_message_id)
      .bind(r.created_at)
      .run();
}

std::optional<JoinRequest> SqliteStore::pending_join(const std::string& e164, UnixMs since) {
  auto& s = stmt(
      "SELECT group_name, language, keyword, message_id, created_at FROM join_requests WHERE "
      "phone_hash = ? AND created_at >= ? AND group_name <> '' ORDER BY id DESC LIMIT 1");
  s.reset().bind_blob(crypto_.phone_hash(e164)).bind(since);
  if (!s.step()) return std::nullopt;
  JoinRequest r{s.text(0), s.text(1), s.text(2), s.text(3), s.i64(4)};
  s.reset();
  return r;
}

void SqliteStore::close_join_requests(const std::string& e164) {
  stmt("UPDATE join_requests SET group_name = '', keyword = '', message_id = '' WHERE "
       "phone_hash = ? AND group_name <> ''")
      .reset()
      .bind_blob(crypto_.phone_hash(e164))
      .run();
}

void SqliteStore::insert_consent(const Consent& c) {
  stmt("INSERT INTO consents (subscriber_id, group_name, keyword, request_message_id, "
       "confirm_message_id, requested_at, confirmed_at) VALUES (?,?,?,?,?,?,?)")
      .reset()
      .bind(c.subscriber_id)
      .bind(c.group)
      .bind(c.keyword)
      .bind(c.request_message_id)
      .bind(c.confirm_message_id)
      .bind(c.requested_at)
      .bind(c.confirmed_at)
      .run();
}

std::vector<Consent> SqliteStore::consents(int64_t subscriber_id) {
  auto& s = stmt(
      "SELECT subscriber_id, group_name, keyword, request_message_id, confirm_message_id, "
      "requested_at, confirmed_at FROM consents WHERE subscriber_id = ? ORDER BY id");
  s.reset().bind(subscriber_id);
  std::vector<Consent> out;
  while (s.step())
    out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
  return out;
}

bool SqliteStore::leave_group(int64_t subscriber_id, const std::string& group) {
  stmt("DELETE FROM subscriber_groups WHERE subscriber_id = ? AND group_name = ?")
      .reset()
      .bind(subscriber_id)
      .bind(group)
      .run();
  return db_.changes() > 0;
}

void SqliteStore::insert_groups(int64_t id, const std::vector<std::string>& groups) {
  auto& g =
      stmt("INSERT OR IGNORE INTO subscriber_groups (group_name, subscriber_id) VALUES (?,?)");
  for (const auto& name : groups) g.reset().bind(name).bind(id).run();
}

// The one place a subscriber row (SUBSCRIBER_COLUMNS) becomes a Subscriber,
// with its groups. `s` stays on its row.
Subscriber SqliteStore::read_subscriber(Stmt& s) {
  Subscriber sub;
  sub.id = s.i64(0);
  auto personal = read_personal(crypto_, s);
  sub.name = std::move(personal.name);
  sub.phone = std::move(personal.phone);
  sub.email = std::move(personal.email);
  sub.language = s.text(5);
  if (s.i64(6)) sub.channels.push_back(Channel::kSms);
  if (s.i64(7)) sub.channels.push_back(Channel::kEmail);
  if (s.i64(10)) sub.channels.push_back(Channel::kSignal);
  if (s.i64(11)) sub.channels.push_back(Channel::kVoice);
  sub.sms_opted_out = s.i64(8) != 0;
  sub.created_at = s.i64(9);
  sub.email_opted_out = s.i64(12) != 0;
  auto& g = stmt("SELECT group_name FROM subscriber_groups WHERE subscriber_id = ? ORDER BY 1");
  g.reset().bind(sub.id);
  while (g.step()) sub.groups.push_back(g.text(0));
  g.reset();
  return sub;
}

std::vector<int64_t> SqliteStore::ids_by_hash(Stmt& s, const std::string& hash) {
  s.reset().bind_blob(hash);
  return all_rows(s, [](Stmt& r) { return r.i64(0); });
}

}  // namespace tocsin::store::sqlite
