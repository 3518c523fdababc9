// Phone numbers in, E.164 out (libphonenumber). Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tocsin {

// "+1 (213) 555-0100", "213-555-0100" (region "US") → "+12135550100";
// nullopt when the number is not a valid number for its region.
std::optional<std::string> normalize_phone(std::string_view input, std::string_view default_region);

// Whether tocsin may text an unsolicited answer (a join prompt) to `e164`:
// libphonenumber says MOBILE or FIXED_LINE_OR_MOBILE (where it cannot tell,
// as in the US). Not landlines, VoIP, toll-free, shared-cost or premium-rate
// numbers: texting those is how SMS-pumping fraud bills a sender.
bool may_text_back(std::string_view e164);

}  // namespace tocsin
