#include "core/safety.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "core/report.h"

namespace tocsin {

Evidence evidence_of(const std::vector<ReportEvidence>& reports) {
  Evidence e;
  std::map<std::string, std::set<std::string>> people;  // coordinator -> console people
  for (const auto& r : reports) {
    e.certainty = std::max(e.certainty, r.certainty);
    auto& of = people[r.coordinator];
    if (!r.person.empty()) of.insert(r.person);
  }
  for (const auto& [coordinator, names] : people)
    e.corroboration += std::max<int>(1, static_cast<int>(names.size()));
  return e;
}

Qualification qualify(const Group& group, const Evidence& evidence) {
  Qualification q;
  q.needs_certainty = group.min_certainty && evidence.certainty < *group.min_certainty;
  q.needs_corroboration = evidence.corroboration < group.min_corroboration;
  return q;
}

std::string waiting_for(const Group& group, const Evidence& evidence) {
  Qualification q = qualify(group, evidence);
  std::string out;
  if (q.needs_certainty)
    out = "certainty " + std::string(to_string(*group.min_certainty)) + " (has " +
          std::string(to_string(evidence.certainty)) + ")";
  if (q.needs_corroboration) {
    if (!out.empty()) out += "; ";
    out += std::to_string(group.min_corroboration);
    out += " reporters (has ";
    out += std::to_string(evidence.corroboration);
    out += ")";
  }
  return out;
}

bool has_gate(const Group& group) {
  return (group.min_certainty && *group.min_certainty > Certainty::kUnknown) ||
         group.min_corroboration > 1;
}

int responding_count(const std::vector<Reply>& replies, const std::vector<int64_t>& recipients,
                     UnixMs now) {
  std::set<int64_t> among(recipients.begin(), recipients.end());
  std::set<int64_t> people;
  for (const auto& r : replies)
    if (r.responding && r.subscriber_id != 0 && r.at <= now && among.count(r.subscriber_id))
      people.insert(r.subscriber_id);
  return static_cast<int>(people.size());
}

UnixMs escalation_due(const EscalateRule& rule, UnixMs first_sent_at) {
  return first_sent_at + rule.after_s * 1000;
}

EscalationDecision decide_escalation(const EscalateRule& rule, bool incident_open,
                                     UnixMs first_sent_at, int responding, UnixMs now) {
  if (!incident_open) return EscalationDecision::kCancelled;
  if (now < escalation_due(rule, first_sent_at)) return EscalationDecision::kWait;
  return responding < rule.if_responding_below ? EscalationDecision::kEscalate
                                               : EscalationDecision::kNotNeeded;
}

std::vector<std::string> escalation_targets(const EscalateRule& rule,
                                            const std::vector<std::string>& reached) {
  std::vector<std::string> out;
  for (const auto& name : rule.to)
    if (std::find(reached.begin(), reached.end(), name) == reached.end() &&
        std::find(out.begin(), out.end(), name) == out.end())
      out.push_back(name);
  return out;
}

bool is_covered(const Group& group, int responding) {
  return group.enough_responding > 0 && responding >= group.enough_responding;
}

std::vector<int64_t> covered_recipients(const std::vector<Reply>& replies,
                                        const std::vector<int64_t>& recipients, UnixMs now) {
  std::set<int64_t> responders;
  for (const auto& r : replies)
    if (r.responding && r.at <= now) responders.insert(r.subscriber_id);
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t id : recipients)
    if (!responders.count(id) && seen.insert(id).second) out.push_back(id);
  return out;
}

std::vector<std::string> escalation_cycle(const std::vector<Group>& groups) {
  std::map<std::string, const Group*> by_name;
  for (const auto& g : groups) by_name[g.name] = &g;
  std::map<std::string, int> state;  // 0 unvisited, 1 on the path, 2 done
  std::vector<std::string> path;
  std::vector<std::string> cycle;
  std::function<bool(const std::string&)> visit = [&](const std::string& name) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return false;
    int& s = state[name];
    if (s == 2) return false;
    if (s == 1) {
      auto from = std::find(path.begin(), path.end(), name);
      cycle.assign(from, path.end());
      cycle.push_back(name);
      return true;
    }
    s = 1;
    path.push_back(name);
    if (it->second->escalate)
      for (const auto& next : it->second->escalate->to)
        if (visit(next)) return true;
    path.pop_back();
    state[name] = 2;
    return false;
  };
  for (const auto& g : groups)
    if (visit(g.name)) return cycle;
  return {};
}

int possible_reporters(const Group& group,
                       const std::vector<std::vector<std::string>>& reporter_areas) {
  int n = 0;
  for (const auto& areas : reporter_areas) {
    bool overlaps = false;
    for (const auto& a : areas)
      for (const auto& g : group.areas)
        overlaps = overlaps || area_covers(a, g) || area_covers(g, a);
    if (overlaps) ++n;
  }
  return n;
}

}  // namespace tocsin
