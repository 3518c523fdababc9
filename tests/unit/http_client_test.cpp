// The HTTP clients (CurlHttpClient and BeastHttpClient: every test runs on
// both) against a loopback HTTP/1.1 server run on plain threads in this
// file, so that what a client sends and receives is checked byte for byte
// without a real gateway.
#include "delivery/http_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using tocsin::delivery::BeastHttpClient;
using tocsin::delivery::CurlHttpClient;
using tocsin::delivery::HttpClient;
using tocsin::delivery::HttpClientOptions;
using tocsin::delivery::OutboundRequest;
using tocsin::delivery::OutboundResponse;

enum class Kind { kCurl, kBeast };

std::unique_ptr<HttpClient> make_client(Kind kind, asio::io_context& io,
                                        HttpClientOptions options = {}) {
  if (kind == Kind::kCurl) return std::make_unique<CurlHttpClient>(io, options);
  return std::make_unique<BeastHttpClient>(io, options);
}

#define CLIENT_UNDER_TEST(...)                                        \
  const Kind kind = GENERATE(Kind::kCurl, Kind::kBeast);              \
  INFO((kind == Kind::kCurl ? "CurlHttpClient" : "BeastHttpClient")); \
  auto client_ptr = make_client(kind, io __VA_OPT__(, ) __VA_ARGS__); \
  auto& client = *client_ptr

struct ReceivedRequest {
  std::string method;
  std::string target;
  tocsin::http::Headers headers;
  std::string body;
  std::string_view header(std::string_view name) const {
    return tocsin::http::find_header(headers, name);
  }
};

// What the server does with a request: write `bytes`, then keep the
// connection (keep-alive), close it, or stall (read until the peer goes).
struct Reply {
  enum class After { kKeepAlive, kClose, kStall };
  std::string bytes;
  After after = After::kKeepAlive;
};

std::string http_response(int status, std::string_view reason, std::string_view body,
                          std::string_view extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += extra_headers;
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out += body;
  return out;
}

// Loopback HTTP/1.1 server on 127.0.0.1, port chosen by the kernel. One
// thread accepts, one thread per connection serves requests in order.
// `handler` runs on connection threads and must be thread-safe.
class LoopbackServer {
 public:
  using Handler = std::function<Reply(const ReceivedRequest&)>;

  explicit LoopbackServer(Handler handler)
      : handler_(std::move(handler)),
        acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    {
      // Wake the blocking accept().
      asio::io_context io;
      tcp::socket waker(io);
      boost::system::error_code ec;
      waker.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_), ec);
      accept_thread_.join();
    }
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      // Unblocks reads; the sockets are closed only after the threads end.
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  std::string url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }
  std::size_t connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }
  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      if (stopping_ || ec) return;
      std::lock_guard lock(mu_);
      ++connections_;
      sockets_.push_back(socket);
      fds_.push_back(socket->native_handle());
      threads_.emplace_back([this, socket] { serve(*socket); });
    }
  }

  void serve(tcp::socket& socket) {
    std::string buffer;
    char chunk[16384];
    boost::system::error_code ec;
    auto fill = [&]() {
      std::size_t n = socket.read_some(asio::buffer(chunk), ec);
      if (ec) return false;
      buffer.append(chunk, n);
      return true;
    };
    for (;;) {
      std::size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) return;
      }
      ReceivedRequest request;
      std::string_view head(buffer.data(), end);
      std::size_t line_end = head.find("\r\n");
      std::string_view request_line = head.substr(0, line_end);
      std::size_t sp1 = request_line.find(' ');
      std::size_t sp2 = request_line.find(' ', sp1 + 1);
      request.method = request_line.substr(0, sp1);
      request.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      while (line_end != std::string_view::npos && line_end < head.size()) {
        std::size_t start = line_end + 2;
        line_end = head.find("\r\n", start);
        std::string_view line = head.substr(start, line_end - start);
        std::size_t colon = line.find(':');
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        request.headers.emplace_back(line.substr(0, colon), value);
      }
      std::size_t length = 0;
      if (auto cl = request.header("Content-Length"); !cl.empty())
        length = std::stoul(std::string(cl));
      while (buffer.size() < end + 4 + length) {
        if (!fill()) return;
      }
      request.body = buffer.substr(end + 4, length);
      buffer.erase(0, end + 4 + length);
      {
        std::lock_guard lock(mu_);
        requests_.push_back(request);
      }
      Reply reply = handler_(request);
      asio::write(socket, asio::buffer(reply.bytes), ec);
      if (ec) return;
      if (reply.after == Reply::After::kClose) {
        socket.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
      if (reply.after == Reply::After::kStall) {
        while (fill()) {
        }
        return;
      }
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::size_t connections_ = 0;                        // guarded by mu_
  std::vector<std::shared_ptr<tcp::socket>> sockets_;  // guarded by mu_
  std::vector<int> fds_;                               // guarded by mu_
  std::vector<std::thread> threads_;                   // guarded by mu_
  std::vector<ReceivedRequest> requests_;              // guarded by mu_
};

// Runs `io` until `done()` or `limit` passes; returns done().
template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    if (io.run_one_for(10ms) == 0) std::this_thread::sleep_for(1ms);
  }
  return done();
}

// Runs whatever `io` has queued for `duration`, for tests that expect nothing.
void run_for(asio::io_context& io, std::chrono::milliseconds duration) {
  run_until(
      io, [] { return false; }, duration);
}

Reply ok_reply(const ReceivedRequest&) {
  return {http_response(200, "OK", "ok")};
}

}  // namespace

TEST_CASE("POST with headers, body and basic auth arrives exactly, the response comes back",
          "[http_client]") {
  LoopbackServer server([](const ReceivedRequest&) {
    // An interim response first: its headers must not leak into the result.
    return Reply{"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n" +
                 http_response(201, "Created", "{\"sid\":\"SM1\"}\n\x01",
                               "Content-Type: application/json\r\nX-Request-Id:  abc-123 \r\n")};
  });
  asio::io_context io;
  CLIENT_UNDER_TEST();

  const std::string body = std::string("To=%2B15555550100&Body=caf\xc3\xa9\0end", 32);
  OutboundRequest request;
  request.url = server.url("/2010-04-01/Accounts/AC123/Messages.json?x=1");
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Custom", "a b, c"}};
  request.body = body;
  request.basic_auth = "AC123:p:ss";  // a ':' in the password must survive

  std::optional<OutboundResponse> got;
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  CHECK_FALSE(got);  // never from inside send()
  CHECK(client.in_flight() == 1);
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(client.in_flight() == 0);

  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  const ReceivedRequest& r = requests[0];
  CHECK(r.method == "POST");
  CHECK(r.target == "/2010-04-01/Accounts/AC123/Messages.json?x=1");
  CHECK(r.header("Authorization") == "Basic QUMxMjM6cDpzcw==");
  CHECK(r.header("Content-Type") == "application/x-www-form-urlencoded");
  CHECK(r.header("X-Custom") == "a b, c");
  CHECK(r.header("Content-Length") == std::to_string(body.size()));
  CHECK(r.header("Expect").empty());
  CHECK(r.body == body);

  CHECK(got->status == 201);
  CHECK(got->error.empty());
  CHECK_FALSE(got->timed_out);
  CHECK(got->header("x-request-id") == "abc-123");
  CHECK(got->header("Content-Type") == "application/json");
  CHECK(got->header("X-Interim").empty());
  CHECK(got->body == "{\"sid\":\"SM1\"}\n\x01");
}

TEST_CASE("GET returns the status and a body capped at 1 MiB", "[http_client]") {
  LoopbackServer server([](const ReceivedRequest& r) {
    return Reply{
        http_response(404, "Not Found", std::string(r.target == "/big" ? 1536 * 1024 : 3, 'x'))};
  });
  asio::io_context io;
  CLIENT_UNDER_TEST();
  std::vector<OutboundResponse> got;
  for (const char* target : {"/big", "/small"}) {
    OutboundRequest request;
    request.method = "GET";
    request.url = server.url(target);
    client.send(request, [&](OutboundResponse r) { got.push_back(std::move(r)); });
  }
  REQUIRE(run_until(io, [&] { return got.size() == 2; }));
  for (const auto& r : server.requests()) {
    CHECK(r.method == "GET");
    CHECK(r.body.empty());
  }
  for (const auto& r : got) {
    CHECK(r.status == 404);
    CHECK(r.error.empty());
    CHECK((r.body.size() == 1024 * 1024 || r.body == "xxx"));
  }
}

TEST_CASE("100 concurrent requests share a few keep-alive connections", "[http_client]") {
  LoopbackServer server(
      [](const ReceivedRequest& r) { return Reply{http_response(200, "OK", r.target)}; });
  asio::io_context io;
  CLIENT_UNDER_TEST(HttpClientOptions{.max_host_connections = 2});

  constexpr int kRequests = 100;
  int completed = 0;
  int mismatched = 0;
  std::size_t max_in_flight = 0;
  for (int i = 0; i < kRequests; ++i) {
    OutboundRequest request;
    request.url = server.url("/r/" + std::to_string(i));
    request.body = std::to_string(i);
    client.send(request, [&, i](OutboundResponse r) {
      ++completed;
      if (r.status != 200 || r.body != "/r/" + std::to_string(i)) ++mismatched;
    });
    max_in_flight = std::max(max_in_flight, client.in_flight());
  }
  CHECK(max_in_flight == kRequests);
  REQUIRE(run_until(io, [&] {
    max_in_flight = std::max(max_in_flight, client.in_flight());
    return completed == kRequests;
  }));
  CHECK(mismatched == 0);
  CHECK(max_in_flight > 1);
  CHECK(client.in_flight() == 0);
  CHECK(server.requests().size() == kRequests);
  CHECK(server.connections() <= 2);
}

TEST_CASE("a server that stalls past the timeout gives timed_out and status 0", "[http_client]") {
  LoopbackServer server([](const ReceivedRequest&) { return Reply{"", Reply::After::kStall}; });
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = server.url("/slow");
  request.timeout = 300ms;
  std::optional<OutboundResponse> got;
  const auto start = std::chrono::steady_clock::now();
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  REQUIRE(run_until(
      io, [&] { return got.has_value(); }, 3s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(got->timed_out);
  CHECK(got->status == 0);
  CHECK_FALSE(got->error.empty());
  CHECK(elapsed >= 290ms);
  CHECK(elapsed < 2s);
}

TEST_CASE("connection refused gives status 0 and an error without the URL", "[http_client]") {
  unsigned short port = 0;
  {
    asio::io_context tmp;
    tcp::acceptor acceptor(tmp, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = acceptor.local_endpoint().port();
  }
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/x?To=%2B15555550100";
  request.body = "secret body";
  std::optional<OutboundResponse> got;
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK_FALSE(got->timed_out);
  CHECK_FALSE(got->error.empty());
  CHECK(got->error.find("15555550100") == std::string::npos);
  CHECK(got->error.find("secret") == std::string::npos);
}

TEST_CASE("a connection closed mid-response gives status 0", "[http_client]") {
  LoopbackServer server([](const ReceivedRequest&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", Reply::After::kClose};
  });
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = server.url("/cut");
  std::optional<OutboundResponse> got;
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK_FALSE(got->timed_out);
  CHECK_FALSE(got->error.empty());
  CHECK(got->body.empty());
}

TEST_CASE("a request with a line break in a header is refused, later", "[http_client]") {
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = "http://127.0.0.1:1/";
  request.headers = {{"X-Evil", "a\r\nInjected: 1"}};
  std::optional<OutboundResponse> got;
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  CHECK_FALSE(got);
  CHECK(client.in_flight() == 1);
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(got->status == 0);
  CHECK_FALSE(got->error.empty());
  CHECK(client.in_flight() == 0);
}

TEST_CASE("a callback can send the next request", "[http_client]") {
  LoopbackServer server(ok_reply);
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = server.url("/first");
  std::vector<int> statuses;
  std::size_t in_flight_inside = 99;
  client.send(request, [&](OutboundResponse first) {
    statuses.push_back(first.status);
    in_flight_inside = client.in_flight();
    OutboundRequest next;
    next.url = server.url("/second");
    client.send(next, [&](OutboundResponse second) { statuses.push_back(second.status); });
    CHECK(client.in_flight() == 1);
  });
  REQUIRE(run_until(io, [&] { return statuses.size() == 2; }));
  CHECK(in_flight_inside == 0);
  CHECK(statuses == std::vector<int>{200, 200});
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].target == "/second");
  CHECK(client.in_flight() == 0);
}

// Finished curl handles are reset and reused: nothing of one request (method,
// body, credentials, headers) may reach the next one sent on its handle.
TEST_CASE("a reused handle carries nothing over from its previous request", "[http_client]") {
  LoopbackServer server(ok_reply);
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest first;
  first.method = "PUT";
  first.url = server.url("/first");
  first.headers = {{"X-Secret", "one"}};
  first.body = "payload";
  first.basic_auth = "user:password";
  std::vector<int> statuses;
  // Sequential: the second request starts after the first finished, so it
  // gets the first one's handle back.
  client.send(first, [&](OutboundResponse r) {
    statuses.push_back(r.status);
    OutboundRequest second;
    second.method = "GET";
    second.url = server.url("/second");
    client.send(second, [&](OutboundResponse r2) { statuses.push_back(r2.status); });
  });
  REQUIRE(run_until(io, [&] { return statuses.size() == 2; }));
  CHECK(statuses == std::vector<int>{200, 200});
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].method == "PUT");
  CHECK(requests[0].header("X-Secret") == "one");
  CHECK_FALSE(requests[0].header("Authorization").empty());
  const ReceivedRequest& r = requests[1];
  CHECK(r.method == "GET");
  CHECK(r.target == "/second");
  CHECK(r.body.empty());
  CHECK(r.header("Authorization").empty());
  CHECK(r.header("X-Secret").empty());
  CHECK(r.header("Content-Length").empty());
}

// A handle whose transfer failed (here: timed out on a stalled server) goes
// back to the pool too; the next request on it must be whole.
TEST_CASE("after a timed-out request the reused handle sends the next one intact",
          "[http_client]") {
  LoopbackServer server([](const ReceivedRequest& r) {
    if (r.target == "/slow") return Reply{"", Reply::After::kStall};
    return Reply{http_response(200, "OK", "fine")};
  });
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest slow;
  slow.url = server.url("/slow");
  slow.timeout = 300ms;
  slow.basic_auth = "user:password";
  slow.body = "first";
  std::optional<OutboundResponse> first, second;
  client.send(slow, [&](OutboundResponse r) {
    first = std::move(r);
    OutboundRequest next;
    next.method = "GET";
    next.url = server.url("/fast");
    client.send(next, [&](OutboundResponse r2) { second = std::move(r2); });
  });
  REQUIRE(run_until(io, [&] { return second.has_value(); }, 5s));
  CHECK(first->timed_out);
  CHECK(second->status == 200);
  CHECK(second->body == "fine");
  CHECK_FALSE(second->timed_out);
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].method == "GET");
  CHECK(requests[1].target == "/fast");
  CHECK(requests[1].body.empty());
  CHECK(requests[1].header("Authorization").empty());
}

TEST_CASE("destroying the client with requests in flight calls no callback", "[http_client]") {
  LoopbackServer server([](const ReceivedRequest& r) {
    if (r.target == "/fast") return ok_reply(r);
    return Reply{"", Reply::After::kStall};
  });
  asio::io_context io;
  int called = 0;
  auto count = [&](OutboundResponse) { ++called; };
  const Kind kind = GENERATE(Kind::kCurl, Kind::kBeast);
  std::unique_ptr<HttpClient> client = make_client(kind, io);

  SECTION("waiting on sockets") {
    for (int i = 0; i < 5; ++i) {
      OutboundRequest request;
      request.url = server.url("/stall");
      client->send(request, count);
    }
    REQUIRE(run_until(io, [&] { return server.requests().size() == 5; }));
    CHECK(client->in_flight() == 5);
  }
  SECTION("before the first timer fires") {
    OutboundRequest request;
    request.url = server.url("/fast");
    client->send(request, count);
  }
  SECTION("with a completion already posted") {
    OutboundRequest request;
    request.url = server.url("/fast");
    request.headers = {{"Bad:Name", "x"}};
    client->send(request, count);
  }
  client.reset();
  run_for(io, 100ms);
  CHECK(called == 0);
}

TEST_CASE("a large body goes out at once, without Expect: 100-continue", "[http_client]") {
  LoopbackServer server(ok_reply);
  asio::io_context io;
  CLIENT_UNDER_TEST();
  OutboundRequest request;
  request.url = server.url("/large");
  request.headers = {{"Content-Type", "application/json"}};
  request.body = std::string(1100 * 1024, 'b');
  std::optional<OutboundResponse> got;
  client.send(request, [&](OutboundResponse r) { got = std::move(r); });
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  CHECK(got->status == 200);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].header("Expect").empty());
  CHECK(requests[0].body == request.body);
}

// A throwaway CA and a certificate for 127.0.0.1 made with openssl, served
// by `openssl s_server` on loopback (three connections, then it exits).
TEST_CASE("ca_file: a gateway's certificate from a private CA verifies with it, not without",
          "[http_client][tls]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("tocsin-tls-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string d = dir.string();
  const std::string make =
      "cd '" + d + "' && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
      "-out ca.pem -days 1 -subj /CN=tocsin-test-ca && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr "
      "-subj /CN=127.0.0.1 && "
      "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 "
      "-extfile ext";
  REQUIRE(std::system((make + " >/dev/null 2>&1").c_str()) == 0);
  FILE* server =
      ::popen(("exec timeout 60 openssl s_server -accept 127.0.0.1:0 -naccept 3 -www -cert '" + d +
               "/srv.pem' -key '" + d + "/srv.key' 2>&1")
                  .c_str(),
              "r");
  REQUIRE(server != nullptr);
  std::string port;
  char line[256];
  while (port.empty() && std::fgets(line, sizeof line, server) != nullptr) {
    std::string_view l(line);
    if (l.starts_with("ACCEPT ")) port = std::string(l.substr(l.rfind(':') + 1, l.find_first_of("\r\n") - l.rfind(':') - 1));
  }
  REQUIRE_FALSE(port.empty());

  asio::io_context io;
  CLIENT_UNDER_TEST();
  auto get = [&](std::string ca_file, std::string host = "127.0.0.1") {
    OutboundRequest request;
    request.method = "GET";
    request.url = "https://" + host + ":" + port + "/";
    request.ca_file = std::move(ca_file);
    std::optional<OutboundResponse> got;
    client.send(request, [&](OutboundResponse r) { got = std::move(r); });
    REQUIRE(run_until(io, [&] { return got.has_value(); }, 30s));
    return *got;
  };
  auto untrusted = get("");
  CHECK(untrusted.status == 0);  // the system's CAs do not know this one
  CHECK_FALSE(untrusted.error.empty());
  // The certificate is for 127.0.0.1, not for "localhost": refused, though its CA is trusted.
  auto wrong_name = get(d + "/ca.pem", "localhost");
  CHECK(wrong_name.status == 0);
  CHECK_FALSE(wrong_name.error.empty());
  auto trusted = get(d + "/ca.pem");
  CHECK(trusted.error.empty());
  CHECK(trusted.status == 200);
  ::pclose(server);
  fs::remove_all(dir);
}

// A server may close a kept-alive connection while it idles (its own idle
// timeout). The next request finds it dead before any byte of an answer
// came and goes again, once, on a new connection.
TEST_CASE("a kept-alive connection the server closed while idle does not fail the next request",
          "[http_client]") {
  LoopbackServer server([](const ReceivedRequest& r) {
    // HTTP/1.1 without "Connection: close": the client may keep it, but the server closes.
    return Reply{http_response(200, "OK", r.target), Reply::After::kClose};
  });
  asio::io_context io;
  CLIENT_UNDER_TEST();
  std::vector<OutboundResponse> got;
  for (const char* target : {"/one", "/two", "/three"}) {
    OutboundRequest request;
    request.url = server.url(target);
    client.send(request, [&](OutboundResponse r) { got.push_back(std::move(r)); });
    const std::size_t want = got.size() + 1;
    REQUIRE(run_until(io, [&] { return got.size() == want; }));
    run_for(io, 50ms);  // the server's close reaches the idle connection
  }
  for (const auto& r : got) {
    CHECK(r.status == 200);
    CHECK(r.error.empty());
  }
  CHECK(got.back().body == "/three");
  CHECK(server.requests().size() == 3);
  CHECK(server.connections() == 3);
}

// The timeout counts from send(): a request queued behind a busy pool
// (max_host_connections) times out there too, and its place goes to the next.
// BeastHttpClient only: curl starts a queued transfer's clock when it gets a
// connection (here it answered after the stalled one, at 1.5 s), one reason
// the gateways moved off it.
TEST_CASE("a request waiting for a connection of a full pool times out on time", "[http_client]") {
  LoopbackServer server([](const ReceivedRequest& r) {
    if (r.target == "/stall") return Reply{"", Reply::After::kStall};
    return ok_reply(r);
  });
  asio::io_context io;
  BeastHttpClient client(io, HttpClientOptions{.max_host_connections = 1});
  std::optional<OutboundResponse> stalled, queued;
  OutboundRequest stall;
  stall.url = server.url("/stall");
  stall.timeout = 1500ms;
  client.send(stall, [&](OutboundResponse r) { stalled = std::move(r); });
  OutboundRequest next;
  next.url = server.url("/next");
  next.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  client.send(next, [&](OutboundResponse r) { queued = std::move(r); });
  REQUIRE(run_until(
      io, [&] { return queued.has_value(); }, 3s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(queued->timed_out);
  CHECK(queued->status == 0);
  CHECK(elapsed < 1200ms);
  CHECK_FALSE(stalled.has_value());
  // The stalled one times out in turn; a later request gets the pool's connection.
  REQUIRE(run_until(
      io, [&] { return stalled.has_value(); }, 3s));
  CHECK(stalled->timed_out);
  std::optional<OutboundResponse> after;
  client.send(next, [&](OutboundResponse r) { after = std::move(r); });
  REQUIRE(run_until(
      io, [&] { return after.has_value(); }, 3s));
  CHECK(after->status == 200);
  CHECK(client.in_flight() == 0);
}

// Credentials go in basic_auth, never in a URL (which is logged); other
// schemes and out-of-range ports are refused before any connection.
TEST_CASE("BeastHttpClient refuses URLs it must not or cannot send to, later", "[http_client]") {
  asio::io_context io;
  BeastHttpClient client(io);
  for (const char* url :
       {"http://user:secret@127.0.0.1:1/", "ftp://127.0.0.1/", "http://127.0.0.1:70000/",
        "http://127.0.0.1:0/", "http:///x", "http://[::1/"}) {
    INFO(url);
    OutboundRequest request;
    request.url = url;
    std::optional<OutboundResponse> got;
    client.send(request, [&](OutboundResponse r) { got = std::move(r); });
    CHECK_FALSE(got);
    REQUIRE(run_until(io, [&] { return got.has_value(); }));
    CHECK(got->status == 0);
    CHECK(got->error == "invalid url");
  }
  CHECK(client.in_flight() == 0);
}
