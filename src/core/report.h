// A coordinator's verified report (vocabulary from CAP 1.2) and its parsing:
// bytes in, a Report or every problem with its field path out. Pure.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/json_reader.h"
#include "core/model.h"

namespace tocsin {

struct Location {
  double lat = 0;           // degrees, WGS 84
  double lon = 0;           // degrees, WGS 84
  std::string description;  // human words: "1st St & Soto St"
};

// Language tag → text, e.g. {"en": "...", "es": "..."}.
using LocalizedText = std::map<std::string, std::string>;

struct Report {
  MsgType msg_type = MsgType::kAlert;
  ReportStatus status = ReportStatus::kActual;
  std::string event;      // "enforcement_activity": lower-case word characters
  Severity severity = Severity::kModerate;
  std::string area;       // "la/boyle-heights": '/'-separated path; "" when left out beside a location
  std::optional<Location> location;
  std::string observed_at;  // RFC 3339 as given
  UnixMs observed_at_ms = 0;
  LocalizedText headline;     // required for alert and update
  LocalizedText instruction;  // optional
  std::string dedup_key;      // optional explicit duplicate key
  std::string references;     // incident id; required for update and cancel
  Certainty certainty = Certainty::kObserved;  // CAP certainty; optional, default observed

  bool is_drill() const { return status != ReportStatus::kActual; }
};

// The parse failed before fields could be read (not JSON, too deep, not an object).
struct MalformedReport {
  std::string detail;
  std::string field;  // the duplicate key's path, or ""
};

using ParsedReport = std::variant<Report, MalformedReport, std::vector<FieldProblem>>;

// Parses and validates a report body received at `now`. Unknown fields and
// duplicate keys are refused: a typo in an alert must not silently drop the
// instruction, nor a repeated "status" turn a drill into an alert. Texts
// may not hold control characters (instruction texts may hold line breaks);
// observed_at must lie between 2000-01-01 and a day after `now`.
ParsedReport parse_report(std::string_view body, UnixMs now);

// The range parse_report accepts for observed_at.
inline constexpr UnixMs kEarliestObservedAt = 946'684'800'000;  // 2000-01-01T00:00:00Z
inline constexpr UnixMs kObservedAtLeadMs = 24LL * 3600 * 1000;  // a day ahead of now

// Maximum nesting of JSON arrays/objects accepted anywhere; deeper documents
// are malformed (guards the parser and everything after it).
inline constexpr int kMaxJsonDepth = 32;

// True when `body` nests arrays/objects deeper than `max_depth` (strings are
// skipped correctly). Linear, no allocation.
bool json_too_deep(std::string_view body, int max_depth = kMaxJsonDepth);

// Area paths: one or more segments of [a-z0-9_-], joined by '/'.
bool valid_area(std::string_view area);
// True when `scope` equals `area` or is one of its ancestors ("la" covers "la/east-la").
bool area_covers(std::string_view scope, std::string_view area);
// The one scope check: whether any of `scopes` (a coordinator's or a console
// person's areas) covers `area`.
bool any_area_covers(const std::vector<std::string>& scopes, std::string_view area);

// Language tags: "en", "es-MX" (2-3 letters, optional subtags of 2-8 alphanumerics).
bool valid_language(std::string_view tag);

// RFC 3339 "2026-11-22T13:05:00Z" or with offset/fraction → Unix ms, or
// nullopt. Offsets beyond ±14:00 (no zone has one) are refused.
std::optional<UnixMs> parse_rfc3339(std::string_view text);
// Unix ms → "2026-11-22T13:05:00Z".
std::string format_rfc3339(UnixMs ms);

}  // namespace tocsin
