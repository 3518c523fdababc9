#include "core/sms.h"

#include <cstdint>

namespace tocsin {
namespace {

// GSM 03.38 basic character set, as Unicode code points (besides A-Z a-z
// 0-9, which gsm7_septets checks first). 0x09 is the capital Ç, as the
// standard has it; ç is not in the set.
constexpr char32_t kBasic[] = {U'@', U'£', U'$',  U'¥', U'è', U'é',  U'ù', U'ì', U'ò', U'Ç', U'\n',
                               U'Ø', U'ø', U'\r', U'Å', U'å', U'Δ',  U'_', U'Φ', U'Γ', U'Λ', U'Ω',
                               U'Π', U'Ψ', U'Σ',  U'Θ', U'Ξ', U'Æ',  U'æ', U'ß', U'É', U' ', U'!',
                               U'"', U'#', U'¤',  U'%', U'&', U'\'', U'(', U')', U'*', U'+', U',',
                               U'-', U'.', U'/',  U':', U';', U'<',  U'=', U'>', U'?', U'¡', U'Ä',
                               U'Ö', U'Ñ', U'Ü',  U'§', U'¿', U'ä',  U'ö', U'ñ', U'ü', U'à'};
// Extension table: each costs an escape septet plus itself.
constexpr char32_t kExtension[] = {U'^', U'{', U'}', U'\\', U'[', U'~', U']', U'|', U'€', U'\f'};

// Packs characters of `cost` units into segments of `multi` units without
// splitting one; a text of at most `single` units is one segment.
class SegmentCounter {
 public:
  void add(std::size_t cost) {
    units_ += cost;
    if (used_ + cost > multi_) {
      ++split_;
      used_ = 0;
    }
    used_ += cost;
  }
  void reset(std::size_t single, std::size_t multi) {
    single_ = single, multi_ = multi, units_ = 0, used_ = 0, split_ = 1;
  }
  std::size_t units() const { return units_; }
  std::size_t segments() const { return units_ == 0 ? 0 : units_ <= single_ ? 1 : split_; }

 private:
  std::size_t single_ = 0, multi_ = 1, units_ = 0, used_ = 0, split_ = 1;
};

// Code points that attach to the one before them: a cut just before one
// would strip an accent, a vowel sign or an emoji's modifier.
bool attaches_to_previous(char32_t c) {
  return (c >= 0x0300 && c <= 0x036F) ||  // combining diacritics (e + U+0301)
         (c >= 0x0483 && c <= 0x0489) ||  // Cyrillic combining marks
         (c >= 0x0591 && c <= 0x05C7) ||  // Hebrew points and accents
         (c >= 0x0610 && c <= 0x061A) ||  // Arabic signs
         (c >= 0x064B && c <= 0x065F) ||  // Arabic harakat
         c == 0x0670 || (c >= 0x06D6 && c <= 0x06ED) || (c >= 0x0900 && c <= 0x0903) ||
         (c >= 0x093A && c <= 0x094F) ||  // Devanagari signs
         (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) || c == 0x200C ||
         c == 0x200D ||                   // ZWNJ, ZWJ
         (c >= 0x20D0 && c <= 0x20FF) ||  // combining marks for symbols (keycaps)
         (c >= 0xFE00 && c <= 0xFE0F) ||  // variation selectors (emoji presentation)
         (c >= 0xFE20 && c <= 0xFE2F) ||
         (c >= 0x1F3FB && c <= 0x1F3FF) ||  // emoji skin-tone modifiers
         (c >= 0xE0020 && c <= 0xE007F);    // emoji tag sequences (flags of regions)
}

}  // namespace

int gsm7_septets(char32_t c) {
  if ((c >= U'A' && c <= U'Z') || (c >= U'a' && c <= U'z') || (c >= U'0' && c <= U'9')) return 1;
  for (char32_t b : kBasic)
    if (b == c) return 1;
  for (char32_t e : kExtension)
    if (e == c) return 2;
  return 0;
}

char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  std::size_t len = b0 < 0x80           ? 1
                    : (b0 >> 5) == 0x6  ? 2
                    : (b0 >> 4) == 0xE  ? 3
                    : (b0 >> 3) == 0x1E ? 4
                                        : 0;
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

SmsSize sms_size(std::string_view text) {
  SegmentCounter gsm, ucs2;
  gsm.reset(160, 153);
  ucs2.reset(70, 67);
  bool is_gsm = true;
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = next_code_point(text, i);
    ucs2.add(cp > 0xFFFF ? 2 : 1);
    if (is_gsm) {
      int n = gsm7_septets(cp);
      if (n == 0)
        is_gsm = false;
      else
        gsm.add(static_cast<std::size_t>(n));
    }
  }
  if (is_gsm) return {SmsEncoding::kGsm7, gsm.units(), gsm.segments()};
  return {SmsEncoding::kUcs2, ucs2.units(), ucs2.segments()};
}

std::size_t code_point_count(std::string_view text) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++n) next_code_point(text, i);
  return n;
}

std::string_view utf8_prefix(std::string_view text, std::size_t code_points) {
  std::size_t i = 0, n = 0, cut = 0;
  char32_t prev = 0;
  while (i < text.size()) {
    std::size_t start = i;
    char32_t cp = next_code_point(text, i);
    // `start` is a place to cut unless this code point clings to the last one.
    if (!attaches_to_previous(cp) && prev != 0x200D) cut = start;
    if (n == code_points) break;
    ++n;
    prev = cp;
    if (i == text.size()) cut = i;
  }
  return text.substr(0, cut);
}

}  // namespace tocsin
