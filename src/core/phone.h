// Phone numbers in, E.164 out (libphonenumber). Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tocsin {

// "+1 (213) 555-0100", "213-555-0100" (region "US") → "+12135550100";
// nullopt when the number is not a valid number for its region.
std::optional<std::string> normalize_phone(std::string_view input, std::string_view default_region);

}  // namespace tocsin
