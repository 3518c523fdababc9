// SMS encoding and segment arithmetic (3GPP TS 23.038 / 23.040). A message
// is sent in GSM-7 when every character is in the GSM 03.38 alphabet, else in
// UCS-2 (UTF-16). Pure.
//
// - GSM-7 basic set: A-Z a-z 0-9, space, common punctuation, and among
//   accented letters exactly é è ù ì ò à Ç É Ä Ö Ñ Ü ä ö ñ ü Å å Æ æ Ø ø ß,
//   plus ¿ ¡ £ ¥ ¤ § and some Greek capitals. Spanish á í ó ú (and Á É…
//   other than É) are NOT in it: one of them makes the whole text UCS-2.
// - GSM-7 extension table: € [ ] { } ~ ^ \ | and form feed cost two septets
//   (an escape, then the character).
// - One GSM-7 segment holds 160 septets, or 153 when the text is split
//   (the rest is the concatenation header); UCS-2: 70, or 67 when split.
//   Characters outside the BMP (emoji) are surrogate pairs: 2 units.
// - A split never cuts an escape pair or a surrogate pair: a character that
//   does not fit whole in a segment starts the next one (as handsets and
//   Twilio do), so a text can need more segments than units / 153.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tocsin {

enum class SmsEncoding { kGsm7, kUcs2 };

struct SmsSize {
  SmsEncoding encoding = SmsEncoding::kGsm7;
  std::size_t units = 0;     // septets (GSM-7) or UTF-16 code units (UCS-2)
  std::size_t segments = 0;  // 0 for an empty message
  bool operator==(const SmsSize&) const = default;
};

// Size of UTF-8 `text` as an SMS. Invalid UTF-8 counts as UCS-2 replacement characters.
SmsSize sms_size(std::string_view text);

// Septets of code point `c` in GSM-7: 1 (basic set), 2 (extension table),
// or 0 when GSM-7 cannot carry it.
int gsm7_septets(char32_t c);

// Decodes the UTF-8 code point at `i` and advances `i` past it; an invalid
// byte gives U+FFFD and advances one byte.
char32_t next_code_point(std::string_view s, std::size_t& i);

// The longest prefix of `text` with at most `code_points` code points that
// ends where a reader sees a character end: never inside a UTF-8 sequence,
// nor before a combining mark, variation selector or emoji modifier, nor
// around a zero-width joiner (so "é" written e + U+0301 and 👩‍⚕️ stay whole).
std::string_view utf8_prefix(std::string_view text, std::size_t code_points);

// Number of code points in `text`.
std::size_t code_point_count(std::string_view text);

}  // namespace tocsin
