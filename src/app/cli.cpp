#include "app/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "app/config.h"
#include "app/daemon.h"
#include "app/files.h"
#include "app/import_command.h"
#include "app/log_format.h"
#include "app/keys.h"
#include "app/store_copy.h"
#include "app/route.h"
#include "app/users_command.h"
#include "core/signature.h"
#include "delivery/http_client.h"

namespace tocsin::app {
namespace {

// Exit codes (documented in the README).
constexpr int kOk = 0;
constexpr int kFailed = 1;       // the operation failed (refused report, daemon start-up error)
constexpr int kUsage = 2;        // bad arguments or invalid config

void setup_logging() {
  auto logger = spdlog::stderr_color_mt("tocsin");
  spdlog::set_default_logger(logger);
  use_log_format(/*json=*/false);  // serve switches to its config's log.format
  if (const char* level = std::getenv("TOCSIN_LOG_LEVEL"))
    spdlog::set_level(spdlog::level::from_str(level));
}

int check_config(const std::string& path) {
  auto result = load_config(path);
  for (const auto& p : result.problems)
    std::fprintf(stdout, "%s: %s: %s\n", path.c_str(), p.path.empty() ? "$" : p.path.c_str(),
                 p.message.c_str());
  // Warnings are marked as such and do not change the exit code.
  for (const auto& w : result.warnings)
    std::fprintf(stdout, "%s: %s: warning: %s\n", path.c_str(), w.path.c_str(), w.message.c_str());
  if (!result.ok()) return kUsage;
  std::string areas;
  if (const auto& shapes = result.config.areas.shapes)
    areas = ", " + std::to_string(shapes->areas().size()) + " area shapes";
  std::fprintf(stdout, "%s: ok (%zu coordinators, %zu groups, %zu gateways%s)\n", path.c_str(),
               result.config.coordinators.size(), result.config.groups.size(),
               result.config.gateways.size(), areas.c_str());
  return kOk;
}

// One request, synchronously, through the same client the daemon uses.
delivery::OutboundResponse call(delivery::OutboundRequest req) {
  boost::asio::io_context io;
  delivery::BeastHttpClient client(io);
  delivery::OutboundResponse response;
  client.send(std::move(req), [&](delivery::OutboundResponse r) { response = std::move(r); });
  io.run();
  return response;
}

std::string base_url(std::string url) {
  while (url.ends_with('/')) url.pop_back();
  return url;
}

std::optional<std::string> read_token(const std::string& token_file) {
  auto token = read_file(token_file);
  if (!token) return std::nullopt;
  return trim(*token);
}

// `tocsin deliveries`: counts by channel, state and gateway; with `retry`,
// failed and expired deliveries are queued again.
int deliveries(const std::string& url, const std::string& token_file, const std::string& incident,
               bool retry) {
  auto token = read_token(token_file);
  if (!token || token->empty()) {
    std::fprintf(stderr, "tocsin deliveries: cannot read a token from %s\n", token_file.c_str());
    return kUsage;
  }
  delivery::OutboundRequest req;
  req.method = retry ? "POST" : "GET";
  req.url = base_url(url) + "/v1/incidents/" + incident + (retry ? "/retry" : "");
  req.headers = {{"Authorization", "Bearer " + *token}};
  auto r = call(std::move(req));
  if (r.status == 0) {
    std::fprintf(stderr, "tocsin deliveries: %s: %s\n", url.c_str(), r.error.c_str());
    return kFailed;
  }
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object()) {
    std::fprintf(stderr, "tocsin deliveries: %d %s\n", r.status, r.body.c_str());
    return kFailed;
  }
  if (retry) {
    std::printf("incident %s: %lld deliveries queued again\n", incident.c_str(),
                static_cast<long long>(j.value("requeued", 0)));
    return kOk;
  }
  std::printf("incident %s (%s, %s)\n", j.value("id", "").c_str(), j.value("state", "").c_str(),
              j.value("event", "").c_str());
  std::printf("%-8s %-12s %8s\n", "channel", "state", "count");
  for (auto& [channel, states] : j["deliveries"].items())
    for (auto& [state, n] : states.items())
      std::printf("%-8s %-12s %8lld\n", channel.c_str(), state.c_str(), n.get<long long>());
  std::printf("\n%-24s %-12s %8s\n", "gateway", "state", "count");
  for (auto& [gateway, states] : j["deliveries_by_gateway"].items())
    for (auto& [state, n] : states.items())
      std::printf("%-24s %-12s %8lld\n", gateway.c_str(), state.c_str(), n.get<long long>());
  return kOk;
}

int submit(const std::string& url, const std::string& secret_file, const std::string& report_file,
           std::string id) {
  auto secret = read_file(secret_file);
  if (!secret) {
    std::fprintf(stderr, "tocsin submit: cannot read %s\n", secret_file.c_str());
    return kUsage;
  }
  auto key = decode_webhook_secret(trim(*secret));
  if (!key) {
    std::fprintf(stderr, "tocsin submit: %s does not hold a whsec_<base64> secret\n",
                 secret_file.c_str());
    return kUsage;
  }
  auto body = read_file(report_file);
  if (!body) {
    std::fprintf(stderr, "tocsin submit: cannot read %s\n", report_file.c_str());
    return kUsage;
  }
  if (id.empty()) {
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof buf, "msg_%08x%08x%08x", rd(), rd(), rd());
    id = buf;
  }
  int64_t ts = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  delivery::OutboundRequest req;
  req.url = base_url(url);
  if (!req.url.ends_with("/v1/reports")) req.url += "/v1/reports";
  req.headers = {{"Content-Type", "application/json"},
                 {"webhook-id", id},
                 {"webhook-timestamp", std::to_string(ts)},
                 {"webhook-signature", sign_webhook(*key, id, ts, *body)}};
  req.body = std::move(*body);
  auto response = call(std::move(req));
  if (response.status == 0) {
    std::fprintf(stderr, "tocsin submit: %s: %s\n", url.c_str(), response.error.c_str());
    return kFailed;
  }
  std::fprintf(stdout, "%d %s\n", response.status, response.body.c_str());
  return response.status >= 200 && response.status < 300 ? kOk : kFailed;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"tocsin: rapid-response alert dispatcher", "tocsin"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 ok, 1 failed, 2 usage or invalid config. See README.md.");

  std::string config_path;
  auto* serve_cmd = app.add_subcommand("serve", "Run the daemon in the foreground (systemd Type=notify)");
  serve_cmd->add_option("--config", config_path, "Config file (JSON, // comments allowed)")->required();
  serve_cmd->footer("Example: tocsin serve --config /etc/tocsin/tocsin.json");

  auto* check_cmd = app.add_subcommand("check-config", "Validate a config file; print every problem");
  check_cmd->add_option("--config", config_path, "Config file")->required();
  check_cmd->footer("Prints FILE: json.path: problem per line; exit 0 when valid, 2 when not.\n"
                    "Warnings (FILE: json.path: warning: ...) do not fail the check.\n"
                    "Example: tocsin check-config --config config/example.json");

  std::string url, secret_file, report_file, id;
  auto* submit_cmd = app.add_subcommand("submit", "Sign and post a report as a coordinator would");
  submit_cmd->add_option("--url", url, "tocsin base URL, e.g. http://127.0.0.1:8080")->required();
  submit_cmd->add_option("--secret-file", secret_file, "File holding the coordinator's whsec_ secret")
      ->required();
  submit_cmd->add_option("--id", id, "webhook-id (idempotency key); random when omitted");
  submit_cmd->add_option("REPORT.json", report_file, "The report body")->required();
  submit_cmd->footer(
      "Example: tocsin submit --url http://127.0.0.1:8080 --secret-file config/demo-coordinator.secret "
      "config/example-report.json");

  std::string token_file, incident;
  auto* deliveries_cmd =
      app.add_subcommand("deliveries", "Delivery counts of an incident, by channel, state and gateway");
  deliveries_cmd->add_option("--url", url, "tocsin base URL, e.g. http://127.0.0.1:8080")->required();
  deliveries_cmd->add_option("--token-file", token_file, "File holding an admin token")->required();
  deliveries_cmd->add_option("--incident", incident, "Incident code, e.g. A72WYM")->required();
  deliveries_cmd->footer(
      "Example: tocsin deliveries --url http://127.0.0.1:8080 --token-file /etc/tocsin/admin.token "
      "--incident A72WYM");
  auto* retry_cmd = deliveries_cmd->add_subcommand(
      "retry", "Queue the incident's failed and expired deliveries again, with a fresh deadline");
  retry_cmd->fallthrough();  // "deliveries retry --incident ID" as well as "... --incident ID retry"
  retry_cmd->footer(
      "Example: tocsin deliveries --url http://127.0.0.1:8080 --token-file /etc/tocsin/admin.token "
      "--incident A72WYM retry");

  std::string route_report;
  auto* route_cmd = app.add_subcommand(
      "route", "Dry run: the groups, subscribers per channel and language, and messages of a report");
  route_cmd->add_option("--config", config_path, "Config file")->required();
  route_cmd->add_option("REPORT.json", route_report, "The report body")->required();
  std::string route_svg;
  route_cmd->add_option("--svg", route_svg,
                        "Write an SVG picture of the area shapes and the report's point to this file");
  route_cmd->footer("Sends nothing and changes nothing; reads the database beside a running daemon.\n"
                    "Example: tocsin route --config config/example.json config/example-report.json");

  ImportOptions import_opts;
  auto* subscribers_cmd =
      app.add_subcommand("subscribers", "Manage subscribers through the admin API");
  subscribers_cmd->require_subcommand(1);
  auto* import_cmd = subscribers_cmd->add_subcommand(
      "import", "Upsert subscribers from a CSV file (by phone or email), in batches");
  import_cmd->add_option("--url", import_opts.url, "tocsin base URL, e.g. http://127.0.0.1:8080")
      ->required();
  import_cmd->add_option("--token-file", import_opts.token_file, "File holding an admin token")
      ->required();
  import_cmd->add_flag("--dry-run", import_opts.dry_run,
                       "Check and classify every row, store nothing");
  import_cmd->add_option("--batch", import_opts.batch, "Rows per request (1-1000)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  import_cmd
      ->add_option("FILE.csv", import_opts.csv_path,
                   "Header row naming columns name, phone, email, language, groups, channels")
      ->required();
  import_cmd->footer(
      "groups and channels cells list several values separated by ';' (eastside;lawyers).\n"
      "Prints FILE:LINE: field: reason for each refused row, then a summary.\n"
      "Exit 0 when every row went in, 1 when some were refused, 2 on a bad file or arguments.\n"
      "Example: tocsin subscribers import --url http://127.0.0.1:8080 "
      "--token-file /etc/tocsin/admin.token people.csv");

  std::string key_file;
  auto* keys_cmd = app.add_subcommand("keys", "The key file that encrypts subscribers' data at rest");
  keys_cmd->require_subcommand(1);
  auto* generate_cmd = keys_cmd->add_subcommand("generate", "Write a new key file (mode 0600)");
  generate_cmd->add_option("FILE", key_file, "The key file to create; an existing file is refused")
      ->required();
  generate_cmd->footer("Example: tocsin keys generate /etc/tocsin/secrets/tocsin.key");
  auto* rotate_cmd = keys_cmd->add_subcommand(
      "rotate", "Add a new encryption key; re-encrypt every subscriber under it");
  rotate_cmd->add_option("FILE", key_file, "The key file (or give --config)");
  rotate_cmd->add_option("--config", config_path,
                         "Config file: rotate its storage.key_file and, when no daemon runs, "
                         "re-encrypt its database now");
  rotate_cmd->footer(
      "A running daemon re-encrypts in the background once it reads the new key (reload; under\n"
      "systemd a restart, since credentials are copied at start). See README \"Privacy\".\n"
      "Example: tocsin keys rotate /etc/tocsin/secrets/tocsin.key && systemctl restart tocsin");

  UsersOptions users_opts;
  auto* users_cmd = app.add_subcommand("users", "Console accounts (README \"Console\")");
  users_cmd->require_subcommand(1);
  auto* users_add = users_cmd->add_subcommand("add", "Add a person; prints a one-time enrolment link");
  users_add->add_option("--config", users_opts.config_path, "Config file")->required();
  users_add->add_option("NAME", users_opts.name, "Login name (1-16 letters, digits, - or _)")
      ->required();
  users_add->add_option("--role", users_opts.role, "coordinator, verifier or admin")->required();
  users_add->add_option("--coordinator", users_opts.coordinator,
                        "The configured coordinator they act for (required for a coordinator)");
  users_add->footer("Example: tocsin users add --config /etc/tocsin/tocsin.json maria "
                    "--role coordinator --coordinator la-hotline");
  auto* users_list = users_cmd->add_subcommand("list", "List console users and their state");
  users_list->add_option("--config", users_opts.config_path, "Config file")->required();
  auto* users_disable =
      users_cmd->add_subcommand("disable", "Disable a person and end their sessions");
  users_disable->add_option("--config", users_opts.config_path, "Config file")->required();
  users_disable->add_option("NAME", users_opts.name, "Login name")->required();
  auto* users_reset = users_cmd->add_subcommand(
      "reset", "Clear passphrase and second factor, end sessions, print a new enrolment link");
  users_reset->add_option("--config", users_opts.config_path, "Config file")->required();
  users_reset->add_option("NAME", users_opts.name, "Login name")->required();

  std::string copy_from, copy_to;
  auto* store_cmd = app.add_subcommand("store", "The store itself");
  store_cmd->require_subcommand(1);
  auto* copy_cmd = store_cmd->add_subcommand(
      "copy", "Copy a SQLite store into an empty PostgreSQL one (moving up to several instances)");
  copy_cmd->add_option("--from", copy_from, "Config whose storage.sqlite is copied")->required();
  copy_cmd->add_option("--to", copy_to, "Config whose storage.postgresql receives it")->required();
  copy_cmd->footer(
      "Stop the SQLite daemon first (what it writes after the copy's snapshot is not copied),\n"
      "give both configs the same key file, then start the instances on the PostgreSQL config.\n"
      "Example: tocsin store copy --from /etc/tocsin/tocsin.json --to /etc/tocsin/cluster.json");
  auto* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  if (*version_cmd) {
    std::printf("tocsin %s\n", TOCSIN_VERSION);
    return kOk;
  }
  if (*check_cmd) return check_config(config_path);
  if (*users_cmd) {
    users_opts.action = *users_add ? "add" : *users_list ? "list" : *users_disable ? "disable" : "reset";
    return users_command(users_opts);
  }
  if (*copy_cmd) return store_copy(copy_from, copy_to);
  if (*generate_cmd) return keys_generate(key_file);
  if (*rotate_cmd) return keys_rotate(key_file, config_path);
  if (*route_cmd) return route(config_path, route_report, route_svg);
  if (*submit_cmd) return submit(url, secret_file, report_file, id);
  if (*import_cmd) return import_subscribers(import_opts);
  if (*deliveries_cmd) return deliveries(url, token_file, incident, static_cast<bool>(*retry_cmd));
  if (*serve_cmd) {
    setup_logging();
    return serve(config_path);
  }
  return kUsage;
}

}  // namespace tocsin::app
