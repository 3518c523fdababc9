// application/x-www-form-urlencoded, as providers post their callbacks. Pure.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tocsin {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Decodes "a=1&b=x+y%21" into {{"a","1"},{"b","x y!"}}; nullopt-free: bad
// escapes are kept literally.
FormFields parse_form(std::string_view body);

// The value of the first field `name`, or "".
std::string_view form_value(const FormFields& fields, std::string_view name);

// Twilio's request signature (X-Twilio-Signature): base64 HMAC-SHA1 under
// the account's auth token of the full URL Twilio called followed by every
// POST field's name and value, sorted by name.
std::string twilio_signature(std::string_view auth_token, std::string_view url,
                             const FormFields& fields);

}  // namespace tocsin
