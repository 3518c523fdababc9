#include "app/log_format.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace tocsin::app {
namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v";

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool incident_code(std::string_view s) {
  return s.size() == 6 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
         });
}

bool config_name(std::string_view s) {
  return !s.empty() && s.size() <= 100 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

// Adds the ids the message names ("delivery 7 failed at gateway twilio-main")
// as fields; the first mention of each kind counts.
void add_ids(std::string_view msg, nlohmann::json& line) {
  std::string_view prev;
  std::size_t pos = 0;
  while (pos < msg.size()) {
    auto end = msg.find(' ', pos);
    if (end == std::string_view::npos) end = msg.size();
    std::string_view word = msg.substr(pos, end - pos);
    pos = end + 1;
    // "la-hotline's", "A72WYM:", "7,": the id without what follows it.
    std::string_view id = word;
    if (id.ends_with("'s")) id.remove_suffix(2);
    while (!id.empty() && std::string_view(":,;.)").find(id.back()) != std::string_view::npos)
      id.remove_suffix(1);
    auto put = [&](const char* key, nlohmann::json value) {
      if (!line.contains(key)) line[key] = std::move(value);
    };
    if ((prev == "report" || prev == "delivery" || prev == "subscriber") && all_digits(id))
      put(prev == "report" ? "report_id" : prev == "delivery" ? "delivery_id" : "subscriber_id",
          std::stoll(std::string(id)));
    else if (prev == "incident" && incident_code(id))
      put("incident", std::string(id));
    else if ((prev == "gateway" || prev == "coordinator") && config_name(id))
      put(prev == "gateway" ? "gateway" : "coordinator", std::string(id));
    prev = word;
  }
}

std::string timestamp(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch());
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = json_log_line(std::string_view(level.data(), level.size()), ms.count(),
                                     std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string json_log_line(std::string_view level, int64_t unix_ms, std::string_view message) {
  nlohmann::json line = {{"ts", timestamp(unix_ms)},
                         {"level", std::string(level)},
                         {"msg", std::string(message)}};
  add_ids(message, line);
  // Escapes quotes, backslashes and control characters; bytes that are not
  // UTF-8 (an OS error message in another locale) become U+FFFD.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::unique_ptr<spdlog::formatter> make_json_log_formatter() {
  return std::make_unique<JsonFormatter>();
}

void use_log_format(bool json) {
  auto logger = spdlog::default_logger();
  if (json) logger->set_formatter(make_json_log_formatter());
  else logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(kTextPattern));
}

}  // namespace tocsin::app
