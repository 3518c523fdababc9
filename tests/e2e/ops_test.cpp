// Operations, end to end: what systemd sees of the real daemon (sd_notify
// readiness and watchdog pings) and what Prometheus sees (/metrics).
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "e2e/fixture.h"

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

  // Another process holds the database's write lock: the store cannot
  // commit ("database is locked"), so probes fail and pings stop.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(d.path("var/tocsin.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  notify.collect(300ms);  // a probe that had already committed may still ping
  auto blocked = notify.collect(1500ms);
  CHECK(count(blocked, "WATCHDOG=1") == 0);
  REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  auto resumed = notify.collect(1000ms);
  CHECK(count(resumed, "WATCHDOG=1") >= 3);
  CHECK(d.log().find("systemd watchdog: 300 ms") != std::string::npos);
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
  for (auto until = std::chrono::steady_clock::now() + 20s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(100ms)) {
    m = scrape(d.url());
    if (m.sum("tocsin_deliveries_total") >= planned && m.get("tocsin_deliveries_pending") == 0.0)
      break;
  }
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
}
