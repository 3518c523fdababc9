// Fuzz target: a subscriber merge patch (PATCH /v1/subscribers/{id}),
// applied to a stored subscriber and validated as a whole.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/subscriber_input.h"
#include "common.h"
#include "core/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (tocsin::json_too_deep(body)) return 0;  // the API refuses these before parsing
  auto patch = tocsin::app::parse_patch(body);
  auto* doc = std::get_if<nlohmann::json>(&patch);
  if (doc == nullptr) return 0;
  static const tocsin::store::Subscriber existing = [] {
    auto p = tocsin::app::parse_subscriber(
        R"({"name": "Ana", "phone": "+12135550123", "email": "ana@example.org", "groups": ["east"]})",
        tocsin::fuzz::config());
    return std::get<tocsin::store::Subscriber>(p);
  }();
  tocsin::app::patch_subscriber(existing, *doc, tocsin::fuzz::config());
  return 0;
}
