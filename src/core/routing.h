// Which subscriber groups a report concerns. Pure.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"
#include "core/report.h"

namespace tocsin {

// A subscriber group from the config: what it matches and how it is alerted.
struct Group {
  std::string name;
  std::vector<std::string> areas;      // a report in any of these or below matches
  std::vector<std::string> events;     // empty: every event
  std::optional<Severity> min_severity;  // absent: every severity
  std::vector<Channel> channels;
  bool drills = false;                 // exercise/test reports reach only groups that opt in
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
