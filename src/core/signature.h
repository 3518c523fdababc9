// Standard Webhooks signatures (https://www.standardwebhooks.com):
//   signed content = webhook-id + "." + webhook-timestamp + "." + body
//   webhook-signature = space-separated "v1,<base64 HMAC-SHA256(key, content)>"
// where the key is the base64 part of a "whsec_<base64>" secret. Pure: the
// current time is an argument.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tocsin {

// Decodes "whsec_<base64>" (the prefix is optional) into key bytes, or
// nullopt when it is not valid base64 or empty.
std::optional<std::string> decode_webhook_secret(std::string_view secret);

// "v1,<base64 signature>" of (id, timestamp, body) under `key` (raw bytes).
std::string sign_webhook(std::string_view key, std::string_view id, int64_t timestamp,
                         std::string_view body);

enum class SignatureCheck {
  kValid,
  kMissingHeaders,   // no webhook-id, webhook-timestamp or webhook-signature
  kBadTimestamp,     // not an integer
  kStale,            // more than the tolerance away from now, either way
  kNoMatch,          // no listed v1 signature matches any key
};

struct SignatureResult {
  SignatureCheck check = SignatureCheck::kNoMatch;
  std::size_t key_index = 0;  // which of `keys` verified (when kValid)
};

// Verifies the three webhook-* header values over the raw body against each
// candidate key, in constant time per comparison. The timestamp must lie
// within `tolerance_s` of `now_unix` (inclusive).
SignatureResult verify_webhook(std::string_view id, std::string_view timestamp,
                               std::string_view signature_header, std::string_view body,
                               const std::vector<std::string>& keys, int64_t now_unix,
                               int64_t tolerance_s = 300);

// Base64 (standard alphabet, padded) helpers shared by signing code.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// HMAC-SHA256 (raw 32 bytes) and SHA1 (for Twilio's X-Twilio-Signature).
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hmac_sha1(std::string_view key, std::string_view data);

// Constant-time equality of two byte strings (length may leak).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace tocsin
