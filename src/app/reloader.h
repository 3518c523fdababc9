// The running daemon's config reload: SIGHUP and POST /-/reload re-read the
// config file, all or nothing. Reloads run one at a time, in the order
// asked: each waits for the store's verdict on its key file, and the next
// compares with what the previous one left running. What a reload changes
// is worked out by app/reload.h (pure); this applies it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "app/api.h"
#include "app/config.h"
#include "app/metrics.h"
#include "core/clock.h"
#include "delivery/dispatcher.h"
#include "delivery/http_client.h"
#include "store/store_worker.h"

namespace tocsin::app {

// The dispatcher's settings that the config file determines.
delivery::DispatcherOptions dispatcher_options(const Config& c);

// Config warnings (see check-config) name paths and languages only.
void log_warnings(const std::string& file, const std::vector<FieldProblem>& warnings);

class Reloader {
 public:
  struct Parts {
    boost::asio::io_context& io;
    delivery::HttpClient& http;
    const Clock& clock;
    Metrics& metrics;
    store::StoreWorker& worker;
    std::shared_ptr<const ActiveConfig>& config;  // the daemon's; swapped here on success
    // Applies new gateways and limits to the running dispatcher.
    std::function<void(delivery::DispatcherOptions, std::vector<delivery::GatewaySpec>)> reconfigure;
    std::function<void()> reencrypt;  // a newer active key: re-encrypt under it
  };
  explicit Reloader(Parts parts) : p_(std::move(parts)) {}

  void reload(std::string trigger, Api::ReloadDone done);

  // The gateways `next` configures, in its order (the failover chains):
  // those `running` already runs unchanged are kept (a spec without a
  // gateway), the others are built. Throws std::runtime_error when one
  // cannot be built.
  std::vector<delivery::GatewaySpec> gateway_specs(const Config& next, const Config* running);

 private:
  void run_next();
  void apply(const std::string& trigger, Api::ReloadDone done);
  void refuse(const std::string& trigger, std::vector<FieldProblem> problems,
              const Api::ReloadDone& done);

  Parts p_;
  // Reloads asked for, the first one running.
  std::deque<std::pair<std::string, Api::ReloadDone>> queue_;
};

}  // namespace tocsin::app
