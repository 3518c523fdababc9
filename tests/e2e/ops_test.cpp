// Operations, end to end: what systemd sees of the real daemon (sd_notify
// readiness and watchdog pings), what Prometheus sees (/metrics), config
// reloads (SIGHUP, POST /-/reload) under traffic, and JSON log lines.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/fixture.h"
#include "support/keys.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A datagram socket in a temporary directory, standing in for systemd's
// NOTIFY_SOCKET: collects the lines of every sd_notify message it gets.
class NotifySocket {
 public:
  NotifySocket() : path_((dir_.path() / "notify").string()) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(addr.sun_path));
    std::copy(path_.begin(), path_.end(), addr.sun_path);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    timeval tv{0, 50'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }

  // Every message line received within `within`, in order.
  std::vector<std::string> collect(std::chrono::milliseconds within) {
    std::vector<std::string> lines;
    auto until = std::chrono::steady_clock::now() + within;
    char buf[4096];
    while (std::chrono::steady_clock::now() < until) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      std::string msg(buf, static_cast<std::size_t>(n));
      std::size_t start = 0;
      while (start < msg.size()) {
        auto end = msg.find('\n', start);
        if (end == std::string::npos) end = msg.size();
        lines.push_back(msg.substr(start, end - start));
        start = end + 1;
      }
    }
    return lines;
  }

 private:
  TempDir dir_{"tocsin-notify"};
  std::string path_;
  int fd_ = -1;
};

std::size_t count(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
}

// One scrape of /metrics (Prometheus text format), by sample.
class Scrape {
 public:
  using Labels = std::map<std::string, std::string>;

  explicit Scrape(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      auto brace = line.find('{');
      auto space = line.rfind(' ');
      REQUIRE(space != std::string::npos);
      std::string name = line.substr(0, std::min(brace, space));
      Labels labels;
      if (brace != std::string::npos && brace < space) {
        std::string inner = line.substr(brace + 1, line.rfind('}') - brace - 1);
        std::size_t pos = 0;
        while (pos < inner.size()) {  // k="v",k="v" (our values have no quotes)
          auto eq = inner.find("=\"", pos);
          auto close = inner.find('"', eq + 2);
          labels[inner.substr(pos, eq - pos)] = inner.substr(eq + 2, close - eq - 2);
          pos = close + 2;
        }
      }
      samples_[{name, labels}] = std::stod(line.substr(space + 1));
    }
  }

  // The sample's value, or nullopt when it is absent.
  std::optional<double> get(const std::string& name, const Labels& labels = {}) const {
    auto it = samples_.find({name, labels});
    if (it == samples_.end()) return std::nullopt;
    return it->second;
  }
  // The value, 0 when absent (a counter no event has created yet).
  double counter(const std::string& name, const Labels& labels = {}) const {
    return get(name, labels).value_or(0);
  }
  // The sum over every sample of `name`.
  double sum(const std::string& name) const {
    double total = 0;
    for (const auto& [key, v] : samples_)
      if (key.first == name) total += v;
    return total;
  }

 private:
  std::map<std::pair<std::string, Labels>, double> samples_;
};

Scrape scrape(const std::string& url) {
  auto r = get(url + "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  return Scrape(r.body);
}

}  // namespace

TEST_CASE("watchdog pings follow store progress, and stop while the store cannot commit",
          "[e2e][ops]") {
  Gateways gw;
  NotifySocket notify;
  Daemon d(test_config(gw),
           Daemon::Options{.env = {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "300000"}}});
  d.start();
  auto first = notify.collect(1000ms);
  CHECK(count(first, "READY=1") == 1);
  // Every 100 ms: about 10 in a second; at least a few on a loaded machine.
  CHECK(count(first, "WATCHDOG=1") >= 4);

  // Another process holds the database's write lock: the store waits for
  // it (busy_timeout), then cannot commit ("database is locked"), so probes
  // do not come back and pings stop.
  OutsideWriteLock lock(d);
  notify.collect(300ms);  // a probe that had already committed may still ping
  auto blocked = notify.collect(1500ms);
  CHECK(count(blocked, "WATCHDOG=1") == 0);
  lock.release();

  auto resumed = notify.collect(1000ms);
  CHECK(count(resumed, "WATCHDOG=1") >= 3);
  CHECK(d.log().find("systemd watchdog: 300 ms") != std::string::npos);
}

TEST_CASE("the store waits for a short write lock held by another process instead of failing",
          "[e2e][ops][busy]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(31)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(32)}, {"groups", {"eastside"}}}});
  // Warm: a report accepted and sent, so the store's statements have run.
  REQUIRE(post_report(d.url(), report_body().dump()).status == 202);
  REQUIRE(gw.twilio.wait_for(2, 10s));
  REQUIRE(settled(d));  // its results recorded; the dispatcher idle

  // Another process holds the write lock for 300 ms while a report arrives.
  OutsideWriteLock lock(d);
  const auto locked_at = std::chrono::steady_clock::now();
  lock.release_after(300ms);
  auto r = post_report(d.url(), report_body({{"area", "la/east-la"}, {"location", nullptr}}).dump());
  const auto waited = std::chrono::steady_clock::now() - locked_at;
  lock.release();
  CHECK(r.status == 202);  // not 503: the store waited for the lock
  CHECK(waited >= 250ms);  // and it did wait (the lock was there)
  CHECK(d.log().find("database is locked") == std::string::npos);
  // Its deliveries go out.
  REQUIRE(r.status == 202);
  CHECK(r.json()["recipients"] == 2);
  CHECK(gw.twilio.wait_for(4, 10s));
}

TEST_CASE("without a systemd watchdog the daemon sends readiness only", "[e2e][ops]") {
  Gateways gw;
  NotifySocket notify;
  Daemon d(test_config(gw), Daemon::Options{.env = {{"NOTIFY_SOCKET", notify.path()}}});
  d.start();
  auto lines = notify.collect(800ms);
  CHECK(count(lines, "READY=1") == 1);
  CHECK(count(lines, "WATCHDOG=1") == 0);
}

TEST_CASE("/metrics: every gateway's counters are at 0 right after start", "[e2e][ops]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  auto m = scrape(d.url());
  for (const std::string gateway : {"twilio-main", "sendgrid"}) {
    const std::string channel = gateway == "sendgrid" ? "email" : "sms";
    INFO(gateway);
    for (const std::string state : {"sent", "failed", "expired"})
      CHECK(m.get("tocsin_deliveries_total",
                  {{"gateway", gateway}, {"channel", channel}, {"state", state}}) == 0.0);
    CHECK(m.get("tocsin_delivery_retries_total", {{"gateway", gateway}, {"channel", channel}}) == 0.0);
  }
  CHECK(m.get("tocsin_deliveries_total", {{"gateway", "none"}, {"channel", "sms"}, {"state", "expired"}}) == 0.0);
  CHECK(m.get("tocsin_config_reloads_total", {{"result", "ok"}}) == 0.0);
  CHECK(m.get("tocsin_config_reloads_total", {{"result", "refused"}}) == 0.0);
  CHECK(m.get("tocsin_reports_total", {{"outcome", "new_incident"}, {"status", "202"}}) == 0.0);
}

TEST_CASE("/metrics: report outcomes and deliveries match what the emulators received",
          "[e2e][ops]") {
  Gateways gw;
  gw.twilio.set_seed(11);
  gw.twilio.set_p_503(0.3);  // retries
  Daemon d(test_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 10; ++i)
    subs.push_back({{"phone", phone_for(200 + i)},
                    {"email", "m" + std::to_string(i) + "@example.org"},
                    {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  gw.twilio.set_twilio_error(phone_for(203), 21211);  // permanent: failed

  auto body = report_body().dump();
  auto alert = post_report(d.url(), body, kCoordinatorSecret, "msg_m1");
  REQUIRE(alert.status == 202);
  REQUIRE(alert.json()["outcome"] == "new_incident");
  std::string incident = alert.json()["incident_id"];
  CHECK(post_report(d.url(), body, kCoordinatorSecret, "msg_m2").json()["outcome"] == "merged");
  CHECK(post_report(d.url(), body, kCoordinatorSecret, "msg_m1").status == 202);  // replayed
  CHECK(post_report(d.url(), body, kOtherSecret).status == 403);  // sf-hotline, la area
  CHECK(post_report(d.url(), body, "whsec_d3Jvbmcta2V5LXdyb25nLWtleS0wMDAwMDA=").status == 401);
  CHECK(post_report(d.url(), report_body({{"severity", "bogus"}}).dump()).status == 422);
  auto update =
      post_report(d.url(), report_body({{"msg_type", "update"}, {"references", incident}}).dump());
  REQUIRE(update.status == 202);
  REQUIRE(update.json()["outcome"] == "update");
  const double planned =
      alert.json()["recipients"].get<double>() + update.json()["recipients"].get<double>();
  CHECK(planned == 40);  // 10 people, sms + email, alert + update

  // Every planned delivery ends (sent or failed) and its result is recorded.
  Scrape m("");
  eventually(
      [&] {
        m = scrape(d.url());
        return m.sum("tocsin_deliveries_total") >= planned &&
               m.get("tocsin_deliveries_pending") == 0.0;
      },
      20s);
  CHECK(m.sum("tocsin_deliveries_total") == planned);
  CHECK(m.get("tocsin_deliveries_pending") == 0.0);
  CHECK(m.get("tocsin_deliveries_in_flight") == 0.0);
  CHECK(m.get("tocsin_deliveries_held") == 0.0);
  CHECK(m.get("tocsin_store_queue_depth").has_value());

  auto sms = [&](const std::string& state) {
    return m.counter("tocsin_deliveries_total",
                     {{"gateway", "twilio-main"}, {"channel", "sms"}, {"state", state}});
  };
  CHECK(sms("sent") == static_cast<double>(gw.twilio.message_count()));
  CHECK(sms("sent") == 18);
  CHECK(sms("failed") == static_cast<double>(gw.twilio.count(400)));
  CHECK(sms("failed") == 2);
  CHECK(m.counter("tocsin_deliveries_total",
                  {{"gateway", "sendgrid"}, {"channel", "email"}, {"state", "sent"}}) ==
        static_cast<double>(gw.sendgrid.message_count()));
  CHECK(gw.sendgrid.message_count() == 20);
  CHECK(gw.twilio.count(503) > 0);
  CHECK(m.counter("tocsin_delivery_retries_total",
                  {{"gateway", "twilio-main"}, {"channel", "sms"}}) ==
        static_cast<double>(gw.twilio.count(503)));

  auto reports = [&](const std::string& outcome, const std::string& status) {
    return m.counter("tocsin_reports_total", {{"outcome", outcome}, {"status", status}});
  };
  CHECK(reports("new_incident", "202") == 1);
  CHECK(reports("merged", "202") == 1);
  CHECK(reports("replayed", "202") == 1);
  CHECK(reports("update", "202") == 1);
  CHECK(reports("refused", "401") == 1);
  CHECK(reports("refused", "403") == 1);
  CHECK(reports("refused", "422") == 1);
  CHECK(m.sum("tocsin_reports_total") == 7);
  // The replay (a captured request verifies for 5 minutes) has no line of
  // its own: it is counted, and in the periodic summary.
  CHECK(m.counter("tocsin_requests_ignored_total", {{"reason", "already_applied"}}) == 1);
  CHECK(d.log().find("report repeated") == std::string::npos);
}

namespace {

// SMS only: "eastside" is reached by reports in la/boyle-heights; "westside"
// (la/westwood) is not, until a reload adds la/boyle-heights to its match.
// The SMS text starts with `tag` and names the incident.
json reload_config(const Gateways& gw, const std::string& tag = "OLD") {
  json c = test_config(gw);
  c["groups"] = json::array(
      {{{"name", "eastside"}, {"match", {{"areas", {"la/boyle-heights"}}}}, {"channels", {"sms"}}},
       {{"name", "westside"}, {"match", {{"areas", {"la/westwood"}}}}, {"channels", {"sms"}}}});
  c["templates"] = {{"sms", {{"en", tag + " #{{incident}} {{headline}}"}}}};
  return c;
}

HttpResult post_reload(const std::string& url) { return admin("POST", url + "/-/reload"); }

// A report at its own place (`i` steps of ~1.1 km north), so it opens its own incident.
std::string distinct_report(int i) {
  return report_body({{"location", {{"lat", 34.0339 + 0.01 * i}, {"lon", -118.2107}}}}).dump();
}

std::vector<std::string> strings(const json& j) {
  std::vector<std::string> out;
  for (const auto& v : j) out.push_back(v.get<std::string>());
  return out;
}

// The messages that name incident `code` (#CODE in the text).
std::vector<ReceivedMessage> about(const std::vector<ReceivedMessage>& all, const std::string& code) {
  std::vector<ReceivedMessage> out;
  for (const auto& m : all)
    if (m.body.find("#" + code) != std::string::npos) out.push_back(m);
  return out;
}

}  // namespace

TEST_CASE("reload under load: a group and a template change, nothing is lost", "[e2e][ops][reload]") {
  Gateways gw;
  Daemon d(reload_config(gw));
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 4; ++i) subs.push_back({{"phone", phone_for(300 + i)}, {"groups", {"eastside"}}});
  for (int i = 0; i < 4; ++i) subs.push_back({{"phone", phone_for(400 + i)}, {"groups", {"westside"}}});
  add_subscribers(d.url(), subs);

  // Four coordinators' tools post reports continuously; the reload happens
  // in the middle of it.
  struct Sent {
    std::string incident;
    int recipients;
    std::chrono::steady_clock::time_point posted, answered;
  };
  std::mutex mu;
  std::vector<Sent> sent;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      while (!stop) {
        int i = next++;
        auto posted = std::chrono::steady_clock::now();
        auto r = post_report(d.url(), distinct_report(i));
        auto answered = std::chrono::steady_clock::now();
        if (r.status != 202 || r.json()["outcome"] != "new_incident") {
          ++refused;
          continue;
        }
        std::lock_guard lock(mu);
        sent.push_back({r.json()["incident_id"], r.json()["recipients"].get<int>(), posted, answered});
        std::this_thread::sleep_for(20ms);  // a steady stream, not a flood
      }
    });
  // Reports flow for a while before and after the reload: the test's input.
  std::this_thread::sleep_for(700ms);
  d.config() = reload_config(gw, "NEW");
  d.config()["groups"][1]["match"]["areas"].push_back("la/boyle-heights");
  d.write_config();
  auto reload_sent = std::chrono::steady_clock::now();
  auto reloaded = post_reload(d.url());
  auto reload_answered = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(700ms);
  stop = true;
  for (auto& t : threads) t.join();

  INFO(reloaded.body);
  REQUIRE(reloaded.status == 200);
  CHECK(strings(reloaded.json()["changed"]) == std::vector<std::string>{"groups", "templates"});
  CHECK(reloaded.json()["restart_required"].empty());
  CHECK(refused == 0);

  std::size_t planned = 0, before = 0, after = 0;
  for (const auto& s : sent) planned += static_cast<std::size_t>(s.recipients);
  REQUIRE(gw.twilio.wait_for(planned, 30s));
  REQUIRE(settled(d));
  auto messages = gw.twilio.messages();
  for (const auto& s : sent) {
    INFO("incident " << s.incident);
    auto got = about(messages, s.incident);
    // Every recipient of every accepted report got its message (at least once).
    std::set<std::string> to;
    for (const auto& m : got) to.insert(m.to);
    CHECK(to.size() == static_cast<std::size_t>(s.recipients));
    CHECK(got.size() >= to.size());
    if (s.answered < reload_sent) {  // accepted before the reload began: the old config
      ++before;
      CHECK(s.recipients == 4);
      for (const auto& m : got) CHECK(m.body.rfind("OLD #", 0) == 0);
    } else if (s.posted > reload_answered) {  // after it: the new group and template
      ++after;
      CHECK(s.recipients == 8);
      for (const auto& m : got) CHECK(m.body.rfind("NEW #", 0) == 0);
    }
  }
  CHECK(before >= 4);
  CHECK(after >= 4);
  CHECK(d.log().find("config reloaded from config.json (POST /-/reload): changed: groups; templates") !=
        std::string::npos);
}

TEST_CASE("reload: a gateway's base_url and rate change take effect, restart-only settings are named",
          "[e2e][ops][reload]") {
  Gateways gw;
  GatewayEmulator second;
  json config = reload_config(gw);
  config["gateways"][0]["max_in_flight"] = 4;
  Daemon d(config);
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 10; ++i) subs.push_back({{"phone", phone_for(500 + i)}, {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);

  // The first address holds every request for a while; the reload comes
  // while four are in flight there. The SMS provider moves to another
  // address, which allows 4 requests a second: the new rate keeps tocsin
  // under it (no 429).
  gw.twilio.set_stall(1.0, 1500ms);
  second.set_rate_limit(4);
  auto first = post_report(d.url(), distinct_report(0));
  REQUIRE(first.status == 202);
  REQUIRE(gw.twilio.wait_for([](const Observations& o) { return o.in_flight == 4; }, 10s));
  auto old_url = d.url();
  d.config()["gateways"][0]["base_url"] = second.base_url();
  d.config()["gateways"][0]["rate_per_s"] = 4;
  d.config()["gateways"][0]["max_in_flight"] = 16;
  d.config()["server"]["listen"] = "127.0.0.1:1";
  d.write_config();
  auto r = post_reload(d.url());
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(strings(r.json()["changed"]) ==
        std::vector<std::string>{"gateways.twilio-main: base_url, rate_per_s, max_in_flight"});
  CHECK(strings(r.json()["restart_required"]) == std::vector<std::string>{"server.listen"});
  CHECK(d.log().find("reload: server.listen changed but needs a restart") != std::string::npos);
  // The four in flight finish at the old address and are recorded; the
  // other six go to the new one.
  REQUIRE(second.wait_for(6, 15s));
  REQUIRE(gw.twilio.wait_for(4, 5s));
  std::set<std::string> to;
  for (const auto& m : gw.twilio.messages()) to.insert(m.to);
  for (const auto& m : second.messages()) to.insert(m.to);
  CHECK(to.size() == 10);
  eventually([&] { return scrape(old_url).get("tocsin_deliveries_pending") == 0.0; }, 5s);
  CHECK(gw.twilio.message_count() == 4);
  CHECK(second.message_count() == 6);
  CHECK(scrape(old_url).counter("tocsin_deliveries_total", {{"gateway", "twilio-main"},
                                                            {"channel", "sms"},
                                                            {"state", "sent"}}) == 10);

  auto start = std::chrono::steady_clock::now();
  REQUIRE(post_report(old_url, distinct_report(1)).status == 202);  // still on its address
  REQUIRE(second.wait_for(16, 15s));
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(settled(old_url));
  CHECK(gw.twilio.message_count() == 4);  // nothing more went to the old address
  CHECK(second.message_count() == 16);
  CHECK(second.count(429) == 0);
  CHECK(took >= 1500ms);  // 10 messages at 4 a second: at least two full windows
  auto m = scrape(old_url);
  CHECK(m.counter("tocsin_deliveries_total",
                  {{"gateway", "twilio-main"}, {"channel", "sms"}, {"state", "sent"}}) == 20);
  CHECK(m.counter("tocsin_config_reloads_total", {{"result", "ok"}}) == 1);

  // Removing the email gateway (no group uses email now) and reloading by
  // SIGHUP: the gateway disappears from the metrics.
  d.config()["gateways"].erase(1);
  d.write_config();
  d.signal(SIGHUP);
  CHECK(eventually(
      [&] { return d.log().find("(SIGHUP): changed: gateways.sendgrid: removed") != std::string::npos; },
      5s));
  auto after = scrape(old_url);
  CHECK(after.get("tocsin_gateway_circuit_state", {{"gateway", "twilio-main"}, {"channel", "sms"}}) == 0.0);
  CHECK_FALSE(after.get("tocsin_gateway_circuit_state", {{"gateway", "sendgrid"}, {"channel", "email"}}));
}

TEST_CASE("reload: an invalid file keeps the running config, by POST and by SIGHUP", "[e2e][ops][reload]") {
  Gateways gw;
  Daemon d(reload_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(600)}, {"groups", {"eastside"}}}});

  d.config() = reload_config(gw, "NEW");
  d.config()["templates"]["sms"]["en"] = "NEW {{nonsense}}";
  d.config()["groups"][0]["channels"] = {"fax"};
  d.write_config();
  auto r = post_reload(d.url());
  INFO(r.body);
  REQUIRE(r.status == 422);
  CHECK(r.header("content-type") == "application/problem+json");
  std::set<std::string> fields;
  json problem = r.json();
  for (const auto& e : problem["errors"]) fields.insert(e["field"].get<std::string>());
  CHECK(fields == std::set<std::string>{"groups[0].channels[0]", "templates.sms.en"});
  CHECK(d.log().find("reload (POST /-/reload) refused, keeping the running config: config.json: ") !=
        std::string::npos);

  // Not even readable JSON, by SIGHUP.
  std::ofstream(d.path("config.json"), std::ios::trunc) << "{ \"groups\": [";
  d.signal(SIGHUP);
  eventually([&] { return d.log().find("reload (SIGHUP) refused") != std::string::npos; }, 5s);
  CHECK(d.log().find("reload (SIGHUP) refused, keeping the running config: config.json: $: is not a "
                     "JSON object") != std::string::npos);
  auto bad = post_reload(d.url());
  CHECK(bad.status == 422);
  CHECK(bad.json()["errors"][0]["field"] == "$");

  // Reports still go out, with the old template and groups.
  auto report = post_report(d.url(), distinct_report(0));
  REQUIRE(report.status == 202);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  CHECK(gw.twilio.messages()[0].body.rfind("OLD #", 0) == 0);

  // The endpoint is for admins only.
  CHECK(request("POST", d.url() + "/-/reload").status == 401);
  CHECK(admin("GET", d.url() + "/-/reload").status == 405);
  CHECK(scrape(d.url()).counter("tocsin_config_reloads_total", {{"result", "refused"}}) == 3);
}

TEST_CASE("reload: when the store cannot check the key file, 503 and nothing applies",
          "[e2e][ops][reload][busy]") {
  Gateways gw;
  Daemon d(reload_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(610)}, {"groups", {"eastside"}}}});
  d.config() = reload_config(gw, "NEW");
  d.write_config();
  // Another process holds the write lock past busy_timeout (5 s): the
  // store job that checks the key file cannot begin.
  OutsideWriteLock lock(d);
  lock.release_after(6500ms);
  auto r = post_reload(d.url());
  lock.release();
  INFO(r.body);
  CHECK(r.status == 503);
  CHECK(r.header("retry-after") != "");
  CHECK(d.log().find("reload (POST /-/reload) refused, keeping the running config: the store "
                     "could not check storage.key_file") != std::string::npos);
  // Nothing of the file applied: the old template still goes out...
  REQUIRE(post_report(d.url(), distinct_report(0)).status == 202);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  CHECK(gw.twilio.messages()[0].body.rfind("OLD #", 0) == 0);
  // ...and the same file, asked again with the lock gone, applies then.
  auto again = post_reload(d.url());
  INFO(again.body);
  REQUIRE(again.status == 200);
  CHECK(strings(again.json()["changed"]) == std::vector<std::string>{"templates"});
  CHECK(scrape(d.url()).counter("tocsin_config_reloads_total", {{"result", "refused"}}) == 1);
}

TEST_CASE("reload: a key file that does not fit the database is refused before anything applies, "
          "by POST and by SIGHUP",
          "[e2e][ops][reload]") {
  Gateways gw;
  Daemon d(reload_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(610)}, {"groups", {"eastside"}}}});

  // A valid file whose key file is another one (a mistake at rotation),
  // with a new template and the westside group widened.
  d.config() = reload_config(gw, "NEW");
  d.config()["groups"][1]["match"]["areas"] = {"la/westwood", "la/boyle-heights"};
  write_key_file(d.path("other.key"));
  d.config()["storage"]["key_file"] = "other.key";
  d.write_config();
  auto r = post_reload(d.url());
  INFO(r.body);
  REQUIRE(r.status == 422);
  CHECK(r.json()["errors"].size() == 1);
  CHECK(r.json()["errors"][0]["field"] == "storage.key_file");
  CHECK(r.json()["title"] == "Invalid config; the running config is kept");
  CHECK(d.log().find("reload (POST /-/reload) refused, keeping the running config: config.json: "
                     "storage.key_file: ") != std::string::npos);
  CHECK(d.log().find("config reloaded") == std::string::npos);

  d.signal(SIGHUP);
  CHECK(eventually([&] { return d.log().find("reload (SIGHUP) refused") != std::string::npos; }, 5s));
  CHECK(d.log().find("reload (SIGHUP) refused, keeping the running config: config.json: "
                     "storage.key_file: ") != std::string::npos);
  CHECK(eventually(
      [&] {
        return query_db(d, "SELECT status FROM audit WHERE route = 'SIGHUP'") ==
               std::vector<std::string>{"422"};
      },
      5s));

  // Nothing of that file applies: the old template, and westside not reached.
  auto report = post_report(d.url(), distinct_report(0));
  REQUIRE(report.status == 202);
  CHECK(report.json()["recipients"] == 1);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  CHECK(gw.twilio.messages()[0].body.rfind("OLD #", 0) == 0);
  // The store still reads its rows with the running keys.
  CHECK(admin("GET", d.url() + "/v1/subscribers/1").json()["phone"] == phone_for(610));
  CHECK(scrape(d.url()).counter("tocsin_config_reloads_total", {{"result", "refused"}}) == 2);

  // The same file with the right key file applies.
  d.config()["storage"]["key_file"] = "tocsin.key";
  d.write_config();
  auto good = post_reload(d.url());
  INFO(good.body);
  REQUIRE(good.status == 200);
  CHECK(strings(good.json()["changed"]) == std::vector<std::string>{"groups", "templates"});
}

TEST_CASE("/metrics: circuit state per gateway and send-latency histograms per report",
          "[e2e][ops]") {
  Gateways gw;
  json config = test_config(gw);
  config["delivery"]["breaker_threshold"] = 3;
  config["delivery"]["breaker_cooldown_s"] = 1;
  Daemon d(config);
  d.start();
  std::vector<json> subs;
  for (int i = 0; i < 5; ++i)
    subs.push_back({{"phone", phone_for(700 + i)},
                    {"email", "h" + std::to_string(i) + "@example.org"},
                    {"groups", {"eastside"}}});
  add_subscribers(d.url(), subs);
  auto before = scrape(d.url());
  CHECK(before.get("tocsin_gateway_circuit_state", {{"gateway", "twilio-main"}, {"channel", "sms"}}) == 0.0);
  CHECK(before.get("tocsin_gateway_circuit_state", {{"gateway", "sendgrid"}, {"channel", "email"}}) == 0.0);

  // Two reports, each to 5 phones and 5 addresses.
  REQUIRE(post_report(d.url(), distinct_report(0)).status == 202);
  REQUIRE(post_report(d.url(), distinct_report(1)).status == 202);
  REQUIRE(gw.twilio.wait_for(10, 10s));
  REQUIRE(gw.sendgrid.wait_for(10, 10s));
  Scrape m("");
  eventually(
      [&] {
        m = scrape(d.url());
        return m.counter("tocsin_report_last_send_seconds_count", {{"channel", "email"}}) == 2 &&
               m.counter("tocsin_report_last_send_seconds_count", {{"channel", "sms"}}) == 2;
      },
      10s);
  for (const char* ch : {"sms", "email"}) {
    INFO(ch);
    CHECK(m.counter("tocsin_report_first_send_seconds_count", {{"channel", ch}}) == 2);
    CHECK(m.counter("tocsin_report_last_send_seconds_count", {{"channel", ch}}) == 2);
    CHECK(m.counter("tocsin_report_last_send_seconds_bucket", {{"channel", ch}, {"le", "+Inf"}}) == 2);
    // On loopback a fan-out of five takes well under 10 s, and the last
    // send is never before the first.
    CHECK(m.counter("tocsin_report_last_send_seconds_bucket", {{"channel", ch}, {"le", "10"}}) == 2);
    CHECK(m.counter("tocsin_report_last_send_seconds_sum", {{"channel", ch}}) >=
          m.counter("tocsin_report_first_send_seconds_sum", {{"channel", ch}}));
  }
  CHECK(m.counter("tocsin_deliveries_total",
                  {{"gateway", "twilio-main"}, {"channel", "sms"}, {"state", "sent"}}) ==
        static_cast<double>(gw.twilio.message_count()));
  CHECK(m.counter("tocsin_deliveries_total",
                  {{"gateway", "sendgrid"}, {"channel", "email"}, {"state", "sent"}}) ==
        static_cast<double>(gw.sendgrid.message_count()));

  // Twilio goes down: three failures open its circuit.
  gw.twilio.set_down(true);
  REQUIRE(post_report(d.url(), distinct_report(2)).status == 202);
  auto circuit = [&] {
    return scrape(d.url()).get("tocsin_gateway_circuit_state",
                               {{"gateway", "twilio-main"}, {"channel", "sms"}});
  };
  CHECK(eventually([&] { return circuit() == 1.0; }, 10s));
  // Back up: the probe after the cooldown closes it again.
  gw.twilio.set_down(false);
  REQUIRE(gw.twilio.wait_for(15, 15s));
  CHECK(eventually([&] { return circuit() == 0.0; }, 10s));
}

TEST_CASE("log.format json: every line is one JSON object, with ids and no personal data",
          "[e2e][ops]") {
  Gateways gw;
  json config = reload_config(gw);
  config["log"] = {{"format", "json"}};
  Daemon d(config, Daemon::Options{.env = {{"TOCSIN_LOG_LEVEL", "debug"}}});
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(800)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(801)}, {"groups", {"eastside"}}}});
  gw.twilio.set_twilio_error(phone_for(801), 21211);
  auto r = post_report(d.url(), distinct_report(0));
  REQUIRE(r.status == 202);
  std::string incident = r.json()["incident_id"];
  CHECK(post_report(d.url(), report_body({{"severity", "bogus"}}).dump()).status == 422);
  REQUIRE(gw.twilio.wait_for(1, 10s));
  // A refused reload whose problem names a key with quotes and a backslash.
  d.config()["templates"]["sms"]["e\"n\\"] = "x";
  d.write_config();
  CHECK(post_reload(d.url()).status == 422);
  REQUIRE(settled(d));
  REQUIRE(eventually([&] { return d.log().find("failed at gateway") != std::string::npos; }));

  std::istringstream log(d.log());
  std::size_t lines = 0;
  bool saw_report = false, saw_failure = false, saw_reload = false;
  for (std::string line; std::getline(log, line);) {
    INFO(line);
    ++lines;
    json j;
    REQUIRE_NOTHROW(j = json::parse(line));
    REQUIRE(j.is_object());
    CHECK(j["ts"].is_string());
    CHECK(j["level"].is_string());
    CHECK(j["msg"].is_string());
    std::string msg = j["msg"];
    if (msg.find("accepted from coordinator") != std::string::npos) {
      saw_report = true;
      CHECK(j["incident"] == incident);
      CHECK(j["report_id"].is_number());
      CHECK(j["coordinator"] == "la-hotline");
    }
    if (msg.find("failed at gateway") != std::string::npos) {
      saw_failure = true;
      CHECK(j["delivery_id"].is_number());
      CHECK(j["gateway"] == "twilio-main");
    }
    if (msg.find("refused, keeping the running config") != std::string::npos) {
      saw_reload = true;
      CHECK(msg.find("templates.sms.e\"n\\: is not a language tag") != std::string::npos);
    }
  }
  CHECK(lines >= 5);
  CHECK(saw_report);
  CHECK(saw_failure);
  CHECK(saw_reload);
  CHECK(d.log().find(phone_for(800).substr(2)) == std::string::npos);
  CHECK(d.log().find(phone_for(801).substr(2)) == std::string::npos);
}
