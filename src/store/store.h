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

namespace tocsin::store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
  bool sms_opted_out = false;
  UnixMs created_at = 0;
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

  // Subscribers. Personal data: never logged.
  virtual int64_t insert_subscriber(const Subscriber& s, UnixMs now) = 0;
  virtual std::optional<Subscriber> subscriber(int64_t id) = 0;
  // Erases the person's data and cancels what was still to be sent to them.
  virtual bool delete_subscriber(int64_t id) = 0;
  // Ids of the subscribers with this E.164 number.
  virtual std::vector<int64_t> subscribers_by_phone(const std::string& e164) = 0;
  // Opts the subscriber out of SMS (cancelling every SMS still pending for
  // them, so a fan-out in progress stops for them at once) or back in.
  // Returns how many deliveries were cancelled.
  virtual int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) = 0;

  // Acknowledgements.
  // The most recent incident an SMS was planned to the subscriber for, among
  // incidents whose last report is at or after `since`.
  virtual std::optional<std::string> last_sms_incident(int64_t subscriber_id, UnixMs since) = 0;
  virtual void insert_ack(const Acknowledgement& ack) = 0;
  virtual std::vector<Acknowledgement> incident_acks(const std::string& incident_id) = 0;
};

// Opens (creating if needed) the SQLite store at `path` ("" or ":memory:"
// for an in-memory database): WAL, synchronous=FULL, schema migrated.
// Takes an exclusive lock file beside it: one daemon per database.
// Throws StoreError when it cannot.
std::unique_ptr<Store> open_sqlite_store(const std::string& path);

// Opens an existing store read-only, beside a running daemon (WAL lets
// readers in): for `tocsin route` and other looks that change nothing.
std::unique_ptr<Store> open_sqlite_store_read_only(const std::string& path);

}  // namespace tocsin::store
