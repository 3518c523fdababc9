#include "app/reload.h"

#include <algorithm>
#include <utility>

namespace tocsin::app {
namespace {

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

const GatewayConfig* find_gateway(const Config& c, const std::string& name) {
  for (const auto& g : c.gateways)
    if (g.name == name) return &g;
  return nullptr;
}

// The names of a gateway's settings that differ (secrets as "credentials").
std::vector<std::string> gateway_differences(const GatewayConfig& a, const GatewayConfig& b) {
  std::vector<std::string> d;
  auto check = [&](bool same, const char* what) {
    if (!same) d.push_back(what);
  };
  check(a.type == b.type, "type");
  check(a.channel == b.channel, "channel");
  check(a.base_url == b.base_url, "base_url");
  check(a.url == b.url, "url");
  check(a.account_sid == b.account_sid, "account_sid");
  check(a.auth_token == b.auth_token && a.api_key == b.api_key && a.password == b.password &&
            a.webhook_key == b.webhook_key,
        "credentials");
  check(a.username == b.username, "username");
  check(a.starttls == b.starttls, "starttls");
  check(a.from == b.from && a.from_name == b.from_name, "from");
  check(a.path == b.path, "path");
  check(a.timeout_ms == b.timeout_ms, "timeout_ms");
  check(a.rate_per_s == b.rate_per_s, "rate_per_s");
  check(a.max_in_flight == b.max_in_flight, "max_in_flight");
  if (d.empty() && !(a == b)) d.push_back("settings");  // a field this list does not name yet
  return d;
}

std::vector<std::string> chain(const Config& c, Channel ch) {
  std::vector<std::string> names;
  for (const auto& g : c.gateways)
    if (g.channel == ch) names.push_back(g.name);
  return names;
}

}  // namespace

bool same_gateway(const GatewayConfig& running, const GatewayConfig& loaded,
                  const std::string& running_public_url, const std::string& loaded_public_url) {
  GatewayConfig a = running;
  a.rate_per_s = loaded.rate_per_s;
  a.max_in_flight = loaded.max_in_flight;
  if (!(a == loaded)) return false;
  // Twilio's callbacks and the email unsubscribe links name the public URL.
  return loaded.type == GatewayType::kFile || loaded.type == GatewayType::kWebhook ||
         running_public_url == loaded_public_url;
}

ConfigChanges compare_configs(const Config& running, const Config& loaded) {
  ConfigChanges c;
  auto applied = [&](bool same, const char* what) {
    if (!same) c.applied.push_back(what);
  };
  auto restart = [&](bool same, const char* path) {
    if (!same) c.restart_required.push_back(path);
  };
  restart(running.server.listen == loaded.server.listen, "server.listen");
  restart(running.server.max_body_bytes == loaded.server.max_body_bytes, "server.max_body_bytes");
  restart(running.server.max_connections == loaded.server.max_connections,
          "server.max_connections");
  restart(running.server.max_connections_per_address ==
              loaded.server.max_connections_per_address,
          "server.max_connections_per_address");
  restart(running.server.first_byte_timeout_ms == loaded.server.first_byte_timeout_ms,
          "server.first_byte_timeout_ms");
  restart(running.server.header_timeout_ms == loaded.server.header_timeout_ms,
          "server.header_timeout_ms");
  restart(running.storage.sqlite_path == loaded.storage.sqlite_path, "storage.sqlite.path");
  restart(running.storage.postgresql_url == loaded.storage.postgresql_url &&
              running.storage.postgresql_password_file == loaded.storage.postgresql_password_file,
          "storage.postgresql");
  applied(running.server.public_url == loaded.server.public_url, "server.public_url");
  applied(running.coordinators == loaded.coordinators, "coordinators");
  applied(running.admin_tokens == loaded.admin_tokens, "admin.tokens");
  applied(running.dedup == loaded.dedup, "dedup");
  applied(running.groups == loaded.groups, "groups");
  applied(running.templates == loaded.templates, "templates");
  applied(running.storage.key_file == loaded.storage.key_file &&
              running.storage.keyring && loaded.storage.keyring &&
              running.storage.keyring->active_id() == loaded.storage.keyring->active_id(),
          "storage.key_file");
  applied(running.retention == loaded.retention, "retention");
  applied(running.sms == loaded.sms, "sms");
  applied(running.delivery == loaded.delivery, "delivery");
  applied(running.subscribers == loaded.subscribers, "subscribers");
  applied(running.log == loaded.log, "log");
  applied(running.areas == loaded.areas, "areas");
  applied(running.console == loaded.console, "console");
  applied(running.join == loaded.join, "join");
  for (const auto& g : loaded.gateways) {
    const GatewayConfig* old = find_gateway(running, g.name);
    if (!old) {
      c.applied.push_back("gateways." + g.name + ": added");
    } else if (auto d = gateway_differences(*old, g); !d.empty()) {
      c.applied.push_back("gateways." + g.name + ": " + join(d));
    } else if (!same_gateway(*old, g, running.server.public_url, loaded.server.public_url)) {
      c.applied.push_back("gateways." + g.name + ": server.public_url");
    }
  }
  for (const auto& g : running.gateways)
    if (!find_gateway(loaded, g.name)) c.applied.push_back("gateways." + g.name + ": removed");
  for (Channel ch : kAllChannels) {
    auto before = chain(running, ch), after = chain(loaded, ch);
    // A changed order of the gateways both configs have (additions and
    // removals are named above).
    std::erase_if(before, [&](const auto& n) { return !find_gateway(loaded, n); });
    std::erase_if(after, [&](const auto& n) { return !find_gateway(running, n); });
    if (before != after)
      c.applied.push_back("gateways: " + std::string(to_string(ch)) + " failover order");
  }
  return c;
}

Config keep_restart_settings(const Config& running, Config loaded) {
  loaded.server.listen = running.server.listen;
  loaded.server.max_body_bytes = running.server.max_body_bytes;
  loaded.server.max_connections = running.server.max_connections;
  loaded.server.max_connections_per_address = running.server.max_connections_per_address;
  loaded.server.first_byte_timeout_ms = running.server.first_byte_timeout_ms;
  loaded.server.header_timeout_ms = running.server.header_timeout_ms;
  loaded.storage.sqlite_path = running.storage.sqlite_path;
  loaded.storage.postgresql_url = running.storage.postgresql_url;
  loaded.storage.postgresql_password_file = running.storage.postgresql_password_file;
  return loaded;
}

}  // namespace tocsin::app
