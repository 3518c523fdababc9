// The daemon's log line formats (config `log.format`): "text", the default,
// for people and the journal, and "json", one JSON object per line for log
// shippers:
//   {"ts":"2026-11-22T13:05:00.123Z","level":"info","msg":"...",
//    "report_id":12,"incident":"A72WYM","gateway":"twilio-main"}
// Ids named in the message ("report 12", "incident A72WYM", "delivery 7",
// "subscriber 3", "gateway NAME", "coordinator NAME") are repeated as fields,
// so a shipper can index them. Messages hold ids only, never personal data;
// the JSON adds nothing else.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

namespace tocsin::app {

// Sets the default logger's format (all its sinks).
void use_log_format(bool json);

// The JSON formatter, for spdlog.
std::unique_ptr<spdlog::formatter> make_json_log_formatter();

// One JSON log line (with its newline) for a message at `level` logged at
// `unix_ms`: what the JSON formatter writes.
std::string json_log_line(std::string_view level, int64_t unix_ms, std::string_view message);

}  // namespace tocsin::app
