// What a config reload changes: the running config compared with a freshly
// loaded one, in words an operator reads in the log and in the answer to
// POST /-/reload. Pure: no file, no clock.
#pragma once

#include <string>
#include <vector>

#include "app/config.h"

namespace tocsin::app {

struct ConfigChanges {
  // What the reload applies, e.g. "groups", "templates",
  // "gateways.twilio-main: base_url, credentials", "gateways: sms failover order".
  std::vector<std::string> applied;
  // Settings that differ but take effect only after a restart, by JSON path
  // (e.g. "server.listen", "storage.sqlite.path"); the running values stay.
  std::vector<std::string> restart_required;
};

// The differences between `running` and `loaded`. Secrets are named
// ("credentials"), never shown.
ConfigChanges compare_configs(const Config& running, const Config& loaded);

// Whether a gateway configured as `loaded` can keep running as `running`
// (same provider, address, credentials, sender...): everything equal except
// rate_per_s and max_in_flight, which apply to a running gateway; the same
// server.public_url for a Twilio gateway (its receipts' callback URL).
bool same_gateway(const GatewayConfig& running, const GatewayConfig& loaded,
                  const std::string& running_public_url, const std::string& loaded_public_url);

// `loaded` with the settings that need a restart set back to `running`'s,
// so that the active config says what actually runs.
Config keep_restart_settings(const Config& running, Config loaded);

}  // namespace tocsin::app
