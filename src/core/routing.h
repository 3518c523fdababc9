// Which subscriber groups a report concerns. Pure.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/report.h"

namespace tocsin {

// What happens when too few of a group's recipients respond (README
// "Safety rules"): `after_s` after the incident's first send to the group,
// if fewer than `if_responding_below` of them replied responding, the
// incident goes to the `to` groups not yet reached.
struct EscalateRule {
  int64_t after_s = 0;
  int if_responding_below = 1;
  std::vector<std::string> to;  // group names
  bool operator==(const EscalateRule&) const = default;
};

// A subscriber group from the config: what it matches and how it is alerted.
struct Group {
  std::string name;
  std::vector<std::string> areas;      // a report in any of these or below matches
  std::vector<std::string> events;     // empty: every event
  std::optional<Severity> min_severity;  // absent: every severity
  std::vector<Channel> channels;
  bool drills = false;                 // exercise/test reports reach only groups that opt in
  // Safety rules (core/safety.h): the alert is held from this group until the
  // incident is this certain and reported by this many distinct reporters
  // (coordinators, or people of one through the console: core/safety.h).
  std::optional<Certainty> min_certainty;  // absent: any certainty
  int min_corroboration = 1;               // 1: one report suffices
  std::optional<EscalateRule> escalate;    // absent: never escalates
  int enough_responding = 0;               // > 0: "covered" to the rest at this many responding
  // Self-service by SMS (double opt-in): keywords texted to the alert number
  // (upper case; empty: the group cannot be joined that way) and the
  // language of the confirmation prompt and of who joins; a keyword may
  // have its own (join_keyword_languages: keyword → language tag).
  std::vector<std::string> join_keywords;
  std::string join_language = "en";
  std::map<std::string, std::string> join_keyword_languages;
  bool operator==(const Group&) const = default;
};

// True when `group` should receive `report`. `point_areas` are further
// areas the report counts as in: those whose shapes hold its location
// (decide_area), so that a group of `la` hears of a point anywhere in la's
// shape whatever area the report names.
bool group_matches(const Group& group, const Report& report,
                   const std::vector<std::string>& point_areas = {});

// The groups among `groups` that receive `report`, in config order.
std::vector<const Group*> match_groups(const std::vector<Group>& groups, const Report& report,
                                       const std::vector<std::string>& point_areas = {});

// Names of the groups among `groups` that are alerted on `channel`.
std::vector<std::string> groups_on_channel(const std::vector<const Group*>& groups, Channel channel);

}  // namespace tocsin
