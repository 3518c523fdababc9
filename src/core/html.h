// The one escaping function of the console's HTML: every text that comes
// from a person (report texts, names, areas) goes through it, whether it
// lands in an element or in a quoted attribute.
#pragma once

#include <string>
#include <string_view>

namespace tocsin {

// Escapes & < > " ' so that `text` stays text in element content and in
// single- or double-quoted attribute values.
std::string html_escape(std::string_view text);

}  // namespace tocsin
