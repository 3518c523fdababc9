#include "app/ingest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/dedup.h"
#include "core/ids.h"
#include "core/routing.h"
#include "core/safety.h"
#include "core/templates.h"

namespace tocsin::app {

using nlohmann::json;

namespace {

UnixMs deadline_for(const Config& config, Channel ch, UnixMs now) {
  // Signal and calls are as urgent as a text.
  int64_t s = ch == Channel::kEmail ? config.delivery.email_deadline_s : config.delivery.sms_deadline_s;
  return now + s * 1000;
}

void store_messages(store::Store& store, const Config& config, const MessageTemplates& templates,
                    int64_t report_id, Channel ch, const std::vector<std::string>& languages,
                    const Report& report, const std::string& incident_id) {
  MessageContext ctx{&report, incident_id, static_cast<std::size_t>(config.sms.max_segments)};
  for (const auto& lang : languages) {
    RenderedMessage m = render_message(templates, ch, lang, ctx);
    store.insert_message(report_id, ch, lang, m.subject, m.body);
  }
}

IngestResult refuse(Problem p) {
  IngestResult r;
  r.status = p.status;
  r.problem = std::move(p);
  return r;
}

std::string new_incident_id(store::Store& store, std::mt19937_64& rng,
                            store::IncidentRecord& record) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    record.id = incident_code(rng());
    if (store.insert_incident(record)) return record.id;
  }
  throw store::StoreError("could not draw a free incident code");
}

}  // namespace

std::vector<IncidentCandidate> dedup_view(const std::vector<store::IncidentRecord>& rows) {
  std::vector<IncidentCandidate> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back({row.id, row.event, row.area, row.location, row.dedup_key, row.last_report_at,
                   row.status != ReportStatus::kActual});
  return out;
}

IngestResult ingest_report(store::Store& store, const Config& config,
                           const MessageTemplates& templates, const IngestRequest& req,
                           std::mt19937_64& rng) {
  if (auto answer = store.find_answer(req.coordinator, req.webhook_id)) {
    IngestResult r;
    r.status = answer->status;
    r.body = answer->body;
    r.replayed = true;
    return r;
  }

  const Report& report = req.report;
  IngestResult result;
  store::IncidentRecord incident;
  bool plan_new = false;
  bool severity_rose = false;  // a merged report raised the incident's severity

  if (report.msg_type == MsgType::kAlert) {
    auto rows = store.dedup_candidates(report, config.dedup.radius_m,
                                       req.now - config.dedup.window_s * 1000);
    if (auto idx = find_duplicate(report, req.now, dedup_view(rows), config.dedup)) {
      incident = rows[*idx];
      incident.last_report_at = req.now;
      incident.report_count += 1;
      if (report.location && incident.location)
        incident.spread_m = std::max(incident.spread_m, distance_m(*report.location, *incident.location));
      if (report.severity > incident.severity) {
        incident.severity = report.severity;
        severity_rose = true;
      }
      store.update_incident(incident);
      result.outcome = "merged";
    } else {
      incident.event = report.event;
      incident.area = report.area;
      incident.location = report.location;
      incident.dedup_key = report.dedup_key;
      incident.severity = report.severity;
      incident.status = report.status;
      incident.open = true;
      incident.opened_at = incident.last_report_at = req.now;
      incident.report_count = 1;
      new_incident_id(store, rng, incident);
      result.outcome = "new_incident";
      plan_new = true;
    }
  } else {
    auto found = store.incident(req.report.references);
    if (!found)
      return refuse(unprocessable("references", "no incident " + report.references.substr(0, 64)));
    incident = *found;
    if (!incident.open)
      return refuse(unprocessable("references", "incident " + incident.id +
                                                    " is closed; report a new alert instead"));
    if (incident.status != report.status)
      return refuse(unprocessable("status", "must match the incident's status (" +
                                                std::string(to_string(incident.status)) + ")"));
    bool in_scope = false;
    for (const auto& c : config.coordinators)
      in_scope = in_scope || (c.name == req.coordinator && any_area_covers(c.areas, incident.area));
    if (!in_scope)
      return refuse(out_of_scope("incident " + incident.id + " is outside your areas", "references"));
    incident.last_report_at = req.now;
    incident.report_count += 1;
    if (report.msg_type == MsgType::kUpdate) {
      incident.severity = report.severity;
      result.outcome = "update";
    } else {
      incident.open = false;
      incident.closed_at = req.now;
      result.outcome = "cancel";
    }
    store.update_incident(incident);
  }

  store::ReportRecord rec;
  rec.incident_id = incident.id;
  rec.coordinator = req.coordinator;
  rec.person = req.person;
  rec.webhook_id = req.webhook_id;
  rec.outcome = result.outcome;
  rec.report = &report;
  rec.raw_json = req.raw_body;
  rec.received_at = req.now;
  int64_t report_id = store.insert_report(rec);

  int64_t recipients = 0;
  if (plan_new) {
    auto groups = gate_new_incident(store, incident.id,
                                    match_groups(config.groups, report, req.point_areas),
                                    {req.coordinator, req.person, report.certainty}, req.now,
                                    result.safety);
    for (Channel ch : kAllChannels) {
      auto names = groups_on_channel(groups, ch);
      if (names.empty()) continue;
      store_messages(store, config, templates, report_id, ch, store.group_languages(names, ch),
                     report, incident.id);
      recipients += store.plan_group_deliveries(report_id, incident.id, names, ch, req.now,
                                                deadline_for(config, ch, req.now));
    }
  } else if (report.msg_type != MsgType::kAlert || severity_rose) {
    // Follow-ups, and a duplicate that raises the severity (an update to the
    // same people, rendered as one), go to the incident's recipients.
    Report as_sent = report;
    if (severity_rose) as_sent.msg_type = MsgType::kUpdate;
    for (Channel ch : kAllChannels) {
      store_messages(store, config, templates, report_id, ch,
                     store.recipient_languages(incident.id, ch), as_sent, incident.id);
      recipients += store.plan_followup_deliveries(report_id, incident.id, ch, req.now,
                                                   deadline_for(config, ch, req.now));
    }
  }
  // Safety rules: a held group may qualify now (its deliveries are on a
  // report row of their own); an all-clear stops the escalation timers.
  if (!plan_new && incident.open &&
      std::any_of(config.groups.begin(), config.groups.end(), has_gate))
    release_held_groups(store, config, templates, incident.id, report, req.now, result.safety);
  if (!incident.open) stop_escalations(store, incident.id, req.now);
  if (recipients) store.set_report_recipients(report_id, recipients);
  recipients += result.safety.recipients;

  result.report_id = report_id;
  result.incident_id = incident.id;
  result.recipients = recipients;
  result.status = 202;
  result.body = json{{"report_id", report_id},
                     {"incident_id", incident.id},
                     {"outcome", result.outcome},
                     {"recipients", recipients}}
                    .dump();
  store.save_answer(req.coordinator, req.webhook_id, {result.status, result.body}, req.now);
  return result;
}

}  // namespace tocsin::app
