#include "app/reloader.h"

#include <spdlog/spdlog.h>

#include "app/log_format.h"
#include "app/reload.h"
#include "delivery/gateways/gateways.h"

namespace tocsin::app {
namespace {

std::string problem_lines(const std::string& file, const std::vector<FieldProblem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += "; ";
    out += file;
    out += ": ";
    out += p.path.empty() ? "$" : p.path;
    out += ": ";
    out += p.message;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += "; ";
    out += p;
  }
  return out.empty() ? "nothing" : out;
}

}  // namespace

delivery::DispatcherOptions dispatcher_options(const Config& c) {
  delivery::DispatcherOptions o;
  o.lease = std::chrono::seconds(c.delivery.lease_s);
  o.backoff.cap = std::chrono::seconds(c.delivery.max_retry_delay_s);
  o.breaker_threshold = c.delivery.breaker_threshold;
  o.breaker_cooldown = std::chrono::seconds(c.delivery.breaker_cooldown_s);
  o.max_unrecorded = static_cast<std::size_t>(c.delivery.max_unrecorded);
  return o;
}

void log_warnings(const std::string& file, const std::vector<FieldProblem>& warnings) {
  for (const auto& w : warnings) spdlog::warn("{}: {}: {}", file, w.path, w.message);
}

std::vector<delivery::GatewaySpec> Reloader::gateway_specs(const Config& next, const Config* running) {
  std::vector<delivery::GatewaySpec> specs;
  for (const auto& g : next.gateways) {
    delivery::GatewaySpec spec{g.name, nullptr, g.rate_per_s, g.max_in_flight};
    bool keep = false;
    if (running)
      for (const auto& r : running->gateways)
        keep = keep || (r.name == g.name && same_gateway(r, g, running->server.public_url,
                                                         next.server.public_url));
    if (!keep)
      spec.gateway = delivery::make_gateway(
          g, {p_.io, p_.http, p_.clock, next.server.public_url, unsubscribe_key(next)});
    specs.push_back(std::move(spec));
  }
  return specs;
}

void Reloader::reload(std::string trigger, Api::ReloadDone done) {
  queue_.emplace_back(std::move(trigger), std::move(done));
  if (queue_.size() == 1) run_next();
}

void Reloader::run_next() {
  std::string trigger = queue_.front().first;
  apply(trigger, [this](Api::ReloadOutcome outcome) {
    auto done = std::move(queue_.front().second);
    queue_.pop_front();
    done(std::move(outcome));
    if (!queue_.empty()) run_next();
  });
}

// Groups, templates, coordinators, admin tokens, dedup and delivery rules,
// log format, the key file, and gateways (added, removed, changed, limits,
// failover order; see Dispatcher::reconfigure for what running gateways
// keep). Requests already being answered finish with the config they
// started with; the next ones see the new one. An invalid file, a gateway
// that cannot be built, or a key file that does not fit the database keeps
// the running config entirely and says why; `done` is called once it is
// applied or refused. Settings that need a restart (listen address, storage
// path) are named and keep their running values. Everything the config file
// determines is re-derived here, so that a new reloadable part is one more
// check before the commit below.
void Reloader::apply(const std::string& trigger, Api::ReloadDone done) {
  const Config& running = p_.config->config;
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
  if (!loaded.ok()) return refuse(trigger, std::move(loaded.problems), done);
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
  p_.worker.submit(
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
          p_.metrics.config_reload(false);
          spdlog::error("reload ({}) refused, keeping the running config: the store could not "
                        "check storage.key_file; retry", trigger);
          outcome.unavailable = true;
          return done(std::move(outcome));
        }
        if (!verdict->refused.empty())
          return refuse(trigger,
                        {{"storage.key_file", "does not fit the database: " + verdict->refused}},
                        done);
        // Commit: nothing below can fail.
        p_.config = std::make_shared<const ActiveConfig>(std::move(*next));
        const Config& now = p_.config->config;
        p_.reconfigure(dispatcher_options(now), std::move(*gateways));
        use_log_format(now.log.json);
        p_.metrics.config_reload(true);
        spdlog::info("config reloaded from {} ({}): changed: {}", now.source, trigger,
                     join(outcome.changes.applied));
        spdlog::info("key file reloaded: key {} encrypts", now.storage.keyring->active_id());
        if (!outcome.changes.restart_required.empty())
          spdlog::warn("reload: {} changed but needs a restart (systemctl restart tocsin); "
                       "still running with the old value",
                       join(outcome.changes.restart_required));
        p_.reencrypt();
        done(std::move(outcome));
      });
}

void Reloader::refuse(const std::string& trigger, std::vector<FieldProblem> problems,
                      const Api::ReloadDone& done) {
  p_.metrics.config_reload(false);
  spdlog::error("reload ({}) refused, keeping the running config: {}", trigger,
                problem_lines(p_.config->config.source, problems));
  Api::ReloadOutcome outcome;
  outcome.problems = std::move(problems);
  done(std::move(outcome));
}

}  // namespace tocsin::app
