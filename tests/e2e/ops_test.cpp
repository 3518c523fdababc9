// Operations, end to end: what systemd sees of the real daemon (sd_notify
// readiness and watchdog pings).
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
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
