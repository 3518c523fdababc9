// The SQLite store's tables: schema 1 as first released, then one
// migration per later version, applied in order at open (migrate()).
#include "store/sqlite/schema.h"

#include <iterator>
#include <set>
#include <string>

namespace tocsin::store::sqlite {
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

// The signal, voice and email opt-out columns came into kSchema's
// subscribers table without a version of their own (before the migration
// list): a database made before them gets them here, idempotently. A new
// change is a migration, never another column here.
void add_missing_columns(Database& db) {
  std::set<std::string> have;
  auto& info = db.stmt("SELECT name FROM pragma_table_info('subscribers')");
  info.reset();
  while (info.step()) have.insert(info.text(0));
  info.reset();
  for (const char* column : {"signal_on", "voice_on", "email_opted_out"})
    if (!have.count(column))
      db.exec(("ALTER TABLE subscribers ADD COLUMN " + std::string(column) +
               " INTEGER NOT NULL DEFAULT 0").c_str());
}

}  // namespace

void migrate(Database& db) {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(kSchema);
    add_missing_columns(db);
    auto& s = db.stmt("SELECT value FROM meta WHERE key = 'schema_version'");
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
      db.stmt("INSERT INTO meta (key, value) VALUES ('schema_version', '1')").reset().run();
    }
    for (; v < kSchemaVersion; ++v) {
      db.exec(kMigrations[v - 1]);
      db.stmt("UPDATE meta SET value = ? WHERE key = 'schema_version'")
          .reset()
          .bind(std::to_string(v + 1))
          .run();
    }
    db.exec("COMMIT");
  } catch (...) {
    db.rollback();
    throw;
  }
}

}  // namespace tocsin::store::sqlite
