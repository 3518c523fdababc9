#include "core/phone.h"

#include <phonenumbers/phonenumberutil.h>

namespace tocsin {

std::optional<std::string> normalize_phone(std::string_view input,
                                           std::string_view default_region) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  if (input.empty() || input.size() > 64) return std::nullopt;
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (util->Parse(std::string(input), std::string(default_region), &number) !=
      PhoneNumberUtil::NO_PARSING_ERROR)
    return std::nullopt;
  if (!util->IsValidNumber(number)) return std::nullopt;
  std::string out;
  util->Format(number, PhoneNumberUtil::E164, &out);
  // libphonenumber's E.164 is not always a fixed point: from some national
  // inputs a Mexican mobile number keeps the old "1" after +52 and loses it
  // when parsed again (found by fuzz/phone.cpp). A stored number must equal
  // the same number normalised later (an inbound STOP's From, an import's
  // upsert), so normalise until nothing changes.
  for (int i = 0; i < 3; ++i) {
    PhoneNumber again;
    if (util->Parse(out, "ZZ", &again) != PhoneNumberUtil::NO_PARSING_ERROR ||
        !util->IsValidNumber(again))
      break;
    std::string next;
    util->Format(again, PhoneNumberUtil::E164, &next);
    if (next == out) break;
    out = std::move(next);
  }
  return out;
}

bool may_text_back(std::string_view e164) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (e164.empty() || e164.size() > 64 ||
      util->Parse(std::string(e164), "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
      !util->IsValidNumber(number))
    return false;
  auto type = util->GetNumberType(number);
  return type == PhoneNumberUtil::MOBILE || type == PhoneNumberUtil::FIXED_LINE_OR_MOBILE;
}

}  // namespace tocsin
