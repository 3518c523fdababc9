// Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-s steps, 6 digits)
// and the base32 (RFC 4648) that authenticator apps exchange secrets in.
// Pure: the time is passed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tocsin {

inline constexpr int64_t kTotpStepS = 30;

// RFC 4648 base32 without padding (authenticator apps' form).
std::string base32_encode(std::string_view bytes);
// Case-insensitive, spaces and padding ignored; nullopt on other characters.
std::optional<std::string> base32_decode(std::string_view text);

// The `digits`-digit code of `key` for time step `step` (RFC 4226 HOTP over
// the step counter), zero-padded.
std::string totp_code(std::string_view key, int64_t step, int digits = 6);

// The step (unix_s / 30) among now-1, now, now+1 whose code equals `code`,
// compared in constant time; nullopt when none does. The caller accepts a
// step only once (ConsoleUser::totp_last_step).
std::optional<int64_t> totp_match(std::string_view key, std::string_view code, int64_t unix_s);

// otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER (Key Uri Format).
std::string totp_uri(std::string_view issuer, std::string_view account,
                     std::string_view base32_secret);

}  // namespace tocsin
