// Subscribers (their rows, groups, opt-outs, lookups by hash), join by text
// and consents. Tables: subscribers, subscriber_groups, join_requests, consents.
#include <algorithm>

#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

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
Query& bind_subscriber(Query& q, const Subscriber& sub) {
  return q.bind(sub.language)
      .bind(has_channel(sub, Channel::kSms))
      .bind(has_channel(sub, Channel::kEmail))
      .bind(has_channel(sub, Channel::kSignal))
      .bind(has_channel(sub, Channel::kVoice));
}

std::vector<int64_t> ids(const Result& r) {
  std::vector<int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.i64(i, 0));
  return out;
}

}  // namespace

int64_t PgStore::insert_subscriber(const Subscriber& sub, UnixMs now) {
  // The row id is part of the ciphertexts' associated data, so the
  // personal data is written once the row has its id.
  auto ins = q("INSERT INTO subscribers (key_id, language, sms, email_on, signal_on, voice_on, "
               "sms_opted_out, email_opted_out, created_at) VALUES (0, $1, $2, $3, $4, $5, $6, "
               "$7, $8) RETURNING id");
  int64_t id = bind_subscriber(ins, sub)
                   .bind(sub.sms_opted_out ? 1 : 0)
                   .bind(sub.email_opted_out ? 1 : 0)
                   .bind(now)
                   .rows()
                   .i64(0, 0);
  insert_groups(id, sub.groups);
  write_personal(id, {sub.name, sub.phone, sub.email});
  return id;
}

std::optional<Subscriber> PgStore::subscriber(int64_t id) {
  auto r = q("SELECT " SUBSCRIBER_COLUMNS " FROM subscribers s WHERE s.id = $1").bind(id).rows();
  if (!r.rows()) return std::nullopt;
  return read_subscriber(r, 0);
}

bool PgStore::update_subscriber(const Subscriber& sub) {
  auto upd = q("UPDATE subscribers SET language = $1, sms = $2, email_on = $3, signal_on = $4, "
               "voice_on = $5 WHERE id = $6");
  if (bind_subscriber(upd, sub).bind(sub.id).run() == 0) return false;
  write_personal(sub.id, {sub.name, sub.phone, sub.email});
  q("DELETE FROM subscriber_groups WHERE subscriber_id = $1").bind(sub.id).run();
  insert_groups(sub.id, sub.groups);
  return true;
}

std::vector<Subscriber> PgStore::list_subscribers(const std::string& group, int64_t after_id,
                                                  int limit) {
  auto r = q(group.empty()
                 ? "SELECT " SUBSCRIBER_COLUMNS
                   " FROM subscribers s WHERE s.id > $1 AND $2 = '' ORDER BY s.id LIMIT $3"
                 : "SELECT " SUBSCRIBER_COLUMNS
                   " FROM subscriber_groups g JOIN subscribers s ON s.id = g.subscriber_id "
                   "WHERE s.id > $1 AND g.group_name = $2 ORDER BY s.id LIMIT $3")
               .bind(after_id)
               .bind(group)
               .bind(limit)
               .rows();
  std::vector<Subscriber> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_subscriber(r, i));
  return out;
}

bool PgStore::delete_subscriber(int64_t id) {
  // PostgreSQL has no secure_delete: the deleted row versions stay in the
  // table's pages until VACUUM (autovacuum) reuses them, and in the WAL,
  // replicas and backups for as long as those are kept (README).
  q("UPDATE deliveries SET state = 6, last_error = 'recipient erased' WHERE subscriber_id = $1 "
    "AND state = 0")
      .bind(id)
      .run();
  q("UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id = $1").bind(id).run();
  q("UPDATE acknowledgements SET subscriber_id = 0 WHERE subscriber_id = $1").bind(id).run();
  return q("DELETE FROM subscribers WHERE id = $1").bind(id).run() > 0;
}

std::vector<int64_t> PgStore::subscribers_by_phone(const std::string& e164) {
  if (e164.empty()) return {};
  return ids(q("SELECT id FROM subscribers WHERE phone_hash = $1 ORDER BY id")
                 .bind_bytea(crypto_.phone_hash(e164))
                 .rows());
}

std::vector<int64_t> PgStore::subscribers_by_email(const std::string& email) {
  if (email.empty()) return {};
  return ids(q("SELECT id FROM subscribers WHERE email_hash = $1 ORDER BY id")
                 .bind_bytea(crypto_.email_hash(email))
                 .rows());
}

int64_t PgStore::set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) {
  q("UPDATE subscribers SET sms_opted_out = $1 WHERE id = $2")
      .bind(opted_out ? 1 : 0)
      .bind(subscriber_id)
      .run();
  if (!opted_out) return 0;
  // Every instance's pending deliveries to the number, leased or not: an
  // instance whose lease this is sends what it holds already, nothing more.
  return q("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = $1 WHERE "
           "subscriber_id = $2 AND channel <> 1 AND state = 0")
      .bind(now)
      .bind(subscriber_id)
      .run();
}

std::optional<int64_t> PgStore::set_email_opt_out(int64_t subscriber_id, UnixMs now) {
  if (q("UPDATE subscribers SET email_opted_out = 1 WHERE id = $1").bind(subscriber_id).run() == 0)
    return std::nullopt;
  return q("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = $1 WHERE "
           "subscriber_id = $2 AND channel = 1 AND state = 0")
      .bind(now)
      .bind(subscriber_id)
      .run();
}

std::optional<std::string> PgStore::subscriber_language(int64_t id) {
  auto r = q("SELECT language FROM subscribers WHERE id = $1").bind(id).rows();
  if (!r.rows()) return std::nullopt;
  return r.text(0, 0);
}

int64_t PgStore::join_prompts_since(const std::string& e164, UnixMs since) {
  // The limits' check and the insert that follows take turns across
  // instances (see the interface); one lock for both limits, since the
  // network-wide one counts every number.
  db_.xact_lock(lock_key("join prompts"));
  return q("SELECT count(*) FROM join_requests WHERE phone_hash = $1 AND created_at >= $2")
      .bind_bytea(crypto_.phone_hash(e164))
      .bind(since)
      .rows()
      .i64(0, 0);
}

int64_t PgStore::all_join_prompts_since(UnixMs since) {
  return q("SELECT count(*) FROM join_requests WHERE created_at >= $1").bind(since).rows().i64(0, 0);
}

void PgStore::insert_join_request(const std::string& e164, const JoinRequest& r) {
  q("INSERT INTO join_requests (phone_hash, group_name, language, keyword, message_id, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6)")
      .bind_bytea(crypto_.phone_hash(e164))
      .bind(r.group)
      .bind(r.language)
      .bind(r.keyword)
      .bind(r.provider_message_id)
      .bind(r.created_at)
      .run();
}

std::optional<JoinRequest> PgStore::pending_join(const std::string& e164, UnixMs since) {
  auto r = q("SELECT group_name, language, keyword, message_id, created_at FROM join_requests "
             "WHERE phone_hash = $1 AND created_at >= $2 AND group_name <> '' "
             "ORDER BY id DESC LIMIT 1")
               .bind_bytea(crypto_.phone_hash(e164))
               .bind(since)
               .rows();
  if (!r.rows()) return std::nullopt;
  return JoinRequest{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.text(0, 3), r.i64(0, 4)};
}

void PgStore::close_join_requests(const std::string& e164) {
  q("UPDATE join_requests SET group_name = '', keyword = '', message_id = '' WHERE "
    "phone_hash = $1 AND group_name <> ''")
      .bind_bytea(crypto_.phone_hash(e164))
      .run();
}

void PgStore::insert_consent(const Consent& c) {
  q("INSERT INTO consents (subscriber_id, group_name, keyword, request_message_id, "
    "confirm_message_id, requested_at, confirmed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
      .bind(c.subscriber_id)
      .bind(c.group)
      .bind(c.keyword)
      .bind(c.request_message_id)
      .bind(c.confirm_message_id)
      .bind(c.requested_at)
      .bind(c.confirmed_at)
      .run();
}

std::vector<Consent> PgStore::consents(int64_t subscriber_id) {
  auto r = q("SELECT subscriber_id, group_name, keyword, request_message_id, confirm_message_id, "
             "requested_at, confirmed_at FROM consents WHERE subscriber_id = $1 ORDER BY id")
               .bind(subscriber_id)
               .rows();
  std::vector<Consent> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.i64(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                   r.i64(i, 5), r.i64(i, 6)});
  return out;
}

bool PgStore::leave_group(int64_t subscriber_id, const std::string& group) {
  return q("DELETE FROM subscriber_groups WHERE subscriber_id = $1 AND group_name = $2")
             .bind(subscriber_id)
             .bind(group)
             .run() > 0;
}

void PgStore::insert_groups(int64_t id, const std::vector<std::string>& groups) {
  for (const auto& name : groups)
    q("INSERT INTO subscriber_groups (group_name, subscriber_id) VALUES ($1, $2) "
      "ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(id)
        .run();
}

// The one place a subscriber row (SUBSCRIBER_COLUMNS) becomes a Subscriber,
// with its groups.
Subscriber PgStore::read_subscriber(const Result& r, int row) {
  Subscriber sub;
  sub.id = r.i64(row, 0);
  auto personal = read_personal(crypto_, r, row);
  sub.name = std::move(personal.name);
  sub.phone = std::move(personal.phone);
  sub.email = std::move(personal.email);
  sub.language = r.text(row, 5);
  if (r.i64(row, 6)) sub.channels.push_back(Channel::kSms);
  if (r.i64(row, 7)) sub.channels.push_back(Channel::kEmail);
  if (r.i64(row, 10)) sub.channels.push_back(Channel::kSignal);
  if (r.i64(row, 11)) sub.channels.push_back(Channel::kVoice);
  sub.sms_opted_out = r.i64(row, 8) != 0;
  sub.created_at = r.i64(row, 9);
  sub.email_opted_out = r.i64(row, 12) != 0;
  auto g = q("SELECT group_name FROM subscriber_groups WHERE subscriber_id = $1 "
             "ORDER BY group_name COLLATE \"C\"")
               .bind(sub.id)
               .rows();
  for (int i = 0; i < g.rows(); ++i) sub.groups.push_back(g.text(i, 0));
  return sub;
}

}  // namespace tocsin::store::postgresql
