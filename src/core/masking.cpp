#include "core/masking.h"

#include <phonenumbers/phonenumberutil.h>

#include <vector>

namespace tocsin {
namespace {

constexpr std::string_view kDot = "\u2022";  // •

// Length in bytes of the UTF-8 character starting at s[0] (1 for a stray byte).
std::size_t utf8_length(std::string_view s) {
  auto b = static_cast<unsigned char>(s[0]);
  std::size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
  return std::min(n, s.size());
}

}  // namespace

std::string mask_phone(std::string_view e164) {
  if (e164.empty()) return {};
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  std::string formatted;
  if (util->Parse(std::string(e164), "ZZ", &number) == PhoneNumberUtil::NO_PARSING_ERROR)
    util->Format(number, PhoneNumberUtil::INTERNATIONAL, &formatted);
  else
    formatted = std::string(e164);
  // Groups of digits, whatever separates them ("+1 213-555-0100").
  std::vector<std::string> groups;
  std::string current;
  for (char c : formatted) {
    if (c >= '0' && c <= '9') {
      current += c;
    } else if (!current.empty()) {
      groups.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) groups.push_back(std::move(current));
  std::size_t digits = 0;
  for (const auto& g : groups) digits += g.size();
  std::string out;
  std::size_t seen = 0;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) out += ' ';
    if (i == 0) out += '+';
    for (char c : groups[i]) {
      ++seen;
      bool keep = i < 2 || seen + 2 > digits;  // country code, first group, last two digits
      if (keep)
        out += c;
      else
        out += kDot;
    }
  }
  return out;
}

std::string mask_email(std::string_view email) {
  if (email.empty()) return {};
  auto at = email.rfind('@');
  if (at == std::string_view::npos || at == 0)
    return std::string(kDot) + std::string(kDot) + std::string(kDot);
  std::string out(email.substr(0, utf8_length(email)));
  out += kDot;
  out += kDot;
  out += kDot;
  out += email.substr(at);
  return out;
}

std::string mask_name(std::string_view name) {
  std::string out;
  std::size_t i = 0;
  while (i < name.size()) {
    while (i < name.size() && (name[i] == ' ' || name[i] == '\t')) ++i;
    if (i >= name.size()) break;
    std::size_t n = utf8_length(name.substr(i));
    if (!out.empty()) out += ' ';
    out += name.substr(i, n);
    out += '.';
    while (i < name.size() && name[i] != ' ' && name[i] != '\t') ++i;
  }
  return out;
}

}  // namespace tocsin
