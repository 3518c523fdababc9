// Fuzz target: a subscriber's phone number (admin API, CSV import, inbound
// From), normalised to E.164 with libphonenumber.
#include "core/phone.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (std::string_view region : {"US", "MX", ""}) {
    auto e164 = tocsin::normalize_phone(in, region);
    if (!e164) continue;
    // E.164 is a fixed point.
    auto again = tocsin::normalize_phone(*e164, region);
    if (e164->empty() || (*e164)[0] != '+' || again != e164) __builtin_trap();
  }
  return 0;
}
