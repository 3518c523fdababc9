// Provider wire formats as pure functions: what to send for a message and
// what an answer means. The Gateway classes in gateways.h wrap them with I/O.
#pragma once

#include <string>
#include <vector>

#include "app/config.h"
#include "delivery/gateway.h"
#include "delivery/http_client.h"

namespace tocsin::delivery {

// Twilio Programmable Messaging: POST {base}/2010-04-01/Accounts/{sid}/Messages.json,
// basic auth sid:token, form fields To, From, Body (+ StatusCallback when
// `status_callback` is set, + ValidityPeriod from the deadline).
OutboundRequest twilio_request(const app::GatewayConfig& gw, const Outgoing& message,
                               const std::string& status_callback, UnixMs now);
// 201 accepted (sid); 429/5xx/401/403/transport retried; 21610 opt-out;
// other 4xx permanent.
Outcome twilio_outcome(const OutboundResponse& response, UnixMs now);

// SendGrid v3: POST {base}/v3/mail/send, Bearer key, one personalization per
// recipient (≤ 1000), all sharing the batch's subject and text.
OutboundRequest sendgrid_request(const app::GatewayConfig& gw, const std::vector<Outgoing>& batch);
// 202 accepted; 429 (X-RateLimit-Reset) / 5xx / 401 / 403 / transport retried;
// other 4xx permanent.
Outcome sendgrid_outcome(const OutboundResponse& response, UnixMs now);

// Seconds of a Retry-After header (delta-seconds form), if any.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

// application/x-www-form-urlencoded encoding of one value.
std::string form_encode(std::string_view value);

}  // namespace tocsin::delivery
