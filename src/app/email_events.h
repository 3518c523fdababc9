// The body of SendGrid's Event Webhook (POST /v1/receipts/sendgrid) read
// into what each event does to a tocsin delivery. Pure: bytes in, events or
// why not out; the signature is checked on the raw bytes before this runs.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "app/subscriber_input.h"
#include "core/model.h"

namespace tocsin::app {

// What one SendGrid event does to tocsin's delivery.
struct EmailEvent {
  std::string event_id;  // sg_event_id: applied once
  int64_t delivery_id = 0;
  std::optional<DeliveryState> state;
  std::string note;      // no state yet ("deferred"): kept as the delivery's last_error
  bool opt_out = false;  // hard bounce, spam report, unsubscribe
};

// One event object, or nullopt when it names no tocsin delivery or records
// nothing (processed, open, click...).
std::optional<EmailEvent> email_event(const nlohmann::json& e);

// A JSON array of events, parsed strictly like every other body (duplicate
// keys refused, with their path; nesting bounded). Elements that are not
// objects, or record nothing, are skipped.
std::variant<std::vector<EmailEvent>, MalformedBody> parse_email_events(std::string_view body);

}  // namespace tocsin::app
