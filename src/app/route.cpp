#include "app/route.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/config.h"
#include "app/files.h"
#include "app/ingest.h"
#include "app/storage.h"
#include "core/area_svg.h"
#include "core/areas.h"
#include "core/clock.h"
#include "core/dedup.h"
#include "core/routing.h"
#include "core/safety.h"
#include "core/sms.h"
#include "core/templates.h"
#include "store/open_store.h"
#include "store/store.h"

namespace tocsin::app {

namespace {
int print_problems(const std::string& file, const std::vector<FieldProblem>& problems) {
  for (const auto& p : problems)
    std::printf("%s: %s: %s\n", file.c_str(), p.path.empty() ? "$" : p.path.c_str(), p.message.c_str());
  return 2;
}
}  // namespace

DryRun dry_run(store::Store* store, const ActiveConfig& active, const Report& report, UnixMs now,
               const std::vector<std::string>& point_areas, const std::string& incident_code,
               const ReportEvidence* reporter) {
  const Config& c = active.config;
  DryRun out;
  if (report.msg_type == MsgType::kAlert && store) {
    auto rows = store->dedup_candidates(report, c.dedup.radius_m, now - c.dedup.window_s * 1000);
    if (auto idx = find_duplicate(report, now, dedup_view(rows), c.dedup)) {
      out.merge_into = rows[*idx].id;
      // As received (parse_report would refuse an old observed_at).
      auto latest =
          nlohmann::json::parse(store->latest_report_body(out.merge_into), nullptr, false);
      if (latest.is_object() && latest.contains("headline") && latest["headline"].is_object())
        for (const auto& [lang, text] : latest["headline"].items())
          if (text.is_string()) out.merge_headline[lang] = text.get<std::string>();
    }
  }
  // Safety rules (README "Safety rules"): a new incident of this report
  // alone has its certainty and one reporter; merged, the incident's too.
  std::vector<ReportEvidence> reports;
  if (reporter && store && !out.merge_into.empty()) reports = store->incident_evidence(out.merge_into);
  reports.push_back(reporter ? *reporter
                             : ReportEvidence{.coordinator = "this report", .certainty = report.certainty});
  Evidence evidence = evidence_of(reports);
  std::vector<const Group*> groups;
  for (const Group* g : match_groups(c.groups, report, point_areas)) {
    std::string waits = waiting_for(*g, evidence);
    DryRun::GroupLine line{g->name, g->channels, waits, {}};
    for (Channel ch : g->channels)
      if (store)
        for (const auto& [lang, n] : store->group_audience({g->name}, ch))
          line.audience.push_back({ch, lang, n});
    out.groups.push_back(std::move(line));
    if (waits.empty()) groups.push_back(g);
  }
  std::vector<std::pair<Channel, std::string>> previews;
  for (Channel ch : kAllChannels) {
    auto names = groups_on_channel(groups, ch);
    if (names.empty()) continue;
    auto audience = store ? store->group_audience(names, ch)
                          : std::vector<std::pair<std::string, int64_t>>{};
    if (audience.empty()) {
      out.audience.push_back({ch, "-", 0});
      previews.emplace_back(ch, "en");
    }
    for (const auto& [lang, n] : audience) {
      out.audience.push_back({ch, lang, n});
      out.total += n;
      previews.emplace_back(ch, lang);
    }
  }
  MessageContext ctx{&report, incident_code, static_cast<std::size_t>(c.sms.max_segments)};
  for (const auto& [ch, lang] : previews)
    out.messages.push_back({ch, lang, render_message(active.templates, ch, lang, ctx)});
  return out;
}

int route(const std::string& config_path, const std::string& report_path,
          const std::string& svg_path) {
  auto loaded = load_config(config_path);
  if (!loaded.ok()) return print_problems(config_path, loaded.problems);
  const ActiveConfig active(std::move(loaded.config));
  const Config& c = active.config;
  auto body = read_file(report_path);
  if (!body) {
    std::printf("%s: $: cannot read the file\n", report_path.c_str());
    return 2;
  }
  auto parsed = parse_report(*body, SystemClock().now_ms());
  if (auto* bad = std::get_if<MalformedReport>(&parsed)) {
    std::printf("%s: %s: %s\n", report_path.c_str(), bad->field.empty() ? "$" : bad->field.c_str(),
                bad->detail.c_str());
    return 2;
  }
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return print_problems(report_path, *problems);
  Report& report = std::get<Report>(parsed);
  const AreasConfig& areas = c.areas;
  AreaDecision place = decide_area(areas.shapes.get(), report.area, report.location, areas.tolerance_m);
  if (place.problem) {
    std::printf("%s: %s: %s (the daemon would answer 422 and send nothing)\n", report_path.c_str(),
                place.problem->path.c_str(), place.problem->message.c_str());
    return 2;
  }
  report.area = place.area;

  std::printf("report: %s %s %s in %s (%s)\n", std::string(to_string(report.msg_type)).c_str(),
              report.event.c_str(), std::string(to_string(report.severity)).c_str(),
              report.area.c_str(), std::string(to_string(report.status)).c_str());
  if (place.derived) std::printf("area: %s, the most specific area holding the location\n", report.area.c_str());
  if (place.shape)
    std::printf("shape: the location is %s %s, %s from its edge\n",
                place.shape->inside ? "inside" : "outside (within areas.tolerance_m)",
                place.shape->area.c_str(), format_distance(place.shape->edge_m).c_str());
  if (!place.point_areas.empty()) {
    std::string held;
    for (const auto& a : place.point_areas) held += (held.empty() ? "" : ", ") + a;
    std::printf("held by: %s (groups of these areas hear of it, within the coordinator's scope)\n",
                held.c_str());
  }
  if (!svg_path.empty()) {
    if (!areas.shapes) {
      std::printf("%s: $: no areas_file or areas.circles: nothing to draw\n", config_path.c_str());
      return 2;
    }
    std::ofstream out(svg_path, std::ios::binary | std::ios::trunc);
    out << area_svg(*areas.shapes, report.area, report.location, "dry run: " + report.area);
    if (!out.flush()) {
      std::printf("%s: cannot write the picture\n", svg_path.c_str());
      return 2;
    }
    std::printf("picture: %s\n", svg_path.c_str());
  }
  std::unique_ptr<store::Store> store;
  if (!c.storage.postgresql_url.empty() || std::filesystem::exists(c.storage.sqlite_path)) {
    try {
      store = store::open_store(store_options(c.storage, store::StoreOptions::Access::kReadOnly));
    } catch (const std::exception& e) {
      std::printf("database: %s (counts unavailable)\n", e.what());
    }
  } else {
    std::printf("database: %s does not exist yet: no subscribers\n", c.storage.sqlite_path.c_str());
  }
  DryRun run = dry_run(store.get(), active, report, SystemClock().now_ms(), place.point_areas);
  if (report.msg_type != MsgType::kAlert) {
    std::printf("a%s reaches exactly the recipients of incident %s\n",
                report.msg_type == MsgType::kUpdate ? "n update" : " cancel",
                report.references.c_str());
  } else if (!run.merge_into.empty()) {
    std::string headline = run.merge_headline.empty() ? "" : run.merge_headline.begin()->second;
    if (auto en = run.merge_headline.find("en"); en != run.merge_headline.end())
      headline = en->second;
    std::printf(
        "now: a duplicate of open incident %s (\"%s\"): it would be merged and send nothing\n",
        run.merge_into.c_str(), headline.c_str());
  }

  std::printf("groups:%s\n", run.groups.empty() ? " none" : "");
  for (const auto& g : run.groups) {
    std::string chans;
    for (Channel ch : g.channels) chans += (chans.empty() ? "" : ", ") + std::string(to_string(ch));
    std::printf("  %-28s %s%s\n", g.name.c_str(), chans.c_str(),
                g.waits.empty() ? "" : ("  HELD: waits for " + g.waits).c_str());
    std::string reach;
    for (const auto& a : g.audience)
      reach += (reach.empty() ? "" : ", ") + std::string(to_string(a.channel)) + "/" + a.language +
               " " + std::to_string(a.count);
    std::printf("  %-28s reaches %s\n", "", reach.empty() ? "nobody" : reach.c_str());
  }
  for (const auto& line : run.groups) {
    const Group* g = c.group(line.name);
    if (!g) continue;
    if (g->escalate) {
      std::string to;
      for (const auto& t : g->escalate->to) to += (to.empty() ? "" : ", ") + t;
      std::printf("  %-28s escalates to %s if fewer than %d respond within %lld s\n",
                  g->name.c_str(), to.c_str(), g->escalate->if_responding_below,
                  static_cast<long long>(g->escalate->after_s));
    }
    if (g->enough_responding > 0)
      std::printf("  %-28s covered at %d responding (the others are told to stand down)\n",
                  g->name.c_str(), g->enough_responding);
  }
  std::printf("recipients:\n");
  for (const auto& a : run.audience)
    std::printf("  %-6s %-8s %8lld\n", std::string(to_string(a.channel)).c_str(), a.language.c_str(),
                static_cast<long long>(a.count));
  std::printf("  %-15s %8lld\n", "total", static_cast<long long>(run.total));

  std::printf("messages:\n");
  for (const auto& [ch, lang, m] : run.messages) {
    if (ch == Channel::kSms) {
      const char* fit = m.sms.segments > static_cast<std::size_t>(c.sms.max_segments)
                            ? ", over sms.max_segments (the headline is never cut)"
                        : m.shortened ? ", shortened to fit sms.max_segments"
                                      : "";
      std::printf("--- sms, %s: %zu segment(s), %s%s\n%s\n", lang.c_str(), m.sms.segments,
                  m.sms.encoding == SmsEncoding::kGsm7 ? "GSM-7" : "UCS-2", fit, m.body.c_str());
    } else if (ch == Channel::kEmail) {
      std::printf("--- email, %s\nSubject: %s\n%s", lang.c_str(), m.subject.c_str(), m.body.c_str());
    } else {  // signal, voice (what the call says)
      std::printf("--- %s, %s\n%s\n", std::string(to_string(ch)).c_str(), lang.c_str(),
                  m.body.c_str());
    }
  }
  return 0;
}

}  // namespace tocsin::app
