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
  std::string field;  // the duplicate key's path, or ""
};

using ParsedSubscriber = std::variant<store::Subscriber, MalformedBody, std::vector<FieldProblem>>;

// Parses a POST /v1/subscribers body. The phone is stored as E.164; channels
// default to those the subscriber has an address for.
ParsedSubscriber parse_subscriber(std::string_view body, const Config& config);

// The same checks on an already parsed JSON object.
ParsedSubscriber validate_subscriber(const nlohmann::json& doc, const Config& config);

// A PATCH /v1/subscribers/{id} body: a JSON object (merge patch), or why not.
std::variant<nlohmann::json, MalformedBody> parse_patch(std::string_view body);

// `existing` with the JSON merge patch (RFC 7396) `patch` applied, validated
// as a whole like a POST body; the result keeps existing's id, opt-out and
// creation time. Problems name the patched fields.
ParsedSubscriber patch_subscriber(const store::Subscriber& existing, const nlohmann::json& patch,
                                  const Config& config);

// Whether two subscribers hold the same editable data (name, phone, email,
// language, groups and channels, in any order).
bool same_data(const store::Subscriber& a, const store::Subscriber& b);

// True for a plausible address: one '@', no spaces, a dot in the domain.
bool plausible_email(std::string_view email);

}  // namespace tocsin::app
