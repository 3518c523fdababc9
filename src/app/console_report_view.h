// The console report form's views (console_reports.cpp has its handlers):
// the form itself, filled or prefilled, and the live preview as HTML (the
// draft page) and as JSON (app.js renders it while the person types).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/console_impl.h"
#include "app/route.h"

namespace tocsin::app::console {

// What the report would do: the dry run of an alert, or the reach and
// messages of a follow-up.
struct Preview {
  DryRun run;
  std::string map_svg;  // the area shapes with the report's point ("" without shapes or point)
  std::optional<store::FollowupReach> followup;  // follow-ups: who they reach (people, per channel)
};

// The coordinator configured under `name`, or null.
const CoordinatorConfig* coordinator_of(const Config& c, const std::string& name);
// Whether `co` (may be null) may report in `area`.
bool coordinator_covers(const CoordinatorConfig* co, std::string_view area);

// The preview as the live preview's fetch gets it.
nlohmann::json preview_json(const Preview& p);

// The preview as the draft page shows it, in language `l`.
std::string preview_html(const std::string& l, const Preview& p);

// The report form page (alert, update or all-clear), filled with `f`, with
// `problems` listed on top; a follow-up's confirmation names `reach`.
http::Response form_page(int status, const std::string& l, const Who& who, const ActiveConfig& cfg,
                         const FormFields& f, const std::vector<FieldProblem>& problems,
                         const std::optional<store::FollowupReach>& reach, UnixMs now);

// An update starts from what the incident says now: the headline and
// instruction of its latest alert or update (`latest`, as received) in each
// configured language, and the incident's location.
void prefill_update(FormFields& f, const store::IncidentRecord& i, const std::string& latest,
                    const ConsoleConfig& k);

}  // namespace tocsin::app::console
