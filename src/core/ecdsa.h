// ECDSA P-256 signatures as SendGrid's Event Webhook makes them: a public key
// given as base64 DER SubjectPublicKeyInfo, a signature as base64 DER over
// SHA-256 of the message. Pure (OpenSSL EVP, no state).
#pragma once

#include <string_view>

namespace tocsin {

// Whether `base64_der` is an EC public key on P-256 (prime256v1).
bool ecdsa_p256_public_key(std::string_view base64_der);

// Whether `base64_signature` (DER) verifies `message` under the key; false
// for any malformed input.
bool verify_ecdsa_p256(std::string_view base64_der_key, std::string_view message,
                       std::string_view base64_signature);

}  // namespace tocsin
