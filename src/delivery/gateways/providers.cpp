#include "delivery/gateways/providers.h"

#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/html.h"
#include "core/signature.h"
#include "core/unsubscribe.h"

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

// A form POST to the account's `resource` ("Messages.json", "Calls.json").
OutboundRequest twilio_post(const GatewayConfig& gw, std::string_view resource) {
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.base_url + "/2010-04-01/Accounts/" + gw.account_sid + "/" + std::string(resource);
  req.basic_auth = gw.account_sid + ":" + gw.auth_token;
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.timeout = milliseconds(gw.timeout_ms);
  req.ca_file = gw.ca_file;
  return req;
}

}  // namespace

OutboundRequest twilio_request(const GatewayConfig& gw, const Outgoing& m,
                               const std::string& status_callback, UnixMs now) {
  OutboundRequest req = twilio_post(gw, "Messages.json");
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

namespace {

// The top-level "sid" of a Twilio answer, read as the parser goes, without
// building the document: Twilio's 201 carries two dozen fields (the text and
// the number among them) of which only this one matters, and every SMS of a
// fan-out parses one. "" when absent, not a string, or not JSON.
class TopLevelString final : public nlohmann::json_sax<json> {
 public:
  explicit TopLevelString(std::string_view key) : key_(key) {}
  std::string value;

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t) override { return scalar(); }
  bool number_unsigned(number_unsigned_t) override { return scalar(); }
  bool number_float(number_float_t, const string_t&) override { return scalar(); }
  bool string(string_t& s) override {
    if (depth_ == 1 && at_key_) {
      value = std::move(s);
      return false;  // found: stop parsing
    }
    return scalar();
  }
  bool binary(binary_t&) override { return scalar(); }
  bool start_object(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    at_key_ = depth_ == 1 && k == key_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool scalar() {
    at_key_ = false;
    return true;
  }
  bool open() {
    ++depth_;
    at_key_ = false;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }
  std::string_view key_;
  int depth_ = 0;
  bool at_key_ = false;
};

}  // namespace

Outcome twilio_outcome(const OutboundResponse& r, UnixMs) {
  if (r.status == 200 || r.status == 201) {
    TopLevelString sid("sid");
    json::sax_parse(r.body, &sid, json::input_format_t::json, false);
    return Outcome{.kind = OutcomeKind::kAccepted, .provider_id = std::move(sid.value)};
  }
  if (r.status == 429) {
    return Outcome{.kind = OutcomeKind::kThrottled,
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

OutboundRequest sendgrid_request(const GatewayConfig& gw, const std::vector<Outgoing>& batch) {
  const Outgoing& first = batch.front();
  // The text is shared; what differs per person (the unsubscribe link, the
  // thread, tocsin's delivery id for the Event Webhook) goes in each
  // personalization, so one request still carries up to 1000 recipients.
  const bool links = !first.unsubscribe_url.empty();
  json personalizations = json::array();
  for (const auto& m : batch) {
    json p = {{"to", json::array({{{"email", m.to}}})},
              {"custom_args", {{std::string(kSendgridDeliveryArg), std::to_string(m.delivery_id)}}}};
    json headers = json::object();
    if (!m.unsubscribe_url.empty()) {
      headers["List-Unsubscribe"] = "<" + m.unsubscribe_url + ">";
      p["substitutions"] = {{std::string(kSendgridUnsubscribeTag), m.unsubscribe_url}};
    }
    // Our own Message-ID, as over SMTP, so that a follow-up's In-Reply-To
    // names the id the alert really carried (SendGrid keeps a custom one).
    headers["Message-ID"] = smtp_message_id(gw, m);
    if (m.followup && m.subscriber_id) {
      headers["In-Reply-To"] = email_thread_id(gw, m);
      headers["References"] = email_thread_id(gw, m);
    }
    if (!headers.empty()) p["headers"] = std::move(headers);
    personalizations.push_back(std::move(p));
  }
  json from = {{"email", gw.from}};
  if (!gw.from_name.empty()) from["name"] = gw.from_name;
  std::string text = *first.body;
  if (links) text += unsubscribe_footer(first.language, kSendgridUnsubscribeTag);
  json headers = {{"Auto-Submitted", "auto-generated"}};
  if (links) headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click";
  json body = {{"personalizations", std::move(personalizations)},
               {"from", std::move(from)},
               {"subject", first.subject ? *first.subject : std::string()},
               {"headers", std::move(headers)},
               {"content", json::array({{{"type", "text/plain"}, {"value", std::move(text)}}})}};
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.base_url + "/v3/mail/send";
  req.headers.emplace_back("Authorization", "Bearer " + gw.api_key);
  req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = milliseconds(gw.timeout_ms);
  req.ca_file = gw.ca_file;
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
    return Outcome{.kind = OutcomeKind::kThrottled, .retry_after = wait, .error = "http 429"};
  }
  if (auto t = transient(r)) return *t;
  return Outcome{.kind = OutcomeKind::kFailed, .error = "http " + std::to_string(r.status)};
}

// ---- SMTP --------------------------------------------------------------------

namespace {

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// A header value on one line: CR, LF and other controls become spaces, so a
// value can never start a header of its own.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

// Every line break (CRLF, LF, CR) as CRLF, ending with one.
std::string crlf_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (text[i] == '\n') {
      out += "\r\n";
    } else {
      out += text[i];
    }
  }
  if (!out.ends_with("\r\n")) out += "\r\n";
  return out;
}

std::string address_domain(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos || at + 1 == address.size() ? "tocsin.invalid"
                                                             : address.substr(at + 1);
}

}  // namespace

std::string rfc2047_encode(std::string_view text) {
  if (printable_ascii(text) && text.find("=?") == std::string_view::npos) return std::string(text);
  // 39 bytes make 52 base64 characters: with "=?UTF-8?B?" and "?=" a word
  // stays within 75 characters (RFC 2047 section 2), even after "Subject: ".
  constexpr std::size_t kChunk = 39;
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = std::min(text.size(), i + kChunk);
    // Never split a UTF-8 character: back off continuation bytes.
    while (end < text.size() && end > i + 1 &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
      --end;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64_encode(text.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

std::string quoted_printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t eol = text.find("\r\n", start);
    const bool last = eol == std::string_view::npos;
    std::string_view line = text.substr(start, last ? std::string_view::npos : eol - start);
    std::size_t width = 0;
    for (std::size_t k = 0; k < line.size(); ++k) {
      const auto c = static_cast<unsigned char>(line[k]);
      const bool at_end = k + 1 == line.size();
      std::string piece;
      if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_end)) {
        piece = static_cast<char>(c);
      } else {
        piece = {'=', kHex[c >> 4], kHex[c & 15]};
      }
      // A soft line break ("=" CRLF) keeps each encoded line within 76.
      if (width + piece.size() > 75) {
        out += "=\r\n";
        width = 0;
      }
      out += piece;
      width += piece.size();
    }
    if (last) break;
    out += "\r\n";
    start = eol + 2;
  }
  return out;
}

std::string rfc5322_date(UnixMs at) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(at / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string email_thread_id(const GatewayConfig& gw, const Outgoing& m) {
  return "<tocsin." + one_line(m.incident_id) + "." + std::to_string(m.subscriber_id) + "@" +
         one_line(address_domain(gw.from)) + ">";
}

std::string smtp_message_id(const GatewayConfig& gw, const Outgoing& m) {
  if (m.subscriber_id && !m.followup) return email_thread_id(gw, m);
  if (m.subscriber_id)
    return "<tocsin." + one_line(m.incident_id) + "." + std::to_string(m.subscriber_id) + "." +
           std::to_string(m.delivery_id) + "@" + one_line(address_domain(gw.from)) + ">";
  return "<tocsin." + std::to_string(m.delivery_id) + "." + one_line(m.incident_id) + "@" +
         one_line(address_domain(gw.from)) + ">";
}

std::string smtp_message(const GatewayConfig& gw, const Outgoing& m, UnixMs now) {
  std::string from = one_line(gw.from);
  if (!gw.from_name.empty()) {
    std::string name = one_line(gw.from_name);
    if (printable_ascii(name)) {
      std::string quoted = "\"";
      for (char c : name) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
      }
      name = quoted + "\"";
    } else {
      name = rfc2047_encode(name);
    }
    from = name + " <" + from + ">";
  }
  std::string body =
      crlf_lines(m.unsubscribe_url.empty() ? *m.body
                                           : *m.body + unsubscribe_footer(m.language, m.unsubscribe_url));
  // 7bit needs ASCII in lines of at most 998 octets (RFC 5322 2.1.1).
  bool seven_bit = true;
  for (std::size_t k = 0, line = 0; k < body.size(); ++k) {
    const auto u = static_cast<unsigned char>(body[k]);
    if (u >= 0x80 || u == 0) seven_bit = false;
    line = u == '\n' ? 0 : line + 1;
    if (line > 998) seven_bit = false;
  }
  std::string msg;
  msg.reserve(body.size() * 3 / 2 + 512);
  msg += "From: " + from + "\r\n";
  msg += "To: <" + one_line(m.to) + ">\r\n";
  msg += "Subject: " + rfc2047_encode(one_line(m.subject ? *m.subject : std::string())) + "\r\n";
  msg += "Date: " + rfc5322_date(now) + "\r\n";
  msg += "Message-ID: " + smtp_message_id(gw, m) + "\r\n";
  if (m.followup && m.subscriber_id) {
    msg += "In-Reply-To: " + email_thread_id(gw, m) + "\r\n";
    msg += "References: " + email_thread_id(gw, m) + "\r\n";
  }
  // RFC 3834: no vacation auto-replies to an alert; RFC 8058: one click
  // leaves (the URL is ours: base URL and a base64url token).
  msg += "Auto-Submitted: auto-generated\r\n";
  if (!m.unsubscribe_url.empty()) {
    msg += "List-Unsubscribe: <" + one_line(m.unsubscribe_url) + ">\r\n";
    msg += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
  }
  msg += "MIME-Version: 1.0\r\n";
  msg += "Content-Type: text/plain; charset=UTF-8\r\n";
  msg += seven_bit ? "Content-Transfer-Encoding: 7bit\r\n"
                   : "Content-Transfer-Encoding: quoted-printable\r\n";
  msg += "\r\n";
  msg += seven_bit ? body : quoted_printable(body);
  return msg;
}

OutboundRequest smtp_request(const GatewayConfig& gw, const Outgoing& m, UnixMs now) {
  OutboundRequest req;
  req.url = gw.url;
  req.smtp = SmtpEnvelope{.mail_from = gw.from, .rcpt = {m.to}, .require_tls = gw.starttls};
  if (!gw.username.empty()) req.basic_auth = gw.username + ":" + gw.password;
  req.timeout = milliseconds(gw.timeout_ms);
  req.ca_file = gw.ca_file;
  req.body = smtp_message(gw, m, now);
  return req;
}

Outcome smtp_outcome(const OutboundResponse& r) {
  if (r.status == 0)
    return Outcome{.kind = OutcomeKind::kRetry,
                   .error = r.timed_out ? "timeout" : "transport: " + r.error};
  const std::string error = "smtp " + std::to_string(r.status);
  if (r.status >= 200 && r.status < 300) return Outcome{.kind = OutcomeKind::kAccepted};
  if (r.status >= 400 && r.status < 500)
    return Outcome{.kind = OutcomeKind::kRetry, .error = error};
  // Refused credentials are the operator's to fix, as with HTTP 401/403.
  if (r.status == 530 || r.status == 534 || r.status == 535 || r.status == 538)
    return Outcome{.kind = OutcomeKind::kRetry,
                   .retry_after = milliseconds(30'000),
                   .error = error + " (credentials)"};
  return Outcome{.kind = OutcomeKind::kFailed, .error = error};
}

// ---- Signal (signal-cli-rest-api) -------------------------------------------------

OutboundRequest signal_request(const GatewayConfig& gw, const Outgoing& m) {
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.base_url + "/v2/send";
  req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = milliseconds(gw.timeout_ms);
  req.ca_file = gw.ca_file;
  req.body = json{{"message", *m.body}, {"number", gw.from}, {"recipients", json::array({m.to})}}.dump();
  return req;
}

Outcome signal_outcome(const OutboundResponse& r) {
  if (r.status == 200 || r.status == 201) {
    json j = json::parse(r.body, nullptr, false);
    std::string ts;
    if (j.is_object() && j.contains("timestamp")) {
      const json& t = j["timestamp"];
      ts = t.is_string() ? t.get<std::string>() : t.is_number() ? t.dump() : "";
    }
    return Outcome{.kind = OutcomeKind::kAccepted, .provider_id = ts.empty() ? "" : "signal-" + ts};
  }
  if (r.status == 429)
    return Outcome{.kind = OutcomeKind::kThrottled,
                   .retry_after = parse_retry_after(r.header("retry-after")),
                   .error = "http 429"};
  if (auto t = transient(r)) return *t;
  // The error text names the number: only what it means is kept.
  std::string lower = r.body;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (r.status == 400 && (lower.find("unregistered") != std::string::npos ||
                          lower.find("not registered") != std::string::npos))
    return Outcome{.kind = OutcomeKind::kFailed, .error = "signal unregistered"};
  return Outcome{.kind = OutcomeKind::kFailed, .error = "http " + std::to_string(r.status)};
}

// ---- Twilio voice ----------------------------------------------------------------

std::string voice_language(std::string_view tag) {
  std::string t(tag);
  if (t.find('-') != std::string::npos) return t;
  std::string lower = t;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "es") return "es-MX";
  if (lower == "en" || lower.empty()) return "en-US";
  return t;
}

std::string voice_twiml(const Outgoing& m, const std::string& public_url) {
  const std::string say =
      "<Say language=\"" + xml_escape(voice_language(m.language)) + "\">" + xml_escape(*m.body) + "</Say>";
  const std::string action =
      public_url + "/v1/inbound/twilio/voice/gather?d=" + std::to_string(m.delivery_id);
  return "<Response><Gather numDigits=\"1\" timeout=\"8\" method=\"POST\" action=\"" +
         xml_escape(action) + "\">" + say + "<Pause length=\"1\"/>" + say + "</Gather></Response>";
}

OutboundRequest voice_request(const GatewayConfig& gw, const Outgoing& m,
                              const std::string& public_url) {
  OutboundRequest req = twilio_post(gw, "Calls.json");
  req.body = "To=" + form_encode(m.to) + "&From=" + form_encode(gw.from) +
             "&Twiml=" + form_encode(voice_twiml(m, public_url));
  if (!public_url.empty())
    req.body += "&StatusCallback=" + form_encode(public_url + "/v1/inbound/twilio/voice/status");
  return req;
}

// ---- Standard Webhooks ---------------------------------------------------------

OutboundRequest webhook_request(const GatewayConfig& gw, const Outgoing& m, int64_t now_unix) {
  json body = {{"channel", to_string(gw.channel)},
               {"to", m.to},
               {"body", *m.body},
               {"incident", m.incident_id},
               {"delivery_id", m.delivery_id}};
  if (gw.channel == Channel::kEmail) body["subject"] = m.subject ? *m.subject : std::string();
  OutboundRequest req;
  req.method = "POST";
  req.url = gw.url;
  req.body = body.dump();
  const std::string id = "tocsin-delivery-" + std::to_string(m.delivery_id);
  req.headers.emplace_back("Content-Type", "application/json");
  req.headers.emplace_back("webhook-id", id);
  req.headers.emplace_back("webhook-timestamp", std::to_string(now_unix));
  req.headers.emplace_back("webhook-signature",
                           sign_webhook(gw.webhook_key, id, now_unix, req.body));
  req.timeout = milliseconds(gw.timeout_ms);
  req.ca_file = gw.ca_file;
  return req;
}

Outcome webhook_outcome(const OutboundResponse& r) {
  if (r.status >= 200 && r.status < 300) return Outcome{.kind = OutcomeKind::kAccepted};
  if (r.status == 429) {
    return Outcome{.kind = OutcomeKind::kThrottled,
                   .retry_after = parse_retry_after(r.header("retry-after")),
                   .error = "http 429"};
  }
  if (auto t = transient(r)) return *t;
  return Outcome{.kind = OutcomeKind::kFailed, .error = "http " + std::to_string(r.status)};
}

}  // namespace tocsin::delivery
