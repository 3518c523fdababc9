// ECDSA P-256 signatures as SendGrid's Event Webhook makes them: a public key
// given as base64 DER SubjectPublicKeyInfo, a signature as base64 DER over
// SHA-256 of the message; and the cheap checks that refuse a forged Event
// Webhook request before any of that crypto. Pure (OpenSSL EVP, no state,
// the current time an argument).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tocsin {

// Whether `base64_der` is an EC public key on P-256 (prime256v1).
bool ecdsa_p256_public_key(std::string_view base64_der);

// Whether `base64_signature` (DER) verifies `message` under the key; false
// for any malformed input.
bool verify_ecdsa_p256(std::string_view base64_der_key, std::string_view message,
                       std::string_view base64_signature);

// What SendGrid's Event Webhook request headers and size say before its
// signature is checked: an unauthenticated flood must not cost an ECDSA
// verification per configured key and per request.
enum class EventWebhookPrecheck {
  kOk,              // worth verifying
  kMissingHeaders,  // no X-Twilio-Email-Event-Webhook-Signature or -Timestamp
  kBadTimestamp,    // the timestamp is not a decimal integer (Unix seconds)
  kStale,           // more than kEventWebhookToleranceS from now, either way
  kTooLarge,        // a body larger than SendGrid ever sends
};

// SendGrid signs timestamp + body, the timestamp being when it sent the
// request; it names no tolerance. 10 minutes each way: generous for clock
// skew and a slow network, and it bounds how long a captured request can be
// replayed (repeats inside it are deduplicated by sg_event_id).
inline constexpr int64_t kEventWebhookToleranceS = 600;
// SendGrid posts a batch when it reaches 768 KB (or every 30 s): 1 MiB
// leaves room and still refuses absurd bodies if server.max_body_bytes is
// raised that far (the server's own limit, 64 KiB by default, comes first).
inline constexpr std::size_t kEventWebhookMaxBody = 1 << 20;

EventWebhookPrecheck precheck_event_webhook(std::string_view signature,
                                            std::string_view timestamp, std::size_t body_bytes,
                                            int64_t now_unix);

}  // namespace tocsin
