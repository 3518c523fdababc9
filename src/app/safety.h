// Carrying out the groups' safety rules (core/safety.h) on the store: which
// matched groups are held, releasing them when a merged report or an update
// makes the incident qualify, the stored escalation timers, and "covered".
// Every function runs on the store thread inside the caller's transaction
// (a report's, an acknowledgement's, or the escalation job's), so each step
// commits with what caused it or not at all. Each step is written to the
// incident's timeline (safety_events) and the audit log (actor "tocsin").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/config.h"
#include "core/report.h"
#include "store/store.h"

namespace tocsin::app {

// What happened, for metrics and logs (counts of groups, and deliveries planned).
struct SafetySteps {
  int held = 0;       // groups held back
  int released = 0;   // held groups sent the alert at last
  int escalated = 0;  // timers that fired and sent the incident to other groups
  int covered = 0;    // groups whose non-responders were told "covered"
  int64_t recipients = 0;  // deliveries planned by these steps
  SafetySteps& operator+=(const SafetySteps& o);
};

// A new incident matched `groups`: returns those it may be sent now; the
// others are stored as held. Stores the sent ones as sent (at `now`) and
// starts their escalation timers.
std::vector<const Group*> gate_new_incident(store::Store& store, const std::string& incident_id,
                                            const std::vector<const Group*>& groups,
                                            const ReportEvidence& first, UnixMs now,
                                            SafetySteps& steps);

// After a merged report or an update (already inserted) on an open
// incident: sends the alert, rendered from `report` as a confirmed alert, to
// each held group that now qualifies — to its subscribers not yet reached on
// each channel — and starts their timers. Returns the deliveries planned.
// Call it after the report's own follow-ups are planned, so the released
// people get the confirmed alert and not also the update.
int64_t release_held_groups(store::Store& store, const Config& config,
                            const MessageTemplates& templates, const std::string& incident_id,
                            const Report& report, UnixMs now, SafetySteps& steps);

// An all-clear: stops the incident's escalation timers.
void stop_escalations(store::Store& store, const std::string& incident_id, UnixMs now);

// Processes up to `limit` escalation timers due at `now` (the daemon calls
// it every second): each ends once, fired, not needed or cancelled.
SafetySteps run_due_escalations(store::Store& store, const Config& config,
                                const MessageTemplates& templates, UnixMs now, int limit = 100);

// After an acknowledgement on `incident_id`: sends templates.covered to the
// non-responders of each group that now has enough_responding people
// responding, once per group.
SafetySteps check_covered(store::Store& store, const Config& config,
                          const MessageTemplates& templates, const std::string& incident_id,
                          UnixMs now);

}  // namespace tocsin::app
