#include "app/safety.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <variant>

#include "core/safety.h"
#include "core/templates.h"

namespace tocsin::app {

SafetySteps& SafetySteps::operator+=(const SafetySteps& o) {
  held += o.held;
  released += o.released;
  escalated += o.escalated;
  covered += o.covered;
  recipients += o.recipients;
  return *this;
}

namespace {

UnixMs deadline_at(const Config& config, Channel ch, UnixMs now) {
  return now + 1000 * (ch == Channel::kSms ? config.delivery.sms_deadline_s
                                           : config.delivery.email_deadline_s);
}

// A step on the incident's timeline and in the audit log (actor "tocsin",
// method the step, route "group NAME", the incident, the deliveries planned).
void record(store::Store& store, const std::string& incident_id, store::SafetyEvent event,
            const char* method) {
  store.insert_audit({.at = event.at,
                      .actor = "tocsin",
                      .method = method,
                      .route = "group " + event.group,
                      .object_id = incident_id,
                      .status = 200,
                      .count = event.recipients});
  store.insert_safety_event(incident_id, event);
}

Evidence stored_evidence(store::Store& store, const std::string& incident_id) {
  return evidence_of(store.incident_evidence(incident_id));
}

std::vector<Reply> replies_of(store::Store& store, const std::string& incident_id) {
  std::vector<Reply> out;
  for (const auto& a : store.incident_acks(incident_id))
    out.push_back({a.subscriber_id, a.kind == "responding", a.received_at});
  return out;
}

// The incident's latest alert or update as it was received, to render
// texts sent later (escalation, covered); the incident's own fields when
// retention purged the body.
Report latest_report(store::Store& store, const store::IncidentRecord& incident) {
  // Parsed as of the incident's last report: the body was accepted then, so
  // its observed_at passes the same range check again.
  auto parsed = parse_report(store.latest_report_body(incident.id), incident.last_report_at);
  if (auto* r = std::get_if<Report>(&parsed)) return *r;
  Report r;
  r.event = incident.event;
  r.area = incident.area;
  r.severity = incident.severity;
  r.status = incident.status;
  r.location = incident.location;
  r.headline = {{"en", incident.event}};
  return r;
}

// A report row that carries the texts and deliveries of a step (outcome
// released, escalated or covered): not a coordinator's report, so not
// counted as one.
int64_t insert_carrier(store::Store& store, const std::string& incident_id, const char* outcome,
                       const Report& as_sent, UnixMs now) {
  store::ReportRecord rec;
  rec.incident_id = incident_id;
  rec.outcome = outcome;
  rec.report = &as_sent;
  rec.received_at = now;
  return store.insert_report(rec);
}

// Sends `alert` to the subscribers of `names` not yet reached on each of
// their channels; returns how many deliveries were planned.
int64_t send_to_groups(store::Store& store, const Config& config, const MessageTemplates& templates,
                       const std::string& incident_id, const std::vector<const Group*>& groups,
                       const Report& alert, bool confirmed, const char* outcome, UnixMs now) {
  Report as_sent = alert;
  as_sent.msg_type = MsgType::kAlert;
  as_sent.references.clear();
  int64_t carrier = insert_carrier(store, incident_id, outcome, as_sent, now);
  MessageContext ctx{&as_sent, incident_id, static_cast<std::size_t>(config.sms.max_segments),
                     confirmed};
  int64_t planned = 0;
  for (Channel ch : kAllChannels) {
    auto names = groups_on_channel(groups, ch);
    if (names.empty()) continue;
    for (const auto& lang : store.group_languages(names, ch)) {
      RenderedMessage m = render_message(templates, ch, lang, ctx);
      store.insert_message(carrier, ch, lang, m.subject, m.body);
    }
    planned += store.plan_new_recipient_deliveries(carrier, incident_id, names, ch, now,
                                                   deadline_at(config, ch, now));
  }
  if (planned) store.set_report_recipients(carrier, planned);
  return planned;
}

// `group` is now among the incident's recipients: stored as sent, and its
// escalation timer started.
void mark_sent(store::Store& store, const std::string& incident_id, const Group& group,
               const char* via, UnixMs now, UnixMs held_at = 0) {
  store.put_incident_group({.incident_id = incident_id,
                            .group = group.name,
                            .state = "sent",
                            .via = via,
                            .held_at = held_at,
                            .sent_at = now});
  if (group.escalate)
    store.insert_escalation(incident_id, group.name, now, escalation_due(*group.escalate, now));
}

void mark_held(store::Store& store, const std::string& incident_id, const Group& group,
               const std::string& waiting, const std::string& why, UnixMs now, SafetySteps& steps) {
  store.put_incident_group({.incident_id = incident_id,
                            .group = group.name,
                            .state = "held",
                            .waiting = waiting,
                            .held_at = now});
  record(store, incident_id, {now, "held", group.name, why + "waits for " + waiting, 0}, "HOLD");
  ++steps.held;
}

}  // namespace

std::vector<const Group*> gate_new_incident(store::Store& store, const std::string& incident_id,
                                            const std::vector<const Group*>& groups,
                                            const ReportEvidence& first, UnixMs now,
                                            SafetySteps& steps) {
  Evidence evidence = evidence_of({first});
  std::vector<const Group*> send;
  for (const Group* g : groups) {
    if (qualify(*g, evidence).qualifies()) {
      send.push_back(g);
      mark_sent(store, incident_id, *g, "match", now);
    } else {
      mark_held(store, incident_id, *g, waiting_for(*g, evidence), "", now, steps);
    }
  }
  return send;
}

int64_t release_held_groups(store::Store& store, const Config& config,
                            const MessageTemplates& templates, const std::string& incident_id,
                            const Report& report, UnixMs now, SafetySteps& steps) {
  std::vector<store::IncidentGroup> held;
  for (auto& row : store.incident_groups(incident_id))
    if (row.state == "held") held.push_back(std::move(row));
  if (held.empty()) return 0;
  Evidence evidence = stored_evidence(store, incident_id);
  std::vector<const Group*> release;
  std::vector<UnixMs> held_since;
  for (const auto& row : held) {
    const Group* g = config.group(row.group);
    if (!g || !qualify(*g, evidence).qualifies()) continue;  // a group removed by a reload stays held
    release.push_back(g);
    held_since.push_back(row.held_at);
  }
  if (release.empty()) return 0;
  int64_t planned =
      send_to_groups(store, config, templates, incident_id, release, report, true, "released", now);
  std::string why = "certainty " + std::string(to_string(evidence.certainty)) + ", " +
                    std::to_string(evidence.corroboration) + " coordinator(s)";
  for (std::size_t i = 0; i < release.size(); ++i) {
    mark_sent(store, incident_id, *release[i], "released", now, held_since[i]);
    // Deliveries are counted on the first released group's step (one send).
    record(store, incident_id,
           {now, "released", release[i]->name, why, i == 0 ? planned : 0}, "RELEASE");
  }
  steps.released += static_cast<int>(release.size());
  steps.recipients += planned;
  return planned;
}

void stop_escalations(store::Store& store, const std::string& incident_id, UnixMs now) {
  for (const auto& group : store.cancel_escalations(incident_id, now))
    store.insert_safety_event(incident_id,
                              {now, "escalation_cancelled", group, "all-clear", 0});
}

SafetySteps run_due_escalations(store::Store& store, const Config& config,
                                const MessageTemplates& templates, UnixMs now, int limit) {
  SafetySteps steps;
  for (const auto& timer : store.due_escalations(now, limit)) {
    auto incident = store.incident(timer.incident_id);
    const Group* group = config.group(timer.group);
    if (!incident || !group || !group->escalate) {
      store.end_escalation(timer.incident_id, timer.group, store::TimerEnd::kDropped, now);
      continue;
    }
    // Due longer ago than an SMS may wait (the rule was out of the config,
    // or tocsin was down that long): an escalation that late would mislead.
    if (incident->open && now - timer.due_at > config.delivery.sms_deadline_s * 1000) {
      store.end_escalation(incident->id, group->name, store::TimerEnd::kDropped, now);
      store.insert_safety_event(incident->id, {now, "escalation_expired", group->name,
                                               "due more than delivery.sms_deadline_s ago", 0});
      continue;
    }
    const EscalateRule& rule = *group->escalate;
    auto recipients = store.group_recipients(incident->id, group->name);
    int responding = responding_count(replies_of(store, incident->id), recipients, now);
    auto decision = decide_escalation(rule, incident->open, timer.sent_at, responding, now);
    std::string counts = std::to_string(responding) + " of " + std::to_string(recipients.size()) +
                         " responding";
    if (decision == EscalationDecision::kWait) continue;  // due_at was stored sooner: rule changed
    if (decision == EscalationDecision::kCancelled) {
      store.end_escalation(incident->id, group->name, store::TimerEnd::kCancelled, now);
      store.insert_safety_event(incident->id,
                                {now, "escalation_cancelled", group->name, "incident closed", 0});
      continue;
    }
    if (decision == EscalationDecision::kNotNeeded) {
      store.end_escalation(incident->id, group->name, store::TimerEnd::kNotNeeded, now);
      store.insert_safety_event(
          incident->id, {now, "escalation_not_needed", group->name,
                         counts + " (at least " + std::to_string(rule.if_responding_below) + ")", 0});
      continue;
    }
    // Escalate: to the `to` groups not yet sent or held for this incident.
    std::vector<std::string> reached;
    for (const auto& row : store.incident_groups(incident->id)) reached.push_back(row.group);
    Evidence evidence = stored_evidence(store, incident->id);
    std::vector<const Group*> send;
    std::string sent_names;
    for (const auto& name : escalation_targets(rule, reached)) {
      const Group* target = config.group(name);
      if (!target) continue;
      if (incident->status != ReportStatus::kActual && !target->drills) continue;
      if (!qualify(*target, evidence).qualifies()) {  // its own gates still apply
        mark_held(store, incident->id, *target, waiting_for(*target, evidence),
                  "escalated from " + group->name + "; ", now, steps);
        continue;
      }
      send.push_back(target);
      sent_names += (sent_names.empty() ? "" : ", ") + target->name;
    }
    int64_t planned = 0;
    if (!send.empty()) {
      planned = send_to_groups(store, config, templates, incident->id, send,
                               latest_report(store, *incident), false, "escalated", now);
      for (const Group* target : send) mark_sent(store, incident->id, *target, "escalated", now);
    }
    store.end_escalation(incident->id, group->name, store::TimerEnd::kFired, now);
    record(store, incident->id,
           {now, "escalated", group->name,
            counts + " (below " + std::to_string(rule.if_responding_below) + "): to " +
                (sent_names.empty() ? std::string("no group (all reached or held)") : sent_names),
            planned},
           "ESCALATE");
    ++steps.escalated;
    steps.recipients += planned;
  }
  return steps;
}

SafetySteps check_covered(store::Store& store, const Config& config,
                          const MessageTemplates& templates, const std::string& incident_id,
                          UnixMs now) {
  SafetySteps steps;
  std::vector<store::IncidentGroup> rows;
  for (auto& row : store.incident_groups(incident_id)) {
    const Group* g = config.group(row.group);
    if (row.state == "sent" && row.covered_at == 0 && g && g->enough_responding > 0)
      rows.push_back(std::move(row));
  }
  if (rows.empty()) return steps;
  auto incident = store.incident(incident_id);
  if (!incident || !incident->open) return steps;
  auto replies = replies_of(store, incident_id);
  for (auto& row : rows) {
    const Group& group = *config.group(row.group);
    auto recipients = store.group_recipients(incident_id, group.name);
    int responding = responding_count(replies, recipients, now);
    if (!is_covered(group, responding)) continue;
    auto rest = covered_recipients(replies, recipients, now);
    Report as_sent = latest_report(store, *incident);
    int64_t carrier = insert_carrier(store, incident_id, "covered", as_sent, now);
    MessageContext ctx{&as_sent, incident_id, 0};
    int64_t planned = 0;
    auto languages = store.subscriber_languages(rest);
    for (Channel ch : group.channels) {
      for (const auto& lang : languages) {
        RenderedMessage m = render_covered(templates, ch, lang, ctx);
        store.insert_message(carrier, ch, lang, m.subject, m.body);
      }
      planned += store.plan_deliveries_to(carrier, incident_id, rest, ch, now,
                                          deadline_at(config, ch, now));
    }
    if (planned) store.set_report_recipients(carrier, planned);
    row.covered_at = now;
    store.put_incident_group(row);
    record(store, incident_id,
           {now, "covered", group.name,
            std::to_string(responding) + " responding (enough: " +
                std::to_string(group.enough_responding) + "); told the other " +
                std::to_string(rest.size()),
            planned},
           "COVER");
    ++steps.covered;
    steps.recipients += planned;
  }
  return steps;
}

}  // namespace tocsin::app
