// Fuzz target: a CSV file of subscribers (tocsin subscribers import).
#include "core/csv.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = tocsin::parse_csv(text);
  std::size_t line = 0;
  for (const auto& rec : r.records) {
    if (rec.line < line || rec.fields.empty()) __builtin_trap();  // in order, never empty
    line = rec.line;
  }
  return 0;
}
