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
#include <set>
#include <unordered_map>

#include "core/dedup.h"
#include "store/store.h"

namespace tocsin::store {
namespace {

constexpr int kSchemaVersion = 1;

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

-- Personal data lives only here (and is erased by DELETE /v1/subscribers/{id}).
CREATE TABLE IF NOT EXISTS subscribers (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, phone TEXT NOT NULL, email TEXT NOT NULL,
  language TEXT NOT NULL, sms INTEGER NOT NULL, email_on INTEGER NOT NULL,
  sms_opted_out INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS subscribers_phone ON subscribers (phone) WHERE phone <> '';
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
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY, report_id INTEGER NOT NULL, incident_id TEXT NOT NULL,
  subscriber_id INTEGER NOT NULL, channel INTEGER NOT NULL, language TEXT NOT NULL,
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

-- Replies to alerts, by kind only: the text is not kept.
CREATE TABLE IF NOT EXISTS acknowledgements (
  id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, subscriber_id INTEGER NOT NULL,
  kind TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS acknowledgements_incident ON acknowledgements (incident_id);
)sql";

// The 0.01-degree (1.1 km) band of latitude an incident's place lies in, as
// the incidents_open_place index has it (the expression must match verbatim).
#define LAT_BAND "CAST((lat + 90) * 100 AS INTEGER)"
#define INCIDENT_COLUMNS                                                                \
  "id, event, area, lat, lon, location, dedup_key, severity, status, open, opened_at, " \
  "last_report_at, closed_at, report_count, spread_m"
// A subscriber is reachable on channel CH (0 sms, 1 email) when subscribed to
// it, has the address, and (for SMS) has not opted out.
#define REACHABLE_ON(CH)                                                              \
  "((" CH " = 0 AND s.sms = 1 AND s.phone <> '' AND s.sms_opted_out = 0) OR (" CH \
  " = 1 AND s.email_on = 1 AND s.email <> ''))"

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

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path, bool read_only = false) {
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
    if (!memory) {
      auto dir = std::filesystem::path(path).parent_path();
      std::error_code ec;
      if (!dir.empty()) std::filesystem::create_directories(dir, ec);
      lock_fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (lock_fd_ < 0) throw StoreError("cannot open lock file " + path + ".lock");
      if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        throw StoreError("another tocsin process is using " + path);
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
    migrate();
  }

  ~SqliteStore() override {
    stmts_.clear();
    sqlite3_close(db_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  void begin() override { exec("BEGIN IMMEDIATE"); }
  void commit() override { exec("COMMIT"); }
  void rollback() override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void savepoint() override { exec("SAVEPOINT job"); }
  void release_savepoint() override { exec("RELEASE job"); }
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
    // range. One band of slack each side, as C++ and SQLite may round the
    // band of a bound differently.
    GeoBox box = bounding_box(*report.location, radius_m);
    auto band = [](double lat) { return static_cast<int64_t>((lat + 90) * 100); };
    auto& place = stmt("SELECT " INCIDENT_COLUMNS " FROM incidents WHERE open = 1 AND "
                       "lat IS NOT NULL AND event = ?1 AND " LAT_BAND " = ?2 AND lon BETWEEN ?3 "
                       "AND ?4 AND lat BETWEEN ?5 AND ?6 AND last_report_at >= ?7");
    for (int64_t b = band(box.lat_min) - 1; b <= band(box.lat_max) + 1; ++b) {
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
        "WHERE incident_id = ? ORDER BY id");
    s.reset().bind(id);
    std::vector<ReportSummary> out;
    while (s.step())
      out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
    return out;
  }

  std::vector<DeliveryCount> incident_delivery_counts(const std::string& id) override {
    auto& s = stmt(
        "SELECT channel, state, count(*) FROM deliveries WHERE incident_id = ? "
        "GROUP BY channel, state ORDER BY channel, state");
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
        "SELECT gateway, channel, state, count(*) FROM deliveries WHERE incident_id = ? "
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
         "deadline_at = CASE channel WHEN 0 THEN ?2 ELSE ?3 END, updated_at = ?1 "
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
         "event, severity, area, body, received_at, recipients) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
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
        "INSERT OR IGNORE INTO deliveries (report_id, incident_id, subscriber_id, channel, "
        "language, state, next_attempt_at, deadline_at, created_at, updated_at) "
        "SELECT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM subscriber_groups g "
        "JOIN subscribers s ON s.id = g.subscriber_id WHERE g.group_name = ?6 AND " REACHABLE_ON(
            "?3") " ORDER BY g.subscriber_id");  // the group's key order: no sort of the whole group
    int64_t added = 0;
    for (const auto& g : groups) {
      s.reset()
          .bind(report_id)
          .bind(incident_id)
          .bind(static_cast<int>(channel))
          .bind(now)
          .bind(deadline)
          .bind(g)
          .run();
      added += sqlite3_changes64(db_);
    }
    return added;
  }

  int64_t plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                   Channel channel, UnixMs now, UnixMs deadline) override {
    auto& s = stmt(
        "INSERT OR IGNORE INTO deliveries (report_id, incident_id, subscriber_id, channel, "
        "language, state, next_attempt_at, deadline_at, created_at, updated_at) "
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
        "CASE WHEN d.channel = 0 THEN s.phone ELSE s.email END "
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
      d.to = s.text(7);
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
        "0 AND channel = 0 AND subscriber_id = (SELECT subscriber_id FROM deliveries WHERE id = ?2)");
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
    UnixMs due = s.i64(0);
    s.reset();
    return due;
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

  int64_t insert_subscriber(const Subscriber& sub, UnixMs now) override {
    auto has = [&](Channel c) {
      return std::find(sub.channels.begin(), sub.channels.end(), c) != sub.channels.end() ? 1 : 0;
    };
    stmt("INSERT INTO subscribers (name, phone, email, language, sms, email_on, sms_opted_out, "
         "created_at) VALUES (?,?,?,?,?,?,?,?)")
        .reset()
        .bind(sub.name)
        .bind(sub.phone)
        .bind(sub.email)
        .bind(sub.language)
        .bind(has(Channel::kSms))
        .bind(has(Channel::kEmail))
        .bind(sub.sms_opted_out ? 1 : 0)
        .bind(now)
        .run();
    int64_t id = sqlite3_last_insert_rowid(db_);
    auto& g = stmt("INSERT OR IGNORE INTO subscriber_groups (group_name, subscriber_id) VALUES (?,?)");
    for (const auto& name : sub.groups) g.reset().bind(name).bind(id).run();
    return id;
  }

  std::optional<Subscriber> subscriber(int64_t id) override {
    auto& s = stmt(
        "SELECT id, name, phone, email, language, sms, email_on, sms_opted_out, created_at "
        "FROM subscribers WHERE id = ?");
    s.reset().bind(id);
    if (!s.step()) return std::nullopt;
    Subscriber sub;
    sub.id = s.i64(0);
    sub.name = s.text(1);
    sub.phone = s.text(2);
    sub.email = s.text(3);
    sub.language = s.text(4);
    if (s.i64(5)) sub.channels.push_back(Channel::kSms);
    if (s.i64(6)) sub.channels.push_back(Channel::kEmail);
    sub.sms_opted_out = s.i64(7) != 0;
    sub.created_at = s.i64(8);
    s.reset();
    auto& g = stmt("SELECT group_name FROM subscriber_groups WHERE subscriber_id = ? ORDER BY 1");
    g.reset().bind(id);
    while (g.step()) sub.groups.push_back(g.text(0));
    return sub;
  }

  bool delete_subscriber(int64_t id) override {
    stmt("UPDATE deliveries SET state = 6, last_error = 'recipient erased' WHERE subscriber_id = ? "
         "AND state = 0")
        .reset()
        .bind(id)
        .run();
    stmt("UPDATE acknowledgements SET subscriber_id = 0 WHERE subscriber_id = ?").reset().bind(id).run();
    stmt("DELETE FROM subscribers WHERE id = ?").reset().bind(id).run();
    return sqlite3_changes64(db_) > 0;
  }

  std::vector<int64_t> subscribers_by_phone(const std::string& e164) override {
    auto& s = stmt("SELECT id FROM subscribers WHERE phone = ? AND phone <> '' ORDER BY id");
    s.reset().bind(e164);
    std::vector<int64_t> out;
    while (s.step()) out.push_back(s.i64(0));
    return out;
  }

  int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) override {
    stmt("UPDATE subscribers SET sms_opted_out = ? WHERE id = ?")
        .reset()
        .bind(opted_out ? 1 : 0)
        .bind(subscriber_id)
        .run();
    if (!opted_out) return 0;
    stmt("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ? WHERE "
         "subscriber_id = ? AND channel = 0 AND state = 0")
        .reset()
        .bind(now)
        .bind(subscriber_id)
        .run();
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

  void insert_ack(const Acknowledgement& a) override {
    stmt("INSERT INTO acknowledgements (incident_id, subscriber_id, kind, received_at) "
         "VALUES (?,?,?,?)")
        .reset()
        .bind(a.incident_id)
        .bind(a.subscriber_id)
        .bind(a.kind)
        .bind(a.received_at)
        .run();
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

 private:
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw StoreError(msg);
    }
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
      auto& s = stmt("SELECT value FROM meta WHERE key = 'schema_version'");
      s.reset();
      if (s.step()) {
        int v = std::stoi(s.text(0));
        s.reset();
        if (v > kSchemaVersion)
          throw StoreError("database schema " + std::to_string(v) +
                           " is newer than this tocsin understands");
      } else {
        s.reset();
        stmt("INSERT INTO meta (key, value) VALUES ('schema_version', ?)")
            .reset()
            .bind(std::to_string(kSchemaVersion))
            .run();
      }
      exec("COMMIT");
    } catch (...) {
      rollback();
      throw;
    }
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
  // Prepared once, reused: keyed by the SQL literal's address.
  std::unordered_map<const char*, std::unique_ptr<Stmt>> stmts_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path) {
  return std::make_unique<SqliteStore>(path, /*read_only=*/true);
}

}  // namespace tocsin::store
