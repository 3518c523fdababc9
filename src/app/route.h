// `tocsin route`: a dry run. Which groups a report would reach, how many
// subscribers per channel and language (read from the database beside a
// running daemon, without changing it), and what each message would say.
// The console's preview calls dry_run() on the daemon's own store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/config.h"
#include "core/report.h"
#include "core/templates.h"
#include "store/store.h"

namespace tocsin::app {

struct DryRun {
  std::string merge_into;  // an alert that would merge into this open incident (and send nothing)
  LocalizedText merge_headline;  // that incident's headline now (its latest alert or update)
  struct Audience {
    Channel channel = Channel::kSms;
    std::string language;  // "-" when the channel's groups have nobody reachable
    int64_t count = 0;
  };
  struct GroupLine {
    std::string name;
    std::vector<Channel> channels;
    std::string waits;  // held by the safety rules: what it waits for ("" = sent now)
    // The group's own reachable members per channel and language (a held
    // group: whom it would reach once released). Someone in two groups is
    // in both lines here, once in `audience` below.
    std::vector<Audience> audience;
  };
  std::vector<GroupLine> groups;
  std::vector<Audience> audience;  // for an alert; follow-ups reach the incident's recipients
  int64_t total = 0;
  struct Message {
    Channel channel = Channel::kSms;
    std::string language;
    RenderedMessage rendered;
  };
  std::vector<Message> messages;  // one per (channel, language) of the audience
};

// What `report` would do now. `store` may be null (no database: nobody).
// `point_areas` are the areas whose shapes hold the report's point (their
// groups hear of it too: decide_area). Groups the safety rules hold for a
// new incident of this report alone are listed with what they wait for and
// count no audience. With `reporter` (the console: who would send it), a
// report that would merge counts the incident's reporters too, so that a
// second person sees that theirs would release a held group; without it
// (`tocsin route`, which knows no sender) the report counts alone. Reads
// only: dedup candidates, reporters and audience counts, no personal data.
DryRun dry_run(store::Store* store, const ActiveConfig& active, const Report& report, UnixMs now,
               const std::vector<std::string>& point_areas = {},
               const std::string& incident_code = "XXXXXX",
               const ReportEvidence* reporter = nullptr);

// Prints the dry run to stdout. Returns 0, or 2 for an invalid config or
// report (problems on stdout as FILE: path: problem), including a report
// the areas' shapes refuse. With areas, says which shape held the point and
// how far it lies from its edge; `svg_path` (when not empty) receives the
// picture of the shapes and the point (area_svg).
int route(const std::string& config_path, const std::string& report_path,
          const std::string& svg_path = "");

}  // namespace tocsin::app
