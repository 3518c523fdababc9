#include "core/json_reader.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

namespace tocsin {

using nlohmann::json;

std::string join_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p(parent);
  p += '.';
  p += key;
  return p;
}

std::string index_path(std::string_view parent, std::size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

namespace {

// One open array or object while parsing, for the path of a duplicate key.
struct Frame {
  bool object = false;
  std::set<std::string> keys;     // seen so far
  std::string key;                // the current member's key
  std::size_t count = 0;          // elements finished so far (arrays)
};

std::string frames_path(const std::vector<Frame>& frames) {
  // Each frame but the innermost names the child the next one is.
  std::string path;
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
    if (frames[i].object) path = join_path(path, frames[i].key);
    else path = index_path(path, frames[i].count);
  }
  return path;
}

}  // namespace

std::variant<json, JsonSyntaxError> parse_json_strict(std::string_view text, bool allow_comments) {
  std::vector<Frame> frames;
  std::optional<JsonSyntaxError> duplicate;
  auto finished_child = [&frames] {
    if (!frames.empty()) ++frames.back().count;
  };
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames.push_back({.object = true}); break;
      case json::parse_event_t::array_start: frames.push_back({.object = false}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames.empty()) frames.pop_back();
        finished_child();
        break;
      case json::parse_event_t::key: {
        if (frames.empty()) break;
        Frame& f = frames.back();
        f.key = parsed.is_string() ? parsed.get<std::string>() : std::string();
        if (!f.keys.insert(f.key).second && !duplicate) {
          std::string shown = f.key.substr(0, 100);
          for (auto& c : shown)
            if (static_cast<unsigned char>(c) < 0x20) c = '?';
          duplicate = JsonSyntaxError{"duplicate key \"" + shown + "\"",
                                      join_path(frames_path(frames), shown)};
        }
        break;
      }
      case json::parse_event_t::value: finished_child(); break;
    }
    return true;
  };
  json doc = json::parse(text, cb, /*allow_exceptions=*/false, allow_comments);
  if (doc.is_discarded()) return JsonSyntaxError{"body is not valid JSON", ""};
  if (duplicate) return *duplicate;
  return doc;
}

bool has_control_chars(std::string_view s, bool allow_newline) {
  for (unsigned char c : s) {
    if (c == 0) return true;
    if (allow_newline && (c == '\n' || c == '\r' || c == '\t')) continue;
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

const json& JsonReader::empty_object() {
  static const json kEmpty = json::object();
  return kEmpty;
}

JsonReader::JsonReader(const json& object, std::string path, std::vector<FieldProblem>& problems)
    : object_(object.is_object() ? object : empty_object()),
      path_(std::move(path)),
      problems_(&problems),
      object_ok_(object.is_object()) {}

bool JsonReader::has(std::string_view key) const { return get(key) != nullptr; }

const json* JsonReader::get(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string JsonReader::child_path(std::string_view key) const { return join_path(path_, key); }

void JsonReader::problem(std::string_view key, std::string message) {
  problems_->push_back({key.empty() ? path_ : child_path(key), std::move(message)});
}

namespace {
bool absent(JsonReader& r, const json* v, std::string_view key, Need need) {
  if (v) return false;
  if (need == Need::kRequired) r.problem(key, "is required");
  return true;
}
}  // namespace

std::optional<std::string> JsonReader::string(std::string_view key, Need need,
                                              std::size_t max_len) {
  const json* v = get(key);
  if (absent(*this, v, key, need)) return std::nullopt;
  if (!v->is_string()) {
    problem(key, "must be a string");
    return std::nullopt;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (need == Need::kRequired && s.empty()) {
    problem(key, "must not be empty");
    return std::nullopt;
  }
  if (s.size() > max_len) {
    problem(key, "is longer than " + std::to_string(max_len) + " bytes");
    return std::nullopt;
  }
  return s;
}

std::optional<double> JsonReader::number(std::string_view key, Need need, double min, double max) {
  const json* v = get(key);
  if (absent(*this, v, key, need)) return std::nullopt;
  if (!v->is_number()) {
    problem(key, "must be a number");
    return std::nullopt;
  }
  double d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    problem(key, "must be between " + json(min).dump() + " and " + json(max).dump());
    return std::nullopt;
  }
  return d;
}

std::optional<int64_t> JsonReader::integer(std::string_view key, Need need, int64_t min,
                                           int64_t max) {
  const json* v = get(key);
  if (absent(*this, v, key, need)) return std::nullopt;
  if (!v->is_number_integer()) {
    problem(key, "must be an integer");
    return std::nullopt;
  }
  int64_t i = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? INT64_MAX
                  : v->get<int64_t>();
  if (i < min || i > max) {
    problem(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return i;
}

std::optional<bool> JsonReader::boolean(std::string_view key, Need need) {
  const json* v = get(key);
  if (absent(*this, v, key, need)) return std::nullopt;
  if (!v->is_boolean()) {
    problem(key, "must be true or false");
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<std::vector<std::string>> JsonReader::strings(std::string_view key, Need need,
                                                            std::size_t max_items) {
  const json* v = get(key);
  if (!v) {
    if (need == Need::kRequired) {
      problem(key, "is required");
      return std::nullopt;
    }
    return std::vector<std::string>{};
  }
  if (!v->is_array()) {
    problem(key, "must be an array of strings");
    return std::nullopt;
  }
  if (v->size() > max_items) {
    problem(key, "has more than " + std::to_string(max_items) + " items");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool good = true;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const auto& item = (*v)[i];
    if (!item.is_string() || item.get_ref<const std::string&>().empty()) {
      problems_->push_back({index_path(child_path(key), i), "must be a non-empty string"});
      good = false;
      continue;
    }
    out.push_back(item.get<std::string>());
  }
  if (!good) return std::nullopt;
  return out;
}

JsonReader JsonReader::object(std::string_view key, Need need) {
  const json* v = get(key);
  if (!v) {
    if (need == Need::kRequired) problem(key, "is required");
    return JsonReader(json(), child_path(key), *problems_);
  }
  if (!v->is_object()) problem(key, "must be an object");
  return JsonReader(*v, child_path(key), *problems_);
}

void JsonReader::reject_unknown(std::initializer_list<std::string_view> known) {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    bool found = false;
    for (auto k : known) found = found || it.key() == k;
    if (!found) problem(it.key(), "unknown field");
  }
}

}  // namespace tocsin
