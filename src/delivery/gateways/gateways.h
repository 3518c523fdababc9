// The gateway types of the config, built from their GatewayConfig.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "delivery/gateway_config.h"
#include "core/clock.h"
#include "delivery/gateway.h"
#include "delivery/http_client.h"

namespace tocsin::delivery {

struct GatewayContext {
  boost::asio::io_context& io;
  HttpClient& http;
  const Clock& clock;
  std::string public_url;  // server.public_url, for provider callbacks ("" = none)
  // Key of the email unsubscribe tokens (the app derives it from the key file); "" = no links.
  std::string unsubscribe_key;
};

// Builds the gateway `config` describes. Throws std::runtime_error at
// start-up when it cannot (e.g. a file gateway's file cannot be opened).
std::unique_ptr<Gateway> make_gateway(const GatewayConfig& config, GatewayContext ctx);

}  // namespace tocsin::delivery
