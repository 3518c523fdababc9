// End-to-end: systemd socket activation. The test plays systemd's part: it
// holds the listening socket and hands it to each daemon it starts (fd 3,
// LISTEN_FDS=1, LISTEN_PID), so that a restart loses no connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// An owned descriptor; closed on destruction.
struct OwnedFd {
  int fd = -1;
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  OwnedFd(OwnedFd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  OwnedFd& operator=(OwnedFd&&) = delete;
};

// A TCP socket on 127.0.0.1, bound to a free port; listening unless told not.
OwnedFd loopback_socket(bool listening = true) {
  OwnedFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  if (listening) REQUIRE(::listen(s.fd, 128) == 0);
  return s;
}

uint16_t port_of(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return ntohs(addr.sin_port);
}

// A blocking connection to 127.0.0.1:port.
OwnedFd connect_to(uint16_t port) {
  OwnedFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(client.fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(::connect(client.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return client;
}

// A signed POST /v1/reports as raw bytes, so that it can be sent while no
// server reads it.
std::string raw_report(const std::string& body, const std::string& webhook_id) {
  std::string out = "POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
  for (const auto& [name, value] : sign_report(kCoordinatorSecret, body, webhook_id).headers())
    out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  return out;
}

// Everything the server sends until it closes the connection or `timeout` passes.
std::string read_until_close(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string got;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return got;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return got;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return got;
    got.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

TEST_CASE("a report sent while the daemon restarts waits in the passed socket and is answered",
          "[e2e][socket]") {
  Gateways gw;
  OwnedFd listener = loopback_socket();
  const uint16_t port = port_of(listener.fd);
  Daemon d(test_config(gw), Daemon::Options{.binary = {}, .args = {}, .env = {}, .listen_fd = listener.fd});
  d.start();
  CHECK(d.port() == port);
  CHECK(d.log().find("socket passed by systemd") != std::string::npos);
  CHECK(d.log().find("server.listen is") == std::string::npos);  // port 0 in the config: no warning

  add_subscribers(d.url(), {json{{"phone", phone_for(1)}, {"groups", {"eastside"}}},
                            json{{"phone", phone_for(2)}, {"groups", {"eastside"}}}});
  auto first = post_report(d.url(), report_body().dump());
  REQUIRE(first.status == 202);
  REQUIRE(gw.twilio.wait_for(2, 10s));

  d.terminate();
  auto exit = d.wait_exit(15s);
  REQUIRE(exit);
  CHECK(exit->code == 0);

  // No daemon runs: the connection is queued in the socket's backlog (as
  // under systemd, whose copy of the socket stays open), and the request
  // waits in its receive buffer.
  OwnedFd client = connect_to(port);
  const std::string request =
      raw_report(report_body({{"location", {{"lat", 34.2}, {"lon", -118.2}}}}).dump(), "msg_socket_pending");
  REQUIRE(::write(client.fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  pollfd quiet{client.fd, POLLIN, 0};
  CHECK(::poll(&quiet, 1, 200) == 0);  // nobody answers yet, nor resets

  d.start();
  CHECK(d.port() == port);
  const std::string reply = read_until_close(client.fd, 10s);
  INFO(reply);
  REQUIRE(reply.rfind("HTTP/1.1 202 ", 0) == 0);
  CHECK(json::parse(reply.substr(reply.find("\r\n\r\n") + 4))["recipients"] == 2);
  REQUIRE(gw.twilio.wait_for(4, 10s));
  auto counts = count_by_recipient(gw.twilio.messages());
  CHECK(counts == std::map<std::string, int>{{phone_for(1), 2}, {phone_for(2), 2}});
}

TEST_CASE("a passed socket wins over a different server.listen, with a warning naming both",
          "[e2e][socket]") {
  Gateways gw;
  OwnedFd listener = loopback_socket();
  const uint16_t port = port_of(listener.fd);
  Daemon d(test_config(gw), Daemon::Options{.binary = {}, .args = {}, .env = {}, .listen_fd = listener.fd});
  d.config()["server"]["listen"] = "127.0.0.1:1";
  d.write_config();
  d.start();
  CHECK(d.port() == port);
  CHECK(d.log().find("server.listen is 127.0.0.1:1 but the socket passed by systemd is 127.0.0.1:" +
                     std::to_string(port)) != std::string::npos);
  CHECK(get(d.url() + "/healthz").status == 200);
}

TEST_CASE("a daemon without a passed socket binds server.listen, and refuses an unusable one",
          "[e2e][socket]") {
  Gateways gw;
  Daemon plain(test_config(gw));
  plain.start();
  CHECK(plain.log().find("(bound server.listen)") != std::string::npos);
  CHECK(get(plain.url() + "/healthz").status == 200);

  // A socket that is bound but not listening is not what a socket unit passes.
  OwnedFd not_listening = loopback_socket(/*listening=*/false);
  Daemon bad(test_config(gw), Daemon::Options{.binary = {}, .args = {}, .env = {}, .listen_fd = not_listening.fd});
  CHECK_THROWS_AS(bad.start(5s), DaemonError);
  CHECK(bad.log().find("cannot use the socket passed by systemd: fd 3 is not a listening TCP socket") !=
        std::string::npos);
  auto exit = bad.wait_exit(1s);
  REQUIRE(exit);
  CHECK(exit->code == 1);
}

TEST_CASE("SIGTERM answers a report still being received before the daemon exits",
          "[e2e][socket]") {
  Gateways gw;
  Daemon d(test_config(gw));
  d.start();
  add_subscribers(d.url(), {json{{"phone", phone_for(7)}, {"groups", {"eastside"}}}});
  OwnedFd client = connect_to(d.port());
  // All but the body's last bytes, so that the request is in flight when
  // the SIGTERM arrives.
  const std::string request = raw_report(report_body().dump(), "msg_during_stop");
  const std::size_t head = request.size() - 10;
  REQUIRE(::write(client.fd, request.data(), head) == static_cast<ssize_t>(head));
  pollfd pending{client.fd, POLLIN, 0};
  REQUIRE(::poll(&pending, 1, 200) == 0);
  d.terminate();
  REQUIRE(::poll(&pending, 1, 300) == 0);  // neither an answer nor a reset
  CHECK(d.running());                       // it waits for the request
  REQUIRE(::write(client.fd, request.data() + head, 10) == 10);
  const std::string reply = read_until_close(client.fd, 10s);
  INFO(reply);
  CHECK(reply.rfind("HTTP/1.1 202 ", 0) == 0);
  auto exit = d.wait_exit(15s);
  REQUIRE(exit);
  CHECK(exit->code == 0);
  d.start();  // what the stop left pending is sent now
  CHECK(gw.twilio.wait_for(1, 10s));
}

TEST_CASE("measure: how long a request sent during a restart waits for its answer", "[.measure]") {
  // As `systemctl restart tocsin` does: SIGTERM, wait for the exit, start
  // again on the same socket; the request goes out just after the SIGTERM.
  Gateways gw;
  OwnedFd listener = loopback_socket();
  const uint16_t port = port_of(listener.fd);
  Daemon d(test_config(gw), Daemon::Options{.binary = {}, .args = {}, .env = {}, .listen_fd = listener.fd});
  d.start();
  std::vector<double> waits_ms;
  for (int i = 0; i < 10; ++i) {
    d.terminate();
    std::this_thread::sleep_for(5ms);  // the client comes while the daemon stops: the test's input
    OwnedFd client = connect_to(port);
    const auto sent = std::chrono::steady_clock::now();
    const std::string request =
        raw_report(report_body({{"location", {{"lat", 34.0 + 0.1 * i}, {"lon", -118.2}}}}).dump(),
                   "msg_restart_" + std::to_string(i));
    REQUIRE(::write(client.fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    REQUIRE(d.wait_exit(15s));
    d.start();
    const std::string reply = read_until_close(client.fd, 10s);
    waits_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count());
    CHECK(reply.rfind("HTTP/1.1 202 ", 0) == 0);
  }
  std::sort(waits_ms.begin(), waits_ms.end());
  WARN("request sent during a restart answered after " << waits_ms.front() << " to " << waits_ms.back()
                                                         << " ms (median " << waits_ms[5] << ")");
}
