// The console's accounts, sessions, login throttle and drafts, and the audit
// log. Tables: console_users, sessions, login_throttle, drafts, audit.
#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

namespace {

#define CONSOLE_USER_COLUMNS                                                                 \
  "id, name, role, coordinator, pw_hash, totp_secret, totp_last_step, disabled, enrol_hash, " \
  "enrol_expires, created_at"

#define DRAFT_COLUMNS \
  "id, coordinator, author, report_json, state, decided_by, incident_id, created_at, decided_at"

ConsoleUser read_console_user(const Result& r, int i) {
  ConsoleUser u;
  u.id = r.i64(i, 0);
  u.name = r.text(i, 1);
  u.role = r.text(i, 2);
  u.coordinator = r.text(i, 3);
  u.pw_hash = r.text(i, 4);
  u.totp_secret = r.text(i, 5);
  u.totp_last_step = r.i64(i, 6);
  u.disabled = r.i64(i, 7) != 0;
  u.enrol_hash = r.text(i, 8);
  u.enrol_expires = r.i64(i, 9);
  u.created_at = r.i64(i, 10);
  return u;
}

std::optional<ConsoleUser> one_user(const Result& r) {
  if (!r.rows()) return std::nullopt;
  return read_console_user(r, 0);
}

Draft read_draft(const Result& r, int i) {
  Draft d;
  d.id = r.i64(i, 0);
  d.coordinator = r.text(i, 1);
  d.author = r.text(i, 2);
  d.report_json = r.text(i, 3);
  d.state = r.text(i, 4);
  d.decided_by = r.text(i, 5);
  d.incident_id = r.text(i, 6);
  d.created_at = r.i64(i, 7);
  d.decided_at = r.i64(i, 8);
  return d;
}

}  // namespace

int64_t PgStore::insert_console_user(const ConsoleUser& u) {
  // A taken name (UNIQUE) inserts nothing and returns no id.
  auto r = q("INSERT INTO console_users (name, role, coordinator, pw_hash, totp_secret, "
             "totp_last_step, disabled, enrol_hash, enrol_expires, created_at) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
             "ON CONFLICT (name) DO NOTHING RETURNING id")
               .bind(u.name)
               .bind(u.role)
               .bind(u.coordinator)
               .bind(u.pw_hash)
               .bind(u.totp_secret)
               .bind(u.totp_last_step)
               .bind(u.disabled ? 1 : 0)
               .bind(u.enrol_hash)
               .bind(u.enrol_expires)
               .bind(u.created_at)
               .rows();
  return r.rows() ? r.i64(0, 0) : 0;
}

std::optional<ConsoleUser> PgStore::console_user(int64_t id) {
  return one_user(q("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE id = $1").bind(id).rows());
}

std::optional<ConsoleUser> PgStore::console_user_by_name(const std::string& name) {
  return one_user(
      q("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE name = $1").bind(name).rows());
}

std::optional<ConsoleUser> PgStore::console_user_by_enrol(const std::string& enrol_hash) {
  if (enrol_hash.empty()) return std::nullopt;
  return one_user(q("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE enrol_hash = $1")
                      .bind(enrol_hash)
                      .rows());
}

std::vector<ConsoleUser> PgStore::console_users() {
  auto r = q("SELECT " CONSOLE_USER_COLUMNS " FROM console_users ORDER BY name COLLATE \"C\"").rows();
  std::vector<ConsoleUser> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_console_user(r, i));
  return out;
}

void PgStore::update_console_user(const ConsoleUser& u) {
  q("UPDATE console_users SET role = $1, coordinator = $2, pw_hash = $3, totp_secret = $4, "
    "totp_last_step = $5, disabled = $6, enrol_hash = $7, enrol_expires = $8 WHERE id = $9")
      .bind(u.role)
      .bind(u.coordinator)
      .bind(u.pw_hash)
      .bind(u.totp_secret)
      .bind(u.totp_last_step)
      .bind(u.disabled ? 1 : 0)
      .bind(u.enrol_hash)
      .bind(u.enrol_expires)
      .bind(u.id)
      .run();
}

bool PgStore::use_totp_step(int64_t user_id, int64_t step) {
  // One statement: two instances given the same code at once let one in.
  return q("UPDATE console_users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1")
             .bind(step)
             .bind(user_id)
             .run() > 0;
}

void PgStore::insert_session(const ConsoleSession& se) {
  q("INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) "
    "VALUES ($1, $2, $3, $4, $5)")
      .bind(se.token_hash)
      .bind(se.user_id)
      .bind(se.csrf)
      .bind(se.created_at)
      .bind(se.last_seen)
      .run();
}

std::optional<ConsoleSession> PgStore::session(const std::string& token_hash) {
  auto r = q("SELECT token_hash, user_id, csrf, created_at, last_seen FROM sessions "
             "WHERE token_hash = $1")
               .bind(token_hash)
               .rows();
  if (!r.rows()) return std::nullopt;
  return ConsoleSession{r.text(0, 0), r.i64(0, 1), r.text(0, 2), r.i64(0, 3), r.i64(0, 4)};
}

void PgStore::touch_session(const std::string& token_hash, UnixMs now) {
  q("UPDATE sessions SET last_seen = $1 WHERE token_hash = $2").bind(now).bind(token_hash).run();
}

void PgStore::delete_session(const std::string& token_hash) {
  q("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).run();
}

int64_t PgStore::delete_user_sessions(int64_t user_id) {
  return q("DELETE FROM sessions WHERE user_id = $1").bind(user_id).run();
}

std::pair<int64_t, UnixMs> PgStore::throttle(const std::string& key) {
  auto r = q("SELECT failures, next_at FROM login_throttle WHERE key = $1").bind(key).rows();
  if (!r.rows()) return {0, 0};
  return {r.i64(0, 0), r.i64(0, 1)};
}

void PgStore::set_throttle(const std::string& key, int64_t failures, UnixMs next_at, UnixMs now) {
  q("INSERT INTO login_throttle (key, failures, next_at, updated_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, next_at = excluded.next_at, "
    "updated_at = excluded.updated_at")
      .bind(key)
      .bind(failures)
      .bind(next_at)
      .bind(now)
      .run();
}

void PgStore::clear_throttle(const std::string& key) {
  q("DELETE FROM login_throttle WHERE key = $1").bind(key).run();
}

int64_t PgStore::insert_draft(const Draft& d) {
  return q("INSERT INTO drafts (coordinator, author, report_json, state, decided_by, "
           "incident_id, created_at, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
           "RETURNING id")
      .bind(d.coordinator)
      .bind(d.author)
      .bind(d.report_json)
      .bind(d.state)
      .bind(d.decided_by)
      .bind(d.incident_id)
      .bind(d.created_at)
      .bind(d.decided_at)
      .rows()
      .i64(0, 0);
}

std::optional<Draft> PgStore::draft(int64_t id) {
  auto r = q("SELECT " DRAFT_COLUMNS " FROM drafts WHERE id = $1").bind(id).rows();
  if (!r.rows()) return std::nullopt;
  return read_draft(r, 0);
}

std::vector<Draft> PgStore::waiting_drafts() {
  auto r = q("SELECT " DRAFT_COLUMNS " FROM drafts WHERE state = 'waiting' ORDER BY id").rows();
  std::vector<Draft> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_draft(r, i));
  return out;
}

void PgStore::update_draft(const Draft& d) {
  q("UPDATE drafts SET state = $1, decided_by = $2, incident_id = $3, decided_at = $4 "
    "WHERE id = $5")
      .bind(d.state)
      .bind(d.decided_by)
      .bind(d.incident_id)
      .bind(d.decided_at)
      .bind(d.id)
      .run();
}

int64_t PgStore::insert_audit(const AuditEntry& e) {
  return q("INSERT INTO audit (at, actor, method, route, object_id, status, count) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
      .bind(e.at)
      .bind(e.actor)
      .bind(e.method)
      .bind(e.route)
      .bind(e.object_id)
      .bind(e.status)
      .bind(e.count)
      .rows()
      .i64(0, 0);
}

std::vector<AuditEntry> PgStore::audit_after(int64_t after_id, int limit) {
  auto r = q("SELECT id, at, actor, method, route, object_id, status, count FROM audit "
             "WHERE id > $1 ORDER BY id LIMIT $2")
               .bind(after_id)
               .bind(limit)
               .rows();
  std::vector<AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.i64(i, 0), r.i64(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                   r.text(i, 5), static_cast<int>(r.i64(i, 6)), r.i64(i, 7)});
  return out;
}

}  // namespace tocsin::store::postgresql
