// Validation of subscriber bodies from the admin API. Pure: JSON text, the
// configured groups and the phone region in; a subscriber or every problem out.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "app/config.h"
#include "core/json_reader.h"
#include "store/store.h"

namespace tocsin::app {

struct MalformedBody {
  std::string detail;
};

using ParsedSubscriber = std::variant<store::Subscriber, MalformedBody, std::vector<FieldProblem>>;

// Parses a POST /v1/subscribers body. The phone is stored as E.164; channels
// default to those the subscriber has an address for.
ParsedSubscriber parse_subscriber(std::string_view body, const Config& config);

// True for a plausible address: one '@', no spaces, a dot in the domain.
bool plausible_email(std::string_view email);

}  // namespace tocsin::app
