// TOTP codes and base32 (see totp.h).
#include "core/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <cstdio>

#include "core/signature.h"

namespace tocsin {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::string uri_component(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}
}  // namespace

std::string base32_encode(std::string_view bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

std::optional<std::string> base32_decode(std::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == ' ' || c == '=') continue;
    int v;
    if (c >= 'a' && c <= 'z')
      v = c - 'a';
    else if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= '2' && c <= '7')
      v = c - '2' + 26;
    else
      return std::nullopt;
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

std::string totp_code(std::string_view key, int64_t step, int digits) {
  unsigned char msg[8];
  auto counter = static_cast<uint64_t>(step);
  for (int i = 7; i >= 0; --i) {
    msg[i] = static_cast<unsigned char>(counter & 0xff);
    counter >>= 8;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), msg, sizeof msg, mac, &len);
  int offset = mac[len - 1] & 0x0f;
  uint32_t bin = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                 (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                 (static_cast<uint32_t>(mac[offset + 2]) << 8) | mac[offset + 3];
  uint32_t mod = 1;
  for (int i = 0; i < digits; ++i) mod *= 10;
  std::string code = std::to_string(bin % mod);
  return std::string(static_cast<std::size_t>(digits) - code.size(), '0') + code;
}

std::optional<int64_t> totp_match(std::string_view key, std::string_view code, int64_t unix_s) {
  int64_t now = unix_s / kTotpStepS;
  std::optional<int64_t> found;
  for (int64_t step = now - 1; step <= now + 1; ++step)  // every step compared: no timing hint
    if (constant_time_equal(code, totp_code(key, step)) && !found) found = step;
  return found;
}

std::string totp_uri(std::string_view issuer, std::string_view account,
                     std::string_view base32_secret) {
  return "otpauth://totp/" + uri_component(issuer) + ":" + uri_component(account) +
         "?secret=" + std::string(base32_secret) + "&issuer=" + uri_component(issuer) +
         "&algorithm=SHA1&digits=6&period=30";
}

}  // namespace tocsin
