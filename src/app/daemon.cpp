// `tocsin serve`: the wiring. Builds the parts in order (store worker,
// gateways and dispatcher, API, HTTP server), starts them, and on SIGTERM
// drains: no new reports, deliveries in flight recorded, then stop. The
// parts it wires live elsewhere: app/reloader (SIGHUP, POST /-/reload),
// app/housekeeping (background chores, refusal summaries), app/systemd
// (socket activation, file limit, notify, watchdog).
#include "app/daemon.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <random>

#include "app/api.h"
#include "app/config.h"
#include "app/housekeeping.h"
#include "app/log_format.h"
#include "app/metrics.h"
#include "app/reloader.h"
#include "app/storage.h"
#include "app/systemd.h"
#include "core/clock.h"
#include "delivery/dispatcher.h"
#include "delivery/http_client.h"
#include "http/server.h"
#include "store/open_store.h"
#include "store/store_worker.h"

namespace tocsin::app {
namespace {

constexpr auto kDrainBound = std::chrono::seconds(10);
// One heartbeat of the others, and a margin.
constexpr auto kJoinWait = Housekeeping::kHeartbeat + std::chrono::milliseconds(500);

// This process's id in the store's membership: random, never reused.
std::string instance_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

void print_problems(const std::string& file, const std::vector<FieldProblem>& problems) {
  for (const auto& p : problems)
    std::fprintf(stderr, "%s: %s: %s\n", file.c_str(), p.path.empty() ? "$" : p.path.c_str(),
                 p.message.c_str());
}

// Everything the running daemon is made of, in construction order; members
// are destroyed in reverse, after the io_context has stopped.
class Daemon {
 public:
  explicit Daemon(std::shared_ptr<const ActiveConfig> config) : config_(std::move(config)) {}

  int run() {
    const Config& c = config_->config;
    systemd::raise_file_limit(c.server.max_connections);
    store::StoreOptions store_opts = store_options(c.storage);
    store_opts.instance_id = instance_;
    try {
      worker_ = std::make_unique<store::StoreWorker>(store::open_store(store_opts), io_);
    } catch (const std::exception& e) {
      spdlog::critical("cannot open the store: {}", e.what());
      return 1;
    }
    housekeeping_ = std::make_unique<Housekeeping>(Housekeeping::Parts{
        io_, *worker_, clock_, metrics_, [this] { return config_; },
        [this] { dispatcher_->kick(); }, instance_,
        [this](int live) { dispatcher_->set_share(live); }});
    int64_t released = 0;
    store::Membership membership;  // this instance's first view of the cluster
    worker_->run_sync([&](store::Store& s) {
      released = Housekeeping::recover(s, c, clock_.now_ms());
      membership = housekeeping_->join(s);
    });
    if (released)
      spdlog::warn("recovered {} deliveries leased by a previous run; sending them again", released);

    http_ = std::make_unique<delivery::BeastHttpClient>(io_);
    reloader_ = std::make_unique<Reloader>(Reloader::Parts{
        io_, *http_, clock_, metrics_, *worker_, config_,
        [this](delivery::DispatcherOptions o, std::vector<delivery::GatewaySpec> specs) {
          dispatcher_->reconfigure(o, std::move(specs));  // keeps the hooks below
        },
        [this] { housekeeping_->reencrypt(); }});
    std::vector<delivery::GatewaySpec> specs;
    try {
      specs = reloader_->gateway_specs(c, nullptr);
    } catch (const std::exception& e) {
      spdlog::critical("cannot set up gateways: {}", e.what());
      return 1;
    }
    dispatcher_ = std::make_unique<delivery::Dispatcher>(
        io_, *worker_, clock_, with_hooks(dispatcher_options(c)), std::move(specs));

    try {  // other instances' new deliveries (PostgreSQL); the poll stays the fallback
      delivery_watch_ = store::watch_deliveries(store_opts, [this] {
        boost::asio::post(io_, [this] { dispatcher_->kick(); });
      });
    } catch (const std::exception& e) {
      spdlog::critical("cannot watch the store for new deliveries: {}", e.what());
      return 1;
    }

    api_ = std::make_unique<Api>([this] { return config_; }, clock_, *worker_, api_hooks());
    http::ServerOptions sopts = server_options(c);
    const char* socket_source = "bound server.listen";
    try {
      sopts.listen_fd = systemd::passed_socket();
    } catch (const std::exception& e) {
      spdlog::critical("cannot use the socket passed by systemd: {}", e.what());
      return 1;
    }
    if (sopts.listen_fd >= 0) socket_source = "socket passed by systemd";
    server_ = std::make_unique<http::Server>(
        io_, sopts, [this](http::Request req, http::Responder respond) {
          api_->handle(std::move(req), std::move(respond));
        });
    std::string bound;
    try {
      bound = server_->start();
    } catch (const std::exception& e) {
      spdlog::critical("cannot listen on {}: {}",
                       sopts.listen_fd >= 0 ? "the passed socket" : sopts.listen, e.what());
      return 1;
    }
    // On a shared store the others learn of this instance at their next
    // heartbeat; until then they still take the share they had, so this one
    // waits that long before its first send (the sum stays within the
    // provider's limits).
    if (membership.shared) {
      join_wait_.expires_after(kJoinWait);
      join_wait_.async_wait([this](boost::system::error_code ec) {
        if (!ec) dispatcher_->start();
      });
    } else {
      dispatcher_->start();
    }
    watch_signals();
    housekeeping_->start();
    watchdog_ = std::make_unique<systemd::Watchdog>(io_, *worker_);
    watchdog_->start();
    spdlog::info("listening on http://{} ({})", bound, socket_source);
    systemd::notify_ready("listening on http://" + bound);
    io_.run();
    delivery_watch_.reset();
    housekeeping_->log_refusals();
    try {
      worker_->run_sync([&](store::Store& s) { housekeeping_->leave(s); });
    } catch (const std::exception& e) {  // its heartbeat runs out instead
      spdlog::warn("could not leave the cluster: {}", e.what());
    }
    worker_->stop();
    spdlog::info("stopped");
    return 0;
  }

 private:
  // The metrics the dispatcher reports to (kept across reloads).
  delivery::DispatcherOptions with_hooks(delivery::DispatcherOptions o) {
    o.on_result = [this](std::string_view gateway, Channel channel, DeliveryState state) {
      metrics_.delivery_result(gateway, channel, state);
    };
    o.on_report_sent = [this](Channel channel, bool first, std::chrono::milliseconds t) {
      metrics_.report_sent(channel, first, static_cast<double>(t.count()) / 1000.0);
    };
    return o;
  }

  Api::Hooks api_hooks() {
    Api::Hooks hooks;
    hooks.deliveries_planned = [this] { dispatcher_->kick(); };
    hooks.ready = [this] { return worker_->healthy(); };
    hooks.metrics = &metrics_;
    hooks.gauges = [this](Metrics::Gauges& g) {
      auto s = dispatcher_->stats();
      g.deliveries_in_flight = s.in_flight;
      g.deliveries_held = s.held;
      for (const auto& h : dispatcher_->gateway_health())
        g.circuits.push_back({h.name, h.channel, static_cast<int>(h.state)});
    };
    hooks.reload = [this](Api::ReloadDone done) {
      reloader_->reload("POST /-/reload", std::move(done));
    };
    hooks.refused = [this](std::string_view route, int status) {
      housekeeping_->refused(route, status);
    };
    hooks.ignored = [this](Ignored why) { housekeeping_->ignored(why); };
    hooks.io = &io_;
    return hooks;
  }

  http::ServerOptions server_options(const Config& c) {
    http::ServerOptions o;
    o.listen = c.server.listen;
    o.max_body_bytes = c.server.max_body_bytes;
    o.max_connections = c.server.max_connections;
    o.max_connections_per_address = c.server.max_connections_per_address;
    o.first_byte_timeout = std::chrono::milliseconds(c.server.first_byte_timeout_ms);
    o.header_timeout = std::chrono::milliseconds(c.server.header_timeout_ms);
    o.on_connection_event = [this](http::ConnectionEvent e) {
      metrics_.connection_event(http::to_string(e));
    };
    o.on_refused = [this](int status) { housekeeping_->refused("(http)", status); };
    return o;
  }

  void watch_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reloader_->reload("SIGHUP", [this](const Api::ReloadOutcome& outcome) {
          // A reload can change who holds admin tokens: the audit log keeps
          // it (POST /-/reload is audited with the token that asked).
          store::AuditEntry entry{.at = clock_.now_ms(),
                                  .actor = "signal",
                                  .method = "RELOAD",
                                  .route = "SIGHUP",
                                  .status = outcome.unavailable         ? 503
                                            : outcome.problems.empty() ? 200
                                                                       : 422};
          worker_->submit([entry](store::Store& s) { s.insert_audit(entry); }, [](bool) {});
        });
        watch_signals();
        return;
      }
      spdlog::info("signal {}: no new reports; draining deliveries for up to {} s", sig,
                   kDrainBound.count());
      systemd::notify_stopping();
      join_wait_.cancel();
      server_->stop();
      housekeeping_->stop_timers();
      const auto deadline = std::chrono::steady_clock::now() + kDrainBound;
      dispatcher_->stop(kDrainBound, [this, deadline] { finish_stop(deadline); });
    });
  }

  // Stops the loop once the requests being answered have been (their
  // connections close after the response), or at the drain deadline.
  void finish_stop(std::chrono::steady_clock::time_point deadline) {
    const std::size_t open = server_->connections();
    if (open > 0 && std::chrono::steady_clock::now() < deadline) {
      stop_wait_.expires_after(std::chrono::milliseconds(20));
      stop_wait_.async_wait([this, deadline](boost::system::error_code ec) {
        if (!ec) finish_stop(deadline);
      });
      return;
    }
    if (open > 0) spdlog::warn("stop: {} HTTP connections still open at the drain bound", open);
    signals_.cancel();
    io_.stop();
  }

  std::shared_ptr<const ActiveConfig> config_;  // swapped on reload; io thread only
  const std::string instance_ = instance_id();   // this process in the store's membership
  SystemClock clock_;
  Metrics metrics_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_, SIGTERM, SIGINT, SIGHUP};
  boost::asio::steady_timer stop_wait_{io_};
  boost::asio::steady_timer join_wait_{io_};
  std::unique_ptr<store::StoreWorker> worker_;
  std::unique_ptr<systemd::Watchdog> watchdog_;
  std::unique_ptr<delivery::BeastHttpClient> http_;
  std::unique_ptr<Housekeeping> housekeeping_;
  std::unique_ptr<Reloader> reloader_;
  std::unique_ptr<delivery::Dispatcher> dispatcher_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<store::DeliveryWatch> delivery_watch_;
};

}  // namespace

int serve(const std::string& config_path) {
  auto loaded = load_config(config_path);
  if (!loaded.ok()) {
    print_problems(config_path, loaded.problems);
    return 2;
  }
  use_log_format(loaded.config.log.json);
  log_warnings(config_path, loaded.warnings);
  auto daemon = std::make_unique<Daemon>(std::make_shared<const ActiveConfig>(std::move(loaded.config)));
  return daemon->run();
}

}  // namespace tocsin::app
