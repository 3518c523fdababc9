// PgStore, the PostgreSQL store: several tocsin instances share one
// database (issue 16). Private to src/store/postgresql/.
//
// Like SqliteStore, one class whose methods are defined across one .cpp
// file per concern (incidents, queue, safety, subscribers, console,
// maintenance, keys) over one Connection, used by one thread (the
// StoreWorker's): synchronous libpq, the same threading model and group
// commit as SQLite (README "PostgreSQL store" says why).
//
// What SQLite gets from being the only writer, this store gets from the
// database: claims lock rows with FOR UPDATE SKIP LOCKED and lease them to
// this instance (instance_id); results and releases touch only this
// instance's leases; inserts that SQLite checks first are unique
// constraints with ON CONFLICT; the read-decide-write steps (an
// idempotency answer, dedup) are serialised by transaction advisory locks.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "store/keyring.h"
#include "store/postgresql/connection.h"
#include "store/store.h"
#include "store/subscriber_crypto.h"

namespace tocsin::store::postgresql {

// A subscriber is reachable on channel CH (0 sms, 1 email, 2 signal, 3 voice):
// SQLite's REACHABLE_ON, the same expression.
#define PG_REACHABLE_ON(CH)                                                                     \
  "((" CH " <> 1 AND s.phone IS NOT NULL AND s.sms_opted_out = 0 AND ((" CH " = 0 AND s.sms = " \
  "1) OR (" CH " = 2 AND s.signal_on = 1) OR (" CH " = 3 AND s.voice_on = 1))) OR (" CH         \
  " = 1 AND s.email_on = 1 AND s.email IS NOT NULL AND s.email_opted_out = 0))"

class PgStore final : public Store {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  // Connects (see Connection), migrates the schema and checks `keyring`
  // against the data (see set_keyring); read-only: neither, and every
  // transaction is read-only. `instance_id` names this instance's leases.
  PgStore(const std::string& conninfo, const std::string& password,
          std::shared_ptr<const Keyring> keyring, std::string instance_id, Mode mode);

  const std::string& instance_id() const { return instance_id_; }

  void begin() override;
  void commit() override;
  void rollback() override;
  void savepoint() override;
  void release_savepoint() override;
  void rollback_to_savepoint() override;
  void next_savepoint() override;
  void end_job() override;

  // Idempotency, incidents, reports and their texts (incidents.cpp).
  std::optional<StoredAnswer> find_answer(const std::string& coordinator,
                                          const std::string& webhook_id) override;
  void save_answer(const std::string& coordinator, const std::string& webhook_id,
                   const StoredAnswer& answer, UnixMs now) override;
  std::vector<IncidentRecord> dedup_candidates(const Report& report, double radius_m,
                                               UnixMs since) override;
  std::optional<IncidentRecord> incident(const std::string& id) override;
  bool insert_incident(const IncidentRecord& i) override;
  void update_incident(const IncidentRecord& i) override;
  std::vector<IncidentRecord> list_incidents(bool open_only, int limit) override;
  std::vector<ReportSummary> incident_reports(const std::string& id) override;
  std::vector<DeliveryCount> incident_delivery_counts(const std::string& id) override;
  std::vector<std::pair<std::string, DeliveryCount>> incident_gateway_counts(
      const std::string& id) override;
  int64_t insert_report(const ReportRecord& r) override;
  void set_report_recipients(int64_t report_id, int64_t recipients) override;
  std::vector<std::string> group_languages(const std::vector<std::string>& groups,
                                           Channel channel) override;
  std::vector<std::pair<std::string, int64_t>> group_audience(const std::vector<std::string>& groups,
                                                              Channel channel) override;
  FollowupReach followup_reach(const std::string& incident_id) override;
  std::vector<std::string> recipient_languages(const std::string& incident_id,
                                               Channel channel) override;
  void insert_message(int64_t report_id, Channel channel, const std::string& language,
                      const std::string& subject, const std::string& body) override;
  std::vector<ReportEvidence> incident_evidence(const std::string& incident_id) override;
  std::string latest_report_body(const std::string& incident_id) override;

  // Deliveries: planning, the queue, leases, results and receipts (queue.cpp).
  int64_t requeue_failed(const std::string& id, UnixMs now, UnixMs sms_deadline,
                         UnixMs email_deadline) override;
  bool apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) override;
  int64_t plan_group_deliveries(int64_t report_id, const std::string& incident_id,
                                const std::vector<std::string>& groups, Channel channel,
                                UnixMs now, UnixMs deadline) override;
  int64_t plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                   Channel channel, UnixMs now, UnixMs deadline) override;
  ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                        UnixMs lease_until) override;
  void record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) override;
  std::optional<UnixMs> next_due(Channel channel) override;
  int64_t release_all_leases() override;
  void release_leases(const std::vector<int64_t>& ids) override;
  void renew_leases(const std::vector<int64_t>& ids, UnixMs until) override;
  int64_t pending_count() override;

  // Cluster (cluster.cpp): the instances table and the leader's advisory lock.
  Membership heartbeat(const std::string& instance, UnixMs now, UnixMs until) override;
  void leave(const std::string& instance) override;
  std::vector<FanoutProgress> fanout_progress(const std::vector<std::pair<int64_t, Channel>>& keys,
                                              bool count_accepted) override;
  std::optional<DeliveryTarget> delivery_target(int64_t delivery_id) override;
  bool apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) override;
  bool note_receipt_to(int64_t delivery_id, std::string_view note, UnixMs now) override;
  int64_t plan_new_recipient_deliveries(int64_t report_id, const std::string& incident_id,
                                        const std::vector<std::string>& groups, Channel channel,
                                        UnixMs now, UnixMs deadline) override;
  int64_t plan_deliveries_to(int64_t report_id, const std::string& incident_id,
                             const std::vector<int64_t>& subscribers, Channel channel, UnixMs now,
                             UnixMs deadline) override;

  // Safety rules and acknowledgements (safety.cpp).
  std::optional<std::string> last_sms_incident(int64_t subscriber_id, UnixMs since) override;
  bool insert_ack(const Acknowledgement& a) override;
  std::vector<Acknowledgement> incident_acks(const std::string& incident_id) override;
  std::vector<IncidentGroup> incident_groups(const std::string& incident_id) override;
  void put_incident_group(const IncidentGroup& g) override;
  std::vector<int64_t> group_recipients(const std::string& incident_id,
                                        const std::string& group) override;
  std::vector<std::string> subscriber_languages(const std::vector<int64_t>& subscribers) override;
  void insert_escalation(const std::string& incident_id, const std::string& group, UnixMs sent_at,
                         UnixMs due_at) override;
  std::vector<EscalationTimer> due_escalations(UnixMs now, int limit) override;
  void end_escalation(const std::string& incident_id, const std::string& group, TimerEnd how,
                      UnixMs now) override;
  std::vector<std::string> cancel_escalations(const std::string& incident_id, UnixMs now) override;
  void insert_safety_event(const std::string& incident_id, const SafetyEvent& e) override;
  std::vector<SafetyEvent> safety_events(const std::string& incident_id) override;

  // Subscribers, opt-outs, join by text and consents (subscribers.cpp).
  int64_t insert_subscriber(const Subscriber& sub, UnixMs now) override;
  std::optional<Subscriber> subscriber(int64_t id) override;
  bool update_subscriber(const Subscriber& sub) override;
  std::vector<Subscriber> list_subscribers(const std::string& group, int64_t after_id,
                                           int limit) override;
  bool delete_subscriber(int64_t id) override;
  std::vector<int64_t> subscribers_by_phone(const std::string& e164) override;
  std::vector<int64_t> subscribers_by_email(const std::string& email) override;
  int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) override;
  std::optional<int64_t> set_email_opt_out(int64_t subscriber_id, UnixMs now) override;
  std::optional<std::string> subscriber_language(int64_t id) override;
  int64_t join_prompts_since(const std::string& e164, UnixMs since) override;
  int64_t all_join_prompts_since(UnixMs since) override;
  void insert_join_request(const std::string& e164, const JoinRequest& r) override;
  std::optional<JoinRequest> pending_join(const std::string& e164, UnixMs since) override;
  void close_join_requests(const std::string& e164) override;
  void insert_consent(const Consent& c) override;
  std::vector<Consent> consents(int64_t subscriber_id) override;
  bool leave_group(int64_t subscriber_id, const std::string& group) override;

  // Console accounts, sessions, login throttle, drafts and the audit log (console.cpp).
  int64_t insert_console_user(const ConsoleUser& u) override;
  std::optional<ConsoleUser> console_user(int64_t id) override;
  std::optional<ConsoleUser> console_user_by_name(const std::string& name) override;
  std::optional<ConsoleUser> console_user_by_enrol(const std::string& enrol_hash) override;
  std::vector<ConsoleUser> console_users() override;
  void update_console_user(const ConsoleUser& u) override;
  bool use_totp_step(int64_t user_id, int64_t step) override;
  void insert_session(const ConsoleSession& se) override;
  std::optional<ConsoleSession> session(const std::string& token_hash) override;
  void touch_session(const std::string& token_hash, UnixMs now) override;
  void delete_session(const std::string& token_hash) override;
  int64_t delete_user_sessions(int64_t user_id) override;
  std::pair<int64_t, UnixMs> throttle(const std::string& key) override;
  void set_throttle(const std::string& key, int64_t failures, UnixMs next_at, UnixMs now) override;
  void clear_throttle(const std::string& key) override;
  int64_t insert_draft(const Draft& d) override;
  std::optional<Draft> draft(int64_t id) override;
  std::vector<Draft> waiting_drafts() override;
  void update_draft(const Draft& d) override;
  int64_t insert_audit(const AuditEntry& e) override;
  std::vector<AuditEntry> audit_after(int64_t after_id, int limit) override;

  // Provider events and purges (maintenance.cpp).
  int64_t purge_answers(UnixMs before) override;
  int64_t purge_deliveries(UnixMs before, int limit) override;
  int64_t purge_join_requests(UnixMs before) override;
  bool first_event(std::string_view provider, std::string_view event_id, UnixMs now) override;
  int64_t purge_events(UnixMs before) override;
  int64_t purge_audit(UnixMs before) override;

  // Keys (keys.cpp).
  void set_keyring(std::shared_ptr<const Keyring> keyring) override;
  int64_t reencrypt_subscribers(int limit) override;

 private:
  Query q(const char* sql) { return db_.q(sql); }
  // Whether reads that precede a write of the same rows lock them (FOR
  // UPDATE): inside a read-write transaction.
  bool lock_reads() const { return db_.in_transaction() && !read_only_; }

  // Runs a delivery-planning INSERT (parameters $1 report, $2 incident, $3
  // channel, $4 now, $5 deadline, $6 the key) once per key; returns the rows added.
  template <typename Key>
  int64_t plan_each(const char* sql, int64_t report_id, const std::string& incident_id,
                    const std::vector<Key>& keys, Channel channel, UnixMs now, UnixMs deadline) {
    int64_t added = 0;
    if (!keys.empty()) notify_deliveries();
    for (const auto& key : keys)
      added += q(sql)
                   .bind(report_id)
                   .bind(incident_id)
                   .bind(static_cast<int>(channel))
                   .bind(now)
                   .bind(deadline)
                   .bind(key)
                   .run();
    return added;
  }

  // Wakes the other instances' dispatchers when this transaction commits
  // (NOTIFY is transactional; Listener, listener.h, hears it).
  void notify_deliveries();

  // Subscribers (subscribers.cpp).
  void insert_groups(int64_t id, const std::vector<std::string>& groups);
  Subscriber read_subscriber(const Result& r, int row);

  // Keys (keys.cpp): a row's sealed fields (columns 0 id, 1 key_id, 2 name,
  // 3 phone, 4 email) opened with `crypto`; written sealed under the active key.
  static PersonalData read_personal(const SubscriberCrypto& crypto, const Result& r, int row);
  void write_personal(int64_t id, const PersonalData& p);

  Connection db_;
  std::string instance_id_;
  bool read_only_ = false;
  SubscriberCrypto crypto_;  // without a keyring only in a read-only store
};

}  // namespace tocsin::store::postgresql

namespace tocsin::store {
struct StoreOptions;
// The password `o.postgresql_password_file` holds ("" without one).
std::string postgresql_password(const StoreOptions& o);
}  // namespace tocsin::store
