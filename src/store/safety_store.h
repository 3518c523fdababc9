// The safety rules' state (README "Safety rules"): where each group stands
// with an incident, escalation timers, the safety timeline; and
// subscribers' acknowledgements. All inside the caller's transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/report.h"
#include "core/safety.h"

namespace tocsin::store {

// A subscriber's reply to an alert, counted on the incident. Its text is not kept.
struct Acknowledgement {
  std::string incident_id;
  int64_t subscriber_id = 0;  // 0 once the subscriber was erased
  std::string kind;           // "responding" | "reply"
  UnixMs received_at = 0;
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

class SafetyStore {
 public:
  virtual ~SafetyStore() = default;

  // The most recent incident an SMS was planned to the subscriber for, among
  // incidents whose last report is at or after `since`.
  virtual std::optional<std::string> last_sms_incident(int64_t subscriber_id, UnixMs since) = 0;
  // Records `ack` unless the subscriber already gave one of that kind on
  // the incident (counts are of people, not messages); returns whether it
  // was recorded.
  virtual bool insert_ack(const Acknowledgement& ack) = 0;
  virtual std::vector<Acknowledgement> incident_acks(const std::string& incident_id) = 0;
  // The (coordinator, console person, certainty) of every alert and update
  // of the incident.
  virtual std::vector<ReportEvidence> incident_evidence(const std::string& incident_id) = 0;
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
};

}  // namespace tocsin::store
