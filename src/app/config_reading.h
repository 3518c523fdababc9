// What the parts of the config reader share (private to src/app/config*.cpp):
// secrets given inline or as files, the array-of-objects walk, and the
// readers that live in their own files — config_gateways.cpp (gateways and
// providers' credential formats) and config_groups.cpp (groups, safety
// rules, join keywords, templates). config.cpp reads the rest and checks
// the whole.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/config.h"
#include "app/files.h"
#include "core/json_reader.h"

namespace tocsin::app::config_detail {

// A secret given inline as `key` or as a path in `key_file`.
class SecretReader {
 public:
  explicit SecretReader(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  // `path`, relative ones resolved against the config's directory.
  std::string resolve(const std::string& path) const {
    return std::filesystem::path(path).is_absolute() ? path : (std::filesystem::path(base_dir_) / path).string();
  }

  std::optional<std::string> read(JsonReader& r, const std::string& key, Need need) {
    std::string file_key = key + "_file";
    if (r.has(key) && r.has(file_key)) {
      r.problem(file_key, "give either " + key + " or " + file_key + ", not both");
      return std::nullopt;
    }
    if (r.has(file_key)) {
      auto path = r.string(file_key, Need::kRequired);
      if (!path) return std::nullopt;
      std::filesystem::path p = std::filesystem::path(*path).is_absolute() ? std::filesystem::path(*path) : std::filesystem::path(base_dir_) / *path;
      auto text = read_file(p.string());
      if (!text) {
        r.problem(file_key, "cannot read " + p.string());
        return std::nullopt;
      }
      auto value = trim(*text);
      if (value.empty()) r.problem(file_key, "file is empty");
      return value;
    }
    if (!r.has(key) && need == Need::kRequired) {
      r.problem(key, "is required (or " + file_key + ")");
      return std::nullopt;
    }
    return r.string(key, need);
  }

 private:
  std::string base_dir_;
};

// Calls `read` with a reader for each element of the array `arr` at `path`;
// a non-array or a non-object element is a problem.
template <typename Read>
void for_each_object(const nlohmann::json& arr, const std::string& path, std::vector<FieldProblem>& problems,
                     Read read) {
  if (!arr.is_array()) {
    problems.push_back({path, "must be an array"});
    return;
  }
  for (std::size_t i = 0; i < arr.size(); ++i) {
    JsonReader r(arr[i], index_path(path, i), problems);
    if (!r.ok()) {
      r.problem("", "must be an object");
      continue;
    }
    read(r);
  }
}

void read_gateways(const nlohmann::json& arr, const std::string& path, SecretReader& secrets,
                   std::vector<FieldProblem>& problems, Config& c);
void read_groups(const nlohmann::json& arr, const std::string& path,
                 std::vector<FieldProblem>& problems, Config& c);
void read_templates(JsonReader r, std::vector<FieldProblem>& problems, Config& c);
// After the console is read: whether people of one coordinator count apart.
void check_safety_rules(const Config& c, std::vector<FieldProblem>& problems);
std::vector<FieldProblem> template_warnings(const Config& c);

}  // namespace tocsin::app::config_detail
