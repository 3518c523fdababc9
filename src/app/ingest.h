// Turning an authenticated, validated report into durable state: the
// idempotency check, dedup into an incident, and the planned deliveries with
// their rendered texts. Runs on the store thread inside the StoreWorker's
// transaction, so the 202 is sent only once all of it has committed.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "app/config.h"
#include "app/safety.h"
#include "core/dedup.h"
#include "core/problem.h"
#include "core/report.h"
#include "store/store.h"

namespace tocsin::app {

struct IngestRequest {
  std::string coordinator;  // whose key verified the signature
  std::string webhook_id;   // idempotency key
  Report report;
  std::string raw_body;     // as received, kept with the report
  UnixMs now = 0;
  // Areas whose shapes hold the report's point (within the coordinator's
  // scope): groups of these hear of it too (decide_area, match_groups).
  std::vector<std::string> point_areas;
  // The console user who sent it (an approved draft: its author); "" for a
  // webhook report. Corroboration counts people (core/safety.h evidence_of).
  std::string person;
};

// The outcome is a domain result (incident, outcome, recipients, safety
// steps, or the Problem that refused it). It also carries the answer's
// body, on purpose: a repeated webhook-id must get the first answer byte
// for byte, so the answer is stored (save_answer) in the same transaction
// that decided it, and a replay returns that stored text. The HTTP layer
// turns `problem` into problem+json itself.
struct IngestResult {
  int status = 202;
  std::string body;         // JSON answer (or problem+json when problem is set)
  bool replayed = false;    // a repeat of an earlier webhook-id: nothing new happened
  std::optional<Problem> problem;  // refused: nothing was written
  // For logs and the dispatcher:
  int64_t report_id = 0;
  std::string incident_id;
  std::string outcome;
  int64_t recipients = 0;
  SafetySteps safety;  // groups held or released by this report (README "Safety rules")
};

// What dedup needs of stored open incidents.
std::vector<IncidentCandidate> dedup_view(const std::vector<store::IncidentRecord>& rows);

// `templates` are the config's with built-in defaults filled in. `rng`
// draws incident codes. Throws store::StoreError (the worker rolls back).
IngestResult ingest_report(store::Store& store, const Config& config,
                           const MessageTemplates& templates, const IngestRequest& request,
                           std::mt19937_64& rng);

}  // namespace tocsin::app
