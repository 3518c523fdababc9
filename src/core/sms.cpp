#include "core/sms.h"

#include <cstdint>

namespace tocsin {
namespace {

// GSM 03.38 basic character set, as Unicode code points.
constexpr char32_t kBasic[] = {
    U'@', U'£', U'$', U'¥', U'è', U'é', U'ù', U'ì', U'ò', U'Ç', U'\n', U'Ø', U'ø', U'\r', U'Å', U'å',
    U'Δ', U'_', U'Φ', U'Γ', U'Λ', U'Ω', U'Π', U'Ψ', U'Σ', U'Θ', U'Ξ', U'Æ', U'æ', U'ß', U'É', U' ',
    U'!', U'"', U'#', U'¤', U'%', U'&', U'\'', U'(', U')', U'*', U'+', U',', U'-', U'.', U'/', U':',
    U';', U'<', U'=', U'>', U'?', U'¡', U'Ä', U'Ö', U'Ñ', U'Ü', U'§', U'¿', U'ä', U'ö', U'ñ', U'ü',
    U'à'};
// Extension table: each costs an escape septet plus itself.
constexpr char32_t kExtension[] = {U'^', U'{', U'}', U'\\', U'[', U'~', U']', U'|', U'€', U'\f'};

int gsm_septets(char32_t c) {
  if ((c >= U'A' && c <= U'Z') || (c >= U'a' && c <= U'z') || (c >= U'0' && c <= U'9')) return 1;
  for (char32_t b : kBasic)
    if (b == c) return 1;
  for (char32_t e : kExtension)
    if (e == c) return 2;
  return 0;
}

// Decodes one UTF-8 code point at `i`, advancing it; U+FFFD on invalid input.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  std::size_t len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return U'\uFFFD';
  }
  char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return U'\uFFFD';
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

std::size_t segments_for(std::size_t units, std::size_t single, std::size_t multi) {
  if (units == 0) return 0;
  return units <= single ? 1 : (units + multi - 1) / multi;
}

}  // namespace

SmsSize sms_size(std::string_view text) {
  std::size_t septets = 0, utf16 = 0;
  bool gsm = true;
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = next_code_point(text, i);
    utf16 += cp > 0xFFFF ? 2 : 1;
    if (gsm) {
      int n = gsm_septets(cp);
      if (n == 0) gsm = false;
      septets += static_cast<std::size_t>(n);
    }
  }
  if (gsm) return {SmsEncoding::kGsm7, septets, segments_for(septets, 160, 153)};
  return {SmsEncoding::kUcs2, utf16, segments_for(utf16, 70, 67)};
}

}  // namespace tocsin
