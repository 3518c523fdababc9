// The DOM-based report parse that parse_report replaced, kept as the oracle
// of a differential test and fuzzer (report_dom.cpp).
#pragma once

#include <string>
#include <string_view>

#include "core/report.h"

namespace tocsin::testing {

ParsedReport parse_report_dom(std::string_view body, UnixMs now);

// "" when `a` and `b` are the same result (every field of a Report, or the
// same problems in the same order, or the same malformed detail and field);
// otherwise what differs, for a failure message.
std::string parsed_difference(const ParsedReport& a, const ParsedReport& b);

}  // namespace tocsin::testing
