// Reports and incidents: idempotency of webhook-ids, incidents (dedup
// candidates, lookups, delivery counts), reports, and fan-out planning: the
// rendered texts and one pending delivery per recipient, all inside the
// caller's transaction. What ingest and the incident routes use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/report.h"

namespace tocsin::store {

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
  // The console user who sent it (an approved draft: its author); "" for a
  // webhook report. Corroboration counts people (core/safety.h evidence_of).
  std::string person;
  std::string webhook_id;
  std::string outcome;  // new_incident | merged | update | cancel
  const Report* report = nullptr;
  std::string raw_json;  // the report body as received
  UnixMs received_at = 0;
  int64_t recipients = 0;
};

// Whom a follow-up of an incident reaches now (plan_followup_deliveries on
// every channel): the messages per channel, and the people counted once.
struct FollowupReach {
  int64_t people = 0;
  std::vector<std::pair<Channel, int64_t>> by_channel;  // channels with anyone, in enum order
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

struct DeliveryCount {
  Channel channel = Channel::kSms;
  DeliveryState state = DeliveryState::kPending;
  int64_t count = 0;
};

class IncidentStore {
 public:
  virtual ~IncidentStore() = default;

  virtual std::optional<StoredAnswer> find_answer(const std::string& coordinator,
                                                  const std::string& webhook_id) = 0;
  virtual void save_answer(const std::string& coordinator, const std::string& webhook_id,
                           const StoredAnswer& answer, UnixMs now) = 0;
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
  // Distinct languages of subscribers in `groups` reachable on `channel`.
  virtual std::vector<std::string> group_languages(const std::vector<std::string>& groups,
                                                   Channel channel) = 0;
  // Reachable subscribers of `groups` on `channel` (each counted once), by language.
  virtual std::vector<std::pair<std::string, int64_t>> group_audience(
      const std::vector<std::string>& groups, Channel channel) = 0;
  // Distinct languages of the incident's earlier recipients on `channel`.
  virtual std::vector<std::string> recipient_languages(const std::string& incident_id,
                                                       Channel channel) = 0;
  // Who a follow-up would reach: the earlier recipients still reachable on
  // the channel they had (each person once in `people`).
  virtual FollowupReach followup_reach(const std::string& incident_id) = 0;
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
};

}  // namespace tocsin::store
