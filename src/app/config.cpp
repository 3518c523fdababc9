// Reading the config: the top level and its small sections (server,
// storage, coordinators, admin, dedup, delivery, areas, subscribers, log,
// console), then the checks across sections. Gateways and groups (with
// templates) have files of their own (config_reading.h says which).
#include "app/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "app/config_reading.h"
#include "app/files.h"
#include "core/signature.h"
#include "store/open_store.h"

namespace tocsin::app {

using nlohmann::json;
namespace fs = std::filesystem;
using config_detail::for_each_object;
using config_detail::SecretReader;

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


void read_sms(JsonReader r, Config& c) {
  r.reject_unknown({"max_segments"});
  // Twilio refuses bodies over 1600 characters and advises at most 10 segments.
  if (auto v = r.integer("max_segments", Need::kOptional, 1, 10))
    c.sms.max_segments = static_cast<int>(*v);
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

using config_detail::check_safety_rules;
using config_detail::read_gateways;
using config_detail::read_groups;
using config_detail::read_templates;
using config_detail::template_warnings;

ConfigResult parse_config(const std::string& text, const std::string& base_dir) {
  ConfigResult result;
  auto& problems = result.problems;
  // A key given twice is refused, not read as its last value: an operator
  // who edits the first of two "max_connections" or safety settings must
  // not be overruled by a forgotten second one.
  auto parsed = parse_json_strict(text, /*allow_comments=*/true);
  if (auto* bad = std::get_if<JsonSyntaxError>(&parsed)) {
    if (!bad->path.empty())
      problems.push_back({bad->path, "is given twice: " + bad->detail});
    else
      problems.push_back({"", "is not a JSON object (// comments are allowed)"});
    return result;
  }
  json doc = std::move(std::get<json>(parsed));
  if (!doc.is_object()) {
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
  // A call's key press (Gather action) and its end (StatusCallback) come
  // back to public_url: without it presses and call outcomes are lost.
  for (std::size_t i = 0; i < c.gateways.size(); ++i)
    if (c.gateways[i].type == GatewayType::kTwilioVoice && c.server.public_url.empty())
      problems.push_back({"server.public_url",
                          "is required by the twilio_voice gateway " + index_path("gateways", i) +
                              ": Twilio posts key presses (press 1) and call status callbacks "
                              "to it"});
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
  // SendGrid posts a batch of events when it reaches 768 KB: a smaller body
  // limit refuses those with 413, and their receipts and bounces are lost.
  constexpr std::size_t kSendgridBatchBytes = 768 * 1024;
  if (sendgrid_keyed && c.server.max_body_bytes < kSendgridBatchBytes)
    result.warnings.push_back(
        {"server.max_body_bytes",
         std::to_string(c.server.max_body_bytes) +
             " is below SendGrid's Event Webhook batches (up to 768 KB): larger batches are "
             "refused with 413; set 1048576"});
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
