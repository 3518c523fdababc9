// The DOM-based parse_report that src/core/report_parse.cpp replaced (nlohmann
// DOM + JsonReader), kept unchanged as the oracle the SAX parse must agree
// with on every input: tests/unit/report_diff_test.cpp and fuzz/report.cpp
// compare the two. Not used by the daemon.
#include "support/report_dom.h"

#include <algorithm>

namespace tocsin::testing {

using nlohmann::json;

namespace {

bool valid_event(std::string_view e) {
  if (e.empty() || e.size() > 64) return false;
  for (char c : e)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

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

}  // namespace

ParsedReport parse_report_dom(std::string_view body, UnixMs now) {
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

std::string parsed_difference(const ParsedReport& a, const ParsedReport& b) {
  if (a.index() != b.index())
    return "different kinds of result: " + std::to_string(a.index()) + " vs " + std::to_string(b.index());
  if (auto* ma = std::get_if<MalformedReport>(&a)) {
    auto& mb = std::get<MalformedReport>(b);
    if (ma->detail != mb.detail || ma->field != mb.field)
      return "malformed: " + ma->detail + " @" + ma->field + " vs " + mb.detail + " @" + mb.field;
    return "";
  }
  if (auto* pa = std::get_if<std::vector<FieldProblem>>(&a)) {
    auto& pb = std::get<std::vector<FieldProblem>>(b);
    std::string out;
    for (std::size_t i = 0; i < std::max(pa->size(), pb.size()); ++i) {
      std::string x = i < pa->size() ? (*pa)[i].path + ": " + (*pa)[i].message : "(none)";
      std::string y = i < pb.size() ? pb[i].path + ": " + pb[i].message : "(none)";
      if (x != y) out += "problem " + std::to_string(i) + ": " + x + " vs " + y + "\n";
    }
    return out;
  }
  auto& ra = std::get<Report>(a);
  auto& rb = std::get<Report>(b);
  auto loc = [](const Report& r) {
    if (!r.location) return std::string("none");
    return std::to_string(r.location->lat) + "," + std::to_string(r.location->lon) + "," +
           r.location->description;
  };
  // Exact: the same text parsed to the same double either way.
  bool same_loc = ra.location.has_value() == rb.location.has_value() &&
                  (!ra.location || (ra.location->lat == rb.location->lat &&
                                    ra.location->lon == rb.location->lon &&
                                    ra.location->description == rb.location->description));
  if (ra.msg_type != rb.msg_type || ra.status != rb.status || ra.event != rb.event ||
      ra.severity != rb.severity || ra.area != rb.area || !same_loc ||
      ra.observed_at != rb.observed_at || ra.observed_at_ms != rb.observed_at_ms ||
      ra.headline != rb.headline || ra.instruction != rb.instruction ||
      ra.dedup_key != rb.dedup_key || ra.references != rb.references ||
      ra.certainty != rb.certainty)
    return "reports differ (event " + ra.event + " vs " + rb.event + ", area " + ra.area + " vs " +
           rb.area + ", location " + loc(ra) + " vs " + loc(rb) + ")";
  return "";
}

}  // namespace tocsin::testing
