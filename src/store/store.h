// Storage behind one small interface. The SQLite store is the embedded
// default; a PostgreSQL store implementing the same interface will let
// several instances share one queue (leases already carry an owner).
//
// A Store is used by one thread at a time (the StoreWorker's). Methods throw
// StoreError on database failure; the worker turns that into a failed job
// and a rolled-back transaction, so callers see a value, never a throw.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/report.h"
#include "store/store_error.h"

namespace tocsin::store {

class Keyring;

// The first answer to a webhook-id, replayed to repeats.
struct StoredAnswer {
  int status = 0;
  std::string body;
};

struct IncidentRecord {
  std::string id;  // short code: subscribers quote it, coordinators reference it
  std::string event;
  std::string area;
  std::optional<Location> location;
  std::string dedup_key;
  Severity severity = Severity::kMinor;
  ReportStatus status = ReportStatus::kActual;
  bool open = true;
  UnixMs opened_at = 0;
  UnixMs last_report_at = 0;
  UnixMs closed_at = 0;
  int64_t report_count = 0;
  double spread_m = 0;  // farthest merged report from the incident's location
};

struct ReportRecord {
  int64_t id = 0;  // assigned by insert_report
  std::string incident_id;
  std::string coordinator;
  std::string webhook_id;
  std::string outcome;  // new_incident | merged | update | cancel
  const Report* report = nullptr;
  std::string raw_json;  // the report body as received
  UnixMs received_at = 0;
  int64_t recipients = 0;
};

struct ReportSummary {
  int64_t id = 0;
  std::string coordinator;
  std::string msg_type;
  std::string outcome;
  std::string severity;
  UnixMs received_at = 0;
  int64_t recipients = 0;
};

struct Subscriber {
  int64_t id = 0;
  std::string name;
  std::string phone;     // E.164 or ""
  std::string email;     // or ""
  std::string language = "en";
  std::vector<std::string> groups;
  std::vector<Channel> channels;
  bool sms_opted_out = false;    // STOP to the alert number: no SMS, Signal or calls
  bool email_opted_out = false;  // the email's unsubscribe link, a hard bounce or spam report
  UnixMs created_at = 0;
};

// A keyword texted to the alert number, waiting for its confirmation. The
// number is kept only as a keyed hash (found again when YES comes from it).
struct JoinRequest {
  std::string group;
  std::string language;
  std::string keyword;
  std::string provider_message_id;  // Twilio's MessageSid of the keyword text
  UnixMs created_at = 0;
};

// Proof of a self-service subscription: when, which keyword, and the
// provider's ids of the keyword and confirmation texts; never the texts.
struct Consent {
  int64_t subscriber_id = 0;
  std::string group;
  std::string keyword;
  std::string request_message_id;
  std::string confirm_message_id;
  UnixMs requested_at = 0;
  UnixMs confirmed_at = 0;
};

// Whom one delivery was for (a provider callback names the delivery).
struct DeliveryTarget {
  std::string incident_id;
  int64_t subscriber_id = 0;  // 0 once erased
  Channel channel = Channel::kSms;
  DeliveryState state = DeliveryState::kPending;
  std::string language;  // of the message
};

// A pending delivery leased to a sender, with everything needed to send it.
struct ClaimedDelivery {
  int64_t id = 0;
  Channel channel = Channel::kSms;
  std::string incident_id;
  std::string to;        // phone or email
  std::string language;  // the message's language
  std::shared_ptr<const std::string> subject;  // shared by every recipient of one text
  std::shared_ptr<const std::string> body;
  int attempts = 0;      // attempts made before this one
  UnixMs deadline_at = 0;
  int64_t report_id = 0;  // the report that planned it
  UnixMs planned_at = 0;  // when it was planned: when that report was accepted
  int64_t subscriber_id = 0;
  bool followup = false;  // email: not the incident's first report (threads under the alert)
};

// The result of one attempt, written back in batches.
struct DeliveryUpdate {
  int64_t id = 0;
  DeliveryState state = DeliveryState::kPending;  // pending = retry at next_attempt_at
  UnixMs next_attempt_at = 0;
  std::string gateway;
  std::string provider_id;  // e.g. Twilio's message SID
  std::string error;        // provider code or transport error; never personal data
  bool opt_out = false;     // the provider says the number opted out (Twilio 21610)
};

// A subscriber's reply to an alert, counted on the incident. Its text is not kept.
struct Acknowledgement {
  std::string incident_id;
  int64_t subscriber_id = 0;  // 0 once the subscriber was erased
  std::string kind;           // "responding" | "reply"
  UnixMs received_at = 0;
};

struct DeliveryCount {
  Channel channel = Channel::kSms;
  DeliveryState state = DeliveryState::kPending;
  int64_t count = 0;
};

// How far one report's fan-out on one channel has come.
struct FanoutProgress {
  int64_t report_id = 0;
  Channel channel = Channel::kSms;
  int64_t accepted = 0;  // deliveries a gateway accepted (sent, delivered or undelivered)
  bool pending = false;  // some delivery is still pending
};

// One admin action, as the audit log keeps it: who, what, when and how it
// ended, never the personal data it touched (ids and counts only).
struct AuditEntry {
  int64_t id = 0;  // assigned by insert_audit; the paging cursor
  UnixMs at = 0;
  std::string actor;   // admin token identity ("ops" or "token:1a2b3c4d"), or "signal" for SIGHUP
  std::string method;  // GET, POST, PATCH, DELETE, or RELOAD
  std::string route;   // route template, e.g. /v1/subscribers/{id}
  std::string object_id;  // subscriber id or incident code; "" for collections
  int status = 0;         // the HTTP status answered
  int64_t count = 0;      // rows in a batch or a page; 0 when not a batch
};

// Where a group stands with an incident (README "Safety rules"): held
// (matched, but the incident is not yet certain or corroborated enough for
// it) or sent (its subscribers are among the incident's recipients).
struct IncidentGroup {
  std::string incident_id;
  std::string group;
  std::string state;    // "held" | "sent"
  std::string via;      // sent: "match" | "released" | "escalated"
  std::string waiting;  // held: what it waits for, in words
  UnixMs held_at = 0;
  UnixMs sent_at = 0;     // the first send to the group (its escalation timer starts here)
  UnixMs covered_at = 0;  // 0 until "covered" went to its non-responders
};

// One step of the safety rules on an incident's timeline: held, released,
// escalated, escalation_not_needed, escalation_cancelled, covered.
struct SafetyEvent {
  UnixMs at = 0;
  std::string what;
  std::string group;
  std::string detail;  // words, e.g. "waits for 2 coordinators (has 1)"; never personal data
  int64_t recipients = 0;
};

// A stored escalation timer that is due.
struct EscalationTimer {
  std::string incident_id;
  std::string group;
  UnixMs due_at = 0;
  UnixMs sent_at = 0;  // the group's first send
};

// How a timer ended: fired (sent to the `to` groups), not needed (enough
// responded), cancelled (all-clear), dropped (the rule left the config).
enum class TimerEnd { kFired = 1, kNotNeeded = 2, kCancelled = 3, kDropped = 4 };


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

struct ClaimResult {
  std::vector<ClaimedDelivery> claimed;
  int64_t expired = 0;    // pending deliveries found past their deadline and expired
  int64_t cancelled = 0;  // found without a reachable recipient and cancelled
};

class Store {
 public:
  virtual ~Store() = default;

  // Transactions. The worker batches jobs into one transaction (group
  // commit); each job runs inside its own savepoint.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() = 0;
  virtual void savepoint() = 0;
  virtual void release_savepoint() = 0;
  virtual void rollback_to_savepoint() = 0;

  // Idempotency of webhook-ids.
  virtual std::optional<StoredAnswer> find_answer(const std::string& coordinator,
                                                  const std::string& webhook_id) = 0;
  virtual void save_answer(const std::string& coordinator, const std::string& webhook_id,
                           const StoredAnswer& answer, UnixMs now) = 0;
  // Forgets answers older than `before`; returns how many.
  virtual int64_t purge_answers(UnixMs before) = 0;

  // Incidents.
  // Open incidents whose last report is at or after `since` that `report`
  // could join (see find_duplicate): those with its dedup_key, and those of its
  // event in its area or, when both are located, within radius_m of it. May
  // return more (find_duplicate decides), never fewer; reads only those.
  virtual std::vector<IncidentRecord> dedup_candidates(const Report& report, double radius_m,
                                                       UnixMs since) = 0;
  virtual std::optional<IncidentRecord> incident(const std::string& id) = 0;
  // Inserts `incident`; false when its id is taken (the caller picks another).
  virtual bool insert_incident(const IncidentRecord& incident) = 0;
  virtual void update_incident(const IncidentRecord& incident) = 0;
  // Newest first; `open_only` filters on state.
  virtual std::vector<IncidentRecord> list_incidents(bool open_only, int limit) = 0;
  virtual std::vector<ReportSummary> incident_reports(const std::string& id) = 0;
  virtual std::vector<DeliveryCount> incident_delivery_counts(const std::string& id) = 0;
  // Counts by gateway (the last one tried) and state; "" for never tried.
  virtual std::vector<std::pair<std::string, DeliveryCount>> incident_gateway_counts(
      const std::string& id) = 0;
  // Puts the incident's failed and expired deliveries back in the queue,
  // due now, with a fresh deadline per channel. Returns how many.
  virtual int64_t requeue_failed(const std::string& id, UnixMs now, UnixMs sms_deadline,
                                 UnixMs email_deadline) = 0;

  // Reports. Returns the new report id.
  virtual int64_t insert_report(const ReportRecord& report) = 0;
  virtual void set_report_recipients(int64_t report_id, int64_t recipients) = 0;

  // Fan-out planning, all inside the caller's transaction.
  // Distinct languages of subscribers in `groups` reachable on `channel`.
  virtual std::vector<std::string> group_languages(const std::vector<std::string>& groups,
                                                   Channel channel) = 0;
  // Reachable subscribers of `groups` on `channel` (each counted once), by language.
  virtual std::vector<std::pair<std::string, int64_t>> group_audience(
      const std::vector<std::string>& groups, Channel channel) = 0;
  // Distinct languages of the incident's earlier recipients on `channel`.
  virtual std::vector<std::string> recipient_languages(const std::string& incident_id,
                                                       Channel channel) = 0;
  virtual void insert_message(int64_t report_id, Channel channel, const std::string& language,
                              const std::string& subject, const std::string& body) = 0;
  // One pending delivery per reachable (subscriber, channel) in `groups`
  // (unique per report); returns how many were added.
  virtual int64_t plan_group_deliveries(int64_t report_id, const std::string& incident_id,
                                        const std::vector<std::string>& groups, Channel channel,
                                        UnixMs now, UnixMs deadline) = 0;
  // One pending delivery per (subscriber, channel) that an earlier report of
  // the incident was planned for, still reachable; returns how many.
  virtual int64_t plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                           Channel channel, UnixMs now, UnixMs deadline) = 0;

  // Delivery queue.
  // Leases up to `limit` due deliveries of `channel` until `lease_until`.
  virtual ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                                UnixMs lease_until) = 0;
  virtual void record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) = 0;
  // A provider's delivery receipt for the message it called `provider_id`:
  // moves a sent delivery to delivered or undelivered, never back (receipts
  // arrive out of order). Returns whether anything changed.
  virtual bool apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) = 0;
  // Earliest next_attempt_at among unleased pending deliveries, if any.
  virtual std::optional<UnixMs> next_due(Channel channel) = 0;
  // Ends every lease (start-up of the only instance on this store).
  virtual int64_t release_all_leases() = 0;
  // Ends the leases of deliveries claimed but never sent (graceful stop).
  virtual void release_leases(const std::vector<int64_t>& ids) = 0;
  virtual int64_t pending_count() = 0;
  // For each (report, channel) of `keys`: whether a delivery is still
  // pending and, when `count_accepted`, how many a gateway accepted (for the
  // first/last-send latency metrics).
  virtual std::vector<FanoutProgress> fanout_progress(
      const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) = 0;

  // Subscribers. Personal data: never logged; stored encrypted under the
  // keyring's active key, found by keyed hashes (README "Privacy").
  virtual int64_t insert_subscriber(const Subscriber& s, UnixMs now) = 0;
  virtual std::optional<Subscriber> subscriber(int64_t id) = 0;
  // Erases the person's data and cancels what was still to be sent to them.
  virtual bool delete_subscriber(int64_t id) = 0;
  // Replaces the subscriber's name, phone, email, language, channels and
  // groups (not the opt-out or created_at). False when there is no such id.
  virtual bool update_subscriber(const Subscriber& s) = 0;
  // Subscribers by id, ascending, after `after_id`, at most `limit`; only
  // members of `group` unless it is "".
  virtual std::vector<Subscriber> list_subscribers(const std::string& group, int64_t after_id,
                                                   int limit) = 0;
  // Ids of the subscribers with this E.164 number.
  virtual std::vector<int64_t> subscribers_by_phone(const std::string& e164) = 0;
  // Ids of the subscribers with this email address (ASCII case ignored).
  virtual std::vector<int64_t> subscribers_by_email(const std::string& email) = 0;
  // Opts the subscriber out of SMS (cancelling every SMS still pending for
  // them, so a fan-out in progress stops for them at once) or back in.
  // Returns how many deliveries were cancelled.
  virtual int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) = 0;
  // Opts the subscriber out of email (their unsubscribe link, a hard bounce,
  // a spam report), cancelling their pending email. nullopt when there is
  // no such subscriber; else how many deliveries were cancelled.
  virtual std::optional<int64_t> set_email_opt_out(int64_t subscriber_id, UnixMs now) = 0;
  // The subscriber's language tag, without decrypting anything.
  virtual std::optional<std::string> subscriber_language(int64_t id) = 0;


  // Provider callbacks (replays are refused by first_event below).
  virtual std::optional<DeliveryTarget> delivery_target(int64_t delivery_id) = 0;
  // apply_receipt for a delivery known by its id (SendGrid custom_args, a
  // call's status callback): sent → delivered or undelivered, never back.
  virtual bool apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) = 0;

  // Join by text (double opt-in).
  // Confirmation prompts sent since `since`: to this number, and to all.
  virtual int64_t join_prompts_since(const std::string& e164, UnixMs since) = 0;
  virtual int64_t all_join_prompts_since(UnixMs since) = 0;
  // Records a prompt sent to `e164` (which counts against the limits).
  virtual void insert_join_request(const std::string& e164, const JoinRequest& request) = 0;
  // The latest request from this number since `since`, if any.
  virtual std::optional<JoinRequest> pending_join(const std::string& e164, UnixMs since) = 0;
  // Ends this number's pending requests (confirmed, or left); the rows stay
  // (without a group) to count against the limits until purged.
  virtual void close_join_requests(const std::string& e164) = 0;
  virtual void insert_consent(const Consent& consent) = 0;
  virtual std::vector<Consent> consents(int64_t subscriber_id) = 0;
  // Removes the subscriber from `group`; false when they were not in it.
  virtual bool leave_group(int64_t subscriber_id, const std::string& group) = 0;
  // Forgets join requests older than `before`.
  virtual int64_t purge_join_requests(UnixMs before) = 0;

  // Keys and retention.
  // Uses `keyring` from now on (a reload). Throws StoreError, keeping the
  // current one, when it lacks a key that some row is encrypted under or its
  // hash key is not the one the database was written with.
  virtual void set_keyring(std::shared_ptr<const Keyring> keyring) = 0;
  // Re-encrypts up to `limit` subscribers not yet under the active key;
  // returns how many (0: every row is under it).
  virtual int64_t reencrypt_subscribers(int limit) = 0;
  // Retention: deletes up to `limit` ended deliveries created before
  // `before` (their counts stay with the incident), the rendered texts and
  // report bodies of reports received before it (texts once no delivery of
  // the report is pending), and detaches older acknowledgements from
  // subscribers. Returns how many deliveries were deleted (`limit`: call
  // again for more).
  virtual int64_t purge_deliveries(UnixMs before, int limit) = 0;

  // Acknowledgements.
  // The most recent incident an SMS was planned to the subscriber for, among
  // incidents whose last report is at or after `since`.
  virtual std::optional<std::string> last_sms_incident(int64_t subscriber_id, UnixMs since) = 0;
  // Records `ack` unless the subscriber already gave one of that kind on
  // the incident (counts are of people, not messages); returns whether it
  // was recorded.
  virtual bool insert_ack(const Acknowledgement& ack) = 0;
  virtual std::vector<Acknowledgement> incident_acks(const std::string& incident_id) = 0;

  // Safety rules (README "Safety rules"); all inside the caller's transaction.
  // The (reporter, certainty) of every alert and update of the incident.
  virtual std::vector<std::pair<std::string, Certainty>> incident_evidence(
      const std::string& incident_id) = 0;
  virtual std::vector<IncidentGroup> incident_groups(const std::string& incident_id) = 0;
  // Inserts or replaces the (incident, group) row.
  virtual void put_incident_group(const IncidentGroup& row) = 0;
  // Like plan_group_deliveries, but only subscribers without a delivery of
  // the incident on `channel` yet: nobody already reached gets it twice.
  virtual int64_t plan_new_recipient_deliveries(int64_t report_id, const std::string& incident_id,
                                                const std::vector<std::string>& groups,
                                                Channel channel, UnixMs now, UnixMs deadline) = 0;
  // The group's members who are recipients of the incident (any channel).
  virtual std::vector<int64_t> group_recipients(const std::string& incident_id,
                                                const std::string& group) = 0;
  // One pending delivery on `channel` for each of `subscribers` who had a
  // delivery of the incident on it and is still reachable; returns how many.
  virtual int64_t plan_deliveries_to(int64_t report_id, const std::string& incident_id,
                                     const std::vector<int64_t>& subscribers, Channel channel,
                                     UnixMs now, UnixMs deadline) = 0;
  // Distinct languages of `subscribers`.
  virtual std::vector<std::string> subscriber_languages(const std::vector<int64_t>& subscribers) = 0;
  // The body of the incident's latest alert or update (as received; "" once
  // purged by retention).
  virtual std::string latest_report_body(const std::string& incident_id) = 0;
  // Escalation timers: one per (incident, group), never two.
  virtual void insert_escalation(const std::string& incident_id, const std::string& group,
                                 UnixMs sent_at, UnixMs due_at) = 0;
  // Pending timers due at or before `now`, oldest first, at most `limit`.
  virtual std::vector<EscalationTimer> due_escalations(UnixMs now, int limit) = 0;
  virtual void end_escalation(const std::string& incident_id, const std::string& group,
                              TimerEnd how, UnixMs now) = 0;
  // Ends the incident's pending timers as cancelled; returns their groups.
  virtual std::vector<std::string> cancel_escalations(const std::string& incident_id,
                                                      UnixMs now) = 0;
  virtual void insert_safety_event(const std::string& incident_id, const SafetyEvent& event) = 0;
  virtual std::vector<SafetyEvent> safety_events(const std::string& incident_id) = 0;

  // Provider callbacks (Twilio's MessageSid, later SendGrid's sg_event_id)
  // applied once: records (provider, event_id) at `now` and returns true the
  // first time, false when it is already recorded (a replay or a retry of a
  // callback whose effect committed).
  virtual bool first_event(std::string_view provider, std::string_view event_id, UnixMs now) = 0;
  // Forgets events recorded before `before`; returns how many.
  virtual int64_t purge_events(UnixMs before) = 0;

  // Console accounts, sessions, login throttle and drafts (schema 4).
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

  // Audit log of admin actions. Returns the new entry's id.
  virtual int64_t insert_audit(const AuditEntry& entry) = 0;
  // Entries by id, ascending, after `after_id`, at most `limit`.
  virtual std::vector<AuditEntry> audit_after(int64_t after_id, int limit) = 0;
  // Forgets entries older than `before`; returns how many.
  virtual int64_t purge_audit(UnixMs before) = 0;
};

// Opens (creating if needed) the SQLite store at `path` ("" or ":memory:"
// for an in-memory database): WAL, synchronous=FULL, secure_delete, schema
// migrated; subscribers' personal data encrypted with `keyring`.
// Takes an exclusive lock file beside it: one daemon per database.
// Throws StoreLocked when another process holds it, StoreError when it
// cannot open or `keyring` does not fit the database (see set_keyring).
std::unique_ptr<Store> open_sqlite_store(const std::string& path,
                                         std::shared_ptr<const Keyring> keyring);

// Opens an existing store read-only, beside a running daemon (WAL lets
// readers in): for `tocsin route` and other looks that change nothing and
// read no personal data (without a keyring, reading a subscriber throws).
std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path);

// Opens the store read-write without its lock file, beside a running daemon
// (WAL and busy_timeout let the two write in turn): for `tocsin users`,
// which writes console accounts only, never the delivery queue.
std::unique_ptr<Store> open_sqlite_store_beside_daemon(const std::string& path,
                                                       std::shared_ptr<const Keyring> keyring);

}  // namespace tocsin::store
