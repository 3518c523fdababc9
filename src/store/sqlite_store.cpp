// The embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, so a COMMIT has reached the disk before tocsin answers 202.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/dedup.h"
#include "store/keyring.h"
#include "store/store.h"

namespace tocsin::store {
namespace {

// kSchema is schema 1, the first release's (it was changed in place before
// that). Every later change is a migration (kMigrations below), applied in
// order to a database of an older version; a new database gets kSchema and
// all of them.
constexpr int kSchemaVersion = 5;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- First answer to each (coordinator, webhook-id), replayed to repeats.
CREATE TABLE IF NOT EXISTS idempotency (
  coordinator TEXT NOT NULL, webhook_id TEXT NOT NULL,
  status INTEGER NOT NULL, answer TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (coordinator, webhook_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at);

CREATE TABLE IF NOT EXISTS incidents (
  id TEXT PRIMARY KEY, event TEXT NOT NULL, area TEXT NOT NULL,
  lat REAL, lon REAL, location TEXT NOT NULL DEFAULT '', dedup_key TEXT NOT NULL DEFAULT '',
  severity INTEGER NOT NULL, status TEXT NOT NULL, open INTEGER NOT NULL,
  opened_at INTEGER NOT NULL, last_report_at INTEGER NOT NULL, closed_at INTEGER NOT NULL DEFAULT 0,
  report_count INTEGER NOT NULL, spread_m REAL NOT NULL DEFAULT 0) WITHOUT ROWID;
-- Dedup reads only the open incidents a report could join: by place (a band
-- of latitude, then longitude: see LAT_BAND), by area, by dedup_key.
DROP INDEX IF EXISTS incidents_open_event;
CREATE INDEX IF NOT EXISTS incidents_open_place
  ON incidents (event, CAST((lat + 90) * 100 AS INTEGER), lon, lat) WHERE open = 1 AND lat IS NOT NULL;
CREATE INDEX IF NOT EXISTS incidents_open_area ON incidents (event, area, lat, last_report_at)
  WHERE open = 1;
CREATE INDEX IF NOT EXISTS incidents_open_key ON incidents (dedup_key, last_report_at)
  WHERE open = 1 AND dedup_key <> '';
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at);

CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, coordinator TEXT NOT NULL,
  webhook_id TEXT NOT NULL, msg_type TEXT NOT NULL, outcome TEXT NOT NULL,
  status TEXT NOT NULL, event TEXT NOT NULL, severity TEXT NOT NULL, area TEXT NOT NULL,
  body TEXT NOT NULL, received_at INTEGER NOT NULL, recipients INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS reports_incident ON reports (incident_id);

-- Personal data lives only here (and is erased by DELETE /v1/subscribers/{id}),
-- encrypted (README "Privacy"): name, phone and email are XChaCha20-Poly1305
-- nonce || ciphertext || tag under key `key_id` of the key file, bound to
-- the column and row id, NULL when absent; phone_hash and email_hash are
-- keyed BLAKE2b hashes for lookups. AUTOINCREMENT: an erased subscriber's id
-- is never given to someone else (deliveries and acknowledgements name ids).
CREATE TABLE IF NOT EXISTS subscribers (
  id INTEGER PRIMARY KEY AUTOINCREMENT, key_id INTEGER NOT NULL,
  name BLOB, phone BLOB, email BLOB, phone_hash BLOB, email_hash BLOB,
  language TEXT NOT NULL, sms INTEGER NOT NULL, email_on INTEGER NOT NULL,
  sms_opted_out INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  signal_on INTEGER NOT NULL DEFAULT 0, voice_on INTEGER NOT NULL DEFAULT 0,
  email_opted_out INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS subscribers_phone ON subscribers (phone_hash) WHERE phone_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS subscribers_email ON subscribers (email_hash) WHERE email_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS subscribers_key ON subscribers (key_id);
CREATE TABLE IF NOT EXISTS subscriber_groups (
  group_name TEXT NOT NULL, subscriber_id INTEGER NOT NULL REFERENCES subscribers ON DELETE CASCADE,
  PRIMARY KEY (group_name, subscriber_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subscriber_groups_sub ON subscriber_groups (subscriber_id);

-- Rendered text, one row per (report, channel, language): recipients share it.
CREATE TABLE IF NOT EXISTS messages (
  report_id INTEGER NOT NULL, channel INTEGER NOT NULL, language TEXT NOT NULL,
  subject TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (report_id, channel, language)) WITHOUT ROWID;

-- One row per (report, recipient, channel): the unit of at-least-once delivery.
-- subscriber_id is NULL once the subscriber was erased. Rows are deleted
-- after retention.deliveries_days, their counts kept in delivery_totals.
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY, report_id INTEGER NOT NULL, incident_id TEXT NOT NULL,
  subscriber_id INTEGER, channel INTEGER NOT NULL, language TEXT NOT NULL,
  state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL, lease_until INTEGER NOT NULL DEFAULT 0,
  deadline_at INTEGER NOT NULL, gateway TEXT NOT NULL DEFAULT '',
  provider_id TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  UNIQUE (report_id, subscriber_id, channel));
-- Claimable when both due and unleased: ordered by the later of the two, a
-- claim reads only claimable rows (never skips the leased ones at gateways)
-- and the next due time is the first entry. Expiry reads only rows past
-- their deadline. (deliveries_due, the older index, read every pending row.)
DROP INDEX IF EXISTS deliveries_due;
CREATE INDEX IF NOT EXISTS deliveries_claimable
  ON deliveries (channel, max(next_attempt_at, lease_until), id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS deliveries_deadline ON deliveries (channel, deadline_at) WHERE state = 0;
CREATE INDEX IF NOT EXISTS deliveries_incident ON deliveries (incident_id, channel);
CREATE INDEX IF NOT EXISTS deliveries_subscriber ON deliveries (subscriber_id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS deliveries_subscriber_all ON deliveries (subscriber_id, channel, id);
CREATE INDEX IF NOT EXISTS deliveries_provider ON deliveries (provider_id) WHERE provider_id <> '';
CREATE INDEX IF NOT EXISTS deliveries_report_pending ON deliveries (report_id, channel) WHERE state = 0;

-- Counts of deliveries deleted by retention, by incident, gateway, channel, state.
CREATE TABLE IF NOT EXISTS delivery_totals (
  incident_id TEXT NOT NULL, gateway TEXT NOT NULL, channel INTEGER NOT NULL,
  state INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (incident_id, gateway, channel, state)) WITHOUT ROWID;

-- Replies to alerts, by kind only: the text is not kept.
CREATE TABLE IF NOT EXISTS acknowledgements (
  id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, subscriber_id INTEGER NOT NULL,
  kind TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS acknowledgements_incident ON acknowledgements (incident_id);

-- Admin actions: who, what, when, outcome; ids and counts, never personal data.
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, method TEXT NOT NULL,
  route TEXT NOT NULL, object_id TEXT NOT NULL, status INTEGER NOT NULL, count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);

-- Join by text: each confirmation prompt sent (they count against the abuse
-- limits), by the number's keyed hash; group_name is '' once confirmed or
-- left. Kept two days (the limits look back one).
CREATE TABLE IF NOT EXISTS join_requests (
  id INTEGER PRIMARY KEY, phone_hash BLOB NOT NULL, group_name TEXT NOT NULL,
  language TEXT NOT NULL, keyword TEXT NOT NULL, message_id TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS join_requests_phone ON join_requests (phone_hash, created_at);
CREATE INDEX IF NOT EXISTS join_requests_at ON join_requests (created_at);
-- Proof of consent of self-service subscribers: ids and times, never texts.
-- Erased with the subscriber.
CREATE TABLE IF NOT EXISTS consents (
  id INTEGER PRIMARY KEY,
  subscriber_id INTEGER NOT NULL REFERENCES subscribers ON DELETE CASCADE,
  group_name TEXT NOT NULL, keyword TEXT NOT NULL, request_message_id TEXT NOT NULL,
  confirm_message_id TEXT NOT NULL, requested_at INTEGER NOT NULL, confirmed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS consents_subscriber ON consents (subscriber_id);
)sql";

// Schema 4 (a migration from 3): the console's accounts, sessions, login throttle and drafts.
constexpr const char* kConsoleSchema = R"sql(
CREATE TABLE IF NOT EXISTS console_users (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
  coordinator TEXT NOT NULL, pw_hash TEXT NOT NULL, totp_secret TEXT NOT NULL,
  totp_last_step INTEGER NOT NULL, disabled INTEGER NOT NULL, enrol_hash TEXT NOT NULL,
  enrol_expires INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS console_users_enrol ON console_users (enrol_hash);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, csrf TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS login_throttle (
  key TEXT PRIMARY KEY, failures INTEGER NOT NULL, next_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS drafts (
  id INTEGER PRIMARY KEY, coordinator TEXT NOT NULL, author TEXT NOT NULL,
  report_json TEXT NOT NULL, state TEXT NOT NULL, decided_by TEXT NOT NULL,
  incident_id TEXT NOT NULL, created_at INTEGER NOT NULL, decided_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS drafts_state ON drafts (state);
)sql";

#define CONSOLE_USER_COLUMNS                                                                 \
  "id, name, role, coordinator, pw_hash, totp_secret, totp_last_step, disabled, enrol_hash, " \
  "enrol_expires, created_at"
#define DRAFT_COLUMNS \
  "id, coordinator, author, report_json, state, decided_by, incident_id, created_at, decided_at"

// Migrations: kMigrations[i] takes a database from version i + 1 to i + 2.
// Released versions are never edited; a change is a new entry.
constexpr const char* kMigrations[] = {
    // 1 → 2: safety rules (README "Safety rules"): each report's certainty;
    // where each group stands with an incident (held or sent, covered);
    // escalation timers (state 0 pending, then a TimerEnd); the timeline of
    // those steps.
    R"sql(
ALTER TABLE reports ADD COLUMN certainty INTEGER NOT NULL DEFAULT 4;
CREATE TABLE IF NOT EXISTS incident_groups (
  incident_id TEXT NOT NULL, group_name TEXT NOT NULL, state TEXT NOT NULL,
  via TEXT NOT NULL DEFAULT '', waiting TEXT NOT NULL DEFAULT '',
  held_at INTEGER NOT NULL DEFAULT 0, sent_at INTEGER NOT NULL DEFAULT 0,
  covered_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (incident_id, group_name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS escalations (
  incident_id TEXT NOT NULL, group_name TEXT NOT NULL, sent_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, ended_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (incident_id, group_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS escalations_due ON escalations (due_at) WHERE state = 0;
CREATE TABLE IF NOT EXISTS safety_events (
  id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, at INTEGER NOT NULL, what TEXT NOT NULL,
  group_name TEXT NOT NULL, detail TEXT NOT NULL, recipients INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS safety_events_incident ON safety_events (incident_id);
)sql",
    // 2 → 3: provider callbacks remembered, so that a replayed one changes nothing.
    R"sql(
CREATE TABLE IF NOT EXISTS provider_events (
  provider TEXT NOT NULL, event_id TEXT NOT NULL, received_at INTEGER NOT NULL,
  PRIMARY KEY (provider, event_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provider_events_received ON provider_events (received_at);
)sql",
    // 3 → 4: the console's accounts, sessions, login throttle and drafts.
    kConsoleSchema,
    // 4 → 5: the console person who sent a report ('' for a webhook's), so
    // that corroboration counts people (core/safety.h evidence_of).
    "ALTER TABLE reports ADD COLUMN person TEXT NOT NULL DEFAULT '';",
};
static_assert(std::size(kMigrations) == kSchemaVersion - 1);

// Outcomes of the reports a coordinator sent (the others are rows tocsin
// adds to carry the texts of a release, an escalation or a "covered").
#define COORDINATOR_OUTCOMES "('new_incident', 'merged', 'update', 'cancel')"

// The first five are what read_personal decrypts.
#define SUBSCRIBER_COLUMNS                                                                   \
  "s.id, s.key_id, s.name, s.phone, s.email, s.language, s.sms, s.email_on, s.sms_opted_out, " \
  "s.created_at, s.signal_on, s.voice_on, s.email_opted_out"
// The 0.01-degree (1.1 km) band of latitude an incident's place lies in, as
// the incidents_open_place index has it (the expression must match verbatim).
#define LAT_BAND "CAST((lat + 90) * 100 AS INTEGER)"
#define INCIDENT_COLUMNS                                                                \
  "id, event, area, lat, lon, location, dedup_key, severity, status, open, opened_at, " \
  "last_report_at, closed_at, report_count, spread_m"
// A subscriber is reachable on channel CH (0 sms, 1 email, 2 signal, 3 voice)
// when subscribed to it, has the address and has not opted out: STOP to the
// alert number (sms_opted_out) stops everything sent to that number (SMS,
// Signal, calls); the email link (or a bounce) stops email.
#define REACHABLE_ON(CH)                                                                        \
  "((" CH " <> 1 AND s.phone IS NOT NULL AND s.sms_opted_out = 0 AND ((" CH " = 0 AND s.sms = " \
  "1) OR (" CH " = 2 AND s.signal_on = 1) OR (" CH " = 3 AND s.voice_on = 1))) OR (" CH         \
  " = 1 AND s.email_on = 1 AND s.email IS NOT NULL AND s.email_opted_out = 0))"

// The head of every statement that plans deliveries: one pending row per
// (report, subscriber, channel), bound ?1 report, ?2 incident, ?3 channel,
// ?4 now, ?5 deadline.
#define PLAN_INSERT                                                                      \
  "INSERT OR IGNORE INTO deliveries (report_id, incident_id, subscriber_id, channel, "  \
  "language, state, next_attempt_at, deadline_at, created_at, updated_at) "
// ...for the members of group ?6 reachable on ?3 (plan_each binds ?6).
#define PLAN_GROUP_MEMBERS                                                                \
  PLAN_INSERT                                                                             \
  "SELECT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM subscriber_groups g "      \
  "JOIN subscribers s ON s.id = g.subscriber_id WHERE g.group_name = ?6 AND " REACHABLE_ON( \
      "?3")

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw StoreError(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    next_ = 1;
    return *this;
  }
  Stmt& bind(int64_t v) {
    sqlite3_bind_int64(stmt_, next_++, v);
    return *this;
  }
  Stmt& bind(int v) { return bind(static_cast<int64_t>(v)); }
  Stmt& bind(double v) {
    sqlite3_bind_double(stmt_, next_++, v);
    return *this;
  }
  Stmt& bind(const std::string& v) {
    sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(std::string_view v) {
    sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(const char* v) { return bind(std::string_view(v)); }
  Stmt& bind_blob(std::string_view v) {
    sqlite3_bind_blob(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // A blob, or NULL for "" (an absent phone, email or name).
  Stmt& bind_blob_or_null(std::string_view v) { return v.empty() ? bind_null() : bind_blob(v); }
  Stmt& bind_null() {
    sqlite3_bind_null(stmt_, next_++);
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_reset(stmt_);
    throw StoreError("step: " + msg);
  }
  void run() {
    while (step()) {
    }
  }
  int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double f64(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string blob(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int next_ = 1;
};

// Process-wide SQLite settings, before the first connection opens. Debian's
// SQLite is built without lookaside memory, so every statement step mallocs
// through SQLite's allocator: with memory statistics on (the default), each
// of those ~100 calls per report takes a global mutex. tocsin never reads
// the statistics. Too late (SQLITE_MISUSE) if something in the process used
// SQLite first, as some tests do; that changes only the speed.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::string& path, std::shared_ptr<const Keyring> keyring, bool read_only = false,
              bool take_lock = true) {
    configure_sqlite_once();
    bool memory = path.empty() || path == ":memory:";
    if (read_only) {
      if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
          SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        throw StoreError("cannot open " + path + " read-only: " + msg);
      }
      exec("PRAGMA busy_timeout=5000");
      return;
    }
    if (!memory && take_lock) {
      auto dir = std::filesystem::path(path).parent_path();
      std::error_code ec;
      if (!dir.empty()) std::filesystem::create_directories(dir, ec);
      lock_fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (lock_fd_ < 0) throw StoreError("cannot open lock file " + path + ".lock");
      if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        throw StoreLocked("another tocsin process is using " + path);
      }
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(memory ? ":memory:" : path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      if (lock_fd_ >= 0) ::close(lock_fd_);
      throw StoreError("cannot open " + path + ": " + msg);
    }
    if (!memory) ::chmod(path.c_str(), 0600);  // it holds phone numbers
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    exec("PRAGMA busy_timeout=5000");
    exec("PRAGMA temp_store=MEMORY");
    exec("PRAGMA cache_size=-16000");  // 16 MB
    // Deleted content is overwritten with zeros, so an erased subscriber or
    // a purged message leaves no bytes behind in the file (see scrub()).
    exec("PRAGMA secure_delete=ON");
    try {
      migrate();
      set_keyring(std::move(keyring));
    } catch (...) {
      stmts_.clear();
      sqlite3_close(db_);
      if (lock_fd_ >= 0) ::close(lock_fd_);
      throw;
    }
  }

  ~SqliteStore() override {
    stmts_.clear();
    sqlite3_close(db_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  // Waits up to busy_timeout (5 s) for a write lock another connection
  // holds, then fails (the jobs answer 503 + Retry-After). SQLite calls the
  // busy handler only for a connection that has no transaction at all: one
  // still in a read transaction gets SQLITE_BUSY at once, since upgrading it
  // to a writer might deadlock. A statement that returned a row and was not
  // reset (fanout_progress's EXISTS, pending_count, a lookup returning its
  // one row) keeps the connection in such a read transaction past COMMIT,
  // so the next BEGIN IMMEDIATE failed in ~1 ms ("database is locked")
  // whenever another process held the lock. Hence: end those reads first.
  //
  // begin, commit, savepoint and release run for every batch and every job
  // in it: prepared once like the other statements, not parsed each time
  // by sqlite3_exec (that parse was 8% of a report's instructions).
  void begin() override {
    end_reads();
    if (wal_full_) checkpoint_after_full();
    stmt("BEGIN IMMEDIATE").reset().run();
  }
  void commit() override {
    // No read left open across the commit either: its snapshot would keep
    // the commit's automatic checkpoint from reaching the end of the WAL.
    end_reads();
    stmt("COMMIT").reset().run();
    if (scrub_pending_) scrub();
  }
  void rollback() override {
    // Read before ROLLBACK replaces it: the error that ended the transaction.
    if (sqlite3_errcode(db_) == SQLITE_FULL) wal_full_ = true;
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void savepoint() override { stmt("SAVEPOINT job").reset().run(); }
  void release_savepoint() override { stmt("RELEASE job").reset().run(); }
  void rollback_to_savepoint() override {
    sqlite3_exec(db_, "ROLLBACK TO job", nullptr, nullptr, nullptr);
    sqlite3_exec(db_, "RELEASE job", nullptr, nullptr, nullptr);
  }

  std::optional<StoredAnswer> find_answer(const std::string& coordinator,
                                          const std::string& webhook_id) override {
    auto& s = stmt("SELECT status, answer FROM idempotency WHERE coordinator=? AND webhook_id=?");
    s.reset().bind(coordinator).bind(webhook_id);
    if (!s.step()) return std::nullopt;
    return StoredAnswer{static_cast<int>(s.i64(0)), s.text(1)};
  }

  void save_answer(const std::string& coordinator, const std::string& webhook_id,
                   const StoredAnswer& answer, UnixMs now) override {
    stmt("INSERT INTO idempotency (coordinator, webhook_id, status, answer, created_at) "
         "VALUES (?,?,?,?,?)")
        .reset()
        .bind(coordinator)
        .bind(webhook_id)
        .bind(answer.status)
        .bind(answer.body)
        .bind(now)
        .run();
  }

  int64_t purge_answers(UnixMs before) override {
    stmt("DELETE FROM idempotency WHERE created_at < ?").reset().bind(before).run();
    return sqlite3_changes64(db_);
  }

  std::vector<IncidentRecord> dedup_candidates(const Report& report, double radius_m,
                                               UnixMs since) override {
    std::vector<IncidentRecord> out;
    std::set<std::string> seen;
    auto collect = [&](Stmt& s) {
      while (s.step())
        if (seen.insert(s.text(0)).second) out.push_back(read_incident(s));
    };
    if (!report.dedup_key.empty()) {
      auto& s = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                     "dedup_key = ?1 AND dedup_key <> '' AND last_report_at >= ?2");
      s.reset().bind(report.dedup_key).bind(since);
      collect(s);
    }
    // Same area: all of them for an unlocated report, the unlocated ones for
    // a located report (two located places are compared by distance only).
    auto& area = report.location
                     ? stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                            "event = ?1 AND area = ?2 AND lat IS NULL AND last_report_at >= ?3")
                     : stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                            "event = ?1 AND area = ?2 AND last_report_at >= ?3");
    area.reset().bind(report.event).bind(report.area).bind(since);
    collect(area);
    if (!report.location) return out;
    // Within the radius: each latitude band the box touches, by longitude
    // range. No band of slack is needed (each costs a query per report): the
    // band below is the index's expression computed the same way, IEEE
    // double add and multiply then truncation, as SQLite does (OP_Add,
    // OP_Multiply, CAST AS INTEGER), and it never decreases as the latitude
    // grows, so an incident between lat_min and lat_max lies in a band
    // between theirs. The property test in ingest_store_test checks it on
    // band edges.
    GeoBox box = bounding_box(*report.location, radius_m);
    auto band = [](double lat) { return static_cast<int64_t>((lat + 90) * 100); };
    auto& place = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                       "lat IS NOT NULL AND event = ?1 AND " LAT_BAND " = ?2 AND lon BETWEEN ?3 "
                       "AND ?4 AND lat BETWEEN ?5 AND ?6 AND last_report_at >= ?7");
    for (int64_t b = band(box.lat_min); b <= band(box.lat_max); ++b) {
      place.reset()
          .bind(report.event)
          .bind(b)
          .bind(box.lon_min)
          .bind(box.lon_max)
          .bind(box.lat_min)
          .bind(box.lat_max)
          .bind(since);
      collect(place);
    }
    return out;
  }

  std::optional<IncidentRecord> incident(const std::string& id) override {
    auto& s = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE id = ?");
    s.reset().bind(id);
    if (!s.step()) return std::nullopt;
    return read_incident(s);
  }

  bool insert_incident(const IncidentRecord& i) override {
    if (incident(i.id)) return false;
    auto& s = stmt(
        "INSERT INTO incidents (id, event, area, lat, lon, location, dedup_key, severity, status, "
        "open, opened_at, last_report_at, closed_at, report_count) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.reset().bind(i.id).bind(i.event).bind(i.area);
    if (i.location) s.bind(i.location->lat).bind(i.location->lon).bind(i.location->description);
    else s.bind_null().bind_null().bind("");
    s.bind(i.dedup_key)
        .bind(static_cast<int>(i.severity))
        .bind(to_string(i.status))
        .bind(i.open ? 1 : 0)
        .bind(i.opened_at)
        .bind(i.last_report_at)
        .bind(i.closed_at)
        .bind(i.report_count)
        .run();
    return true;
  }

  void update_incident(const IncidentRecord& i) override {
    // An incident that stays open (every merged report, every update) keeps
    // open = 1 and closed_at = 0: leaving them out of SET spares SQLite the
    // indexes that only depend on them (the place index, whose WHERE names
    // `open`): a tenth of a merged report's store work. When the row is not
    // open (a reopen) nothing matches, and the full update below runs.
    if (i.open && i.closed_at == 0) {
      stmt("UPDATE incidents SET severity=?, last_report_at=?, report_count=?, spread_m=? "
           "WHERE id=? AND open = 1 AND closed_at = 0")
          .reset()
          .bind(static_cast<int>(i.severity))
          .bind(i.last_report_at)
          .bind(i.report_count)
          .bind(i.spread_m)
          .bind(i.id)
          .run();
      if (sqlite3_changes64(db_) > 0) return;
    }
    stmt("UPDATE incidents SET severity=?, open=?, last_report_at=?, closed_at=?, report_count=?, "
         "spread_m=? WHERE id=?")
        .reset()
        .bind(static_cast<int>(i.severity))
        .bind(i.open ? 1 : 0)
        .bind(i.last_report_at)
        .bind(i.closed_at)
        .bind(i.report_count)
        .bind(i.spread_m)
        .bind(i.id)
        .run();
  }

  std::vector<IncidentRecord> list_incidents(bool open_only, int limit) override {
    auto& s = stmt("SELECT " INCIDENT_COLUMNS
                   " FROM incidents WHERE (?1 = 0 OR open = 1) ORDER BY opened_at DESC LIMIT ?2");
    s.reset().bind(open_only ? 1 : 0).bind(limit);
    std::vector<IncidentRecord> out;
    while (s.step()) out.push_back(read_incident(s));
    return out;
  }

  std::vector<ReportSummary> incident_reports(const std::string& id) override {
    auto& s = stmt(
        "SELECT id, coordinator, msg_type, outcome, severity, received_at, recipients FROM reports "
        "WHERE incident_id = ? AND outcome IN " COORDINATOR_OUTCOMES " ORDER BY id");
    s.reset().bind(id);
    std::vector<ReportSummary> out;
    while (s.step())
      out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
    return out;
  }

  std::vector<DeliveryCount> incident_delivery_counts(const std::string& id) override {
    // Live rows plus the counts of rows deleted by retention.
    auto& s = stmt(
        "SELECT channel, state, sum(n) FROM (SELECT channel, state, count(*) AS n FROM deliveries "
        "WHERE incident_id = ?1 GROUP BY channel, state UNION ALL SELECT channel, state, n FROM "
        "delivery_totals WHERE incident_id = ?1) GROUP BY channel, state ORDER BY channel, state");
    s.reset().bind(id);
    std::vector<DeliveryCount> out;
    while (s.step())
      out.push_back({static_cast<Channel>(s.i64(0)), static_cast<DeliveryState>(s.i64(1)),
                     s.i64(2)});
    return out;
  }

  std::vector<std::pair<std::string, DeliveryCount>> incident_gateway_counts(
      const std::string& id) override {
    auto& s = stmt(
        "SELECT gateway, channel, state, sum(n) FROM (SELECT gateway, channel, state, count(*) AS n "
        "FROM deliveries WHERE incident_id = ?1 GROUP BY gateway, channel, state UNION ALL SELECT "
        "gateway, channel, state, n FROM delivery_totals WHERE incident_id = ?1) "
        "GROUP BY gateway, channel, state ORDER BY gateway, channel, state");
    s.reset().bind(id);
    std::vector<std::pair<std::string, DeliveryCount>> out;
    while (s.step())
      out.emplace_back(s.text(0), DeliveryCount{static_cast<Channel>(s.i64(1)),
                                                static_cast<DeliveryState>(s.i64(2)), s.i64(3)});
    return out;
  }

  int64_t requeue_failed(const std::string& id, UnixMs now, UnixMs sms_deadline,
                         UnixMs email_deadline) override {
    stmt("UPDATE deliveries SET state = 0, next_attempt_at = ?1, lease_until = 0, "
         "deadline_at = CASE channel WHEN 1 THEN ?3 ELSE ?2 END, updated_at = ?1 "
         "WHERE incident_id = ?4 AND state IN (4, 5)")
        .reset()
        .bind(now)
        .bind(sms_deadline)
        .bind(email_deadline)
        .bind(id)
        .run();
    return sqlite3_changes64(db_);
  }

  bool apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) override {
    stmt("UPDATE deliveries SET state = ?, updated_at = ? WHERE provider_id = ? AND state = 1")
        .reset()
        .bind(static_cast<int>(state))
        .bind(now)
        .bind(provider_id)
        .run();
    return sqlite3_changes64(db_) > 0;
  }

  int64_t insert_report(const ReportRecord& r) override {
    const Report& rep = *r.report;
    stmt("INSERT INTO reports (incident_id, coordinator, webhook_id, msg_type, outcome, status, "
         "event, severity, area, body, received_at, recipients, certainty, person) "
         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        .reset()
        .bind(r.incident_id)
        .bind(r.coordinator)
        .bind(r.webhook_id)
        .bind(to_string(rep.msg_type))
        .bind(r.outcome)
        .bind(to_string(rep.status))
        .bind(rep.event)
        .bind(to_string(rep.severity))
        .bind(rep.area)
        .bind(r.raw_json)
        .bind(r.received_at)
        .bind(r.recipients)
        .bind(static_cast<int>(rep.certainty))
        .bind(r.person)
        .run();
    return sqlite3_last_insert_rowid(db_);
  }

  void set_report_recipients(int64_t report_id, int64_t recipients) override {
    stmt("UPDATE reports SET recipients = ? WHERE id = ?").reset().bind(recipients).bind(report_id).run();
  }

  std::vector<std::string> group_languages(const std::vector<std::string>& groups,
                                           Channel channel) override {
    std::vector<std::string> out;
    auto& s = stmt(
        "SELECT DISTINCT s.language FROM subscriber_groups g JOIN subscribers s ON s.id = "
        "g.subscriber_id WHERE g.group_name = ?1 AND " REACHABLE_ON("?2"));
    for (const auto& g : groups) {
      s.reset().bind(g).bind(static_cast<int>(channel));
      while (s.step()) {
        auto lang = s.text(0);
        if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
      }
    }
    return out;
  }

  std::vector<std::pair<std::string, int64_t>> group_audience(const std::vector<std::string>& groups,
                                                              Channel channel) override {
    // Subscribers in several of the groups count once: a temporary set of ids.
    std::map<std::string, int64_t> by_language;
    std::set<int64_t> seen;
    auto& s = stmt(
        "SELECT s.id, s.language FROM subscriber_groups g JOIN subscribers s ON s.id = "
        "g.subscriber_id WHERE g.group_name = ?1 AND " REACHABLE_ON("?2"));
    for (const auto& g : groups) {
      s.reset().bind(g).bind(static_cast<int>(channel));
      while (s.step())
        if (seen.insert(s.i64(0)).second) ++by_language[s.text(1)];
    }
    return {by_language.begin(), by_language.end()};
  }

  std::vector<std::string> recipient_languages(const std::string& incident_id,
                                               Channel channel) override {
    auto& s = stmt(
        "SELECT DISTINCT s.language FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
        "WHERE d.incident_id = ?1 AND d.channel = ?2 AND " REACHABLE_ON("?2"));
    s.reset().bind(incident_id).bind(static_cast<int>(channel));
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.text(0));
    return out;
  }

  void insert_message(int64_t report_id, Channel channel, const std::string& language,
                      const std::string& subject, const std::string& body) override {
    stmt("INSERT OR REPLACE INTO messages (report_id, channel, language, subject, body) "
         "VALUES (?,?,?,?,?)")
        .reset()
        .bind(report_id)
        .bind(static_cast<int>(channel))
        .bind(language)
        .bind(subject)
        .bind(body)
        .run();
  }

  int64_t plan_group_deliveries(int64_t report_id, const std::string& incident_id,
                                const std::vector<std::string>& groups, Channel channel,
                                UnixMs now, UnixMs deadline) override {
    auto& s = stmt(
        PLAN_GROUP_MEMBERS " ORDER BY g.subscriber_id");  // the group's key order: no sort of the whole group
    return plan_each(s, report_id, incident_id, groups, channel, now, deadline);
  }

  int64_t plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                   Channel channel, UnixMs now, UnixMs deadline) override {
    auto& s = stmt(
        PLAN_INSERT
        "SELECT DISTINCT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM deliveries d "
        "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.incident_id = ?2 AND d.channel = ?3 "
        "AND d.report_id <> ?1 AND " REACHABLE_ON("?3") " ORDER BY s.id");
    s.reset()
        .bind(report_id)
        .bind(incident_id)
        .bind(static_cast<int>(channel))
        .bind(now)
        .bind(deadline)
        .run();
    return sqlite3_changes64(db_);
  }

  ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                        UnixMs lease_until) override {
    ClaimResult result;
    int ch = static_cast<int>(channel);
    // Past their deadline: a stale alert misleads more than none.
    auto& expire = stmt(
        "UPDATE deliveries SET state = 5, last_error = 'deadline passed', updated_at = ?1 "
        "WHERE state = 0 AND channel = ?2 AND deadline_at < ?1 AND lease_until <= ?1");
    expire.reset().bind(now).bind(ch).run();
    result.expired = sqlite3_changes64(db_);

    auto& s = stmt(
        "SELECT d.id, d.incident_id, d.language, d.attempts, d.deadline_at, d.report_id, "
        "s.id IS NOT NULL AND " REACHABLE_ON("d.channel") ", "
        "CASE WHEN d.channel = 1 THEN s.email ELSE s.phone END, s.id, s.key_id, d.created_at, "
        // An email follow-up threads under the alert: is this not the
        // incident's first report?
        "d.channel = 1 AND d.report_id > (SELECT min(r.id) FROM reports r WHERE "
        "r.incident_id = d.incident_id) "
        "FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id "
        "WHERE d.state = 0 AND d.channel = ?1 AND max(d.next_attempt_at, d.lease_until) <= ?2 "
        "ORDER BY max(d.next_attempt_at, d.lease_until), d.id LIMIT ?3");
    s.reset().bind(ch).bind(now).bind(static_cast<int64_t>(limit));
    auto& lease = stmt("UPDATE deliveries SET lease_until = ? WHERE id = ?");
    auto& cancel = stmt(
        "UPDATE deliveries SET state = 6, last_error = 'recipient unreachable', updated_at = ? "
        "WHERE id = ?");
    auto& msg = stmt(
        "SELECT subject, body FROM messages WHERE report_id = ? AND channel = ? AND language = ?");
    std::map<std::pair<int64_t, std::string>,
             std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>>>
        texts;
    std::vector<int64_t> to_cancel;
    while (s.step()) {
      int64_t id = s.i64(0);
      if (s.i64(6) == 0) {
        to_cancel.push_back(id);
        continue;
      }
      ClaimedDelivery d;
      d.id = id;
      d.channel = channel;
      d.incident_id = s.text(1);
      d.language = s.text(2);
      d.attempts = static_cast<int>(s.i64(3));
      d.deadline_at = s.i64(4);
      d.report_id = s.i64(5);
      d.planned_at = s.i64(10);
      d.subscriber_id = s.i64(8);
      d.followup = s.i64(11) != 0;
      try {
        d.to = decrypt(s.i64(9), uses_phone(channel) ? kPhone : kEmail, s.i64(8), s.blob(7));
      } catch (const StoreError&) {  // one altered row must not stop the queue
        spdlog::error("delivery {}: the subscriber's address does not decrypt; cancelled", id);
        to_cancel.push_back(id);
        continue;
      }
      auto key = std::make_pair(s.i64(5), d.language);
      auto it = texts.find(key);
      if (it == texts.end()) {
        msg.reset().bind(key.first).bind(ch).bind(key.second);
        std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>> t;
        if (msg.step()) {
          t.first = std::make_shared<const std::string>(msg.text(0));
          t.second = std::make_shared<const std::string>(msg.text(1));
        }
        msg.reset();
        it = texts.emplace(key, std::move(t)).first;
      }
      if (!it->second.second) {  // no text for it: cannot happen unless the row was edited
        to_cancel.push_back(id);
        continue;
      }
      d.subject = it->second.first;
      d.body = it->second.second;
      result.claimed.push_back(std::move(d));
    }
    s.reset();
    for (const auto& d : result.claimed) lease.reset().bind(lease_until).bind(d.id).run();
    for (int64_t id : to_cancel) cancel.reset().bind(now).bind(id).run();
    result.cancelled = static_cast<int64_t>(to_cancel.size());
    return result;
  }

  void record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) override {
    auto& s = stmt(
        "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
        "lease_until = 0, gateway = ?, provider_id = ?, last_error = ?, updated_at = ? WHERE id = ?");
    auto& opt_out = stmt(
        "UPDATE subscribers SET sms_opted_out = 1 WHERE id = (SELECT subscriber_id FROM "
        "deliveries WHERE id = ?)");
    auto& cancel_rest = stmt(
        "UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ?1 WHERE state = "
        "0 AND channel <> 1 AND subscriber_id = (SELECT subscriber_id FROM deliveries WHERE id = ?2)");
    for (const auto& u : updates) {
      s.reset()
          .bind(static_cast<int>(u.state))
          .bind(u.next_attempt_at)
          .bind(u.gateway)
          .bind(u.provider_id)
          .bind(u.error)
          .bind(now)
          .bind(u.id)
          .run();
      if (u.opt_out) {
        opt_out.reset().bind(u.id).run();
        cancel_rest.reset().bind(now).bind(u.id).run();
      }
    }
  }

  std::optional<UnixMs> next_due(Channel channel) override {
    auto& s = stmt(
        "SELECT max(next_attempt_at, lease_until) FROM deliveries WHERE state = 0 AND "
        "channel = ? ORDER BY max(next_attempt_at, lease_until) LIMIT 1");
    s.reset().bind(static_cast<int>(channel));
    if (!s.step()) return std::nullopt;
    return s.i64(0);  // the statement stays on its row until end_reads()
  }

  int64_t release_all_leases() override {
    stmt("UPDATE deliveries SET lease_until = 0 WHERE state = 0 AND lease_until <> 0").reset().run();
    return sqlite3_changes64(db_);
  }

  void release_leases(const std::vector<int64_t>& ids) override {
    auto& s = stmt("UPDATE deliveries SET lease_until = 0 WHERE id = ? AND state = 0");
    for (int64_t id : ids) s.reset().bind(id).run();
  }

  int64_t pending_count() override {
    auto& s = stmt("SELECT count(*) FROM deliveries WHERE state = 0");
    s.reset();
    s.step();
    return s.i64(0);
  }

  std::vector<FanoutProgress> fanout_progress(const std::vector<std::pair<int64_t, Channel>>& keys,
                                              bool count_accepted) override {
    auto& pending = stmt(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE report_id = ? AND channel = ? AND state = 0)");
    auto& accepted = stmt(
        "SELECT count(*) FROM deliveries WHERE report_id = ? AND channel = ? AND state IN (1, 2, 3)");
    std::vector<FanoutProgress> out;
    for (const auto& [report, channel] : keys) {
      FanoutProgress p{report, channel};
      pending.reset().bind(report).bind(static_cast<int>(channel));
      p.pending = pending.step() && pending.i64(0) != 0;
      if (count_accepted) {
        accepted.reset().bind(report).bind(static_cast<int>(channel));
        if (accepted.step()) p.accepted = accepted.i64(0);
      }
      out.push_back(p);
    }
    return out;
  }

  int64_t insert_subscriber(const Subscriber& sub, UnixMs now) override {
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
    int64_t id = sqlite3_last_insert_rowid(db_);
    insert_groups(id, sub.groups);
    write_personal(id, {sub.name, sub.phone, sub.email});
    return id;
  }

  std::optional<Subscriber> subscriber(int64_t id) override {
    auto& s = stmt("SELECT " SUBSCRIBER_COLUMNS " FROM subscribers s WHERE s.id = ?");
    s.reset().bind(id);
    if (!s.step()) return std::nullopt;
    Subscriber sub = read_subscriber(s);
    s.reset();
    return sub;
  }

  bool update_subscriber(const Subscriber& sub) override {
    auto& upd = stmt(
        "UPDATE subscribers SET language=?, sms=?, email_on=?, signal_on=?, voice_on=? WHERE id=?")
        .reset();
    bind_subscriber(upd, sub).bind(sub.id).run();
    if (sqlite3_changes64(db_) == 0) return false;
    write_personal(sub.id, {sub.name, sub.phone, sub.email});
    stmt("DELETE FROM subscriber_groups WHERE subscriber_id = ?").reset().bind(sub.id).run();
    insert_groups(sub.id, sub.groups);
    return true;
  }

  std::vector<Subscriber> list_subscribers(const std::string& group, int64_t after_id,
                                           int limit) override {
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

  bool delete_subscriber(int64_t id) override {
    stmt("UPDATE deliveries SET state = 6, last_error = 'recipient erased' WHERE subscriber_id = ? "
         "AND state = 0")
        .reset()
        .bind(id)
        .run();
    stmt("UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id = ?").reset().bind(id).run();
    stmt("UPDATE acknowledgements SET subscriber_id = 0 WHERE subscriber_id = ?").reset().bind(id).run();
    stmt("DELETE FROM subscribers WHERE id = ?").reset().bind(id).run();
    bool erased = sqlite3_changes64(db_) > 0;
    scrub_pending_ = scrub_pending_ || erased;
    return erased;
  }

  std::vector<int64_t> subscribers_by_phone(const std::string& e164) override {
    if (e164.empty()) return {};
    return ids_by_hash(stmt("SELECT id FROM subscribers WHERE phone_hash = ? ORDER BY id"),
                       phone_hash(e164));
  }

  std::vector<int64_t> subscribers_by_email(const std::string& email) override {
    if (email.empty()) return {};
    return ids_by_hash(stmt("SELECT id FROM subscribers WHERE email_hash = ? ORDER BY id"),
                       email_hash(email));
  }

  void set_keyring(std::shared_ptr<const Keyring> keyring) override {
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

  int64_t reencrypt_subscribers(int limit) override {
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

  int64_t purge_deliveries(UnixMs before, int limit) override {
    // Old rows have low ids: the batch is the first `limit` ended deliveries
    // created before `before`, found by a rowid scan (no index to maintain
    // on the hot insert path).
    auto& last = stmt(
        "SELECT max(id) FROM (SELECT id FROM deliveries WHERE created_at < ?1 AND state <> 0 "
        "ORDER BY id LIMIT ?2)");
    last.reset().bind(before).bind(limit);
    int64_t upto = last.step() && !last.is_null(0) ? last.i64(0) : 0;
    last.reset();
    int64_t deleted = 0;
    if (upto > 0) {
      stmt("INSERT INTO delivery_totals (incident_id, gateway, channel, state, n) "
           "SELECT incident_id, gateway, channel, state, count(*) FROM deliveries "
           "WHERE id <= ?1 AND created_at < ?2 AND state <> 0 "
           "GROUP BY incident_id, gateway, channel, state "
           "ON CONFLICT (incident_id, gateway, channel, state) DO UPDATE SET n = n + excluded.n")
          .reset()
          .bind(upto)
          .bind(before)
          .run();
      stmt("DELETE FROM deliveries WHERE id <= ?1 AND created_at < ?2 AND state <> 0")
          .reset()
          .bind(upto)
          .bind(before)
          .run();
      deleted = sqlite3_changes64(db_);
    }
    // Texts still needed by a pending delivery stay until it ends.
    stmt("DELETE FROM messages WHERE report_id IN (SELECT id FROM reports WHERE received_at < ?1) "
         "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.report_id = messages.report_id "
         "AND d.state = 0)")
        .reset()
        .bind(before)
        .run();
    int64_t other = sqlite3_changes64(db_);
    stmt("UPDATE reports SET body = '' WHERE received_at < ? AND body <> ''").reset().bind(before).run();
    other += sqlite3_changes64(db_);
    stmt("UPDATE acknowledgements SET subscriber_id = 0 WHERE received_at < ? AND subscriber_id <> 0")
        .reset()
        .bind(before)
        .run();
    other += sqlite3_changes64(db_);
    scrub_pending_ = scrub_pending_ || deleted > 0 || other > 0;
    return deleted;
  }

  int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) override {
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
    return sqlite3_changes64(db_);
  }

  std::optional<int64_t> set_email_opt_out(int64_t subscriber_id, UnixMs now) override {
    stmt("UPDATE subscribers SET email_opted_out = 1 WHERE id = ?").reset().bind(subscriber_id).run();
    if (sqlite3_changes64(db_) == 0) return std::nullopt;
    stmt("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ? WHERE "
         "subscriber_id = ? AND channel = 1 AND state = 0")
        .reset()
        .bind(now)
        .bind(subscriber_id)
        .run();
    return sqlite3_changes64(db_);
  }

  std::optional<std::string> subscriber_language(int64_t id) override {
    auto& s = stmt("SELECT language FROM subscribers WHERE id = ?");
    s.reset().bind(id);
    if (!s.step()) return std::nullopt;
    auto lang = s.text(0);
    s.reset();
    return lang;
  }

  std::optional<DeliveryTarget> delivery_target(int64_t delivery_id) override {
    auto& s = stmt(
        "SELECT incident_id, coalesce(subscriber_id, 0), channel, state, language FROM deliveries "
        "WHERE id = ?");
    s.reset().bind(delivery_id);
    if (!s.step()) return std::nullopt;
    DeliveryTarget t{s.text(0), s.i64(1), static_cast<Channel>(s.i64(2)),
                     static_cast<DeliveryState>(s.i64(3)), s.text(4)};
    s.reset();
    return t;
  }

  bool apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) override {
    stmt("UPDATE deliveries SET state = ?, updated_at = ? WHERE id = ? AND state = 1")
        .reset()
        .bind(static_cast<int>(state))
        .bind(now)
        .bind(delivery_id)
        .run();
    return sqlite3_changes64(db_) > 0;
  }



  int64_t join_prompts_since(const std::string& e164, UnixMs since) override {
    auto& s = stmt("SELECT count(*) FROM join_requests WHERE phone_hash = ? AND created_at >= ?");
    s.reset().bind_blob(phone_hash(e164)).bind(since);
    int64_t n = s.step() ? s.i64(0) : 0;
    s.reset();
    return n;
  }

  int64_t all_join_prompts_since(UnixMs since) override {
    auto& s = stmt("SELECT count(*) FROM join_requests WHERE created_at >= ?");
    s.reset().bind(since);
    int64_t n = s.step() ? s.i64(0) : 0;
    s.reset();
    return n;
  }

  void insert_join_request(const std::string& e164, const JoinRequest& r) override {
    stmt("INSERT INTO join_requests (phone_hash, group_name, language, keyword, message_id, "
         "created_at) VALUES (?,?,?,?,?,?)")
        .reset()
        .bind_blob(phone_hash(e164))
        .bind(r.group)
        .bind(r.language)
        .bind(r.keyword)
        .bind(r.provider_message_id)
        .bind(r.created_at)
        .run();
  }

  std::optional<JoinRequest> pending_join(const std::string& e164, UnixMs since) override {
    auto& s = stmt(
        "SELECT group_name, language, keyword, message_id, created_at FROM join_requests WHERE "
        "phone_hash = ? AND created_at >= ? AND group_name <> '' ORDER BY id DESC LIMIT 1");
    s.reset().bind_blob(phone_hash(e164)).bind(since);
    if (!s.step()) return std::nullopt;
    JoinRequest r{s.text(0), s.text(1), s.text(2), s.text(3), s.i64(4)};
    s.reset();
    return r;
  }

  void close_join_requests(const std::string& e164) override {
    stmt("UPDATE join_requests SET group_name = '', keyword = '', message_id = '' WHERE "
         "phone_hash = ? AND group_name <> ''")
        .reset()
        .bind_blob(phone_hash(e164))
        .run();
  }

  void insert_consent(const Consent& c) override {
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

  std::vector<Consent> consents(int64_t subscriber_id) override {
    auto& s = stmt(
        "SELECT subscriber_id, group_name, keyword, request_message_id, confirm_message_id, "
        "requested_at, confirmed_at FROM consents WHERE subscriber_id = ? ORDER BY id");
    s.reset().bind(subscriber_id);
    std::vector<Consent> out;
    while (s.step())
      out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
    return out;
  }

  bool leave_group(int64_t subscriber_id, const std::string& group) override {
    stmt("DELETE FROM subscriber_groups WHERE subscriber_id = ? AND group_name = ?")
        .reset()
        .bind(subscriber_id)
        .bind(group)
        .run();
    return sqlite3_changes64(db_) > 0;
  }

  int64_t purge_join_requests(UnixMs before) override {
    stmt("DELETE FROM join_requests WHERE created_at < ?").reset().bind(before).run();
    return sqlite3_changes64(db_);
  }



  std::optional<std::string> last_sms_incident(int64_t subscriber_id, UnixMs since) override {
    auto& s = stmt(
        "SELECT d.incident_id FROM deliveries d JOIN incidents i ON i.id = d.incident_id "
        "WHERE d.subscriber_id = ? AND d.channel = 0 AND i.last_report_at >= ? "
        "ORDER BY d.id DESC LIMIT 1");
    s.reset().bind(subscriber_id).bind(since);
    if (!s.step()) return std::nullopt;
    auto id = s.text(0);
    s.reset();
    return id;
  }

  bool insert_ack(const Acknowledgement& a) override {
    stmt("INSERT INTO acknowledgements (incident_id, subscriber_id, kind, received_at) "
         "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM acknowledgements WHERE "
         "incident_id = ?1 AND subscriber_id = ?2 AND kind = ?3 AND ?2 <> 0)")
        .reset()
        .bind(a.incident_id)
        .bind(a.subscriber_id)
        .bind(a.kind)
        .bind(a.received_at)
        .run();
    return sqlite3_changes64(db_) > 0;
  }

  bool first_event(std::string_view provider, std::string_view event_id, UnixMs now) override {
    stmt("INSERT INTO provider_events (provider, event_id, received_at) VALUES (?,?,?) "
         "ON CONFLICT (provider, event_id) DO NOTHING")
        .reset()
        .bind(provider)
        .bind(event_id)
        .bind(now)
        .run();
    return sqlite3_changes64(db_) > 0;
  }

  int64_t purge_events(UnixMs before) override {
    stmt("DELETE FROM provider_events WHERE received_at < ?").reset().bind(before).run();
    return sqlite3_changes64(db_);
  }

  std::vector<Acknowledgement> incident_acks(const std::string& incident_id) override {
    auto& s = stmt(
        "SELECT incident_id, subscriber_id, kind, received_at FROM acknowledgements "
        "WHERE incident_id = ? ORDER BY id");
    s.reset().bind(incident_id);
    std::vector<Acknowledgement> out;
    while (s.step()) out.push_back({s.text(0), s.i64(1), s.text(2), s.i64(3)});
    return out;
  }

  std::vector<ReportEvidence> incident_evidence(const std::string& incident_id) override {
    auto& s = stmt(
        "SELECT coordinator, person, certainty FROM reports WHERE incident_id = ? AND outcome IN "
        "('new_incident', 'merged', 'update') ORDER BY id");
    s.reset().bind(incident_id);
    std::vector<ReportEvidence> out;
    while (s.step())
      out.push_back(
          {s.text(0), s.text(1), static_cast<Certainty>(std::clamp<int64_t>(s.i64(2), 0, 4))});
    return out;
  }

  std::vector<IncidentGroup> incident_groups(const std::string& incident_id) override {
    auto& s = stmt(
        "SELECT incident_id, group_name, state, via, waiting, held_at, sent_at, covered_at FROM "
        "incident_groups WHERE incident_id = ? ORDER BY group_name");
    s.reset().bind(incident_id);
    std::vector<IncidentGroup> out;
    while (s.step())
      out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6),
                     s.i64(7)});
    return out;
  }

  void put_incident_group(const IncidentGroup& g) override {
    stmt("INSERT OR REPLACE INTO incident_groups (incident_id, group_name, state, via, waiting, "
         "held_at, sent_at, covered_at) VALUES (?,?,?,?,?,?,?,?)")
        .reset()
        .bind(g.incident_id)
        .bind(g.group)
        .bind(g.state)
        .bind(g.via)
        .bind(g.waiting)
        .bind(g.held_at)
        .bind(g.sent_at)
        .bind(g.covered_at)
        .run();
  }

  int64_t plan_new_recipient_deliveries(int64_t report_id, const std::string& incident_id,
                                        const std::vector<std::string>& groups, Channel channel,
                                        UnixMs now, UnixMs deadline) override {
    auto& s = stmt(
        PLAN_GROUP_MEMBERS " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND "
                  "d.channel = ?3 AND d.incident_id = ?2) ORDER BY g.subscriber_id");
    return plan_each(s, report_id, incident_id, groups, channel, now, deadline);
  }

  std::vector<int64_t> group_recipients(const std::string& incident_id,
                                        const std::string& group) override {
    auto& s = stmt(
        "SELECT g.subscriber_id FROM subscriber_groups g WHERE g.group_name = ?2 AND EXISTS "
        "(SELECT 1 FROM deliveries d WHERE d.subscriber_id = g.subscriber_id AND d.incident_id = "
        "?1) ORDER BY g.subscriber_id");
    s.reset().bind(incident_id).bind(group);
    std::vector<int64_t> out;
    while (s.step()) out.push_back(s.i64(0));
    return out;
  }

  int64_t plan_deliveries_to(int64_t report_id, const std::string& incident_id,
                             const std::vector<int64_t>& subscribers, Channel channel, UnixMs now,
                             UnixMs deadline) override {
    auto& s = stmt(
        PLAN_INSERT
        "SELECT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM subscribers s WHERE s.id = "
        "?6 AND " REACHABLE_ON("?3") " AND EXISTS (SELECT 1 FROM deliveries d WHERE "
                                     "d.subscriber_id = s.id AND d.channel = ?3 AND "
                                     "d.incident_id = ?2 AND d.report_id <> ?1)");
    return plan_each(s, report_id, incident_id, subscribers, channel, now, deadline);
  }

  std::vector<std::string> subscriber_languages(const std::vector<int64_t>& subscribers) override {
    auto& s = stmt("SELECT language FROM subscribers WHERE id = ?");
    std::vector<std::string> out;
    for (int64_t id : subscribers) {
      s.reset().bind(id);
      if (s.step()) {
        auto lang = s.text(0);
        if (std::find(out.begin(), out.end(), lang) == out.end()) out.push_back(std::move(lang));
      }
      s.reset();
    }
    return out;
  }

  std::string latest_report_body(const std::string& incident_id) override {
    auto& s = stmt(
        "SELECT body FROM reports WHERE incident_id = ? AND outcome IN ('new_incident', 'merged', "
        "'update') ORDER BY id DESC LIMIT 1");
    s.reset().bind(incident_id);
    std::string body = s.step() ? s.text(0) : std::string();
    s.reset();
    return body;
  }

  void insert_escalation(const std::string& incident_id, const std::string& group, UnixMs sent_at,
                         UnixMs due_at) override {
    stmt("INSERT OR IGNORE INTO escalations (incident_id, group_name, sent_at, due_at) VALUES "
         "(?,?,?,?)")
        .reset()
        .bind(incident_id)
        .bind(group)
        .bind(sent_at)
        .bind(due_at)
        .run();
  }

  std::vector<EscalationTimer> due_escalations(UnixMs now, int limit) override {
    auto& s = stmt(
        "SELECT incident_id, group_name, due_at, sent_at FROM escalations WHERE state = 0 AND "
        "due_at <= ? ORDER BY due_at LIMIT ?");
    s.reset().bind(now).bind(limit);
    std::vector<EscalationTimer> out;
    while (s.step()) out.push_back({s.text(0), s.text(1), s.i64(2), s.i64(3)});
    return out;
  }

  void end_escalation(const std::string& incident_id, const std::string& group, TimerEnd how,
                      UnixMs now) override {
    stmt("UPDATE escalations SET state = ?, ended_at = ? WHERE incident_id = ? AND group_name = ? "
         "AND state = 0")
        .reset()
        .bind(static_cast<int>(how))
        .bind(now)
        .bind(incident_id)
        .bind(group)
        .run();
  }

  std::vector<std::string> cancel_escalations(const std::string& incident_id, UnixMs now) override {
    auto& s = stmt(
        "SELECT group_name FROM escalations WHERE incident_id = ? AND state = 0 ORDER BY 1");
    s.reset().bind(incident_id);
    std::vector<std::string> groups;
    while (s.step()) groups.push_back(s.text(0));
    s.reset();
    stmt("UPDATE escalations SET state = 3, ended_at = ? WHERE incident_id = ? AND state = 0")
        .reset()
        .bind(now)
        .bind(incident_id)
        .run();
    return groups;
  }

  void insert_safety_event(const std::string& incident_id, const SafetyEvent& e) override {
    stmt("INSERT INTO safety_events (incident_id, at, what, group_name, detail, recipients) "
         "VALUES (?,?,?,?,?,?)")
        .reset()
        .bind(incident_id)
        .bind(e.at)
        .bind(e.what)
        .bind(e.group)
        .bind(e.detail)
        .bind(e.recipients)
        .run();
  }

  std::vector<SafetyEvent> safety_events(const std::string& incident_id) override {
    auto& s = stmt(
        "SELECT at, what, group_name, detail, recipients FROM safety_events WHERE incident_id = ? "
        "ORDER BY id");
    s.reset().bind(incident_id);
    std::vector<SafetyEvent> out;
    while (s.step()) out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.i64(4)});
    return out;
  }

  // ---- Console (schema 4) ----
  static ConsoleUser read_console_user(Stmt& s) {
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
  // The first row of `s` read by `read` (the statement reset), or nullopt.
  template <typename Read>
  static auto first_row(Stmt& s, Read read) -> std::optional<decltype(read(s))> {
    std::optional<decltype(read(s))> out;
    if (s.step()) out = read(s);
    s.reset();
    return out;
  }
  // Every row of `s`, each read by `read`.
  template <typename Read>
  static auto all_rows(Stmt& s, Read read) -> std::vector<decltype(read(s))> {
    std::vector<decltype(read(s))> out;
    while (s.step()) out.push_back(read(s));
    return out;
  }
  std::optional<ConsoleUser> one_user(Stmt& s) { return first_row(s, read_console_user); }
  int64_t insert_console_user(const ConsoleUser& u) override {
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
    return sqlite3_last_insert_rowid(db_);
  }
  std::optional<ConsoleUser> console_user(int64_t id) override {
    auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE id = ?");
    s.reset().bind(id);
    return one_user(s);
  }
  std::optional<ConsoleUser> console_user_by_name(const std::string& name) override {
    auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE name = ?");
    s.reset().bind(name);
    return one_user(s);
  }
  std::optional<ConsoleUser> console_user_by_enrol(const std::string& enrol_hash) override {
    if (enrol_hash.empty()) return std::nullopt;
    auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users WHERE enrol_hash = ?");
    s.reset().bind(enrol_hash);
    return one_user(s);
  }
  std::vector<ConsoleUser> console_users() override {
    auto& s = stmt("SELECT " CONSOLE_USER_COLUMNS " FROM console_users ORDER BY name");
    s.reset();
    return all_rows(s, read_console_user);
  }
  void update_console_user(const ConsoleUser& u) override {
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
  bool use_totp_step(int64_t user_id, int64_t step) override {
    stmt("UPDATE console_users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?")
        .reset()
        .bind(step)
        .bind(user_id)
        .bind(step)
        .run();
    return sqlite3_changes64(db_) > 0;
  }
  void insert_session(const ConsoleSession& se) override {
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
  std::optional<ConsoleSession> session(const std::string& token_hash) override {
    auto& s = stmt(
        "SELECT token_hash, user_id, csrf, created_at, last_seen FROM sessions "
        "WHERE token_hash = ?");
    s.reset().bind(token_hash);
    return first_row(s, [](Stmt& r) {
      return ConsoleSession{r.text(0), r.i64(1), r.text(2), r.i64(3), r.i64(4)};
    });
  }
  void touch_session(const std::string& token_hash, UnixMs now) override {
    stmt("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
        .reset()
        .bind(now)
        .bind(token_hash)
        .run();
  }
  void delete_session(const std::string& token_hash) override {
    stmt("DELETE FROM sessions WHERE token_hash = ?").reset().bind(token_hash).run();
  }
  int64_t delete_user_sessions(int64_t user_id) override {
    stmt("DELETE FROM sessions WHERE user_id = ?").reset().bind(user_id).run();
    return sqlite3_changes64(db_);
  }
  std::pair<int64_t, UnixMs> throttle(const std::string& key) override {
    auto& s = stmt("SELECT failures, next_at FROM login_throttle WHERE key = ?");
    s.reset().bind(key);
    std::pair<int64_t, UnixMs> out{0, 0};
    if (s.step()) out = {s.i64(0), s.i64(1)};
    s.reset();
    return out;
  }
  void set_throttle(const std::string& key, int64_t failures, UnixMs next_at, UnixMs now) override {
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
  void clear_throttle(const std::string& key) override {
    stmt("DELETE FROM login_throttle WHERE key = ?").reset().bind(key).run();
  }
  static Draft read_draft(Stmt& s) {
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
  int64_t insert_draft(const Draft& d) override {
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
    return sqlite3_last_insert_rowid(db_);
  }
  std::optional<Draft> draft(int64_t id) override {
    auto& s = stmt("SELECT " DRAFT_COLUMNS " FROM drafts WHERE id = ?");
    s.reset().bind(id);
    return first_row(s, read_draft);
  }
  std::vector<Draft> waiting_drafts() override {
    auto& s = stmt("SELECT " DRAFT_COLUMNS " FROM drafts WHERE state = 'waiting' ORDER BY id");
    s.reset();
    return all_rows(s, read_draft);
  }
  void update_draft(const Draft& d) override {
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

  int64_t insert_audit(const AuditEntry& e) override {
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
    return sqlite3_last_insert_rowid(db_);
  }

  std::vector<AuditEntry> audit_after(int64_t after_id, int limit) override {
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

  int64_t purge_audit(UnixMs before) override {
    stmt("DELETE FROM audit WHERE at < ?").reset().bind(before).run();
    return sqlite3_changes64(db_);
  }

 private:
  // Runs a delivery-planning INSERT (parameters ?1 report, ?2 incident, ?3
  // channel, ?4 now, ?5 deadline, ?6 the key) once per key; returns the rows added.
  template <typename Key>
  int64_t plan_each(Stmt& s, int64_t report_id, const std::string& incident_id,
                    const std::vector<Key>& keys, Channel channel, UnixMs now, UnixMs deadline) {
    int64_t added = 0;
    for (const auto& key : keys) {
      s.reset()
          .bind(report_id)
          .bind(incident_id)
          .bind(static_cast<int>(channel))
          .bind(now)
          .bind(deadline)
          .bind(key)
          .run();
      added += sqlite3_changes64(db_);
    }
    return added;
  }

  static int has_channel(const Subscriber& sub, Channel c) {
    return std::find(sub.channels.begin(), sub.channels.end(), c) != sub.channels.end() ? 1 : 0;
  }

  // Binds the editable plain columns, in this order: language, sms,
  // email_on, signal_on, voice_on. Name, phone and email go through write_personal (encrypted).
  static Stmt& bind_subscriber(Stmt& s, const Subscriber& sub) {
    return s.bind(sub.language)
        .bind(has_channel(sub, Channel::kSms))
        .bind(has_channel(sub, Channel::kEmail))
        .bind(has_channel(sub, Channel::kSignal))
        .bind(has_channel(sub, Channel::kVoice));
  }

  void insert_groups(int64_t id, const std::vector<std::string>& groups) {
    auto& g =
        stmt("INSERT OR IGNORE INTO subscriber_groups (group_name, subscriber_id) VALUES (?,?)");
    for (const auto& name : groups) g.reset().bind(name).bind(id).run();
  }

  // The one place a subscriber row (SUBSCRIBER_COLUMNS) becomes a Subscriber,
  // with its groups. `s` stays on its row.
  Subscriber read_subscriber(Stmt& s) {
    Subscriber sub;
    sub.id = s.i64(0);
    auto personal = read_personal(s);
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

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw StoreError(msg);
    }
  }

  // Personal data of one subscriber, in clear (on the store thread only).
  struct Personal {
    std::string name, phone, email;
  };
  static constexpr std::string_view kName = "name", kPhone = "phone", kEmail = "email";

  const Keyring& keyring() const {
    if (!keyring_) throw StoreError("opened without a key file: subscribers' data is unreadable");
    return *keyring_;
  }

  // Associated data: the column and the row, so a ciphertext copied to
  // another row or column does not decrypt.
  static std::string associated(std::string_view column, int64_t id) {
    return "tocsin.subscribers." + std::string(column) + "." + std::to_string(id);
  }

  std::string decrypt(int64_t key_id, std::string_view column, int64_t id, const std::string& blob) {
    if (blob.empty()) return "";
    auto plain = keyring().decrypt(static_cast<uint32_t>(key_id), blob, associated(column, id));
    if (!plain)
      throw StoreError("subscriber " + std::to_string(id) + ": " + std::string(column) +
                       " does not decrypt under key " + std::to_string(key_id) +
                       " (wrong key file, or the row was altered)");
    return std::move(*plain);
  }

  // Columns: 0 id, 1 key_id, 2 name, 3 phone, 4 email.
  Personal read_personal(const Stmt& s) {
    int64_t id = s.i64(0), key_id = s.i64(1);
    return {decrypt(key_id, kName, id, s.blob(2)), decrypt(key_id, kPhone, id, s.blob(3)),
            decrypt(key_id, kEmail, id, s.blob(4))};
  }

  // Encrypts under the active key, with fresh lookup hashes.
  void write_personal(int64_t id, const Personal& p) {
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
  std::string phone_hash(const std::string& e164) { return keyring().hash("phone:" + e164); }
  std::string email_hash(std::string email) {
    for (char& c : email)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return keyring().hash("email:" + email);
  }

  std::vector<int64_t> ids_by_hash(Stmt& s, const std::string& hash) {
    s.reset().bind_blob(hash);
    std::vector<int64_t> out;
    while (s.step()) out.push_back(s.i64(0));
    return out;
  }

  static std::string to_hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
      out += digits[c >> 4];
      out += digits[c & 15];
    }
    return out;
  }

  // After an erasure or a purge has committed: copies the WAL into the
  // database and truncates it, so the deleted rows' old page images leave
  // the -wal file too (secure_delete has zeroed them in the database). A
  // reader (tocsin route) can hold the WAL; then the next commit tries again.
  // The cost, a checkpoint, is paid on erasures and purges only.
  void scrub() {
    end_reads();  // a statement stepped but not reset would hold a read on the WAL
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) ==
        SQLITE_OK)
      scrub_pending_ = false;
  }

  // The disk filled up while the WAL grew: SQLite checkpoints only after a
  // commit succeeds, and only once the WAL holds wal_autocheckpoint pages
  // (4 MB), so on a disk with less room than that every commit failed for
  // good, space back or not (a 2 MB filesystem: 50 of 50 reports refused with
  // 12 stored, a 4 KB database and a 2 MB WAL). So before each transaction,
  // until one succeeds, copy the WAL into the database: the next commit then
  // writes the WAL from its start, in space it already has. And since only
  // that much WAL fit, checkpoint at half of it from then on.
  void checkpoint_after_full() {
    int frames = 0, copied = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) !=
            SQLITE_OK ||
        copied < frames)
      return;  // still no room for the database to grow, or a reader holds the WAL
    wal_full_ = false;
    const int pages = std::max(16, frames / 2);
    if (pages < wal_autocheckpoint_) {
      wal_autocheckpoint_ = pages;
      sqlite3_wal_autocheckpoint(db_, pages);
      spdlog::warn("the disk filled up: WAL checkpointed, and from now on every {} pages", pages);
    }
  }

  // Resets every statement left on a row: each keeps the connection in a
  // read transaction (a snapshot of the WAL) until it is reset.
  void end_reads() {
    for (sqlite3_stmt* p = sqlite3_next_stmt(db_, nullptr); p; p = sqlite3_next_stmt(db_, p))
      if (sqlite3_stmt_busy(p)) sqlite3_reset(p);
  }

  Stmt& stmt(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, std::make_unique<Stmt>(db_, sql)).first;
    return *it->second;
  }

  void migrate() {
    exec("BEGIN IMMEDIATE");
    try {
      exec(kSchema);
      add_missing_columns();
      auto& s = stmt("SELECT value FROM meta WHERE key = 'schema_version'");
      s.reset();
      int v = 1;  // a new database: kSchema is version 1, migrated below
      if (s.step()) {
        v = std::stoi(s.text(0));
        s.reset();
        if (v > kSchemaVersion)
          throw StoreError("database schema " + std::to_string(v) +
                           " is newer than this tocsin understands");
      } else {
        s.reset();
        stmt("INSERT INTO meta (key, value) VALUES ('schema_version', '1')").reset().run();
      }
      for (; v < kSchemaVersion; ++v) {
        exec(kMigrations[v - 1]);
        stmt("UPDATE meta SET value = ? WHERE key = 'schema_version'")
            .reset()
            .bind(std::to_string(v + 1))
            .run();
      }
      exec("COMMIT");
    } catch (...) {
      rollback();
      throw;
    }
  }

  // The signal, voice and email opt-out columns came into kSchema's
  // subscribers table without a version of their own (before the migration
  // list): a database made before them gets them here, idempotently. A new
  // change is a migration, never another column here.
  void add_missing_columns() {
    std::set<std::string> have;
    auto& info = stmt("SELECT name FROM pragma_table_info('subscribers')");
    info.reset();
    while (info.step()) have.insert(info.text(0));
    info.reset();
    for (const char* column : {"signal_on", "voice_on", "email_opted_out"})
      if (!have.count(column))
        exec(("ALTER TABLE subscribers ADD COLUMN " + std::string(column) +
              " INTEGER NOT NULL DEFAULT 0").c_str());
  }

  static IncidentRecord read_incident(Stmt& s) {
    IncidentRecord i;
    i.id = s.text(0);
    i.event = s.text(1);
    i.area = s.text(2);
    if (!s.is_null(3)) i.location = Location{s.f64(3), s.f64(4), s.text(5)};
    i.dedup_key = s.text(6);
    i.severity = static_cast<Severity>(s.i64(7));
    i.status = parse_report_status(s.text(8)).value_or(ReportStatus::kActual);
    i.open = s.i64(9) != 0;
    i.opened_at = s.i64(10);
    i.last_report_at = s.i64(11);
    i.closed_at = s.i64(12);
    i.report_count = s.i64(13);
    i.spread_m = s.f64(14);
    return i;
  }

  sqlite3* db_ = nullptr;
  int lock_fd_ = -1;
  std::shared_ptr<const Keyring> keyring_;  // null only in a read-only store
  bool scrub_pending_ = false;              // an erasure or purge awaits scrub()
  bool wal_full_ = false;                   // a transaction failed for want of space
  int wal_autocheckpoint_ = 1000;           // SQLite's default, lowered by checkpoint_after_full()
  // Prepared once, reused: keyed by the SQL literal's address.
  std::unordered_map<const char*, std::unique_ptr<Stmt>> stmts_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         std::shared_ptr<const Keyring> keyring) {
  return std::make_unique<SqliteStore>(path, std::move(keyring));
}

std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path) {
  return std::make_unique<SqliteStore>(path, nullptr, /*read_only=*/true);
}

std::unique_ptr<Store> open_sqlite_store_beside_daemon(const std::string& path,
                                                       std::shared_ptr<const Keyring> keyring) {
  return std::make_unique<SqliteStore>(path, std::move(keyring), /*read_only=*/false,
                                       /*take_lock=*/false);
}

}  // namespace tocsin::store
