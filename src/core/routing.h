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
  // Self-service by SMS (double opt-in): keywords texted to the alert number
  // (upper case; empty: the group cannot be joined that way) and the
  // language of the confirmation prompt and of who joins.
  std::vector<std::string> join_keywords;
  std::string join_language = "en";
  bool operator==(const Group&) const = default;
};

// True when `group` should receive `report`.
bool group_matches(const Group& group, const Report& report);

// The groups among `groups` that receive `report`, in config order.
std::vector<const Group*> match_groups(const std::vector<Group>& groups,
                                            const Report& report);

// Names of the groups among `groups` that are alerted on `channel`.
std::vector<std::string> groups_on_channel(const std::vector<const Group*>& groups, Channel channel);

}  // namespace tocsin
