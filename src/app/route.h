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
  struct GroupLine {
    std::string name;
    std::vector<Channel> channels;
  };
  std::vector<GroupLine> groups;
  struct Audience {
    Channel channel = Channel::kSms;
    std::string language;  // "-" when the channel's groups have nobody reachable
    int64_t count = 0;
  };
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
// Reads only: dedup candidates and audience counts, no personal data.
DryRun dry_run(store::Store* store, const ActiveConfig& active, const Report& report, UnixMs now,
               const std::string& incident_code = "XXXXXX");

// Prints the dry run to stdout. Returns 0, or 2 for an invalid config or
// report (problems on stdout as FILE: path: problem).
int route(const std::string& config_path, const std::string& report_path);

}  // namespace tocsin::app
