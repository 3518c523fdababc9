// The console's accounts, sessions, login throttle and two-person drafts
// (README "Console").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"

namespace tocsin::store {

// A person with a console account (README "Console"). Secrets are kept only
// as hashes (passphrase: argon2id; enrolment link: BLAKE2b); the TOTP secret
// is needed in the clear to check codes.
struct ConsoleUser {
  int64_t id = 0;
  std::string name;         // unique; shown in the audit log and on drafts
  std::string role;         // coordinator | verifier | admin
  std::string coordinator;  // the configured coordinator they act for ("" for a verifier or admin)
  std::string pw_hash;      // crypto_pwhash_str output; "" until enrolled
  std::string totp_secret;  // base32; "" until enrolled
  int64_t totp_last_step = 0;  // the last 30-s step whose code was accepted (each code once)
  bool disabled = false;
  std::string enrol_hash;   // hash of the one-time enrolment token; "" once used
  UnixMs enrol_expires = 0;
  UnixMs created_at = 0;
};

struct ConsoleSession {
  std::string token_hash;  // hash of the cookie's token; the token itself is never stored
  int64_t user_id = 0;
  std::string csrf;        // per-session CSRF token (random, not a secret of the cookie)
  UnixMs created_at = 0;
  UnixMs last_seen = 0;
};

// A console alert waiting for a second person (two-person rule).
struct Draft {
  int64_t id = 0;
  std::string coordinator;
  std::string author;       // console user name
  std::string report_json;  // the report as the webhook would carry it
  std::string state = "waiting";  // waiting | approved | rejected
  std::string decided_by;
  std::string incident_id;  // once approved
  UnixMs created_at = 0;
  UnixMs decided_at = 0;
};

class ConsoleStore {
 public:
  virtual ~ConsoleStore() = default;

  // insert_console_user returns 0 when the name is taken.
  virtual int64_t insert_console_user(const ConsoleUser& u) = 0;
  virtual std::optional<ConsoleUser> console_user(int64_t id) = 0;
  virtual std::optional<ConsoleUser> console_user_by_name(const std::string& name) = 0;
  virtual std::optional<ConsoleUser> console_user_by_enrol(const std::string& enrol_hash) = 0;
  virtual std::vector<ConsoleUser> console_users() = 0;
  virtual void update_console_user(const ConsoleUser& u) = 0;
  // Records `step` as the last accepted TOTP step when it is later than the
  // stored one; false (a replayed or older code) otherwise.
  virtual bool use_totp_step(int64_t user_id, int64_t step) = 0;
  virtual void insert_session(const ConsoleSession& s) = 0;
  virtual std::optional<ConsoleSession> session(const std::string& token_hash) = 0;
  virtual void touch_session(const std::string& token_hash, UnixMs now) = 0;
  virtual void delete_session(const std::string& token_hash) = 0;
  // Ends every session of the user; returns how many.
  virtual int64_t delete_user_sessions(int64_t user_id) = 0;
  // Failed logins under `key` ("user:NAME" or "addr:IP") and when the next try is allowed.
  virtual std::pair<int64_t, UnixMs> throttle(const std::string& key) = 0;
  virtual void set_throttle(const std::string& key, int64_t failures, UnixMs next_at,
                            UnixMs now) = 0;
  virtual void clear_throttle(const std::string& key) = 0;
  virtual int64_t insert_draft(const Draft& d) = 0;
  virtual std::optional<Draft> draft(int64_t id) = 0;
  virtual std::vector<Draft> waiting_drafts() = 0;
  virtual void update_draft(const Draft& d) = 0;
};

}  // namespace tocsin::store
