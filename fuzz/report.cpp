// Fuzz target: a coordinator's report body (POST /v1/reports), as the API
// parses it after the signature check; and the same result as the DOM parse
// that parse_report replaced (tests/support/report_dom.cpp).
#include "core/report.h"
#include "support/report_dom.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

// A fixed "now" (2026-12-01T00:00:00Z): observed_at is checked against it.
constexpr tocsin::UnixMs kNow = 1796083200000;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (tocsin::json_too_deep(body)) return 0;  // the API refuses these before parsing
  auto parsed = tocsin::parse_report(body, kNow);
  if (!tocsin::testing::parsed_difference(parsed, tocsin::testing::parse_report_dom(body, kNow)).empty())
    __builtin_trap();
  if (auto* r = std::get_if<tocsin::Report>(&parsed)) {
    // A report that parsed holds a time that formats (to the second) and
    // parses back. Before 1970 is left to the range check of observed_at
    // (issue 14, finding 4): format_rfc3339 rounds those toward zero.
    if (r->observed_at_ms >= 0) {
      auto again = tocsin::parse_rfc3339(tocsin::format_rfc3339(r->observed_at_ms));
      if (!again || *again != r->observed_at_ms - r->observed_at_ms % 1000) __builtin_trap();
    }
  }
  tocsin::parse_rfc3339(body);
  tocsin::valid_area(body);
  tocsin::valid_language(body);
  return 0;
}
