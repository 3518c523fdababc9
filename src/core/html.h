// Escaping of text into markup: html_escape is the one escaping function of
// the console's HTML (every text that comes from a person goes through it,
// in an element or a quoted attribute); xml_escape the same for XML (the
// area SVG, TwiML).
#pragma once

#include <string>
#include <string_view>

namespace tocsin {

// Escapes & < > " ' so that `text` stays text in element content and in
// single- or double-quoted attribute values.
std::string html_escape(std::string_view text);

// `text` with &, <, >, " and ' as XML entities, and the control characters
// XML 1.0 forbids (all below 0x20 but tab and newline) as spaces.
std::string xml_escape(std::string_view text);

}  // namespace tocsin
