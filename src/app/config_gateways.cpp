// The config's gateways: each provider's fields, and their credential
// formats checked at load so that a placeholder fails check-config rather
// than every send (README "Gateways").
#include <set>
#include <string>
#include <string_view>

#include "app/config_reading.h"
#include "core/ecdsa.h"
#include "core/signature.h"

namespace tocsin::app::config_detail {

using nlohmann::json;

namespace {

// Providers' credential formats, so that a placeholder (ACtest) fails
// check-config instead of every send. Twilio: an Account SID is "AC" and 32
// hex digits, an auth token 32 hex digits. SendGrid: "SG.", a key id, ".",
// the secret, both base64url (today 22 and 43 characters; the lengths are
// not enforced, so a longer key SendGrid may issue is not refused).
bool hex_digits(std::string_view s, std::size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

bool twilio_account_sid(std::string_view s) { return s.starts_with("AC") && hex_digits(s.substr(2), 32); }

bool base64url(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_';
  });
}

bool sendgrid_api_key(std::string_view s) {
  if (!s.starts_with("SG.")) return false;
  s.remove_prefix(3);
  auto dot = s.find('.');
  return dot != std::string_view::npos && base64url(s.substr(0, dot)) && base64url(s.substr(dot + 1));
}

// Whether `url`'s host is the loopback interface, where a password in clear
// never leaves the machine.
bool loopback_host(std::string_view url) {
  url.remove_prefix(std::min(url.size(), url.find("://") + 3));
  url = url.substr(0, url.find_first_of("/?#"));
  if (auto at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  return url.starts_with("127.") || url.starts_with("localhost") || url.starts_with("[::1]");
}

void read_smtp_gateway(JsonReader& r, SecretReader& secrets, GatewayConfig& g) {
  r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms", "url",
                    "username", "password", "password_file", "from", "from_name", "starttls",
                    "ca_file"});
  g.url = r.string("url", Need::kRequired).value_or("");
  const bool smtps = g.url.starts_with("smtps://");
  if (!g.url.empty() && !smtps && !g.url.starts_with("smtp://"))
    r.problem("url", "must be smtp://host:port or smtps://host:port");
  g.username = r.string("username", Need::kOptional, 256).value_or("");
  g.password = secrets.read(r, "password", Need::kOptional).value_or("");
  if (!g.username.empty() && g.password.empty() && !r.has("password_file"))
    r.problem("password", "is required with username (or password_file)");
  if (g.username.empty() && (r.has("password") || r.has("password_file")))
    r.problem("username", "is required with a password");
  g.starttls = r.boolean("starttls", Need::kOptional).value_or(false);
  if (g.starttls && smtps) r.problem("starttls", "smtps:// is TLS from the start; drop starttls");
  // A password must not cross a network in clear.
  if (!g.password.empty() && !smtps && !g.starttls && !g.url.empty() && !loopback_host(g.url))
    r.problem("starttls", "must be true to send a password over smtp:// (or use smtps://)");
  g.from = r.string("from", Need::kRequired, 254).value_or("");
  if (!g.from.empty() && (g.from.find('@') == std::string::npos ||
                          g.from.find_first_of("<>\r\n \t") != std::string::npos))
    r.problem("from", "must be an email address");
  g.from_name = r.string("from_name", Need::kOptional, 100).value_or("");
}

// A private CA for a gateway's TLS (an SMTP relay or proxy with its own
// certificate authority), checked now so that a wrong path fails
// check-config instead of every send.
void read_ca_file(JsonReader& r, const SecretReader& secrets, GatewayConfig& g) {
  auto v = r.string("ca_file", Need::kOptional);
  if (!v) return;
  g.ca_file = secrets.resolve(*v);
  auto text = read_file(g.ca_file);
  if (!text) r.problem("ca_file", "cannot read " + g.ca_file);
  else if (text->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    r.problem("ca_file", "must hold PEM certificates (-----BEGIN CERTIFICATE-----)");
}

}  // namespace

void read_gateways(const json& arr, const std::string& path, SecretReader& secrets,
                   std::vector<FieldProblem>& problems, Config& c) {
  std::set<std::string> names;
  for_each_object(arr, path, problems, [&](JsonReader& r) {
    GatewayConfig g;
    if (auto n = r.string("name", Need::kRequired, 100)) {
      g.name = *n;
      if (!names.insert(*n).second) r.problem("name", "duplicate gateway name");
    }
    auto type = r.string("type", Need::kRequired);
    if (type == "twilio") g.type = GatewayType::kTwilio;
    else if (type == "sendgrid") g.type = GatewayType::kSendgrid;
    else if (type == "smtp") g.type = GatewayType::kSmtp;
    else if (type == "webhook") g.type = GatewayType::kWebhook;
    else if (type == "file") g.type = GatewayType::kFile;
    else if (type == "signal") g.type = GatewayType::kSignal;
    else if (type == "twilio_voice") g.type = GatewayType::kTwilioVoice;
    else if (type) {
      r.problem("type", "must be one of twilio, twilio_voice, sendgrid, smtp, signal, webhook, file");
      return;
    } else {
      return;
    }
    if (auto ch = r.string("channel", Need::kRequired)) {
      if (auto p = parse_channel(*ch)) g.channel = *p;
      else r.problem("channel", "must be sms, email, signal or voice");
    }
    if (g.type == GatewayType::kSignal && g.channel != Channel::kSignal)
      r.problem("channel", "a signal gateway sends signal");
    if (g.type == GatewayType::kTwilioVoice && g.channel != Channel::kVoice)
      r.problem("channel", "a twilio_voice gateway sends voice");
    if ((g.channel == Channel::kSignal && g.type != GatewayType::kSignal &&
         g.type != GatewayType::kFile) ||
        (g.channel == Channel::kVoice && g.type != GatewayType::kTwilioVoice &&
         g.type != GatewayType::kFile))
      r.problem("channel", "only a " +
                               std::string(g.channel == Channel::kSignal ? "signal" : "twilio_voice") +
                               " or file gateway sends " + std::string(to_string(g.channel)));
    if (g.type == GatewayType::kWebhook && g.channel != Channel::kSms && g.channel != Channel::kEmail)
      r.problem("channel", "a webhook gateway sends sms or email");
    // Twilio accepts one new call per second per account unless raised.
    if (g.type == GatewayType::kTwilioVoice) g.rate_per_s = 1;
    if (g.type == GatewayType::kTwilio && g.channel != Channel::kSms)
      r.problem("channel", "a twilio gateway sends sms");
    if (g.type == GatewayType::kSendgrid && g.channel != Channel::kEmail)
      r.problem("channel", "a sendgrid gateway sends email");
    if (g.type == GatewayType::kSmtp && g.channel != Channel::kEmail)
      r.problem("channel", "an smtp gateway sends email");
    if (auto v = r.number("rate_per_s", Need::kOptional, 0.01, 100000)) g.rate_per_s = *v;
    if (auto v = r.integer("max_in_flight", Need::kOptional, 1, 10000))
      g.max_in_flight = static_cast<int>(*v);
    if (auto v = r.integer("timeout_ms", Need::kOptional, 100, 300000)) g.timeout_ms = *v;
    switch (g.type) {
      case GatewayType::kTwilio:
      case GatewayType::kTwilioVoice:
        r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms",
                          "base_url", "account_sid", "auth_token", "auth_token_file", "from", "ca_file"});
        g.base_url = r.string("base_url", Need::kOptional).value_or("https://api.twilio.com");
        g.account_sid = r.string("account_sid", Need::kRequired, 64).value_or("");
        if (!g.account_sid.empty() && !twilio_account_sid(g.account_sid))
          r.problem("account_sid", "must be a Twilio Account SID: AC and 32 hex digits");
        g.auth_token = secrets.read(r, "auth_token", Need::kRequired).value_or("");
        if (!g.auth_token.empty() && !hex_digits(g.auth_token, 32))
          r.problem(r.has("auth_token_file") ? "auth_token_file" : "auth_token",
                    "must be a Twilio auth token: 32 hex digits");
        g.from = r.string("from", Need::kRequired, 64).value_or("");
        if (!g.from.empty() && !g.from.starts_with('+'))
          r.problem("from", "must be an E.164 number like +12135550100");
        break;
      case GatewayType::kSendgrid:
        r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms",
                          "base_url", "api_key", "api_key_file", "from", "from_name", "ca_file",
                          "event_webhook_public_key"});
        g.base_url = r.string("base_url", Need::kOptional).value_or("https://api.sendgrid.com");
        g.event_webhook_public_key =
            r.string("event_webhook_public_key", Need::kOptional, 1000).value_or("");
        if (!g.event_webhook_public_key.empty() && !ecdsa_p256_public_key(g.event_webhook_public_key))
          r.problem("event_webhook_public_key",
                    "must be the base64 DER ECDSA P-256 public key SendGrid shows");
        g.api_key = secrets.read(r, "api_key", Need::kRequired).value_or("");
        if (!g.api_key.empty() && !sendgrid_api_key(g.api_key))
          r.problem(r.has("api_key_file") ? "api_key_file" : "api_key",
                    "must be a SendGrid API key: SG.<key id>.<secret> (letters, digits, - and _)");
        g.from = r.string("from", Need::kRequired, 254).value_or("");
        g.from_name = r.string("from_name", Need::kOptional, 100).value_or("");
        if (!g.from.empty() && g.from.find('@') == std::string::npos)
          r.problem("from", "must be an email address");
        break;
      case GatewayType::kSmtp:
        read_smtp_gateway(r, secrets, g);
        break;
      case GatewayType::kWebhook:
        r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms",
                          "url", "secret", "secret_file", "ca_file"});
        g.url = r.string("url", Need::kRequired).value_or("");
        if (!g.url.empty() && !g.url.starts_with("http://") && !g.url.starts_with("https://"))
          r.problem("url", "must start with https:// (or http://)");
        if (auto s = secrets.read(r, "secret", Need::kRequired)) {
          const char* key = r.has("secret_file") ? "secret_file" : "secret";
          if (!s->starts_with("whsec_")) {
            r.problem(key, "must be a Standard Webhooks secret: whsec_<base64>");
          } else if (auto k = decode_webhook_secret(*s); k && k->size() >= 16) {
            g.webhook_key = std::move(*k);
          } else {
            r.problem(key, "must hold at least 16 bytes of base64 after whsec_");
          }
        }
        break;
      case GatewayType::kSignal:
        r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms",
                          "base_url", "from", "ca_file"});
        g.base_url = r.string("base_url", Need::kRequired).value_or("");
        g.from = r.string("from", Need::kRequired, 64).value_or("");
        if (!g.from.empty() && !g.from.starts_with('+'))
          r.problem("from", "must be the bridge's registered number in E.164, like +12135550100");
        break;
      case GatewayType::kFile:
        r.reject_unknown({"name", "type", "channel", "rate_per_s", "max_in_flight", "timeout_ms",
                          "path"});
        g.path = r.string("path", Need::kRequired).value_or("");
        break;
    }
    if (g.type != GatewayType::kFile) read_ca_file(r, secrets, g);
    if (!g.base_url.empty() && !g.base_url.starts_with("http://") &&
        !g.base_url.starts_with("https://"))
      r.problem("base_url", "must start with https:// (or http://)");
    while (g.base_url.ends_with('/')) g.base_url.pop_back();
    c.gateways.push_back(std::move(g));
  });
}

}  // namespace tocsin::app::config_detail
