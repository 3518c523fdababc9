#include "delivery/gateways/providers.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace tocsin::delivery {

using nlohmann::json;
using std::chrono::milliseconds;

std::string form_encode(std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(v.size() * 3 / 2);
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<milliseconds> parse_retry_after(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  int64_t s = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || s < 0) return std::nullopt;
  return milliseconds(std::min<int64_t>(s, 3600) * 1000);
}

namespace {

// Transport failures and server-side trouble are worth another try.
std::optional<Outcome> transient(const OutboundResponse& r) {
  if (r.status == 0)
    return Outcome{.kind = OutcomeKind::kRetry, .error = r.timed_out ? "timeout" : "transport: " + r.error};
  if (r.status >= 500) return Outcome{.kind = OutcomeKind::kRetry, .error = "http " + std::to_string(r.status)};
  // A rejected credential is an operator's mistake to fix (and reload); the
  // alert waits for it until its deadline rather than being dropped.
  if (r.status == 401 || r.status == 403)
    return Outcome{.kind = OutcomeKind::kRetry,
                   .retry_after = milliseconds(30'000),
                   .error = "http " + std::to_string(r.status) + " (credentials)"};
  return std::nullopt;
}

}  // namespace

OutboundRequest twilio_request(const app::GatewayConfig& gw, const Outgoing& m,
                               const std::string& status_callback, UnixMs now) {
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.base_url + "/2010-04-01/Accounts/" + gw.account_sid + "/Messages.json";
  req.basic_auth = gw.account_sid + ":" + gw.auth_token;
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.timeout = milliseconds(gw.timeout_ms);
  std::string& b = req.body;
  b = "To=" + form_encode(m.to) + "&From=" + form_encode(gw.from) + "&Body=" + form_encode(*m.body);
  if (!status_callback.empty()) b += "&StatusCallback=" + form_encode(status_callback);
  if (m.deadline_at > now) {
    // Twilio drops a queued message after ValidityPeriod seconds (1..36000):
    // a carrier backlog must not deliver an alert after it went stale.
    int64_t s = std::clamp<int64_t>((m.deadline_at - now) / 1000, 1, 36000);
    b += "&ValidityPeriod=" + std::to_string(s);
  }
  return req;
}

Outcome twilio_outcome(const OutboundResponse& r, UnixMs) {
  if (r.status == 200 || r.status == 201) {
    json j = json::parse(r.body, nullptr, false);
    std::string sid = j.is_object() && j.contains("sid") && j["sid"].is_string() ? j["sid"].get<std::string>() : "";
    return Outcome{.kind = OutcomeKind::kAccepted, .provider_id = sid};
  }
  if (r.status == 429) {
    return Outcome{.kind = OutcomeKind::kRetry,
                   .retry_after = parse_retry_after(r.header("retry-after")),
                   .error = "http 429"};
  }
  if (auto t = transient(r)) return *t;
  json j = json::parse(r.body, nullptr, false);
  int code = j.is_object() && j.contains("code") && j["code"].is_number_integer() ? j["code"].get<int>() : 0;
  Outcome o{.kind = OutcomeKind::kFailed,
            .error = code ? "twilio " + std::to_string(code) : "http " + std::to_string(r.status)};
  if (code == 21610) o.opt_out = true;  // "Attempt to send to unsubscribed recipient"
  return o;
}

OutboundRequest sendgrid_request(const app::GatewayConfig& gw, const std::vector<Outgoing>& batch) {
  json personalizations = json::array();
  for (const auto& m : batch) personalizations.push_back({{"to", json::array({{{"email", m.to}}})}});
  json from = {{"email", gw.from}};
  if (!gw.from_name.empty()) from["name"] = gw.from_name;
  const Outgoing& first = batch.front();
  json body = {{"personalizations", std::move(personalizations)},
               {"from", std::move(from)},
               {"subject", first.subject ? *first.subject : std::string()},
               {"content", json::array({{{"type", "text/plain"}, {"value", *first.body}}})}};
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.base_url + "/v3/mail/send";
  req.headers.emplace_back("Authorization", "Bearer " + gw.api_key);
  req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = milliseconds(gw.timeout_ms);
  req.body = body.dump();
  return req;
}

Outcome sendgrid_outcome(const OutboundResponse& r, UnixMs now) {
  if (r.status == 202 || r.status == 200)
    return Outcome{.kind = OutcomeKind::kAccepted, .provider_id = std::string(r.header("x-message-id"))};
  if (r.status == 429) {
    std::optional<milliseconds> wait;
    auto reset = r.header("x-ratelimit-reset");
    int64_t at = 0;
    if (auto [end, ec] = std::from_chars(reset.data(), reset.data() + reset.size(), at);
        ec == std::errc{} && !reset.empty())
      wait = milliseconds(std::clamp<int64_t>(at * 1000 - now, 0, 3'600'000));
    return Outcome{.kind = OutcomeKind::kRetry, .retry_after = wait, .error = "http 429"};
  }
  if (auto t = transient(r)) return *t;
  return Outcome{.kind = OutcomeKind::kFailed, .error = "http " + std::to_string(r.status)};
}

}  // namespace tocsin::delivery
