// Fuzz target: a subscriber body (POST /v1/subscribers), validated against
// the configured groups and phone region.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/subscriber_input.h"
#include "common.h"
#include "core/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (tocsin::json_too_deep(body)) return 0;  // the API refuses these before parsing
  auto parsed = tocsin::app::parse_subscriber(body, tocsin::fuzz::config());
  if (auto* s = std::get_if<tocsin::store::Subscriber>(&parsed)) {
    if (!s->phone.empty() && s->phone[0] != '+') __builtin_trap();  // stored as E.164
  }
  return 0;
}
