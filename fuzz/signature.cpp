// Fuzz target: the webhook-* headers of a report (Standard Webhooks) and a
// coordinator secret. The input is split at its first two newlines into
// webhook-id, webhook-timestamp and webhook-signature; the rest is the body.
#include "core/signature.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string_view next_line(std::string_view& in) {
  auto at = in.find('\n');
  std::string_view line = in.substr(0, at);
  in = at == std::string_view::npos ? std::string_view() : in.substr(at + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  tocsin::decode_webhook_secret(in);
  if (auto bytes = tocsin::base64_decode(in)) {
    // What decodes encodes to something that decodes to the same bytes.
    if (tocsin::base64_decode(tocsin::base64_encode(*bytes)) != bytes) __builtin_trap();
  }
  std::string_view id = next_line(in);
  std::string_view timestamp = next_line(in);
  std::string_view signature = next_line(in);
  static const std::vector<std::string> keys = {
      *tocsin::decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "second key"};
  auto r = tocsin::verify_webhook(id, timestamp, signature, in, keys, 1764000000);
  if (r.check == tocsin::SignatureCheck::kValid && r.key_index >= keys.size()) __builtin_trap();
  return 0;
}
