// tocsin's configuration: plain structs with defaults, loaded from JSON (with
// // comments) in one place, then validated as a whole. Every problem is
// reported with its JSON path so `tocsin check-config` can list them all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/areas.h"
#include "core/json_reader.h"
#include "core/dedup.h"
#include "core/model.h"
#include "core/routing.h"
#include "core/templates.h"
#include "delivery/gateway_config.h"
#include "store/keyring.h"

namespace tocsin::app {

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";  // host:port the HTTP API binds
  std::size_t max_body_bytes = 65536;      // larger request bodies get 413
  std::size_t max_connections = 1024;      // at the cap, idle/partial ones are closed for room
  std::size_t max_connections_per_address = 256;  // open connections from one IP address
  int first_byte_timeout_ms = 2000;  // a new connection's first byte, from accept
  int header_timeout_ms = 5000;      // a new connection's whole request head, from accept
  std::string public_url;                  // base URL providers call back (receipts, inbound)
  bool operator==(const ServerConfig&) const = default;
};

struct StorageConfig {
  std::string sqlite_path = "var/tocsin.db";  // SQLite file; its directory is created
  // storage.postgresql instead of storage.sqlite (exactly one of them; neither: SQLite at
  // the default path). `url`: libpq's conninfo or a postgresql:// URI. Never logged.
  std::string postgresql_url;
  std::string postgresql_password_file;  // optional: the password alone in a file (absolute path)
  std::string key_file;                       // required: keys of subscribers' data at rest
  std::shared_ptr<const store::Keyring> keyring;  // read from key_file at load (and reload)
  bool operator==(const StorageConfig&) const = default;
};

struct RetentionConfig {
  double deliveries_days = 30;  // deliveries, rendered texts and report bodies kept this long
  // Provider callbacks' ids (Twilio MessageSid) remembered this long: a
  // replay within it changes nothing.
  double provider_events_days = 30;
  bool operator==(const RetentionConfig&) const = default;
};

struct CoordinatorConfig {
  std::string name;                // appears in logs and incident records
  std::vector<std::string> keys;   // HMAC keys (decoded whsec_ secrets); several during rotation
  std::vector<std::string> areas;  // area paths this coordinator may report in
  // "approval": "two_person": every console alert of this coordinator waits
  // for a second person's approval (webhook reports are unaffected).
  bool two_person = false;
  bool operator==(const CoordinatorConfig&) const = default;
};

struct AdminToken {
  // Who holds it, for the audit log; "token:<8 hex>" (a hash prefix) when unnamed.
  std::string name;
  std::string token;  // the bearer secret (at least 16 characters)
  bool operator==(const AdminToken&) const = default;
};

// The gateway settings live with the gateways (delivery/gateway_config.h).
using delivery::GatewayConfig;
using delivery::GatewayType;

struct DeliveryConfig {
  int64_t sms_deadline_s = 1800;    // an SMS not accepted by then is expired: stale alerts mislead
  int64_t email_deadline_s = 7200;  // same for email
  int64_t lease_s = 120;            // a claimed delivery is reclaimable after this long
  int64_t max_retry_delay_s = 60;   // cap of the exponential backoff
  int breaker_threshold = 5;        // consecutive failures that open a gateway's circuit
  int64_t breaker_cooldown_s = 10;  // before an open circuit lets one probe request through
  // Answered results not yet committed at which new sends wait: with the
  // requests at gateways, the bound on messages a crash sends twice.
  int max_unrecorded = 500;
  bool operator==(const DeliveryConfig&) const = default;
};

struct SmsConfig {
  // A rendered SMS longer than this many segments is shortened (instruction
  // first, never the headline): each segment is billed and rate-limited.
  int max_segments = 3;
  bool operator==(const SmsConfig&) const = default;
};

struct SubscribersConfig {
  std::string default_region = "US";  // region for phone numbers written without +country
  bool operator==(const SubscribersConfig&) const = default;
};

// Limits on join-by-text prompts: each prompt is an SMS tocsin pays for, and
// a flood of keyword texts from spoofed numbers must not become a bill.
struct JoinConfig {
  int max_prompts_per_number = 3;  // confirmation prompts to one number in 24 hours
  int max_prompts_per_hour = 100;  // confirmation prompts to all numbers in one hour
  int64_t confirm_window_s = 86400;  // a prompt may be confirmed within this long
  bool operator==(const JoinConfig&) const = default;
};

struct LogConfig {
  bool json = false;  // "format": "json": one JSON object per line (for log shippers); else text
  // Refused requests (4xx) are summarised in one line per this many seconds.
  int refused_summary_s = 60;
  bool operator==(const LogConfig&) const = default;
};

struct AreasConfig {
  std::string file;           // areas_file: a GeoJSON FeatureCollection ("" = none)
  double tolerance_m = 200;   // a report's point may lie this far outside its named area
  // The shapes of areas_file and areas.circles, read and indexed at load
  // (and reload); null when neither is configured.
  std::shared_ptr<const AreaSet> shapes;
  bool operator==(const AreasConfig& o) const {
    return file == o.file && tolerance_m == o.tolerance_m &&
           (shapes ? shapes->fingerprint() : "") == (o.shapes ? o.shapes->fingerprint() : "");
  }
};

// The coordinators' web console (README "Console").
struct ConsoleConfig {
  bool enabled = false;                // serve /console/
  int64_t idle_timeout_s = 1800;       // a session unused this long ends
  int64_t absolute_timeout_s = 43200;  // and every session ends this long after login
  int64_t draft_flag_after_s = 300;    // a draft waiting longer is flagged on the board
  std::vector<std::string> events = {"enforcement_activity"};  // the report form's events
  std::vector<std::string> languages = {"en", "es"};  // headline/instruction fields of the form
  bool operator==(const ConsoleConfig&) const = default;
};

struct Config {
  std::string source;  // file it was loaded from
  ServerConfig server;
  StorageConfig storage;
  std::vector<CoordinatorConfig> coordinators;
  std::vector<AdminToken> admin_tokens;
  DedupRules dedup;
  std::vector<GatewayConfig> gateways;
  std::vector<Group> groups;   // subscriber groups, in config order
  MessageTemplates templates;  // as configured; empty maps fall back to built-ins
  SmsConfig sms;
  DeliveryConfig delivery;
  SubscribersConfig subscribers;
  JoinConfig join;
  LogConfig log;
  RetentionConfig retention;
  AreasConfig areas;
  ConsoleConfig console;

  const Group* group(std::string_view name) const;
};

struct ConfigResult {
  Config config;
  std::vector<FieldProblem> problems;  // empty when the config is valid
  // Not wrong, but worth a look (a language missing from one template set,
  // an SMS template that cannot fit sms.max_segments); they do not fail.
  std::vector<FieldProblem> warnings;
  bool ok() const { return problems.empty(); }
};

// The key of email unsubscribe tokens (core/unsubscribe.h): a keyed hash of
// a constant under the key file's hash key, so it needs no new secret and
// never changes (the hash key cannot). "" without a keyring.
std::string unsubscribe_key(const Config& config);

// Loads and validates the file at `path`. Relative paths inside it (the
// database, `*_file` secrets, file gateways) resolve against the working
// directory.
ConfigResult load_config(const std::string& path);

// Loads and validates config text (for tests; base_dir resolves *_file paths).
ConfigResult parse_config(const std::string& text, const std::string& base_dir);

}  // namespace tocsin::app

namespace tocsin::app {

// An immutable, validated snapshot of the config with everything derived
// from it; swapped whole on reload, shared by whoever holds a pointer.
struct ActiveConfig {
  Config config;
  MessageTemplates templates;  // config.templates with built-in defaults filled in

  explicit ActiveConfig(Config c) : config(std::move(c)), templates(with_defaults(config.templates)) {}
};

}  // namespace tocsin::app
