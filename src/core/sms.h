// SMS encoding and segment arithmetic (3GPP TS 23.038). A message is sent
// in GSM-7 when every character is in the GSM-7 alphabet (extension
// characters such as € cost two septets), else in UCS-2; a Spanish accent
// outside GSM-7 (á, í, ó, ú) forces UCS-2 and 70/67-unit segments. Pure.
#pragma once

#include <cstddef>
#include <string_view>

namespace tocsin {

enum class SmsEncoding { kGsm7, kUcs2 };

struct SmsSize {
  SmsEncoding encoding = SmsEncoding::kGsm7;
  std::size_t units = 0;     // septets (GSM-7) or UTF-16 code units (UCS-2)
  std::size_t segments = 0;  // 0 for an empty message
};

// Size of UTF-8 `text` as an SMS. Invalid UTF-8 counts as UCS-2 replacement characters.
SmsSize sms_size(std::string_view text);

}  // namespace tocsin
