#include "app/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "app/files.h"
#include "core/templates.h"
#include "core/report.h"
#include "core/ecdsa.h"
#include "core/join.h"
#include "core/safety.h"
#include "core/signature.h"
#include "store/open_store.h"

namespace tocsin::app {

using nlohmann::json;
namespace fs = std::filesystem;

const Group* Config::group(std::string_view name) const {
  for (const auto& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

std::string unsubscribe_key(const Config& config) {
  return config.storage.keyring ? config.storage.keyring->hash("tocsin unsubscribe-link key v1")
                                : std::string();
}

namespace {

// A secret given inline as `key` or as a path in `key_file`.
class SecretReader {
 public:
  explicit SecretReader(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  // `path`, relative ones resolved against the config's directory.
  std::string resolve(const std::string& path) const {
    return fs::path(path).is_absolute() ? path : (fs::path(base_dir_) / path).string();
  }

  std::optional<std::string> read(JsonReader& r, const std::string& key, Need need) {
    std::string file_key = key + "_file";
    if (r.has(key) && r.has(file_key)) {
      r.problem(file_key, "give either " + key + " or " + file_key + ", not both");
      return std::nullopt;
    }
    if (r.has(file_key)) {
      auto path = r.string(file_key, Need::kRequired);
      if (!path) return std::nullopt;
      fs::path p = fs::path(*path).is_absolute() ? fs::path(*path) : fs::path(base_dir_) / *path;
      auto text = read_file(p.string());
      if (!text) {
        r.problem(file_key, "cannot read " + p.string());
        return std::nullopt;
      }
      auto value = trim(*text);
      if (value.empty()) r.problem(file_key, "file is empty");
      return value;
    }
    if (!r.has(key) && need == Need::kRequired) {
      r.problem(key, "is required (or " + file_key + ")");
      return std::nullopt;
    }
    return r.string(key, need);
  }

 private:
  std::string base_dir_;
};

bool valid_listen(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size()) return false;
  for (std::size_t i = colon + 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return std::stol(s.substr(colon + 1)) <= 65535;
}

void read_server(JsonReader r, Config& c) {
  r.reject_unknown({"listen", "max_body_bytes", "max_connections", "max_connections_per_address",
                    "first_byte_timeout_ms", "header_timeout_ms", "public_url"});
  if (auto v = r.string("listen", Need::kOptional)) {
    if (valid_listen(*v)) c.server.listen = *v;
    else r.problem("listen", "must be host:port, e.g. 127.0.0.1:8080");
  }
  if (auto v = r.integer("max_body_bytes", Need::kOptional, 1024, 16 << 20))
    c.server.max_body_bytes = static_cast<std::size_t>(*v);
  if (auto v = r.integer("max_connections", Need::kOptional, 8, 100000))
    c.server.max_connections = static_cast<std::size_t>(*v);
  if (auto v = r.integer("max_connections_per_address", Need::kOptional, 1, 100000))
    c.server.max_connections_per_address = static_cast<std::size_t>(*v);
  if (auto v = r.integer("first_byte_timeout_ms", Need::kOptional, 100, 60000))
    c.server.first_byte_timeout_ms = static_cast<int>(*v);
  if (auto v = r.integer("header_timeout_ms", Need::kOptional, 100, 120000))
    c.server.header_timeout_ms = static_cast<int>(*v);
  if (c.server.first_byte_timeout_ms > c.server.header_timeout_ms)
    r.problem("first_byte_timeout_ms", "must not be longer than header_timeout_ms");
  if (auto v = r.string("public_url", Need::kOptional)) {
    if (v->starts_with("http://") || v->starts_with("https://")) {
      c.server.public_url = *v;
      while (c.server.public_url.ends_with('/')) c.server.public_url.pop_back();
    } else {
      r.problem("public_url", "must start with https:// (or http://)");
    }
  }
}

constexpr const char* kKeyFileRequired =
    "is required: subscribers' data is stored encrypted (create one with tocsin keys generate FILE)";

void read_storage(JsonReader r, const std::string& base_dir, Config& c) {
  r.reject_unknown({"sqlite", "postgresql", "key_file"});
  if (!r.has("key_file")) r.problem("key_file", kKeyFileRequired);
  else if (auto v = r.string("key_file", Need::kRequired)) {
    fs::path p = fs::path(*v).is_absolute() ? fs::path(*v) : fs::path(base_dir) / *v;
    c.storage.key_file = p.string();
    std::string error;
    c.storage.keyring = store::Keyring::load(c.storage.key_file, error);
    if (!c.storage.keyring) r.problem("key_file", error);
  }
  if (r.has("sqlite") && r.has("postgresql")) {
    r.problem("postgresql", "give exactly one of storage.sqlite and storage.postgresql");
    return;
  }
  if (r.has("postgresql")) {
    JsonReader p = r.object("postgresql", Need::kRequired);
    if (!p.ok()) return;
    p.reject_unknown({"url", "password_file"});
    // The URL may hold a password: problems name the field, never its value.
    if (auto v = p.string("url", Need::kRequired)) {
      if (auto problem = store::postgresql_url_problem(*v); !problem.empty())
        p.problem("url", problem);
      else c.storage.postgresql_url = *v;
    }
    if (auto v = p.string("password_file", Need::kOptional)) {
      fs::path f = fs::path(*v).is_absolute() ? fs::path(*v) : fs::path(base_dir) / *v;
      std::ifstream in(f);
      if (!in) p.problem("password_file", "cannot read " + f.string());
      else c.storage.postgresql_password_file = f.string();
    }
    return;
  }
  JsonReader s = r.object("sqlite", Need::kOptional);
  if (!s.ok()) return;
  s.reject_unknown({"path"});
  if (auto v = s.string("path", Need::kOptional)) c.storage.sqlite_path = *v;
}

void read_retention(JsonReader r, Config& c) {
  r.reject_unknown({"deliveries_days", "provider_events_days"});
  // Fractions allowed (0.5 is 12 hours; tests use seconds): at least 1 s.
  if (auto v = r.number("deliveries_days", Need::kOptional, 1.0 / 86400, 3650))
    c.retention.deliveries_days = *v;
  if (auto v = r.number("provider_events_days", Need::kOptional, 1.0 / 86400, 3650))
    c.retention.provider_events_days = *v;
}

// Calls `read` with a reader for each element of the array `arr` at `path`;
// a non-array or a non-object element is a problem.
template <typename Read>
void for_each_object(const json& arr, const std::string& path, std::vector<FieldProblem>& problems,
                     Read read) {
  if (!arr.is_array()) {
    problems.push_back({path, "must be an array"});
    return;
  }
  for (std::size_t i = 0; i < arr.size(); ++i) {
    JsonReader r(arr[i], index_path(path, i), problems);
    if (!r.ok()) {
      r.problem("", "must be an object");
      continue;
    }
    read(r);
  }
}

void read_coordinators(const json& arr, const std::string& path, SecretReader& secrets,
                       std::vector<FieldProblem>& problems, Config& c) {
  std::set<std::string> names;
  for_each_object(arr, path, problems, [&](JsonReader& r) {
    r.reject_unknown({"name", "secret", "secret_file", "secrets", "areas", "approval"});
    CoordinatorConfig co;
    if (auto n = r.string("name", Need::kRequired, 100)) {
      co.name = *n;
      if (!names.insert(*n).second) r.problem("name", "duplicate coordinator name");
    }
    std::vector<std::pair<std::string, std::string>> raw;  // (path key, secret)
    if (r.has("secrets")) {
      if (auto list = r.strings("secrets", Need::kRequired, 10))
        for (std::size_t k = 0; k < list->size(); ++k)
          raw.emplace_back(index_path("secrets", k), (*list)[k]);
    } else if (auto s = secrets.read(r, "secret", Need::kRequired)) {
      raw.emplace_back(r.has("secret_file") ? "secret_file" : "secret", *s);
    }
    for (auto& [key, secret] : raw) {
      if (!secret.starts_with("whsec_")) {
        r.problem(key, "must be a Standard Webhooks secret: whsec_<base64>");
      } else if (auto k = decode_webhook_secret(secret); k && k->size() >= 16) {
        co.keys.push_back(std::move(*k));
      } else {
        r.problem(key, "must hold at least 16 bytes of base64 after whsec_");
      }
    }
    if (auto areas = r.strings("areas", Need::kRequired, 1000)) {
      if (areas->empty()) r.problem("areas", "must name at least one area");
      for (std::size_t k = 0; k < areas->size(); ++k)
        if (!valid_area((*areas)[k]))
          problems.push_back({index_path(r.child_path("areas"), k), "is not an area path"});
      co.areas = *areas;
    }
    if (auto a = r.string("approval", Need::kOptional, 20)) {
      if (*a == "two_person") co.two_person = true;
      else if (*a != "none") r.problem("approval", "must be \"none\" or \"two_person\"");
    }
    c.coordinators.push_back(std::move(co));
  });
}

// The audit log's name for an unnamed token: a short keyed-hash prefix,
// stable across restarts, that tells tokens apart without revealing them.
std::string token_identity(std::string_view token) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string mac = hmac_sha256("tocsin admin token identity", token);
  std::string out = "token:";
  for (std::size_t i = 0; i < 4; ++i) {
    auto b = static_cast<unsigned char>(mac[i]);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// `tokens` holds plain strings (named by a hash prefix) or objects
// {name, token | token_file}; `tokens_file` one plain token per line.
void read_admin(JsonReader r, SecretReader& secrets, std::vector<FieldProblem>& problems,
                Config& c) {
  r.reject_unknown({"tokens", "tokens_file"});
  if (r.has("tokens_file")) {
    if (auto text = secrets.read(r, "tokens", Need::kRequired)) {
      std::istringstream in(*text);
      for (std::string line; std::getline(in, line);)
        if (auto t = trim(line); !t.empty()) c.admin_tokens.push_back({token_identity(t), t});
      for (std::size_t i = 0; i < c.admin_tokens.size(); ++i)
        if (c.admin_tokens[i].token.size() < 16)
          r.problem("tokens_file",
                    "token " + std::to_string(i + 1) + " is shorter than 16 characters");
    }
  } else if (const json* tokens = r.get("tokens")) {
    if (!tokens->is_array()) {
      r.problem("tokens", "must be an array of tokens or {name, token} objects");
      return;
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < tokens->size(); ++i) {
      const json& t = (*tokens)[i];
      std::string path = index_path(r.child_path("tokens"), i);
      if (t.is_string()) {
        c.admin_tokens.push_back({token_identity(t.get<std::string>()), t.get<std::string>()});
        if (t.get_ref<const std::string&>().size() < 16)
          problems.push_back({path, "must be at least 16 characters"});
        continue;
      }
      JsonReader o(t, path, problems);
      if (!o.ok()) {
        o.problem("", "must be a token string or a {name, token} object");
        continue;
      }
      o.reject_unknown({"name", "token", "token_file"});
      AdminToken at;
      at.name = o.string("name", Need::kRequired, 100).value_or("");
      if (!at.name.empty() && !names.insert(at.name).second)
        o.problem("name", "duplicate token name");
      at.token = secrets.read(o, "token", Need::kRequired).value_or("");
      if (!at.token.empty() && at.token.size() < 16)
        o.problem("token", "must be at least 16 characters");
      c.admin_tokens.push_back(std::move(at));
    }
  }
}

void read_dedup(JsonReader r, Config& c) {
  r.reject_unknown({"window_s", "radius_m"});
  if (auto v = r.integer("window_s", Need::kOptional, 0, 7 * 86400)) c.dedup.window_s = *v;
  if (auto v = r.number("radius_m", Need::kOptional, 0, 100000)) c.dedup.radius_m = *v;
}

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

// Safety rules (README "Safety rules"). Thresholds that can never be met
// are refused: a group that silently never hears of anything is worse than
// a config error.
void read_gates(JsonReader& m, Group& g) {
  if (auto s = m.string("min_certainty", Need::kOptional)) {
    if (auto c = parse_certainty(*s)) g.min_certainty = c;
    else m.problem("min_certainty", "must be one of observed, likely, possible, unlikely, unknown");
  }
  if (m.has("min_corroboration")) {
    if (const json* v = m.get("min_corroboration"); v->is_number_integer() && v->get<int64_t>() < 1)
      m.problem("min_corroboration", "must be at least 1 (1: one report suffices)");
    else if (auto v2 = m.integer("min_corroboration", Need::kOptional, 1, 1000))
      g.min_corroboration = static_cast<int>(*v2);
  }
}

void read_response_rules(JsonReader& r, Group& g) {
  if (r.has("enough_responding")) {
    if (const json* v = r.get("enough_responding"); v->is_number_integer() && v->get<int64_t>() < 1)
      r.problem("enough_responding", "must be at least 1: 0 responding can never cover an incident");
    else if (auto n = r.integer("enough_responding", Need::kOptional, 1, 1000000))
      g.enough_responding = static_cast<int>(*n);
  }
  if (!r.has("escalate")) return;
  JsonReader e = r.object("escalate", Need::kOptional);
  if (!e.ok()) return;
  e.reject_unknown({"after_s", "if_responding_below", "to"});
  EscalateRule rule;
  if (const json* v = e.get("after_s"); v && v->is_number() && v->get<double>() <= 0)
    e.problem("after_s", "must be more than 0 seconds");
  else if (auto s = e.integer("after_s", Need::kRequired, 1, 7 * 86400))
    rule.after_s = *s;
  if (const json* v = e.get("if_responding_below"); v && v->is_number() && v->get<double>() < 1)
    e.problem("if_responding_below", "must be at least 1: fewer than 0 responding never happens");
  else if (auto n = e.integer("if_responding_below", Need::kRequired, 1, 1000000))
    rule.if_responding_below = static_cast<int>(*n);
  if (auto to = e.strings("to", Need::kRequired)) {
    if (to->empty()) e.problem("to", "must name at least one group");
    rule.to = *to;
  }
  g.escalate = std::move(rule);
}

// Checks across groups and coordinators: escalate targets exist, no cycle,
// and min_corroboration is reachable by those who can report in the group's
// areas. Without the console that is one reporter per coordinator whose
// areas overlap the group's; with it, several people of one such
// coordinator count apart (core/safety.h evidence_of), and how many people
// a coordinator has is in the database, not the config: any such
// coordinator makes the threshold reachable.
void check_safety_rules(const Config& c, std::vector<FieldProblem>& problems) {
  std::vector<std::vector<std::string>> reporter_areas;
  for (const auto& co : c.coordinators) reporter_areas.push_back(co.areas);
  for (std::size_t i = 0; i < c.groups.size(); ++i) {
    const Group& g = c.groups[i];
    std::string at = index_path("groups", i);
    if (g.min_corroboration > 1) {
      int n = possible_reporters(g, reporter_areas);
      if (n == 0)
        problems.push_back({at + ".match.min_corroboration",
                            "can never be met: no coordinator may report in the group's areas"});
      else if (g.min_corroboration > n && !c.console.enabled)
        problems.push_back(
            {at + ".match.min_corroboration",
             "can never be met: only " + std::to_string(n) +
                 " coordinator(s) may report in the group's areas, and without the console "
                 "(console.enabled) each coordinator counts as one reporter"});
    }
    if (!g.escalate) continue;
    for (std::size_t k = 0; k < g.escalate->to.size(); ++k) {
      const std::string& name = g.escalate->to[k];
      std::string p = index_path(at + ".escalate.to", k);
      if (!c.group(name)) problems.push_back({p, "no group named \"" + name + "\""});
      else if (name == g.name) problems.push_back({p, "a group cannot escalate to itself"});
    }
  }
  auto cycle = escalation_cycle(c.groups);
  if (cycle.size() > 2) {  // a self-loop is reported above
    std::string path;
    for (const auto& n : cycle) path += (path.empty() ? "" : " → ") + n;
    for (std::size_t i = 0; i < c.groups.size(); ++i)
      if (c.groups[i].name == cycle.front())
        problems.push_back({index_path("groups", i) + ".escalate.to", "escalation cycle: " + path});
  }
}

// A group's "join": {"keywords": [...], "language": "es"}. Keywords are one
// or two words, unique across groups, and none of the words tocsin answers
// itself (STOP, HELP, YES, LEAVE ...).
void read_join(JsonReader r, std::set<std::string>& taken, Group& g) {
  if (!r.ok()) return;
  r.reject_unknown({"keywords", "language"});
  static const std::set<std::string> kReserved = {
      "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP", "HELP",
      "INFO", "YES", "SI", "S\xc3\x8d", "LEAVE", "SALIR", "1", "Y", "OK"};
  if (auto keywords = r.strings("keywords", Need::kRequired, 20)) {
    if (keywords->empty()) r.problem("keywords", "must name at least one keyword");
    for (std::size_t i = 0; i < keywords->size(); ++i) {
      std::string k = normalize_keyword((*keywords)[i]);
      std::string at = index_path("keywords", i);
      if (k.empty() || k.size() > 30 || k.find_first_of("\r\n") != std::string::npos)
        r.problem(at, "must be a word of 1 to 30 characters");
      else if (kReserved.count(k))
        r.problem(at, "is a word tocsin answers itself (STOP, HELP, YES, LEAVE...)");
      else if (!taken.insert(k).second)
        r.problem(at, "is already another group's keyword");
      else
        g.join_keywords.push_back(k);
    }
  }
  if (auto lang = r.string("language", Need::kOptional, 35)) {
    if (valid_language(*lang)) g.join_language = *lang;
    else r.problem("language", "must be a language tag like en or es");
  }
}

void read_groups(const json& arr, const std::string& path, std::vector<FieldProblem>& problems,
                 Config& c) {
  std::set<std::string> names;
  std::set<std::string> keywords;
  for_each_object(arr, path, problems, [&](JsonReader& r) {
    r.reject_unknown({"name", "match", "channels", "drills", "escalate", "enough_responding", "join"});
    Group g;
    if (auto n = r.string("name", Need::kRequired, 100)) {
      g.name = *n;
      if (!names.insert(*n).second) r.problem("name", "duplicate group name");
    }
    JsonReader m = r.object("match", Need::kRequired);
    if (m.ok()) {
      m.reject_unknown({"areas", "events", "min_severity", "min_certainty", "min_corroboration"});
      if (auto areas = m.strings("areas", Need::kRequired)) {
        if (areas->empty()) m.problem("areas", "must name at least one area");
        for (std::size_t k = 0; k < areas->size(); ++k)
          if (!valid_area((*areas)[k]))
            problems.push_back({index_path(m.child_path("areas"), k), "is not an area path"});
        g.areas = *areas;
      }
      if (auto events = m.strings("events", Need::kOptional)) g.events = *events;
      if (auto s = m.string("min_severity", Need::kOptional)) {
        if (auto sev = parse_severity(*s)) g.min_severity = sev;
        else m.problem("min_severity", "must be one of extreme, severe, moderate, minor");
      }
      read_gates(m, g);
    }
    if (auto chans = r.strings("channels", Need::kRequired)) {
      if (chans->empty()) r.problem("channels", "must name at least one channel");
      for (std::size_t k = 0; k < chans->size(); ++k) {
        auto ch = parse_channel((*chans)[k]);
        std::string at = index_path(r.child_path("channels"), k);
        if (!ch) {
          problems.push_back({at, "must be sms, email, signal or voice"});
          continue;
        }
        bool served = std::any_of(c.gateways.begin(), c.gateways.end(),
                                  [&](const GatewayConfig& gw) { return gw.channel == *ch; });
        if (!served) problems.push_back({at, "no gateway serves channel " + (*chans)[k]});
        g.channels.push_back(*ch);
      }
    }
    if (auto d = r.boolean("drills", Need::kOptional)) g.drills = *d;
    read_response_rules(r, g);
    if (r.has("join")) read_join(r.object("join", Need::kOptional), keywords, g);
    c.groups.push_back(std::move(g));
  });
}

void read_template_set(JsonReader& r, std::string_view key, TemplateMap& out,
                       std::vector<FieldProblem>& problems) {
  const json* v = r.get(key);
  if (!v) return;
  if (!v->is_object()) {
    r.problem(key, "must be an object of language tag to template");
    return;
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    std::string path = join_path(r.child_path(key), it.key());
    if (!valid_language(it.key())) {
      problems.push_back({path, "is not a language tag"});
      continue;
    }
    if (!it->is_string()) {
      problems.push_back({path, "must be a string"});
      continue;
    }
    if (auto err = template_error(it->get<std::string>())) {
      problems.push_back({path, *err});
      continue;
    }
    out[it.key()] = it->get<std::string>();
  }
}

void read_templates(JsonReader r, std::vector<FieldProblem>& problems, Config& c) {
  r.reject_unknown({"sms", "email", "help", "covered", "voice"});
  read_template_set(r, "sms", c.templates.sms, problems);
  read_template_set(r, "voice", c.templates.voice, problems);
  read_template_set(r, "help", c.templates.help, problems);
  read_template_set(r, "covered", c.templates.covered, problems);
  JsonReader e = r.object("email", Need::kOptional);
  if (e.ok()) {
    e.reject_unknown({"subject", "body"});
    read_template_set(e, "subject", c.templates.email_subject, problems);
    read_template_set(e, "body", c.templates.email_body, problems);
  }
}

void read_sms(JsonReader r, Config& c) {
  r.reject_unknown({"max_segments"});
  // Twilio refuses bodies over 1600 characters and advises at most 10 segments.
  if (auto v = r.integer("max_segments", Need::kOptional, 1, 10))
    c.sms.max_segments = static_cast<int>(*v);
}

// What check-config should point out in templates that are valid: a language
// one set has and another lacks (its subscribers get another language
// there), and an SMS template whose worst case exceeds sms.max_segments.
std::vector<FieldProblem> template_warnings(const Config& c) {
  std::vector<FieldProblem> out;
  MessageTemplates t = with_defaults(c.templates);
  for (const auto& gap : language_gaps(t)) {
    std::string got = gap.fallback.empty()
                          ? "nothing"
                          : "the \"" + gap.fallback + "\" one (fallback " + gap.language + " → " +
                                gap.fallback + ")";
    out.push_back({join_path("templates", gap.set),
                   "no \"" + gap.language + "\" template; subscribers in \"" + gap.language +
                       "\" get " + got});
  }
  bool built_in = c.templates.sms.empty();
  for (const auto& [lang, text] : t.sms) {
    SmsWorstCase w = sms_worst_case(text);
    if (w.size.segments <= static_cast<std::size_t>(c.sms.max_segments)) continue;
    out.push_back({join_path("templates.sms", lang),
                   std::string(built_in ? "built-in template: " : "") + "worst case " +
                       std::to_string(w.size.segments) + " " +
                       (w.size.encoding == SmsEncoding::kGsm7 ? "GSM-7" : "UCS-2") +
                       " segments, above sms.max_segments " + std::to_string(c.sms.max_segments) +
                       " (" + (w.drill ? "drill " : "") + (w.confirmed ? "confirmed " : "") +
                       std::string(to_string(w.msg_type)) +
                       ", " + std::to_string(kWorstCaseHeadline) +
                       "-character headline, instruction and location cut away): such messages "
                       "go out over the limit"});
  }
  return out;
}

void read_delivery(JsonReader r, Config& c) {
  r.reject_unknown({"sms_deadline_s", "email_deadline_s", "lease_s", "max_retry_delay_s",
                    "breaker_threshold", "breaker_cooldown_s", "max_unrecorded"});
  if (auto v = r.integer("breaker_threshold", Need::kOptional, 1, 1000))
    c.delivery.breaker_threshold = static_cast<int>(*v);
  if (auto v = r.integer("breaker_cooldown_s", Need::kOptional, 1, 3600))
    c.delivery.breaker_cooldown_s = *v;
  if (auto v = r.integer("sms_deadline_s", Need::kOptional, 10, 86400)) c.delivery.sms_deadline_s = *v;
  if (auto v = r.integer("email_deadline_s", Need::kOptional, 10, 7 * 86400))
    c.delivery.email_deadline_s = *v;
  if (auto v = r.integer("lease_s", Need::kOptional, 5, 3600)) c.delivery.lease_s = *v;
  if (auto v = r.integer("max_retry_delay_s", Need::kOptional, 1, 3600))
    c.delivery.max_retry_delay_s = *v;
  if (auto v = r.integer("max_unrecorded", Need::kOptional, 1, 100000))
    c.delivery.max_unrecorded = static_cast<int>(*v);
}

// `areas_file` (resolved like the other paths) and `areas` {circles,
// tolerance_m}: read together, since a circle may be the child of a
// polygon and names are unique across both. Returns the shapes' warnings.
std::vector<FieldProblem> read_areas(JsonReader& root, const std::string& base_dir, std::vector<FieldProblem>& problems,
                Config& c) {
  JsonReader r = root.object("areas", Need::kOptional);
  const json* circles = nullptr;
  if (r.ok()) {
    r.reject_unknown({"circles", "tolerance_m"});
    if (auto v = r.number("tolerance_m", Need::kOptional, 0, 100000)) c.areas.tolerance_m = *v;
    circles = r.get("circles");
  }
  std::string text;
  if (root.has("areas_file")) {
    auto v = root.string("areas_file", Need::kRequired);
    if (!v) return {};
    fs::path p = fs::path(*v).is_absolute() ? fs::path(*v) : fs::path(base_dir) / *v;
    c.areas.file = p.string();
    auto t = read_file(c.areas.file);
    if (!t) {
      root.problem("areas_file", "cannot read " + c.areas.file);
      return {};
    }
    if (t->empty()) {
      root.problem("areas_file", "file is empty");
      return {};
    }
    text = std::move(*t);
  }
  if (text.empty() && !circles) return {};
  auto loaded = AreaSet::load(text, "areas_file", circles, "areas.circles", c.areas.tolerance_m);
  problems.insert(problems.end(), loaded.problems.begin(), loaded.problems.end());
  c.areas.shapes = std::move(loaded.set);
  return std::move(loaded.warnings);
}

void read_join_limits(JsonReader r, Config& c) {
  r.reject_unknown({"max_prompts_per_number", "max_prompts_per_hour", "confirm_window_s"});
  if (auto v = r.integer("max_prompts_per_number", Need::kOptional, 1, 20))
    c.join.max_prompts_per_number = static_cast<int>(*v);
  if (auto v = r.integer("max_prompts_per_hour", Need::kOptional, 1, 100000))
    c.join.max_prompts_per_hour = static_cast<int>(*v);
  if (auto v = r.integer("confirm_window_s", Need::kOptional, 60, 86400))
    c.join.confirm_window_s = *v;
}

void read_log(JsonReader r, Config& c) {
  r.reject_unknown({"format", "refused_summary_s"});
  if (auto v = r.string("format", Need::kOptional)) {
    if (*v == "json" || *v == "text") c.log.json = *v == "json";
    else r.problem("format", "must be text or json");
  }
  if (auto v = r.integer("refused_summary_s", Need::kOptional, 1, 3600))
    c.log.refused_summary_s = static_cast<int>(*v);
}

void read_subscribers(JsonReader r, Config& c) {
  r.reject_unknown({"default_region"});
  if (auto v = r.string("default_region", Need::kOptional, 2)) {
    if (v->size() == 2 && std::isupper(static_cast<unsigned char>((*v)[0])) &&
        std::isupper(static_cast<unsigned char>((*v)[1])))
      c.subscribers.default_region = *v;
    else
      r.problem("default_region", "must be a two-letter region code like US");
  }
}

void read_console(JsonReader r, Config& c) {
  r.reject_unknown({"enabled", "idle_timeout_s", "absolute_timeout_s", "draft_flag_after_s",
                    "events", "languages"});
  auto& k = c.console;
  if (auto v = r.boolean("enabled", Need::kOptional)) k.enabled = *v;
  if (auto v = r.integer("idle_timeout_s", Need::kOptional, 60, 86400)) k.idle_timeout_s = *v;
  if (auto v = r.integer("absolute_timeout_s", Need::kOptional, 300, 7 * 86400))
    k.absolute_timeout_s = *v;
  if (k.idle_timeout_s > k.absolute_timeout_s)
    r.problem("idle_timeout_s", "must not be longer than absolute_timeout_s");
  if (auto v = r.integer("draft_flag_after_s", Need::kOptional, 10, 86400))
    k.draft_flag_after_s = *v;
  if (auto v = r.strings("events", Need::kOptional, 100); v && r.has("events")) {
    if (v->empty()) r.problem("events", "must name at least one event");
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto& e = (*v)[i];
      bool ok = !e.empty() && e.size() <= 64;
      for (char ch : e) ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_');
      if (!ok) r.problem(index_path("events", i), "must be lower-case word characters (a-z, 0-9, _)");
    }
    k.events = *v;
  }
  if (auto v = r.strings("languages", Need::kOptional, 20); v && r.has("languages")) {
    if (v->empty()) r.problem("languages", "must name at least one language");
    for (std::size_t i = 0; i < v->size(); ++i)
      if (!valid_language((*v)[i])) r.problem(index_path("languages", i), "is not a language tag");
    k.languages = *v;
  }
}

}  // namespace

ConfigResult parse_config(const std::string& text, const std::string& base_dir) {
  ConfigResult result;
  auto& problems = result.problems;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (doc.is_discarded() || !doc.is_object()) {
    problems.push_back({"", "is not a JSON object (// comments are allowed)"});
    return result;
  }
  Config& c = result.config;
  SecretReader secrets(base_dir);
  JsonReader root(doc, "", problems);
  root.reject_unknown({"server", "storage", "coordinators", "admin", "dedup", "gateways", "groups",
                       "templates", "sms", "delivery", "subscribers", "log", "retention",
                       "areas_file", "areas", "console", "join"});
  if (root.has("server")) read_server(root.object("server", Need::kOptional), c);
  if (root.has("storage")) read_storage(root.object("storage", Need::kOptional), base_dir, c);
  else problems.push_back({"storage.key_file", kKeyFileRequired});
  if (auto* v = root.get("coordinators")) read_coordinators(*v, "coordinators", secrets, problems, c);
  else problems.push_back({"coordinators", "is required: nobody could report"});
  if (root.has("admin")) read_admin(root.object("admin", Need::kOptional), secrets, problems, c);
  if (root.has("dedup")) read_dedup(root.object("dedup", Need::kOptional), c);
  if (auto* v = root.get("gateways")) read_gateways(*v, "gateways", secrets, problems, c);
  else problems.push_back({"gateways", "is required: nothing could be sent"});
  if (auto* v = root.get("groups")) read_groups(*v, "groups", problems, c);
  else problems.push_back({"groups", "is required: nobody would be alerted"});
  if (root.has("templates")) read_templates(root.object("templates", Need::kOptional), problems, c);
  if (root.has("sms")) read_sms(root.object("sms", Need::kOptional), c);
  if (root.has("delivery")) read_delivery(root.object("delivery", Need::kOptional), c);
  if (root.has("subscribers")) read_subscribers(root.object("subscribers", Need::kOptional), c);
  if (root.has("retention")) read_retention(root.object("retention", Need::kOptional), c);
  if (root.has("log")) read_log(root.object("log", Need::kOptional), c);
  if (root.has("join")) read_join_limits(root.object("join", Need::kOptional), c);
  auto area_warnings = read_areas(root, base_dir, problems, c);
  if (root.has("console")) read_console(root.object("console", Need::kOptional), c);
  check_safety_rules(c, problems);  // after the console: whether people of one coordinator count
  if (c.console.enabled && c.server.public_url.empty())
    problems.push_back({"console.enabled",
                        "needs server.public_url: the console checks each request's Origin "
                        "against it and writes it into enrolment links"});
  result.warnings = template_warnings(c);
  result.warnings.insert(result.warnings.end(), area_warnings.begin(), area_warnings.end());
  bool email = std::any_of(c.gateways.begin(), c.gateways.end(), [](const GatewayConfig& g) {
    return g.type == GatewayType::kSendgrid || g.type == GatewayType::kSmtp;
  });
  if (email && c.server.public_url.empty())
    result.warnings.push_back(
        {"server.public_url", "not set: alert emails go out without an unsubscribe link "
                              "(List-Unsubscribe), which Gmail and Yahoo require of bulk senders"});
  // Said once here (check-config, start, reload) rather than per refused
  // request: POST /v1/receipts/sendgrid verifies with any sendgrid gateway's key.
  std::optional<std::size_t> sendgrid;
  bool sendgrid_keyed = false;
  for (std::size_t i = 0; i < c.gateways.size(); ++i)
    if (c.gateways[i].type == GatewayType::kSendgrid) {
      if (!sendgrid) sendgrid = i;
      sendgrid_keyed = sendgrid_keyed || !c.gateways[i].event_webhook_public_key.empty();
    }
  if (sendgrid && !sendgrid_keyed)
    result.warnings.push_back(
        {index_path("gateways", *sendgrid) + ".event_webhook_public_key",
         "not set: SendGrid's Event Webhook (POST /v1/receipts/sendgrid: delivery receipts, "
         "bounces and spam reports that opt an address out) cannot be verified and is "
         "answered 403"});
  return result;
}

ConfigResult load_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    ConfigResult r;
    r.problems.push_back({"", "cannot read the file"});
    return r;
  }
  // Relative paths in the config (database, secrets, file gateways) resolve
  // against the working directory, as systemd's WorkingDirectory= sets it.
  auto result = parse_config(*text, "");
  result.config.source = path;
  return result;
}

}  // namespace tocsin::app
