// Provider wire formats as pure functions: what to send for a message and
// what an answer means. The Gateway classes in gateways.h wrap them with I/O.
#pragma once

#include <string>
#include <vector>

#include "delivery/gateway_config.h"
#include "delivery/gateway.h"
#include "delivery/http_client.h"

namespace tocsin::delivery {

// Twilio Programmable Messaging: POST {base}/2010-04-01/Accounts/{sid}/Messages.json,
// basic auth sid:token, form fields To, From, Body (+ StatusCallback when
// `status_callback` is set, + ValidityPeriod from the deadline).
OutboundRequest twilio_request(const GatewayConfig& gw, const Outgoing& message,
                               const std::string& status_callback, UnixMs now);
// 201 accepted (sid); 429/5xx/401/403/transport retried; 21610 opt-out;
// other 4xx permanent.
Outcome twilio_outcome(const OutboundResponse& response, UnixMs now);

// The custom_args key carrying tocsin's delivery id in every SendGrid
// personalization; the Event Webhook's events carry it back.
inline constexpr std::string_view kSendgridDeliveryArg = "tocsin_delivery_id";
// The substitution tag of the unsubscribe URL in the shared text.
inline constexpr std::string_view kSendgridUnsubscribeTag = "-tocsin-unsubscribe-url-";

// SendGrid v3: POST {base}/v3/mail/send, Bearer key, one personalization per
// recipient (≤ 1000), all sharing the batch's subject and text. Each
// personalization carries custom_args {tocsin_delivery_id}, headers
// Message-ID (smtp_message_id: per person, the id follow-ups name) and for a
// follow-up In-Reply-To/References, and when the message has an unsubscribe
// URL, List-Unsubscribe and a substitution of the footer's tag; the
// request's headers are Auto-Submitted and List-Unsubscribe-Post.
OutboundRequest sendgrid_request(const GatewayConfig& gw, const std::vector<Outgoing>& batch);
// 202 accepted; 429 (X-RateLimit-Reset) / 5xx / 401 / 403 / transport retried;
// other 4xx permanent.
Outcome sendgrid_outcome(const OutboundResponse& response, UnixMs now);

// SMTP through libcurl: one transaction per recipient, MAIL FROM the
// gateway's `from`, RCPT TO the recipient, the message of smtp_message().
// `now` dates the message.
OutboundRequest smtp_request(const GatewayConfig& gw, const Outgoing& message, UnixMs now);
// The RFC 5322 message for one recipient, CRLF line endings: From (with
// from_name, RFC 2047-encoded when not ASCII), To, Subject (RFC 2047 UTF-8
// base64 words when not plain ASCII), Date, Message-ID (smtp_message_id),
// In-Reply-To and References (follow-ups), Auto-Submitted: auto-generated,
// List-Unsubscribe and List-Unsubscribe-Post (with an unsubscribe URL, which
// also ends the text in the footer of `language`),
// MIME-Version, Content-Type text/plain UTF-8 and a transfer encoding: 7bit
// for short-lined ASCII, else quoted-printable. CR/LF in header values
// cannot start new headers.
std::string smtp_message(const GatewayConfig& gw, const Outgoing& message, UnixMs now);
// The Message-ID, the same on every retry (a mailbox recognises a repeat):
// the alert to subscriber S of incident I is "<tocsin.I.S@domain-of-from>"
// (email_thread_id), a follow-up "<tocsin.I.S.D@…>" for delivery D; without
// a subscriber id "<tocsin.D.I@…>".
std::string smtp_message_id(const GatewayConfig& gw, const Outgoing& message);
// "<tocsin.I.S@domain-of-from>": the alert's Message-ID, which follow-ups
// name in In-Reply-To and References.
std::string email_thread_id(const GatewayConfig& gw, const Outgoing& message);
// 2xx accepted; 4xx, transport failures and timeouts retried; rejected
// credentials (530, 534, 535, 538) retried after 30 s like HTTP 401/403;
// other 5xx permanent ("smtp 550").
Outcome smtp_outcome(const OutboundResponse& response);

// Standard Webhooks POST to `url`: webhook-id "tocsin-delivery-<id>" (the
// same on every retry, so receivers can drop repeats), webhook-timestamp
// `now_unix`, webhook-signature over the body with the gateway's key; body
// {"channel","to","subject" (email only),"body","incident","delivery_id"}.
OutboundRequest webhook_request(const GatewayConfig& gw, const Outgoing& message,
                                int64_t now_unix);
// 2xx accepted; 429 (Retry-After) / 5xx / 401 / 403 / transport retried;
// other 4xx permanent.
Outcome webhook_outcome(const OutboundResponse& response);

// signal-cli-rest-api: POST {base}/v2/send, JSON {"message", "number" (the
// bridge's registered sender), "recipients": [to]}.
OutboundRequest signal_request(const GatewayConfig& gw, const Outgoing& message);
// 201 (or 200) accepted ("signal-<timestamp>"); 429/5xx/401/403/transport
// retried; a 400 naming an unregistered recipient fails that delivery
// ("signal unregistered"); other 4xx permanent.
Outcome signal_outcome(const OutboundResponse& response);

// Twilio Programmable Voice: POST {base}/2010-04-01/Accounts/{sid}/Calls.json,
// basic auth, form To, From, Twiml (voice_twiml), StatusCallback
// {public_url}/v1/inbound/twilio/voice/status. Answers as twilio_outcome.
OutboundRequest voice_request(const GatewayConfig& gw, const Outgoing& message,
                              const std::string& public_url);
// <Response><Gather numDigits="1" action="{public_url}/v1/inbound/twilio/
// voice/gather?d=DELIVERY"> with the text said twice in `language`
// (voice_language), then a closing <Say>; XML-escaped (core/html.h).
std::string voice_twiml(const Outgoing& message, const std::string& public_url);
// The <Say language> of a subscriber's tag: es → es-MX, en → en-US, a tag
// with a region as it is, others as they are.
std::string voice_language(std::string_view tag);

// RFC 2047 encoding of a header text: as is when printable ASCII, else
// "=?UTF-8?B?...?=" words of whole UTF-8 characters, folded with CRLF SP.
std::string rfc2047_encode(std::string_view text);
// Quoted-printable (RFC 2045) of text whose lines end in CRLF; soft line
// breaks keep encoded lines within 76 characters.
std::string quoted_printable(std::string_view text);
// "Tue, 24 Nov 2026 04:37:42 +0000" (RFC 5322 date-time, UTC).
std::string rfc5322_date(UnixMs at);

// Seconds of a Retry-After header (delta-seconds form), if any.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

// application/x-www-form-urlencoded encoding of one value.
std::string form_encode(std::string_view value);

}  // namespace tocsin::delivery
