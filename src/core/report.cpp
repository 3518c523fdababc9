#include "core/report.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

namespace tocsin {

using nlohmann::json;

bool json_too_deep(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') --depth;
  }
  return false;
}

bool valid_area(std::string_view area) {
  if (area.empty() || area.size() > 200) return false;
  bool segment_start = true;
  for (char c : area) {
    if (c == '/') {
      if (segment_start) return false;  // empty segment
      segment_start = true;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
    segment_start = false;
  }
  return !segment_start;
}

bool area_covers(std::string_view scope, std::string_view area) {
  if (!area.starts_with(scope)) return false;
  return area.size() == scope.size() || area[scope.size()] == '/';
}

bool any_area_covers(const std::vector<std::string>& scopes, std::string_view area) {
  return std::any_of(scopes.begin(), scopes.end(),
                     [&](const std::string& scope) { return area_covers(scope, area); });
}

bool valid_language(std::string_view tag) {
  if (tag.empty() || tag.size() > 35) return false;
  std::size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    auto end = tag.find('-', start);
    if (end == std::string_view::npos) end = tag.size();
    auto part = tag.substr(start, end - start);
    if (first) {
      if (part.size() < 2 || part.size() > 3) return false;
      for (char c : part)
        if (!std::isalpha(static_cast<unsigned char>(c))) return false;
    } else {
      if (part.size() < 2 || part.size() > 8) return false;
      for (char c : part)
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    }
    first = false;
    start = end + 1;
  }
  return true;
}

namespace {

bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  for (std::size_t i = pos; i < pos + n; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  std::from_chars(s.data() + pos, s.data() + pos + n, out);
  return true;
}

}  // namespace

std::optional<UnixMs> parse_rfc3339(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !parse_digits(s, 0, 4, y) || s[4] != '-' || !parse_digits(s, 5, 2, mo) ||
      s[7] != '-' || !parse_digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
      !parse_digits(s, 11, 2, h) || s[13] != ':' || !parse_digits(s, 14, 2, mi) || s[16] != ':' ||
      !parse_digits(s, 17, 2, sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    std::size_t digits = 0;
    ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < 3; ++i) ms *= 10;
  }
  int offset_min = 0;
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (!parse_digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !parse_digits(s, pos + 4, 2, om) || oh > 14 || om > 59 || (oh == 14 && om > 0))
      return std::nullopt;
    offset_min = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  if (tm.tm_mday != d) return std::nullopt;  // 31 February and friends
  return (static_cast<int64_t>(t) - offset_min * 60) * 1000 + ms;
}

std::string format_rfc3339(UnixMs ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

LocalizedText read_localized(JsonReader& r, std::string_view key, Need need,
                             bool allow_newline = false) {
  LocalizedText out;
  const json* v = r.get(key);
  if (!v) {
    if (need == Need::kRequired) r.problem(key, "is required");
    return out;
  }
  if (!v->is_object() || v->empty()) {
    r.problem(key, "must be an object of language tag to text, e.g. {\"en\": \"...\"}");
    return out;
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!valid_language(it.key())) {
      r.problem(key, "has an invalid language tag \"" + it.key().substr(0, 40) + "\"");
      continue;
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      r.problem(join_path(key, it.key()), "must be a non-empty string");
      continue;
    }
    if (it->get_ref<const std::string&>().size() > 1000) {
      r.problem(join_path(key, it.key()), "is longer than 1000 bytes");
      continue;
    }
    if (has_control_chars(it->get_ref<const std::string&>(), allow_newline)) {
      r.problem(join_path(key, it.key()), allow_newline
                                              ? "must not contain control characters but line breaks"
                                              : "must not contain control characters");
      continue;
    }
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

bool valid_event(std::string_view e) {
  if (e.empty() || e.size() > 64) return false;
  for (char c : e)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

}  // namespace

ParsedReport parse_report(std::string_view body, UnixMs now) {
  if (json_too_deep(body)) return MalformedReport{"JSON nests deeper than 32 levels", ""};
  auto parsed = parse_json_strict(body);
  if (auto* bad = std::get_if<JsonSyntaxError>(&parsed)) return MalformedReport{bad->detail, bad->path};
  json& doc = std::get<json>(parsed);
  if (!doc.is_object()) return MalformedReport{"body must be a JSON object", ""};

  std::vector<FieldProblem> problems;
  JsonReader r(doc, "", problems);
  r.reject_unknown({"msg_type", "status", "event", "severity", "area", "location", "observed_at",
                    "headline", "instruction", "dedup_key", "references", "certainty"});
  Report rep;

  if (auto s = r.string("msg_type", Need::kRequired)) {
    if (auto t = parse_msg_type(*s)) rep.msg_type = *t;
    else r.problem("msg_type", "must be one of alert, update, cancel");
  }
  if (auto s = r.string("status", Need::kRequired)) {
    if (auto t = parse_report_status(*s)) rep.status = *t;
    else r.problem("status", "must be one of actual, exercise, test");
  }
  if (auto s = r.string("event", Need::kRequired, 64)) {
    if (valid_event(*s)) rep.event = *s;
    else r.problem("event", "must be lower-case letters, digits and '_'");
  }
  if (auto s = r.string("severity", Need::kRequired)) {
    if (auto t = parse_severity(*s)) rep.severity = *t;
    else r.problem("severity", "must be one of extreme, severe, moderate, minor");
  }
  // With a location, `area` may be left out: the areas' shapes decide it
  // (decide_area), or refuse the report when none are configured.
  const bool area_needed = !r.has("location") || r.has("area");
  if (auto s = r.string("area", area_needed ? Need::kRequired : Need::kOptional, 200)) {
    if (valid_area(*s)) rep.area = *s;
    else r.problem("area", "must be a path of lower-case segments like \"la/boyle-heights\"");
  }
  if (r.has("location")) {
    JsonReader loc = r.object("location", Need::kOptional);
    if (loc.ok()) {
      loc.reject_unknown({"lat", "lon", "description"});
      auto lat = loc.number("lat", Need::kRequired, -90, 90);
      auto lon = loc.number("lon", Need::kRequired, -180, 180);
      auto desc = loc.string("description", Need::kOptional, 200);
      if (desc && has_control_chars(*desc)) {
        loc.problem("description", "must not contain control characters");
        desc.reset();
      }
      if (lat && lon) rep.location = Location{*lat, *lon, desc.value_or("")};
    }
  }
  if (auto s = r.string("observed_at", Need::kRequired, 64)) {
    if (auto ms = parse_rfc3339(*s); ms && (*ms < kEarliestObservedAt || *ms > now + kObservedAtLeadMs)) {
      r.problem("observed_at", "must lie between 2000-01-01 and a day from now");
    } else if (ms) {
      rep.observed_at = *s;
      rep.observed_at_ms = *ms;
    } else {
      r.problem("observed_at", "must be an RFC 3339 time like 2026-11-22T13:05:00Z");
    }
  }
  bool needs_headline = rep.msg_type != MsgType::kCancel;
  rep.headline = read_localized(r, "headline", needs_headline ? Need::kRequired : Need::kOptional);
  rep.instruction = read_localized(r, "instruction", Need::kOptional, /*allow_newline=*/true);
  auto plain = [&r](const char* key, std::size_t max_len) {
    auto s = r.string(key, Need::kOptional, max_len);
    if (s && has_control_chars(*s)) {
      r.problem(key, "must not contain control characters");
      return std::string();
    }
    return s.value_or("");
  };
  rep.dedup_key = plain("dedup_key", 200);
  rep.references = plain("references", 64);
  if (auto s = r.string("certainty", Need::kOptional)) {
    if (auto c = parse_certainty(*s)) rep.certainty = *c;
    else r.problem("certainty", "must be one of observed, likely, possible, unlikely, unknown");
  }
  if (rep.msg_type != MsgType::kAlert && rep.references.empty() &&
      r.get("references") == nullptr)
    r.problem("references", "is required for update and cancel");
  if (rep.msg_type == MsgType::kAlert && !rep.references.empty())
    r.problem("references", "is only for update and cancel; an alert opens or joins an incident");

  if (!problems.empty()) return problems;
  return rep;
}

}  // namespace tocsin
