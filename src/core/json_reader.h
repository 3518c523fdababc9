// Reads typed fields out of a JSON object while collecting every problem
// with its JSON path ("groups[1].match.areas[0]"), so that config checks and
// report validation can tell the user everything that is wrong at once.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tocsin {

struct FieldProblem {
  std::string path;     // JSON path of the field, "" for the document itself
  std::string message;  // what is wrong, in a few words
};

enum class Need { kOptional, kRequired };

// A view of one JSON object at `path`. Problems go to the shared list.
class JsonReader {
 public:
  JsonReader(const nlohmann::json& object, std::string path, std::vector<FieldProblem>& problems);

  const std::string& path() const { return path_; }
  bool ok() const { return object_ok_; }  // false when the value is not an object
  bool has(std::string_view key) const;
  const nlohmann::json* get(std::string_view key) const;  // nullptr when absent
  std::string child_path(std::string_view key) const;

  std::optional<std::string> string(std::string_view key, Need need, std::size_t max_len = 4096);
  std::optional<double> number(std::string_view key, Need need, double min, double max);
  std::optional<int64_t> integer(std::string_view key, Need need, int64_t min, int64_t max);
  std::optional<bool> boolean(std::string_view key, Need need);
  // An array of strings; a missing optional array gives an empty vector.
  std::optional<std::vector<std::string>> strings(std::string_view key, Need need,
                                                  std::size_t max_items = 10'000);
  // A nested object; when absent (and optional) or not an object, the
  // returned reader has ok() == false and reads nothing.
  JsonReader object(std::string_view key, Need need);

  // Reports every key not in `known` as "unknown field" (catches typos).
  void reject_unknown(std::initializer_list<std::string_view> known);
  void problem(std::string_view key, std::string message);

 private:
  static const nlohmann::json& empty_object();
  const nlohmann::json& object_;
  std::string path_;
  std::vector<FieldProblem>* problems_;
  bool object_ok_;
};

// A JSON text refused before its fields are read.
struct JsonSyntaxError {
  std::string detail;  // "body is not valid JSON", "duplicate key \"status\""
  std::string path;    // JSON path of the duplicate key, "" otherwise
};

// Parses `text` as JSON, refusing duplicate object keys at any depth: RFC
// 8259 leaves their meaning open, so the sender's library may have meant
// the first ("status":"exercise") where ours would take the last
// ("status":"actual"). Check nesting depth first (json_too_deep). With
// `allow_comments`, // and /* */ comments are skipped (the config file).
std::variant<nlohmann::json, JsonSyntaxError> parse_json_strict(std::string_view text,
                                                                bool allow_comments = false);

// True when `s` holds a C0 control character or DEL; with `allow_newline`,
// '\n' (and '\r', '\t') are allowed. NUL is never allowed.
bool has_control_chars(std::string_view s, bool allow_newline = false);

// Path helpers: "a.b", "a[3]".
std::string join_path(std::string_view parent, std::string_view key);
std::string index_path(std::string_view parent, std::size_t index);

}  // namespace tocsin
