// Safety rules of a group (README "Safety rules"): wide lists only after
// corroboration (certainty and distinct reporters), escalation when too few
// respond, "covered" when enough do. Pure decisions of (incident evidence,
// acknowledgements, now); the store keeps the state (held groups, timers)
// and app/safety carries the decisions out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/routing.h"

namespace tocsin {

// One report of an incident, as the rules see it: who sent it and how sure.
struct ReportEvidence {
  std::string coordinator;  // whose key signed it, or whose console user sent it
  // The console user who sent it (for an approved draft: its author, the one
  // who saw or took the call; the approver checked it), by account name:
  // names are unique, never reused (accounts are disabled, not deleted) and
  // are what drafts and the audit log already name. "" for a webhook report:
  // its tooling does not say which person of the coordinator it is.
  std::string person;
  Certainty certainty = Certainty::kObserved;
  bool operator==(const ReportEvidence&) const = default;
};

// What an incident's reports establish: its certainty is the highest of its
// reports', its corroboration the number of distinct reporters. Reporters
// are counted per coordinator: the distinct console people of it, and at
// least 1 if it sent a webhook report. A webhook report is one unnamed
// person of its coordinator, who may well be one of the console people
// (the same dispatcher posting through the hotline's tool and the console),
// so it adds a reporter only to a coordinator with no console report:
// webhook + console ana of one coordinator is 1, console ana + ben is 2,
// ana twice is 1, two coordinators' webhooks are 2. A false alarm to a wide
// list is the harm these rules exist to prevent, so doubt counts low.
struct Evidence {
  Certainty certainty = Certainty::kUnknown;
  int corroboration = 0;
  bool operator==(const Evidence&) const = default;
};
Evidence evidence_of(const std::vector<ReportEvidence>& reports);

// Whether `group` may be sent an incident with `evidence`, and if not, what
// it waits for.
struct Qualification {
  bool needs_certainty = false;      // less certain than match.min_certainty
  bool needs_corroboration = false;  // fewer reporters than match.min_corroboration
  bool qualifies() const { return !needs_certainty && !needs_corroboration; }
};
Qualification qualify(const Group& group, const Evidence& evidence);

// What a held group waits for, in words for the timeline and `tocsin
// route`: "certainty observed (has possible); 2 reporters (has 1)"; ""
// when it qualifies. "reporters": distinct coordinators or console people
// (see evidence_of).
std::string waiting_for(const Group& group, const Evidence& evidence);

// True when `group` has a rule that can hold an alert back.
bool has_gate(const Group& group);

// A subscriber's reply to an incident (see core/inbound.h: "responding" is
// "1", "yes", "sí", "on my way", "voy"...).
struct Reply {
  int64_t subscriber_id = 0;
  bool responding = false;
  UnixMs at = 0;
};

// Distinct people among `recipients` whose reply at or before `now` was
// responding. Erased subscribers (id 0) do not count: they are nobody now.
int responding_count(const std::vector<Reply>& replies, const std::vector<int64_t>& recipients,
                     UnixMs now);

// When an escalation timer for a group first sent the incident at
// `first_sent_at` is due.
UnixMs escalation_due(const EscalateRule& rule, UnixMs first_sent_at);

enum class EscalationDecision {
  kWait,       // not due yet
  kEscalate,   // due, and fewer than if_responding_below respond: send to the `to` groups
  kNotNeeded,  // due, and enough respond: the timer ends without sending
  kCancelled,  // the incident is closed (an all-clear): the timer ends without sending
};
EscalationDecision decide_escalation(const EscalateRule& rule, bool incident_open,
                                     UnixMs first_sent_at, int responding, UnixMs now);

// The `to` groups of `rule` not in `reached` (groups already sent or held
// for the incident), in rule order, each once.
std::vector<std::string> escalation_targets(const EscalateRule& rule,
                                            const std::vector<std::string>& reached);

// True when `group` counts as covered with `responding` people on the way.
bool is_covered(const Group& group, int responding);

// Who gets the "covered" message: `recipients` who had not replied
// responding by `now`, each once, in the order given.
std::vector<int64_t> covered_recipients(const std::vector<Reply>& replies,
                                        const std::vector<int64_t>& recipients, UnixMs now);

// Config checks. The first escalate cycle among `groups` as names
// ["a", "b", "a"], or empty when there is none (unknown names are skipped:
// reported on their own).
std::vector<std::string> escalation_cycle(const std::vector<Group>& groups);

// How many reporters could ever report in `group`'s areas: those with an area
// that covers one of the group's, or lies inside one. `reporter_areas` has
// each reporter's areas.
int possible_reporters(const Group& group,
                       const std::vector<std::vector<std::string>>& reporter_areas);

}  // namespace tocsin
