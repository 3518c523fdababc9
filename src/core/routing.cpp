#include "core/routing.h"

#include <algorithm>

namespace tocsin {

bool group_matches(const Group& group, const Report& report,
                   const std::vector<std::string>& point_areas) {
  if (report.is_drill() && !group.drills) return false;
  if (!group.events.empty() &&
      std::find(group.events.begin(), group.events.end(), report.event) == group.events.end())
    return false;
  if (group.min_severity && report.severity < *group.min_severity) return false;
  return std::any_of(group.areas.begin(), group.areas.end(), [&](const std::string& a) {
    return area_covers(a, report.area) ||
           std::any_of(point_areas.begin(), point_areas.end(),
                       [&](const std::string& p) { return area_covers(a, p); });
  });
}

std::vector<const Group*> match_groups(const std::vector<Group>& groups, const Report& report,
                                       const std::vector<std::string>& point_areas) {
  std::vector<const Group*> out;
  for (const auto& g : groups)
    if (group_matches(g, report, point_areas)) out.push_back(&g);
  return out;
}

std::vector<std::string> groups_on_channel(const std::vector<const Group*>& groups, Channel channel) {
  std::vector<std::string> names;
  for (const Group* g : groups)
    if (std::find(g->channels.begin(), g->channels.end(), channel) != g->channels.end())
      names.push_back(g->name);
  return names;
}

}  // namespace tocsin
