#include "app/daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <memory>

#include "app/api.h"
#include "app/config.h"
#include "app/log_format.h"
#include "app/metrics.h"
#include "app/reload.h"
#include "app/safety.h"
#include "core/clock.h"
#include "core/refusals.h"
#include "delivery/dispatcher.h"
#include "delivery/gateways/gateways.h"
#include "delivery/http_client.h"
#include "http/server.h"
#include "store/open_store.h"
#include "store/store_worker.h"

namespace tocsin::app {
namespace {

constexpr auto kDrainBound = std::chrono::seconds(10);
constexpr int64_t kIdempotencyKeepMs = 5LL * 24 * 3600 * 1000;  // webhook-ids remembered 5 days
constexpr int64_t kAuditKeepMs = 366LL * 24 * 3600 * 1000;  // audit entries kept a year (README)
constexpr int64_t kJoinRequestKeepMs = 2LL * 24 * 3600 * 1000;  // join prompts: the limits look back 24 h
// Background store chores run in small batches, each its own store job, so
// reports and sends queued meanwhile go between them.
constexpr int kReencryptBatch = 200;
constexpr int kPurgeBatch = 2000;
constexpr auto kEscalationPoll = std::chrono::seconds(1);  // how often due timers are looked for

// The listening socket systemd passed (LISTEN_FDS, from tocsin.socket), or
// -1 when started without one: then the server binds server.listen itself.
// Exactly one listening TCP socket is accepted; anything else is a unit
// misconfiguration, refused at start rather than half-served. The LISTEN_*
// variables are unset, so that no child inherits them.
int passed_socket() {
  const int n = sd_listen_fds(1);
  if (n < 0) throw std::runtime_error(std::string("sd_listen_fds: ") + std::strerror(-n));
  if (n == 0) return -1;
  if (n > 1)
    throw std::runtime_error(std::to_string(n) +
                             " sockets passed; tocsin serves one (one ListenStream= in tocsin.socket)");
  const int fd = SD_LISTEN_FDS_START;
  const int r = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, /*listening=*/1, /*port=*/0);
  if (r < 0) throw std::runtime_error(std::string("fd 3: ") + std::strerror(-r));
  if (r == 0) throw std::runtime_error("fd 3 is not a listening TCP socket (ListenStream=HOST:PORT)");
  return fd;
}

// Raises the soft limit on open files to the hard one (systemd's default
// soft limit, 1024, is below what max_connections needs: accept() would fail
// with EMFILE before the server's own cap), and says what it is.
void raise_file_limit(std::size_t max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("open files limit: cannot read it: {}", std::strerror(errno));
    return;
  }
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("open files limit: cannot raise {} to {}: {}", before, lim.rlim_max,
                   std::strerror(errno));
      lim.rlim_cur = before;
    }
  }
  if (lim.rlim_cur == before)
    spdlog::info("open files limit: {}", lim.rlim_cur);
  else
    spdlog::info("open files limit: {} (raised from {})", lim.rlim_cur, before);
  // Connections, the database, gateway connections and a margin.
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < max_connections + 256)
    spdlog::warn("open files limit {} is low for server.max_connections {}: raise LimitNOFILE= "
                 "in the unit",
                 lim.rlim_cur, max_connections);
}

void print_problems(const std::string& file, const std::vector<FieldProblem>& problems) {
  for (const auto& p : problems)
    std::fprintf(stderr, "%s: %s: %s\n", file.c_str(), p.path.empty() ? "$" : p.path.c_str(),
                 p.message.c_str());
}

// Config warnings (see check-config) name paths and languages only.
void log_warnings(const std::string& file, const std::vector<FieldProblem>& warnings) {
  for (const auto& w : warnings) spdlog::warn("{}: {}: {}", file, w.path, w.message);
}

delivery::DispatcherOptions dispatcher_options(const Config& c) {
  delivery::DispatcherOptions o;
  o.lease = std::chrono::seconds(c.delivery.lease_s);
  o.backoff.cap = std::chrono::seconds(c.delivery.max_retry_delay_s);
  o.breaker_threshold = c.delivery.breaker_threshold;
  o.breaker_cooldown = std::chrono::seconds(c.delivery.breaker_cooldown_s);
  o.max_unrecorded = static_cast<std::size_t>(c.delivery.max_unrecorded);
  return o;
}

std::string problem_lines(const std::string& file, const std::vector<FieldProblem>& problems) {
  std::string out;
  for (const auto& p : problems)
    out += (out.empty() ? "" : "; ") + file + ": " + (p.path.empty() ? "$" : p.path) + ": " + p.message;
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out.empty() ? "nothing" : out;
}

// Everything the running daemon is made of, in construction order; members
// are destroyed in reverse, after the io_context has stopped.
class Daemon {
 public:
  Daemon(std::shared_ptr<const ActiveConfig> config) : config_(std::move(config)) {}

  int run() {
    const Config& c = config_->config;
    raise_file_limit(c.server.max_connections);
    try {
      worker_ = std::make_unique<store::StoreWorker>(
          store::open_store({c.storage.sqlite_path, c.storage.keyring}), io_);
    } catch (const std::exception& e) {
      spdlog::critical("cannot open the store: {}", e.what());
      return 1;
    }
    int64_t released = 0;
    worker_->run_sync([&](store::Store& s) {
      // One daemon per database (the store holds a lock file), so every
      // lease left in it belongs to a previous run that ended abruptly.
      released = s.release_all_leases();
      s.purge_answers(clock_.now_ms() - kIdempotencyKeepMs);
      s.purge_audit(clock_.now_ms() - kAuditKeepMs);
      s.purge_events(clock_.now_ms() - events_keep_ms());
      s.purge_join_requests(clock_.now_ms() - kJoinRequestKeepMs);
    });
    if (released)
      spdlog::warn("recovered {} deliveries leased by a previous run; sending them again", released);

    http_ = std::make_unique<delivery::CurlHttpClient>(io_);
    std::vector<delivery::GatewaySpec> specs;
    try {
      specs = gateway_specs(c, nullptr);
    } catch (const std::exception& e) {
      spdlog::critical("cannot set up gateways: {}", e.what());
      return 1;
    }
    delivery::DispatcherOptions dopts = dispatcher_options(c);
    dopts.on_result = [this](std::string_view gateway, Channel channel, DeliveryState state) {
      metrics_.delivery_result(gateway, channel, state);
    };
    dopts.on_report_sent = [this](Channel channel, bool first, std::chrono::milliseconds t) {
      metrics_.report_sent(channel, first, static_cast<double>(t.count()) / 1000.0);
    };
    dispatcher_ = std::make_unique<delivery::Dispatcher>(io_, *worker_, clock_, dopts, std::move(specs));

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
    hooks.reload = [this](Api::ReloadDone done) { reload("POST /-/reload", std::move(done)); };
    hooks.refused = [this](std::string_view route, int status) { refused(route, status); };
    hooks.io = &io_;
    api_ = std::make_unique<Api>([this] { return config_; }, clock_, *worker_, std::move(hooks));
    http::ServerOptions sopts;
    sopts.listen = c.server.listen;
    sopts.max_body_bytes = c.server.max_body_bytes;
    sopts.max_connections = c.server.max_connections;
    sopts.max_connections_per_address = c.server.max_connections_per_address;
    sopts.first_byte_timeout = std::chrono::milliseconds(c.server.first_byte_timeout_ms);
    sopts.header_timeout = std::chrono::milliseconds(c.server.header_timeout_ms);
    sopts.on_connection_event = [this](http::ConnectionEvent e) {
      metrics_.connection_event(http::to_string(e));
    };
    sopts.on_refused = [this](int status) { refused("(http)", status); };
    const char* socket_source = "bound server.listen";
    try {
      sopts.listen_fd = passed_socket();
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
      spdlog::critical("cannot listen on {}: {}", sopts.listen_fd >= 0 ? "the passed socket" : sopts.listen,
                       e.what());
      return 1;
    }
    dispatcher_->start();
    watch_signals();
    purge_expired();
    schedule_housekeeping();
    schedule_escalations();
    schedule_refusal_summary();
    reencrypt();
    start_watchdog();
    spdlog::info("listening on http://{} ({})", bound, socket_source);
    sd_notifyf(0, "READY=1\nSTATUS=listening on http://%s", bound.c_str());
    io_.run();
    log_refusals();
    worker_->stop();
    spdlog::info("stopped");
    return 0;
  }

 private:
  void watch_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload("SIGHUP", [this](const Api::ReloadOutcome& outcome) {
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
      sd_notify(0, "STOPPING=1");
      server_->stop();
      housekeeping_.cancel();
      escalations_.cancel();
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

  // The gateways `next` configures, in its order (the failover chains):
  // those `running` already runs unchanged are kept (a spec without a
  // gateway), the others are built. Throws std::runtime_error when one
  // cannot be built.
  std::vector<delivery::GatewaySpec> gateway_specs(const Config& next, const Config* running) {
    std::vector<delivery::GatewaySpec> specs;
    for (const auto& g : next.gateways) {
      delivery::GatewaySpec spec{g.name, nullptr, g.rate_per_s, g.max_in_flight};
      bool keep = false;
      if (running)
        for (const auto& r : running->gateways)
          keep = keep || (r.name == g.name && same_gateway(r, g, running->server.public_url,
                                                           next.server.public_url));
      if (!keep) spec.gateway = delivery::make_gateway(
          g, {io_, *http_, clock_, next.server.public_url, unsubscribe_key(next)});
      specs.push_back(std::move(spec));
    }
    return specs;
  }

  // Reloads run one at a time, in the order asked (SIGHUP, POST /-/reload):
  // each waits for the store's verdict on its key file, and the next one
  // compares with what the previous one left running.
  void reload(std::string trigger, Api::ReloadDone done) {
    reloads_.emplace_back(std::move(trigger), std::move(done));
    if (reloads_.size() == 1) run_reload();
  }

  void run_reload() {
    std::string trigger = reloads_.front().first;
    apply_reload(trigger, [this](Api::ReloadOutcome outcome) {
      auto done = std::move(reloads_.front().second);
      reloads_.pop_front();
      done(std::move(outcome));
      if (!reloads_.empty()) run_reload();
    });
  }

  // Re-reads the config file, all or nothing: groups, templates,
  // coordinators, admin tokens, dedup and delivery rules, log format, the
  // key file, and gateways (added, removed, changed, limits, failover
  // order; see Dispatcher::reconfigure for what running gateways keep).
  // Requests already being answered finish with the config they started
  // with; the next ones see the new one. An invalid file, a gateway that
  // cannot be built, or a key file that does not fit the database keeps
  // the running config entirely and says why; `done` is called once it is
  // applied or refused. Settings that need a restart (listen address,
  // storage path) are named and keep their running values. Everything the
  // config file determines is re-derived here, so that a new reloadable
  // part is one more check before the commit below.
  void apply_reload(const std::string& trigger, Api::ReloadDone done) {
    const Config& running = config_->config;
    Api::ReloadOutcome outcome;
    auto loaded = load_config(running.source);
    std::vector<delivery::GatewaySpec> specs;
    if (loaded.ok()) {
      try {
        specs = gateway_specs(loaded.config, &running);
      } catch (const std::exception& e) {
        loaded.problems.push_back({"gateways", e.what()});
      }
    }
    if (!loaded.ok()) return refuse_reload(trigger, std::move(loaded.problems), done);
    log_warnings(running.source, loaded.warnings);
    outcome.changes = compare_configs(running, loaded.config);
    auto next = std::make_shared<Config>(keep_restart_settings(running, std::move(loaded.config)));
    next->source = running.source;
    auto gateways = std::make_shared<std::vector<delivery::GatewaySpec>>(std::move(specs));
    // The store takes the key file only if it reads the database's rows
    // (Store::set_keyring; the running keys stay otherwise), so its verdict
    // comes before anything of the file applies. The verdict stands even if
    // the transaction it ran in fails to commit: on a reload set_keyring
    // writes nothing (its check row is written when the store opens). Only a
    // check that did not run (the store cannot begin) refuses with 503.
    struct Verdict {
      bool checked = false;
      std::string refused;  // why the key file does not fit, or ""
    };
    auto verdict = std::make_shared<Verdict>();
    worker_->submit(
        [keyring = next->storage.keyring, verdict](store::Store& s) {
          try {
            s.set_keyring(keyring);
          } catch (const std::exception& e) {
            verdict->refused = e.what();
            verdict->checked = true;
            throw;  // roll the job back
          }
          verdict->checked = true;
        },
        [this, trigger, next, gateways, verdict, outcome, done](bool) mutable {
          if (!verdict->checked) {
            metrics_.config_reload(false);
            spdlog::error("reload ({}) refused, keeping the running config: the store could not "
                          "check storage.key_file; retry", trigger);
            outcome.unavailable = true;
            return done(std::move(outcome));
          }
          if (!verdict->refused.empty())
            return refuse_reload(
                trigger, {{"storage.key_file", "does not fit the database: " + verdict->refused}},
                done);
          // Commit: nothing below can fail.
          config_ = std::make_shared<const ActiveConfig>(std::move(*next));
          dispatcher_->reconfigure(dispatcher_options(config_->config), std::move(*gateways));
          use_log_format(config_->config.log.json);
          metrics_.config_reload(true);
          spdlog::info("config reloaded from {} ({}): changed: {}", config_->config.source,
                       trigger, join(outcome.changes.applied));
          spdlog::info("key file reloaded: key {} encrypts",
                       config_->config.storage.keyring->active_id());
          if (!outcome.changes.restart_required.empty())
            spdlog::warn("reload: {} changed but needs a restart (systemctl restart tocsin); "
                         "still running with the old value",
                         join(outcome.changes.restart_required));
          reencrypt();  // a newer active key: re-encrypt under it
          done(std::move(outcome));
        });
  }

  void refuse_reload(const std::string& trigger, std::vector<FieldProblem> problems,
                     const Api::ReloadDone& done) {
    metrics_.config_reload(false);
    spdlog::error("reload ({}) refused, keeping the running config: {}", trigger,
                  problem_lines(config_->config.source, problems));
    Api::ReloadOutcome outcome;
    outcome.problems = std::move(problems);
    done(std::move(outcome));
  }

  // Re-encrypts subscribers under the active key, a batch per store job,
  // until none is left (a no-op query when all are).
  void reencrypt(int64_t done_so_far = 0) {
    if (reencrypting_ && done_so_far == 0) return;  // a pass is running; it reads the new key
    reencrypting_ = true;
    worker_->call<int64_t>(
        [](store::Store& s) { return s.reencrypt_subscribers(kReencryptBatch); },
        [this, done_so_far](std::optional<int64_t> n) {
          if (!n) {
            reencrypting_ = false;
            spdlog::error("re-encryption stopped after {} subscribers; it resumes at the next "
                          "start or reload", done_so_far);
            return;
          }
          if (*n > 0) return reencrypt(done_so_far + *n);
          reencrypting_ = false;
          if (done_so_far > 0)
            spdlog::info("re-encrypted {} subscribers under the active key", done_so_far);
        });
  }

  // Under systemd's WatchdogSec= (WATCHDOG_USEC in the environment), pings
  // the watchdog every third of its interval, but only after a no-op store
  // job has gone through the store thread, committed, and come back through
  // the io loop: a wedged loop or a store that cannot commit stops the pings
  // and systemd restarts the daemon. The next probe waits for the previous
  // one, so a stuck store does not pile probes up.
  void start_watchdog() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    watchdog_interval_ = std::chrono::microseconds(usec / 3);
    spdlog::info("systemd watchdog: {} ms; pinging every {} ms while the store commits",
                 usec / 1000, usec / 3000);
    probe_store();
  }

  void probe_store() {
    worker_->submit([](store::Store&) {},
                    [this](bool committed) {
                      if (!committed) {
                        spdlog::warn("watchdog probe did not commit; not pinging");
                      } else {
                        sd_notify(0, "WATCHDOG=1");
                      }
                      watchdog_.expires_after(watchdog_interval_);
                      watchdog_.async_wait([this](boost::system::error_code ec) {
                        if (!ec) probe_store();
                      });
                    });
  }

  // A refused request: counted, and summarised by the next log_refusals().
  void refused(std::string_view route, int status) {
    metrics_.http_refused(route, status);
    refusals_.add(status);
  }

  // Logs what was refused since the last summary, if anything.
  void log_refusals() {
    const auto now = std::chrono::steady_clock::now();
    const auto elapsed = std::chrono::ceil<std::chrono::seconds>(now - last_refusal_summary_);
    last_refusal_summary_ = now;
    auto line = refusals_.take(static_cast<int>(std::max<int64_t>(1, elapsed.count())));
    if (!line.empty()) spdlog::warn("{}", line);
  }

  // At most one line per log.refused_summary_s, and none when nothing was
  // refused.
  void schedule_refusal_summary() {
    refusal_timer_.expires_after(std::chrono::seconds(config_->config.log.refused_summary_s));
    refusal_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      log_refusals();
      schedule_refusal_summary();
    });
  }

  int64_t events_keep_ms() const {
    return static_cast<int64_t>(config_->config.retention.provider_events_days * 86400e3);
  }

  // Hourly, or every quarter of a shorter retention (at least each second).
  void schedule_housekeeping() {
    auto retention_ms = std::min(
        static_cast<int64_t>(config_->config.retention.deliveries_days * 86400e3), events_keep_ms());
    housekeeping_.expires_after(std::chrono::milliseconds(
        std::clamp<int64_t>(retention_ms / 4, 1000, 3600 * 1000)));
    housekeeping_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      UnixMs now = clock_.now_ms();
      worker_->submit(
          [now, events_keep = events_keep_ms()](store::Store& s) {
            s.purge_answers(now - kIdempotencyKeepMs);
            s.purge_audit(now - kAuditKeepMs);
            s.purge_events(now - events_keep);
            s.purge_join_requests(now - kJoinRequestKeepMs);
          },
          [](bool) {});
      purge_expired();
      schedule_housekeeping();
    });
  }

  // Escalation timers (README "Safety rules") are rows in the store, so a
  // restart neither loses nor repeats one: each second a store job ends the
  // due ones, each once, in the same transaction as what they send.
  void schedule_escalations() {
    escalations_.expires_after(kEscalationPoll);
    escalations_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      auto cfg = config_;
      // Without an escalate rule no timer is started, and none that is
      // stored can fire (it would end as dropped): no job, no write lock.
      if (std::none_of(cfg->config.groups.begin(), cfg->config.groups.end(),
                       [](const Group& g) { return g.escalate.has_value(); }))
        return schedule_escalations();
      UnixMs now = clock_.now_ms();
      worker_->call<SafetySteps>(
          [cfg, now](store::Store& s) {
            return run_due_escalations(s, cfg->config, cfg->templates, now);
          },
          [this](std::optional<SafetySteps> steps) {
            if (!steps) spdlog::error("escalation timers not processed; trying again in a second");
            if (steps && steps->escalated + steps->held > 0) {
              spdlog::info("escalation: {} timer(s) fired, {} group(s) held, {} deliveries",
                           steps->escalated, steps->held, steps->recipients);
              metrics_.safety_step("escalated", steps->escalated);
              metrics_.safety_step("held", steps->held);
            }
            if (steps && steps->recipients > 0) dispatcher_->kick();
            schedule_escalations();
          });
    });
  }

  // Retention: deliveries, texts and report bodies older than
  // retention.deliveries_days, in batches.
  void purge_expired(int64_t done_so_far = 0) {
    auto retention_ms = static_cast<int64_t>(config_->config.retention.deliveries_days * 86400e3);
    UnixMs before = clock_.now_ms() - retention_ms;
    worker_->call<int64_t>(
        [before](store::Store& s) { return s.purge_deliveries(before, kPurgeBatch); },
        [this, done_so_far](std::optional<int64_t> n) {
          if (n && *n == kPurgeBatch) return purge_expired(done_so_far + *n);
          if (!n) spdlog::error("retention purge failed; it runs again at the next housekeeping");
          if (done_so_far + n.value_or(0) > 0)
            spdlog::info("retention: {} deliveries older than {} days deleted (counts kept)",
                         done_so_far + n.value_or(0), config_->config.retention.deliveries_days);
        });
  }

  std::shared_ptr<const ActiveConfig> config_;  // swapped on reload; io thread only
  SystemClock clock_;
  Metrics metrics_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_, SIGTERM, SIGINT, SIGHUP};
  boost::asio::steady_timer housekeeping_{io_};
  boost::asio::steady_timer escalations_{io_};
  boost::asio::steady_timer refusal_timer_{io_};
  RefusalTally refusals_;
  std::chrono::steady_clock::time_point last_refusal_summary_ = std::chrono::steady_clock::now();
  boost::asio::steady_timer watchdog_{io_};
  boost::asio::steady_timer stop_wait_{io_};
  std::chrono::microseconds watchdog_interval_{0};
  bool reencrypting_ = false;  // a re-encryption pass is under way
  // Reloads asked for, the first one running (see reload()).
  std::deque<std::pair<std::string, Api::ReloadDone>> reloads_;
  std::unique_ptr<store::StoreWorker> worker_;
  std::unique_ptr<delivery::CurlHttpClient> http_;
  std::unique_ptr<delivery::Dispatcher> dispatcher_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<http::Server> server_;
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
