// The console's accounts, sessions, login throttle and drafts, and the audit
// log. Tables: console_users, sessions, login_throttle, drafts, audit.
#include "store/sqlite/sqlite_store.h"

namespace tocsin::store::sqlite {

namespace {

#define CONSOLE_USER_COLUMNS                                                                 \
  "id, name, role, coordinator, pw_hash, totp_secret, totp_last_step, disabled, enrol_hash, " \
  "enrol_expires, created_at"

#define DRAFT_COLUMNS \
  "id, coordinator, author, report_json, state, decided_by, incident_id, created_at, decided_at"

// ---- Console (schema 4) ----
ConsoleUser read_console_user(Stmt& s) {
  ConsoleUser u;
  u.id = s.i64(0);
  u.name = s.text(1);
  u.role = s.text(2);
  u.coordinator = s.text(3);
  u.pw_hash = s.text(4);
  u.totp_secret = s.text(5);
  u.totp_last_step = s.i64(6);
  u.disabled = s.i64(7) != 0;
  u.enrol_hash = s.text(8);
  u.enrol_expires = s.i64(9);
  u.created_at = s.i64(10);
  return u;
}

std::optional<ConsoleUser> one_user(Stmt& s) {
  return first_row(s, read_console_user);
}

Draft read_draft(Stmt& s) {
  Draft d;
  d.id = s.i64(0);
  d.coordinator = s.text(1);
  d.author = s.text(2);
  d.report_json = s.text(3);
  d.state = s.text(4);
  d.decided_by = s.text(5);
  d.incident_id = s.text(6);
  d.created_at = s.i64(7);
  d.decided_at = s.i64(8);
  return d;
}

}  // namespace

int64_t SqliteStore::insert_console_user(const ConsoleUser& u) {
  auto& q = stmt("SELECT 1 FROM console_users WHERE name = ?");
  q.reset().bind(u.name);
  bool taken = q.step();
  q.reset();
  if (taken) return 0;
  stmt("INSERT INTO console_users (name, role, coordinator, pw_hash, totp_secret, "
       "totp_last_step, disabled, enrol_hash, enrol_expires, created_at) "
       "VALUES (?,?,?,?,?,?,?,?,?,?)")
      .reset()
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
      .run();
  return db_.last_insert_id();
}

std::optional<ConsoleUser> SqliteStore::console_user(int64_t id) {
  auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE id = ?");
  s.reset().bind(id);
  return one_user(s);
}

std::optional<ConsoleUser> SqliteStore::console_user_by_name(const std::string& name) {
  auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE name = ?");
  s.reset().bind(name);
  return one_user(s);
}

std::optional<ConsoleUser> SqliteStore::console_user_by_enrol(const std::string& enrol_hash) {
  if (enrol_hash.empty()) return std::nullopt;
  auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE enrol_hash = ?");
  s.reset().bind(enrol_hash);
  return one_user(s);
}

std::vector<ConsoleUser> SqliteStore::console_users() {
  auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users ORDER BY name");
  s.reset();
  return all_rows(s, read_console_user);
}

void SqliteStore::update_console_user(const ConsoleUser& u) {
  stmt("UPDATE console_users SET role = ?, coordinator = ?, pw_hash = ?, totp_secret = ?, "
       "totp_last_step = ?, disabled = ?, enrol_hash = ?, enrol_expires = ? WHERE id = ?")
      .reset()
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

bool SqliteStore::use_totp_step(int64_t user_id, int64_t step) {
  stmt("UPDATE console_users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?")
      .reset()
      .bind(step)
      .bind(user_id)
      .bind(step)
      .run();
  return db_.changes() > 0;
}

void SqliteStore::insert_session(const ConsoleSession& se) {
  stmt("INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) "
       "VALUES (?,?,?,?,?)")
      .reset()
      .bind(se.token_hash)
      .bind(se.user_id)
      .bind(se.csrf)
      .bind(se.created_at)
      .bind(se.last_seen)
      .run();
}

std::optional<ConsoleSession> SqliteStore::session(const std::string& token_hash) {
  auto& s = stmt(
      "SELECT token_hash, user_id, csrf, created_at, last_seen FROM sessions "
      "WHERE token_hash = ?");
  s.reset().bind(token_hash);
  return first_row(s, [](Stmt& r) {
    return ConsoleSession{r.text(0), r.i64(1), r.text(2), r.i64(3), r.i64(4)};
  });
}

void SqliteStore::touch_session(const std::string& token_hash, UnixMs now) {
  stmt("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
      .reset()
      .bind(now)
      .bind(token_hash)
      .run();
}

void SqliteStore::delete_session(const std::string& token_hash) {
  stmt("DELETE FROM sessions WHERE token_hash = ?").reset().bind(token_hash).run();
}

int64_t SqliteStore::delete_user_sessions(int64_t user_id) {
  stmt("DELETE FROM sessions WHERE user_id = ?").reset().bind(user_id).run();
  return db_.changes();
}

std::pair<int64_t, UnixMs> SqliteStore::throttle(const std::string& key) {
  auto& s = stmt("SELECT failures, next_at FROM login_throttle WHERE key = ?");
  s.reset().bind(key);
  std::pair<int64_t, UnixMs> out{0, 0};
  if (s.step()) out = {s.i64(0), s.i64(1)};
  s.reset();
  return out;
}

void SqliteStore::set_throttle(const std::string& key, int64_t failures, UnixMs next_at, UnixMs now) {
  stmt("INSERT INTO login_throttle (key, failures, next_at, updated_at) VALUES (?,?,?,?) "
       "ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, next_at = excluded.next_at, "
       "updated_at = excluded.updated_at")
      .reset()
      .bind(key)
      .bind(failures)
      .bind(next_at)
      .bind(now)
      .run();
}

void SqliteStore::clear_throttle(const std::string& key) {
  stmt("DELETE FROM login_throttle WHERE key = ?").reset().bind(key).run();
}

int64_t SqliteStore::insert_draft(const Draft& d) {
  stmt("INSERT INTO drafts (coordinator, author, report_json, state, decided_by, incident_id, "
       "created_at, decided_at) VALUES (?,?,?,?,?,?,?,?)")
      .reset()
      .bind(d.coordinator)
      .bind(d.author)
      .bind(d.report_json)
      .bind(d.state)
      .bind(d.decided_by)
      .bind(d.incident_id)
      .bind(d.created_at)
      .bind(d.decided_at)
      .run();
  return db_.last_insert_id();
}

std::optional<Draft> SqliteStore::draft(int64_t id) {
  auto& s = stmt("SELECT " DRAFT_COLUMNS " FROM drafts WHERE id = ?");
  s.reset().bind(id);
  return first_row(s, read_draft);
}

std::vector<Draft> SqliteStore::waiting_drafts() {
  auto& s = stmt("SELECT " DRAFT_COLUMNS " FROM drafts WHERE state = 'waiting' ORDER BY id");
  s.reset();
  return all_rows(s, read_draft);
}

void SqliteStore::update_draft(const Draft& d) {
  stmt("UPDATE drafts SET state = ?, decided_by = ?, incident_id = ?, decided_at = ? "
       "WHERE id = ?")
      .reset()
      .bind(d.state)
      .bind(d.decided_by)
      .bind(d.incident_id)
      .bind(d.decided_at)
      .bind(d.id)
      .run();
}

int64_t SqliteStore::insert_audit(const AuditEntry& e) {
  stmt(
      "INSERT INTO audit (at, actor, method, route, object_id, status, count) "
      "VALUES (?,?,?,?,?,?,?)")
      .reset()
      .bind(e.at)
      .bind(e.actor)
      .bind(e.method)
      .bind(e.route)
      .bind(e.object_id)
      .bind(e.status)
      .bind(e.count)
      .run();
  return db_.last_insert_id();
}

std::vector<AuditEntry> SqliteStore::audit_after(int64_t after_id, int limit) {
  auto& s = stmt(
      "SELECT id, at, actor, method, route, object_id, status, count FROM audit WHERE id > ? "
      "ORDER BY id LIMIT ?");
  s.reset().bind(after_id).bind(limit);
  std::vector<AuditEntry> out;
  while (s.step())
    out.push_back({s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.text(5),
                   static_cast<int>(s.i64(6)), s.i64(7)});
  return out;
}

}  // namespace tocsin::store::sqlite
