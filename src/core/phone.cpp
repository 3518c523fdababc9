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
  return out;
}

}  // namespace tocsin
