// What the fuzz targets share: a config with groups, gateways and a phone
// region, as the admin API's validation sees it (no key file: parsing does
// not need one).
#pragma once

#include "app/config.h"

namespace tocsin::fuzz {

inline const app::Config& config() {
  static const app::Config c = app::parse_config(R"({
    "coordinators": [{"name": "c1", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]}],
    "admin": {"tokens": ["plain-token-0123456789"]},
    "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"},
                 {"name": "m", "type": "file", "channel": "email", "path": "/dev/null"}],
    "groups": [{"name": "east", "match": {"areas": ["la/east-la"]}, "channels": ["sms", "email"]},
               {"name": "all", "match": {"areas": ["la"]}, "channels": ["sms"]}]
  })",
                                                 "")
                                   .config;
  return c;
}

}  // namespace tocsin::fuzz
