// Reads SendGrid Event Webhook bodies (see email_events.h).
#include "app/email_events.h"

#include <charconv>

#include "core/json_reader.h"
#include "core/report.h"
#include "delivery/gateways/providers.h"

namespace tocsin::app {

namespace {

// A positive decimal id, or nullopt.
std::optional<int64_t> positive_id(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace

std::optional<EmailEvent> email_event(const nlohmann::json& e) {
  if (!e.is_object()) return std::nullopt;
  auto text = [&](std::string_view key) {
    auto it = e.find(key);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  EmailEvent out;
  out.event_id = text("sg_event_id");
  // custom_args come back as top-level fields of the event.
  auto id = positive_id(text(delivery::kSendgridDeliveryArg));
  if (out.event_id.empty() || !id) return std::nullopt;
  out.delivery_id = *id;
  const std::string kind = text("event");
  if (kind == "delivered") out.state = DeliveryState::kDelivered;
  else if (kind == "dropped") out.state = DeliveryState::kUndelivered;
  else if (kind == "bounce") {
    out.state = DeliveryState::kUndelivered;
    // "blocked" is a soft bounce (the receiver refused now); "bounce" is hard.
    out.opt_out = text("type") != "blocked";
  } else if (kind == "spamreport" || kind == "unsubscribe" || kind == "group_unsubscribe") {
    out.opt_out = true;
  } else if (kind == "deferred") {
    // The receiver said "later"; SendGrid retries for up to 72 hours. Only
    // the attempt count is kept: the response text can name the address.
    out.note = "sendgrid deferred";
    auto it = e.find("attempt");
    std::string attempt = it == e.end()             ? ""
                          : it->is_string()         ? it->get<std::string>()
                          : it->is_number_integer() ? it->dump()
                                                    : "";
    if (auto n = positive_id(attempt)) out.note += " (attempt " + std::to_string(*n) + ")";
  } else {
    return std::nullopt;  // processed, open, click...: nothing to record
  }
  return out;
}

std::variant<std::vector<EmailEvent>, MalformedBody> parse_email_events(std::string_view body) {
  if (json_too_deep(body)) return MalformedBody{"JSON nests too deeply", ""};
  auto parsed = parse_json_strict(body);
  if (auto* bad = std::get_if<JsonSyntaxError>(&parsed)) return MalformedBody{bad->detail, bad->path};
  const nlohmann::json& doc = std::get<nlohmann::json>(parsed);
  if (!doc.is_array()) return MalformedBody{"the body must be a JSON array of events", ""};
  std::vector<EmailEvent> events;
  for (const auto& e : doc)
    if (auto ev = email_event(e)) events.push_back(std::move(*ev));
  return events;
}

}  // namespace tocsin::app
