// Masked forms of personal data for lists (GET /v1/subscribers): enough to
// tell rows apart and recognise someone you know, not enough to contact or
// identify a stranger. Pure.
#pragma once

#include <string>
#include <string_view>

namespace tocsin {

// "+12135550100" → "+1 213 ••• ••00": libphonenumber's international format
// with every digit after the first group masked but the last two. "" stays "".
std::string mask_phone(std::string_view e164);

// "ana@example.org" → "a•••@example.org": the first character of the local
// part, then the domain. "" stays "".
std::string mask_email(std::string_view email);

// "Ana María Ruiz" → "A. M. R.": initials (the first UTF-8 character of each word).
std::string mask_name(std::string_view name);

}  // namespace tocsin
