#include "app/route.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "app/config.h"
#include "app/files.h"
#include "app/ingest.h"
#include "core/dedup.h"
#include "core/routing.h"
#include "core/sms.h"
#include "core/templates.h"
#include "store/store.h"

namespace tocsin::app {

namespace {
int print_problems(const std::string& file, const std::vector<FieldProblem>& problems) {
  for (const auto& p : problems)
    std::printf("%s: %s: %s\n", file.c_str(), p.path.empty() ? "$" : p.path.c_str(), p.message.c_str());
  return 2;
}
}  // namespace

int route(const std::string& config_path, const std::string& report_path) {
  auto loaded = load_config(config_path);
  if (!loaded.ok()) return print_problems(config_path, loaded.problems);
  const ActiveConfig active(std::move(loaded.config));
  const Config& c = active.config;
  auto body = read_file(report_path);
  if (!body) {
    std::printf("%s: $: cannot read the file\n", report_path.c_str());
    return 2;
  }
  auto parsed = parse_report(*body);
  if (auto* bad = std::get_if<MalformedReport>(&parsed)) {
    std::printf("%s: $: %s\n", report_path.c_str(), bad->detail.c_str());
    return 2;
  }
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return print_problems(report_path, *problems);
  const Report& report = std::get<Report>(parsed);

  std::printf("report: %s %s %s in %s (%s)\n", std::string(to_string(report.msg_type)).c_str(),
              report.event.c_str(), std::string(to_string(report.severity)).c_str(),
              report.area.c_str(), std::string(to_string(report.status)).c_str());
  std::unique_ptr<store::Store> store;
  if (std::filesystem::exists(c.storage.sqlite_path)) {
    try {
      store = store::open_sqlite_store_read_only(c.storage.sqlite_path);
    } catch (const std::exception& e) {
      std::printf("database: %s (counts unavailable)\n", e.what());
    }
  } else {
    std::printf("database: %s does not exist yet: no subscribers\n", c.storage.sqlite_path.c_str());
  }
  if (report.msg_type != MsgType::kAlert) {
    std::printf("a%s reaches exactly the recipients of incident %s\n",
                report.msg_type == MsgType::kUpdate ? "n update" : " cancel",
                report.references.c_str());
  } else if (store) {
    UnixMs now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    auto rows = store->dedup_candidates(report, c.dedup.radius_m,
                                        now - c.dedup.window_s * 1000);
    if (auto idx = find_duplicate(report, now, dedup_view(rows), c.dedup))
      std::printf("now: a duplicate of open incident %s: it would be merged and send nothing\n",
                  rows[*idx].id.c_str());
  }

  auto groups = match_groups(c.groups, report);
  std::printf("groups:%s\n", groups.empty() ? " none" : "");
  for (const Group* g : groups) {
    std::string chans;
    for (Channel ch : g->channels) chans += (chans.empty() ? "" : ", ") + std::string(to_string(ch));
    std::printf("  %-28s %s\n", g->name.c_str(), chans.c_str());
  }
  std::printf("recipients:\n");
  int64_t total = 0;
  std::vector<std::pair<Channel, std::string>> previews;
  for (Channel ch : kAllChannels) {
    auto names = groups_on_channel(groups, ch);
    if (names.empty()) continue;
    auto audience = store ? store->group_audience(names, ch) : std::vector<std::pair<std::string, int64_t>>{};
    if (audience.empty()) std::printf("  %-6s %-8s %8d\n", std::string(to_string(ch)).c_str(), "-", 0);
    for (const auto& [lang, n] : audience) {
      std::printf("  %-6s %-8s %8lld\n", std::string(to_string(ch)).c_str(), lang.c_str(),
                  static_cast<long long>(n));
      total += n;
      previews.emplace_back(ch, lang);
    }
    if (audience.empty()) previews.emplace_back(ch, "en");
  }
  std::printf("  %-15s %8lld\n", "total", static_cast<long long>(total));

  std::printf("messages:\n");
  MessageContext ctx{&report, "XXXXXX", static_cast<std::size_t>(c.sms.max_segments)};
  for (const auto& [ch, lang] : previews) {
    auto m = render_message(active.templates, ch, lang, ctx);
    if (ch == Channel::kSms) {
      const char* fit = m.sms.segments > ctx.max_sms_segments
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
