// parse_report: a report body read in one SAX pass (json_sax.h: exactly the
// JSON nlohmann's lexer accepted as a DOM: UTF-8, escapes, numbers, trailing
// bytes) straight into the few values a Report needs, with duplicate keys
// refused at every depth; then the same checks, problems and messages, in
// the same order, as the JsonReader-based parse it replaces (tests/support/
// report_dom.cpp keeps that one as the oracle of a differential test and of
// fuzz/report.cpp). No DOM, no per-object key set unless an object is large.
#include <algorithm>
#include <array>
#include <cmath>
#include <list>
#include <set>

#include "core/json_sax.h"
#include "core/report.h"

namespace tocsin {

namespace {

using nlohmann::json;

enum class Kind : unsigned char { kNone, kNull, kBool, kNumber, kString, kObject, kArray };

// One member of a nested object whose members the checks read (location, headline, instruction).
struct Member {
  std::string key;
  Kind kind = Kind::kNone;
  std::string text;
  double number = 0;
};

// A top-level member's value, as far as the checks read it.
struct Slot {
  Kind kind = Kind::kNone;  // kNone: absent
  std::string text;
  double number = 0;
  std::vector<Member> members;  // objects of location, headline, instruction
};

// The known top-level fields, in the order reject_unknown listed them.
enum Field : int {
  kMsgType, kStatus, kEvent, kSeverity, kArea, kLocation, kObservedAt, kHeadline, kInstruction,
  kDedupKey, kReferences, kCertainty, kFieldCount
};
constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "msg_type", "status",   "event",       "severity",  "area",       "location",
    "observed_at", "headline", "instruction", "dedup_key", "references", "certainty"};

int field_of(std::string_view key) {
  for (int i = 0; i < kFieldCount; ++i)
    if (kFieldNames[static_cast<std::size_t>(i)] == key) return i;
  return -1;
}

bool captures_members(int field) {
  return field == kLocation || field == kHeadline || field == kInstruction;
}

// One open array or object, for duplicate keys and their path (as
// parse_json_strict names them). Keys are compared linearly while few; a
// large object gets a set, so a 64 KB body of keys stays n log n. The views
// are into the body, or into ReportSax::escaped_ for keys with escapes.
struct Frame {
  bool object = false;
  std::vector<std::string_view> keys;
  std::set<std::string_view> many;
  std::string_view key;   // the current member's key
  std::size_t count = 0;  // elements finished so far (arrays)

  bool insert(std::string_view k) {
    constexpr std::size_t kLinear = 16;
    if (many.empty()) {
      if (std::find(keys.begin(), keys.end(), k) != keys.end()) return false;
      keys.push_back(k);
      if (keys.size() > kLinear) many.insert(keys.begin(), keys.end());
      return true;
    }
    return many.insert(k).second;
  }
};

class ReportSax {
 public:
  std::array<Slot, kFieldCount> slots;
  std::vector<std::string_view> unknown;  // top-level keys not in kFieldNames

  explicit ReportSax(std::string_view body) : body_(body) {}
  bool top_is_object = false;
  std::optional<JsonSyntaxError> duplicate;

  void null() { scalar(Kind::kNull); }
  void boolean(bool) { scalar(Kind::kBool); }
  void number(double v) {
    if (auto* s = slot()) s->number = v;
    else if (auto* m = member()) m->number = v;
    scalar(Kind::kNumber);
  }
  void string(std::string_view v) {
    if (auto* t = text_target()) t->assign(v);
    scalar(Kind::kString);
  }
  void start_object() { open(true); }
  void start_array() { open(false); }
  void end_object() { close(); }
  void end_array() { close(); }

  void key(std::string_view k) {
    k = stable(k);
    Frame& f = frames_[depth_ - 1];
    if (!f.insert(k) && !duplicate) {
      std::string shown(k.substr(0, 100));
      for (auto& c : shown)
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
      duplicate = JsonSyntaxError{"duplicate key \"" + shown + "\"", join_path(frames_path(), shown)};
    }
    if (depth_ == 1) {
      field_ = field_of(k);
      if (field_ < 0) unknown.push_back(k);
    } else if (depth_ == 2 && capturing_) {
      slots[static_cast<std::size_t>(field_)].members.push_back(Member{std::string(k), Kind::kNone, {}, 0});
    }
    f.key = k;
  }

 private:
  // `k` itself when it views the body, else a copy that lives as long as this.
  std::string_view stable(std::string_view k) {
    if (k.data() >= body_.data() && k.data() + k.size() <= body_.data() + body_.size()) return k;
    return escaped_.emplace_back(k);
  }
  // Where the value now being read is kept, if the checks read it.
  Member* member() {
    if (depth_ != 2 || !capturing_) return nullptr;
    return &slots[static_cast<std::size_t>(field_)].members.back();
  }
  Slot* slot() { return depth_ == 1 && field_ >= 0 ? &slots[static_cast<std::size_t>(field_)] : nullptr; }
  std::string* text_target() {
    if (auto* s = slot()) return &s->text;
    if (auto* m = member()) return &m->text;
    return nullptr;
  }
  void set_kind(Kind k) {
    if (auto* s = slot()) s->kind = k;
    else if (auto* m = member()) m->kind = k;
  }
  void scalar(Kind k) {
    set_kind(k);
    finished_child();
  }
  void open(bool object) {
    if (depth_ == 0) top_is_object = object;
    set_kind(object ? Kind::kObject : Kind::kArray);
    if (depth_ == 1 && object && field_ >= 0 && captures_members(field_)) capturing_ = true;
    if (frames_.size() == depth_) {
      frames_.emplace_back();
      frames_.back().keys.reserve(16);
    }
    Frame& f = frames_[depth_];
    f.object = object;
    f.keys.clear();
    f.many.clear();
    f.key = {};
    f.count = 0;
    ++depth_;
  }
  void close() {
    --depth_;
    if (depth_ == 1) capturing_ = false;
    finished_child();
  }
  void finished_child() {
    if (depth_ > 0) ++frames_[depth_ - 1].count;
  }
  // Each open frame but the innermost names the child the next one is.
  std::string frames_path() const {
    std::string path;
    for (std::size_t i = 0; i + 1 < depth_; ++i) {
      if (frames_[i].object) path = join_path(path, frames_[i].key);
      else path = index_path(path, frames_[i].count);
    }
    return path;
  }

  std::string_view body_;
  std::list<std::string> escaped_;  // keys that held escapes (stable addresses)
  std::vector<Frame> frames_;  // [0, depth_) open; the rest kept for their capacity
  std::size_t depth_ = 0;
  int field_ = -1;          // the top-level member being read
  bool capturing_ = false;  // inside the object of location, headline or instruction
};

// The checks of JsonReader, on the values the SAX pass kept.
class Checks {
 public:
  explicit Checks(std::vector<FieldProblem>& problems) : problems_(problems) {}

  void problem(std::string_view path, std::string message) {
    problems_.push_back({std::string(path), std::move(message)});
  }
  static bool present(Kind k) { return k != Kind::kNone && k != Kind::kNull; }

  std::optional<std::string> string(std::string_view path, Kind kind, std::string& text, Need need,
                                    std::size_t max_len = 4096) {
    if (!present(kind)) {
      if (need == Need::kRequired) problem(path, "is required");
      return std::nullopt;
    }
    if (kind != Kind::kString) {
      problem(path, "must be a string");
      return std::nullopt;
    }
    if (need == Need::kRequired && text.empty()) {
      problem(path, "must not be empty");
      return std::nullopt;
    }
    if (text.size() > max_len) {
      problem(path, "is longer than " + std::to_string(max_len) + " bytes");
      return std::nullopt;
    }
    return std::move(text);
  }
  std::optional<std::string> string(std::string_view path, Slot& s, Need need,
                                    std::size_t max_len = 4096) {
    return string(path, s.kind, s.text, need, max_len);
  }

  std::optional<double> number(std::string_view path, const Member* m, Need need, double min,
                               double max) {
    if (!m || !present(m->kind)) {
      if (need == Need::kRequired) problem(path, "is required");
      return std::nullopt;
    }
    if (m->kind != Kind::kNumber) {
      problem(path, "must be a number");
      return std::nullopt;
    }
    double d = m->number;
    if (!std::isfinite(d) || d < min || d > max) {
      problem(path, "must be between " + json(min).dump() + " and " + json(max).dump());
      return std::nullopt;
    }
    return d;
  }

 private:
  std::vector<FieldProblem>& problems_;
};

// Members in key order (the DOM's std::map order, in which problems were listed).
std::vector<Member*> sorted(std::vector<Member>& members) {
  std::vector<Member*> out;
  out.reserve(members.size());
  for (auto& m : members) out.push_back(&m);
  std::sort(out.begin(), out.end(), [](const Member* a, const Member* b) { return a->key < b->key; });
  return out;
}

Member* find(std::vector<Member>& members, std::string_view key) {
  for (auto& m : members)
    if (m.key == key) return &m;
  return nullptr;
}

LocalizedText read_localized(Checks& c, Slot& v, std::string_view key, Need need,
                             bool allow_newline = false) {
  LocalizedText out;
  if (!Checks::present(v.kind)) {
    if (need == Need::kRequired) c.problem(key, "is required");
    return out;
  }
  if (v.kind != Kind::kObject || v.members.empty()) {
    c.problem(key, "must be an object of language tag to text, e.g. {\"en\": \"...\"}");
    return out;
  }
  for (Member* m : sorted(v.members)) {
    if (!valid_language(m->key)) {
      c.problem(key, "has an invalid language tag \"" + m->key.substr(0, 40) + "\"");
      continue;
    }
    if (m->kind != Kind::kString || m->text.empty()) {
      c.problem(join_path(key, m->key), "must be a non-empty string");
      continue;
    }
    if (m->text.size() > 1000) {
      c.problem(join_path(key, m->key), "is longer than 1000 bytes");
      continue;
    }
    if (has_control_chars(m->text, allow_newline)) {
      c.problem(join_path(key, m->key), allow_newline
                                            ? "must not contain control characters but line breaks"
                                            : "must not contain control characters");
      continue;
    }
    out.emplace(std::move(m->key), std::move(m->text));
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
  ReportSax sax(body);
  if (!json_sax_parse(body, sax)) return MalformedReport{"body is not valid JSON", ""};
  if (sax.duplicate) return MalformedReport{sax.duplicate->detail, sax.duplicate->path};
  if (!sax.top_is_object) return MalformedReport{"body must be a JSON object", ""};

  std::vector<FieldProblem> problems;
  Checks r(problems);
  auto& f = sax.slots;
  std::vector<std::string_view>& unknown = sax.unknown;
  std::sort(unknown.begin(), unknown.end());
  for (auto k : unknown) r.problem(k, "unknown field");
  Report rep;

  if (auto s = r.string("msg_type", f[kMsgType], Need::kRequired)) {
    if (auto t = parse_msg_type(*s)) rep.msg_type = *t;
    else r.problem("msg_type", "must be one of alert, update, cancel");
  }
  if (auto s = r.string("status", f[kStatus], Need::kRequired)) {
    if (auto t = parse_report_status(*s)) rep.status = *t;
    else r.problem("status", "must be one of actual, exercise, test");
  }
  if (auto s = r.string("event", f[kEvent], Need::kRequired, 64)) {
    if (valid_event(*s)) rep.event = std::move(*s);
    else r.problem("event", "must be lower-case letters, digits and '_'");
  }
  if (auto s = r.string("severity", f[kSeverity], Need::kRequired)) {
    if (auto t = parse_severity(*s)) rep.severity = *t;
    else r.problem("severity", "must be one of extreme, severe, moderate, minor");
  }
  // With a location, `area` may be left out: the areas' shapes decide it
  // (decide_area), or refuse the report when none are configured.
  Slot& loc = f[kLocation];
  const bool has_location = Checks::present(loc.kind);
  const bool area_needed = !has_location || Checks::present(f[kArea].kind);
  if (auto s = r.string("area", f[kArea], area_needed ? Need::kRequired : Need::kOptional, 200)) {
    if (valid_area(*s)) rep.area = std::move(*s);
    else r.problem("area", "must be a path of lower-case segments like \"la/boyle-heights\"");
  }
  if (has_location && loc.kind != Kind::kObject) r.problem("location", "must be an object");
  if (loc.kind == Kind::kObject) {
    for (Member* m : sorted(loc.members))
      if (m->key != "lat" && m->key != "lon" && m->key != "description")
        r.problem(m->key.empty() ? "location" : join_path("location", m->key), "unknown field");
    auto lat = r.number("location.lat", find(loc.members, "lat"), Need::kRequired, -90, 90);
    auto lon = r.number("location.lon", find(loc.members, "lon"), Need::kRequired, -180, 180);
    std::optional<std::string> desc;
    if (Member* d = find(loc.members, "description"))
      desc = r.string("location.description", d->kind, d->text, Need::kOptional, 200);
    if (desc && has_control_chars(*desc)) {
      r.problem("location.description", "must not contain control characters");
      desc.reset();
    }
    if (lat && lon) rep.location = Location{*lat, *lon, std::move(desc).value_or("")};
  }
  if (auto s = r.string("observed_at", f[kObservedAt], Need::kRequired, 64)) {
    if (auto ms = parse_rfc3339(*s); ms && (*ms < kEarliestObservedAt || *ms > now + kObservedAtLeadMs)) {
      r.problem("observed_at", "must lie between 2000-01-01 and a day from now");
    } else if (ms) {
      rep.observed_at = std::move(*s);
      rep.observed_at_ms = *ms;
    } else {
      r.problem("observed_at", "must be an RFC 3339 time like 2026-11-22T13:05:00Z");
    }
  }
  bool needs_headline = rep.msg_type != MsgType::kCancel;
  rep.headline = read_localized(r, f[kHeadline], "headline",
                                needs_headline ? Need::kRequired : Need::kOptional);
  rep.instruction =
      read_localized(r, f[kInstruction], "instruction", Need::kOptional, /*allow_newline=*/true);
  auto plain = [&r](const char* key, Slot& slot, std::size_t max_len) {
    auto s = r.string(key, slot, Need::kOptional, max_len);
    if (s && has_control_chars(*s)) {
      r.problem(key, "must not contain control characters");
      return std::string();
    }
    return std::move(s).value_or("");
  };
  const bool references_given = Checks::present(f[kReferences].kind);
  rep.dedup_key = plain("dedup_key", f[kDedupKey], 200);
  rep.references = plain("references", f[kReferences], 64);
  if (auto s = r.string("certainty", f[kCertainty], Need::kOptional)) {
    if (auto c = parse_certainty(*s)) rep.certainty = *c;
    else r.problem("certainty", "must be one of observed, likely, possible, unlikely, unknown");
  }
  if (rep.msg_type != MsgType::kAlert && rep.references.empty() && !references_given)
    r.problem("references", "is required for update and cancel");
  if (rep.msg_type == MsgType::kAlert && !rep.references.empty())
    r.problem("references", "is only for update and cancel; an alert opens or joins an incident");

  if (!problems.empty()) return problems;
  return rep;
}

}  // namespace tocsin
