// http::Server against real loopback sockets: the server's io_context runs on
// a background thread, the test talks raw HTTP/1.1 through blocking sockets
// with poll()-bounded reads so that a broken server fails a check instead of
// hanging the suite.
#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using tocsin::http::Handler;
using tocsin::http::Request;
using tocsin::http::Responder;
using tocsin::http::Response;
using tocsin::http::Server;
using tocsin::http::ServerOptions;
using Clock = std::chrono::steady_clock;

ServerOptions test_options() {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.header_timeout = 2s;
  o.body_timeout = 2s;
  o.idle_timeout = 2s;
  o.write_timeout = 2s;
  return o;
}

tcp::endpoint parse_endpoint(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  std::string host = host_port.substr(0, colon);
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  return {net::ip::make_address(host),
          static_cast<unsigned short>(std::stoi(host_port.substr(colon + 1)))};
}

// A started Server whose io_context runs on its own thread until the test
// ends, or until it runs out of work (which the stop() test waits for).
class TestServer {
 public:
  TestServer() = default;
  ~TestServer() {
    io.stop();
    if (thread_.joinable()) thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  void start(ServerOptions options, Handler handler) {
    server.emplace(io, std::move(options), std::move(handler));
    address = server->start();
    thread_ = std::thread([this] {
      io.run();
      ran_out_.set_value();
    });
  }

  tcp::endpoint endpoint() const { return parse_endpoint(address); }

  // Runs f on the io thread and returns its result.
  template <class F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    net::post(io, [&task] { task(); });
    return result.get();
  }

  std::size_t connections() {
    return on_io([this] { return server->connections(); });
  }

  // Polls until connections() == n; false after `within`.
  bool wait_connections(std::size_t n, std::chrono::milliseconds within = 1s) {
    const auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
      if (connections() == n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  // True once io.run() has returned on its own.
  bool ran_out_within(std::chrono::milliseconds d) {
    return ran_out_future_.wait_for(d) == std::future_status::ready;
  }

  net::io_context io;
  std::optional<Server> server;
  std::string address;

 private:
  std::thread thread_;
  std::promise<void> ran_out_;
  std::future<void> ran_out_future_ = ran_out_.get_future();
};

struct Reply {
  int status = 0;
  std::string head;  // status line and header lines
  std::string body;

  // Value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string> header(const std::string& name) const {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      const std::size_t start = pos + 2;
      const std::size_t end = head.find("\r\n", start);
      const std::string line = head.substr(start, end - start);
      const auto colon = line.find(':');
      if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
        std::size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        return line.substr(v);
      }
      pos = end;
    }
    return std::nullopt;
  }
};

// A blocking client socket whose every read is bounded by poll().
class Client {
 public:
  explicit Client(const tcp::endpoint& ep) : socket_(io_) { socket_.connect(ep); }

  void send(const std::string& data) { net::write(socket_, net::buffer(data)); }

  // One response, or nullopt when none arrived within `timeout`.
  std::optional<Reply> read_response(std::chrono::milliseconds timeout = 2s) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    Reply r;
    r.head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    const std::size_t length = std::stoul(r.header("Content-Length").value_or("0"));
    while (buf_.size() < length) {
      if (!fill(deadline)) return std::nullopt;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the server closes the connection within `timeout`, with no
  // further bytes sent.
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!closed_) {
      if (!fill(deadline) && !closed_) return false;
    }
    return buf_.empty();
  }

  bool closed() const { return closed_; }
  void close() { socket_.close(); }

 private:
  // Appends what arrives before `deadline`; false on timeout or close.
  bool fill(Clock::time_point deadline) {
    if (closed_) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{socket_.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[4096];
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(net::buffer(chunk), ec);
    if (ec) {
      closed_ = true;  // EOF or reset
      return false;
    }
    buf_.append(chunk, n);
    return true;
  }

  net::io_context io_;
  tcp::socket socket_;
  std::string buf_;
  bool closed_ = false;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

// Answers at once with the request body, and counts calls.
struct Echo {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);

  Handler handler() const {
    return [calls = calls](Request req, Responder respond) {
      ++*calls;
      Response r;
      r.set("Content-Type", "application/octet-stream");
      r.set("X-Target", req.target);
      r.body = std::move(req.body);
      respond(std::move(r));
    };
  }
};

}  // namespace

TEST_CASE("server answers a GET with the handler's response", "[server]") {
  std::mutex mu;
  std::optional<Request> seen;
  TestServer ts;
  ts.start(test_options(), [&](Request req, Responder respond) {
    {
      std::lock_guard lock(mu);
      seen = req;
    }
    Response r;
    r.status = 418;
    r.body = "short and stout";
    respond(std::move(r));
  });

  Client c(ts.endpoint());
  c.send(get("/v1/things?x=1", "X-Custom: Some Value\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 418);
  CHECK(r->body == "short and stout");
  CHECK(r->header("Content-Length") == "15");
  CHECK(r->header("Server") == "tocsin");
  CHECK(r->header("Date"));
  CHECK_FALSE(r->header("Content-Type"));

  std::lock_guard lock(mu);
  REQUIRE(seen);
  CHECK(seen->method == "GET");
  CHECK(seen->target == "/v1/things?x=1");
  CHECK(seen->header("x-custom") == "Some Value");
  CHECK(seen->body.empty());
  CHECK(seen->remote.rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("server keeps a connection alive and honours close", "[server]") {
  std::mutex mu;
  std::vector<std::string> remotes;
  TestServer ts;
  ts.start(test_options(), [&](Request req, Responder respond) {
    {
      std::lock_guard lock(mu);
      remotes.push_back(req.remote);
    }
    respond(Response{.status = 200, .headers = {}, .body = req.target});
  });

  Client c(ts.endpoint());
  c.send(get("/one"));
  auto r1 = c.read_response();
  c.send(get("/two"));
  auto r2 = c.read_response();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->body == "/one");
  CHECK(r2->body == "/two");
  {
    std::lock_guard lock(mu);
    REQUIRE(remotes.size() == 2);
    CHECK(remotes[0] == remotes[1]);  // the same client port: one connection
  }

  c.send(get("/three", "Connection: close\r\n"));
  auto r3 = c.read_response();
  REQUIRE(r3);
  CHECK(r3->header("Connection") == "close");
  CHECK(c.closed_within(1s));

  Client old(ts.endpoint());
  old.send("GET /ten HTTP/1.0\r\n\r\n");
  auto r4 = old.read_response();
  REQUIRE(r4);
  CHECK(r4->body == "/ten");
  CHECK(old.closed_within(1s));
}

TEST_CASE("server waits for a deferred response and reads nothing meanwhile", "[server]") {
  auto answered = std::make_shared<std::atomic<int>>(0);
  auto called = std::make_shared<std::atomic<int>>(0);
  TestServer ts;
  ts.start(test_options(), [&io = ts.io, answered, called](Request req, Responder respond) {
    ++*called;
    auto timer = std::make_shared<net::steady_timer>(io, 50ms);
    timer->async_wait([timer, answered, target = req.target,
                       respond = std::move(respond)](boost::system::error_code) {
      respond(Response{.status = 200, .headers = {}, .body = target});
      ++*answered;
    });
  });

  SECTION("one request") {
    Client c(ts.endpoint());
    const auto t0 = Clock::now();
    c.send(get("/late"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->body == "/late");
    CHECK(Clock::now() - t0 >= 45ms);
  }

  SECTION("two pipelined requests are answered in order") {
    Client c(ts.endpoint());
    c.send(get("/a") + get("/b"));
    auto a = c.read_response();
    auto b = c.read_response();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->body == "/a");
    CHECK(b->body == "/b");
  }

  SECTION("answering a connection that died does nothing") {
    {
      Client c(ts.endpoint());
      c.send(get("/gone"));
      const auto deadline = Clock::now() + 1s;
      while (*called == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
      REQUIRE(*called == 1);
    }  // closed before the answer
    const auto deadline = Clock::now() + 1s;
    while (*answered == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    CHECK(*answered == 1);
    Client next(ts.endpoint());
    next.send(get("/next"));
    auto r = next.read_response();
    REQUIRE(r);
    CHECK(r->body == "/next");
  }
}

TEST_CASE("server enforces the body limit", "[server]") {
  Echo echo;
  auto options = test_options();
  options.max_body_bytes = 100;
  TestServer ts;
  ts.start(options, echo.handler());

  SECTION("a body exactly at the limit arrives byte for byte") {
    std::string body(100, 'x');
    body[3] = '\0';
    body.replace(10, 4, "\r\n\r\n");
    body[50] = '\xff';
    Client c(ts.endpoint());
    c.send(post("/in", body));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == body);
  }

  SECTION("one byte over gets 413 problem+json and a close") {
    Client c(ts.endpoint());
    c.send(post("/in", std::string(101, 'x')));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->header("Content-Type") == "application/problem+json");
    CHECK(r->body.find("urn:tocsin:problem:too-large") != std::string::npos);
    CHECK(r->body.find("100 bytes") != std::string::npos);
    CHECK(c.closed_within(1s));
    CHECK(*echo.calls == 0);
  }

  SECTION("a chunked body over the limit gets 413") {
    Client c(ts.endpoint());
    const std::string chunk(60, 'y');
    c.send("POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n" + chunk +
           "\r\n3c\r\n" + chunk + "\r\n0\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(*echo.calls == 0);
  }

  SECTION("a chunked body within the limit arrives decoded") {
    Client c(ts.endpoint());
    c.send(
        "POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello world");
  }
}

TEST_CASE("server refuses a declared length over the limit without the body", "[server]") {
  Echo echo;
  auto options = test_options();
  options.max_body_bytes = 100;
  TestServer ts;
  ts.start(options, echo.handler());

  Client c(ts.endpoint());
  c.send("POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n");
  auto r = c.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(r->header("Content-Type") == "application/problem+json");
  CHECK(c.closed_within(1s));
  CHECK(*echo.calls == 0);
}

TEST_CASE("server answers Expect: 100-continue before the body", "[server]") {
  Echo echo;
  auto options = test_options();
  options.max_body_bytes = 100;
  TestServer ts;
  ts.start(options, echo.handler());

  SECTION("within the limit") {
    Client c(ts.endpoint());
    c.send("POST /in HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    auto cont = c.read_response(1s);
    REQUIRE(cont);
    CHECK(cont->status == 100);
    c.send("hello");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello");
  }

  SECTION("over the limit: 413 and no 100") {
    Client c(ts.endpoint());
    c.send("POST /in HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
    auto r = c.read_response(1s);
    REQUIRE(r);
    CHECK(r->status == 413);
  }
}

TEST_CASE("server answers malformed requests with 400 and oversized heads with 431", "[server]") {
  Echo echo;
  auto options = test_options();
  options.max_header_bytes = 1024;
  TestServer ts;
  ts.start(options, echo.handler());

  SECTION("malformed request line") {
    Client c(ts.endpoint());
    c.send("GARBAGE\r\n\r\n");
    auto r = c.read_response(1s);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->header("Content-Type") == "application/problem+json");
    CHECK(r->body.find("urn:tocsin:problem:malformed") != std::string::npos);
    CHECK(c.closed_within(1s));
  }

  SECTION("header block over the limit") {
    Client c(ts.endpoint());
    c.send(get("/", "X-Big: " + std::string(2000, 'b') + "\r\n"));
    auto r = c.read_response(1s);
    REQUIRE(r);
    CHECK(r->status == 431);
    CHECK(r->header("Content-Type") == "application/problem+json");
    CHECK(c.closed_within(1s));
  }
  CHECK(*echo.calls == 0);
}

TEST_CASE("server closes a keep-alive connection after idle_timeout", "[server]") {
  Echo echo;
  auto options = test_options();
  options.idle_timeout = 200ms;
  options.header_timeout = 5s;
  TestServer ts;
  ts.start(options, echo.handler());

  Client c(ts.endpoint());
  c.send(get("/"));
  REQUIRE(c.read_response());
  const auto t0 = Clock::now();
  CHECK(c.closed_within(2s));
  const auto took = Clock::now() - t0;
  CHECK(took >= 150ms);
  CHECK(took < 1500ms);
}

TEST_CASE("server closes a half-sent head after header_timeout", "[server]") {
  Echo echo;
  auto options = test_options();
  options.header_timeout = 200ms;
  options.idle_timeout = 5s;
  TestServer ts;
  ts.start(options, echo.handler());

  SECTION("on a fresh connection") {
    Client c(ts.endpoint());
    const auto t0 = Clock::now();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    CHECK(c.closed_within(2s));
    const auto took = Clock::now() - t0;
    CHECK(took >= 150ms);
    CHECK(took < 1500ms);
  }

  SECTION("on a kept-alive connection, despite the longer idle_timeout") {
    Client c(ts.endpoint());
    c.send(get("/"));
    REQUIRE(c.read_response());
    std::this_thread::sleep_for(250ms);  // idle, longer than header_timeout
    const auto t0 = Clock::now();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    CHECK(c.closed_within(2s));
    const auto took = Clock::now() - t0;
    CHECK(took >= 150ms);
    CHECK(took < 1500ms);
  }
  CHECK(*echo.calls <= 1);
}

TEST_CASE("server keeps answering while 200 connections sit idle", "[server]") {
  Echo echo;
  auto options = test_options();
  options.header_timeout = 5s;
  TestServer ts;
  ts.start(options, echo.handler());

  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<Client>(ts.endpoint()));
    if (i % 2 == 1) idle.back()->send("GET /slowloris HTTP/1.1\r\nHo");
  }
  REQUIRE(ts.wait_connections(200, 2s));

  const auto t0 = Clock::now();
  Client c(ts.endpoint());
  c.send(get("/prompt"));
  auto r = c.read_response(1s);
  REQUIRE(r);
  CHECK(r->header("X-Target") == "/prompt");
  CHECK(Clock::now() - t0 < 500ms);
  CHECK(*echo.calls == 1);
}

TEST_CASE("server at max_connections closes the oldest idle connection for a new one",
          "[server][admission]") {
  Echo echo;
  auto options = test_options();
  options.max_connections = 2;
  TestServer ts;
  ts.start(options, echo.handler());

  Client oldest(ts.endpoint());
  REQUIRE(ts.wait_connections(1));
  Client partial(ts.endpoint());
  partial.send("GET /half HTTP/1.1\r\nHo");
  REQUIRE(ts.wait_connections(2));

  // The newcomer is served; the oldest of the two that sent no complete
  // request is closed to make room, the other is left alone.
  Client third(ts.endpoint());
  third.send(get("/"));
  auto r = third.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(oldest.closed_within(1s));
  CHECK_FALSE(partial.closed());
  CHECK(ts.connections() == 2);
}

TEST_CASE("server at max_connections never closes a trusted connection for room",
          "[server][admission]") {
  auto options = test_options();
  options.max_connections = 2;
  TestServer ts;
  ts.start(options, [](Request req, Responder respond) {
    Response r;
    r.body = req.target;
    r.trusted = req.target == "/signed";  // as the API marks a verified request
    respond(std::move(r));
  });

  Client keyed(ts.endpoint());
  keyed.send(get("/signed"));
  REQUIRE(keyed.read_response());  // now idle on keep-alive, but trusted
  Client idle(ts.endpoint());
  REQUIRE(ts.wait_connections(2));

  Client third(ts.endpoint());
  third.send(get("/"));
  auto r = third.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(idle.closed_within(1s));

  // A fourth finds only the trusted one and the third (idle again): the
  // third goes, the trusted connection still answers.
  Client fourth(ts.endpoint());
  fourth.send(get("/4"));
  REQUIRE(fourth.read_response(1s));
  CHECK(third.closed_within(1s));
  keyed.send(get("/again"));
  auto again = keyed.read_response(1s);
  REQUIRE(again);
  CHECK(again->body == "/again");
}

TEST_CASE("server refuses with 503 when every connection is busy", "[server][admission]") {
  auto options = test_options();
  options.max_connections = 2;
  std::vector<Responder> held;
  std::mutex mu;
  TestServer ts;
  ts.start(options, [&](Request, Responder respond) {
    std::lock_guard lock(mu);
    held.push_back(std::move(respond));
  });
  auto wait_held = [&](std::size_t n) {
    const auto deadline = Clock::now() + 2s;
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (held.size() == n) return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  };

  Client a(ts.endpoint());
  a.send(get("/a"));
  Client b(ts.endpoint());
  b.send(get("/b"));
  REQUIRE(wait_held(2));

  Client third(ts.endpoint());
  third.send(get("/"));
  auto r = third.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->header("Retry-After") == "1");
  CHECK(r->header("Content-Type") == "application/problem+json");
  CHECK(third.closed_within(1s));

  // Once the busy ones are answered, the loop goes on serving.
  ts.on_io([&] {
    for (auto& respond : held) respond(Response{.status = 200, .headers = {}, .body = "ok"});
    held.clear();
    return 0;
  });
  REQUIRE(a.read_response(1s));
  Client fourth(ts.endpoint());
  fourth.send(get("/"));
  REQUIRE(wait_held(1));
  // A held Responder keeps the server's state alive: let it go on the io
  // thread while the server (and its io_context) still exist.
  ts.on_io([&] {
    held.clear();
    return 0;
  });
}

TEST_CASE("server caps connections per address", "[server][admission]") {
  Echo echo;
  auto options = test_options();
  options.max_connections_per_address = 2;
  std::vector<tocsin::http::ConnectionEvent> events;
  options.on_connection_event = [&events](tocsin::http::ConnectionEvent e) { events.push_back(e); };
  TestServer ts;
  ts.start(options, echo.handler());

  Client a(ts.endpoint());
  Client b(ts.endpoint());
  REQUIRE(ts.wait_connections(2));
  Client third(ts.endpoint());
  third.send(get("/"));
  auto r = third.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(third.closed_within(2s));
  CHECK(ts.on_io([&] { return events.size(); }) == 1);
  CHECK(ts.on_io([&] { return events.at(0); }) == tocsin::http::ConnectionEvent::kPerAddress);

  // A slot of that address freed is a slot again.
  third.close();
  a.close();
  REQUIRE(ts.wait_connections(1, 3s));
  Client fourth(ts.endpoint());
  fourth.send(get("/"));
  auto ok = fourth.read_response(1s);
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("server out of file descriptors closes idle connections to accept, and counts it",
          "[server][admission]") {
#if defined(__SANITIZE_ADDRESS__)
  // Under the sanitizers' runtime, with every descriptor taken, UBSan's own
  // vptr check of spdlog's logger fails ("invalid vptr"): an artefact of the
  // runtime starved of descriptors, not of tocsin. The plain build runs it.
  WARN("skipped under ASan/UBSan: the sanitizer runtime needs descriptors itself");
  return;
#endif
  Echo echo;
  auto options = test_options();
  auto accept_errors = std::make_shared<std::atomic<int>>(0);
  auto evicted = std::make_shared<std::atomic<int>>(0);
  options.on_connection_event = [accept_errors, evicted](tocsin::http::ConnectionEvent e) {
    if (e == tocsin::http::ConnectionEvent::kAcceptError) ++*accept_errors;
    if (e == tocsin::http::ConnectionEvent::kEvicted) ++*evicted;
  };
  TestServer ts;
  ts.start(options, echo.handler());
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 10; ++i) idle.push_back(std::make_unique<Client>(ts.endpoint()));
  REQUIRE(ts.wait_connections(10));
  // The newcomer's socket exists before the process runs out of descriptors.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);

  // Every descriptor slot taken: the server's accept() gets EMFILE.
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int highest = 0;
  for (int i = 0; i < 65536; ++i)
    if (::fcntl(i, F_GETFD) != -1) highest = i;
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest + 1);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::vector<int> fillers;
  for (int f; (f = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(f);
  const int open_errno = errno;

  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(ts.endpoint().port());
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  const int connected = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  const std::string req = get("/after-emfile");
  if (connected == 0) (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string answer;
  const auto deadline = Clock::now() + 3s;
  while (answer.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[1024];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  for (int f : fillers) ::close(f);
  setrlimit(RLIMIT_NOFILE, &saved);
  ::close(fd);

  CHECK(open_errno == EMFILE);
  REQUIRE(connected == 0);
  CHECK(answer.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(*accept_errors >= 1);
  CHECK(*evicted >= 1);
  CHECK(*echo.calls == 1);
}

TEST_CASE("server closes a silent new connection after first_byte_timeout, a slow head after "
          "header_timeout from accept",
          "[server][admission]") {
  Echo echo;
  auto options = test_options();
  options.first_byte_timeout = 200ms;
  options.header_timeout = 700ms;
  options.idle_timeout = 300ms;
  auto deadlines = std::make_shared<std::atomic<int>>(0);
  options.on_connection_event = [deadlines](tocsin::http::ConnectionEvent e) {
    if (e == tocsin::http::ConnectionEvent::kDeadline) ++*deadlines;
  };
  TestServer ts;
  ts.start(options, echo.handler());

  SECTION("silent") {
    Client c(ts.endpoint());
    const auto t0 = Clock::now();
    CHECK(c.closed_within(2s));
    const auto took = Clock::now() - t0;
    CHECK(took >= 150ms);
    CHECK(took < 600ms);
  }
  SECTION("one byte, then nothing: the head's deadline counts from accept") {
    Client c(ts.endpoint());
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(100ms);
    c.send("G");
    CHECK(c.closed_within(2s));
    const auto took = Clock::now() - t0;
    CHECK(took >= 600ms);
    CHECK(took < 1400ms);
  }
  SECTION("a whole request, then an idle keep-alive's end: not a deadline") {
    Client c(ts.endpoint());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(c.closed_within(2s));  // idle_timeout
    CHECK(*echo.calls == 1);
    CHECK(*deadlines == 0);
    return;
  }
  CHECK(*echo.calls == 0);
  // Each close at a deadline is counted (tocsin_http_connections_total),
  // by the server's handler, which may run just after the client saw the
  // close (the stream's timer closes the socket first).
  const auto until = Clock::now() + 1s;
  while (*deadlines == 0 && Clock::now() < until) std::this_thread::sleep_for(5ms);
  CHECK(*deadlines == 1);
}

TEST_CASE("server stop() closes idle connections, finishes busy ones, and lets run() return",
          "[server]") {
  auto called = std::make_shared<std::atomic<int>>(0);
  TestServer ts;
  ts.start(test_options(), [&io = ts.io, called](Request req, Responder respond) {
    ++*called;
    if (req.target != "/slow") return respond(Response{.status = 200, .headers = {}, .body = ""});
    auto timer = std::make_shared<net::steady_timer>(io, 100ms);
    timer->async_wait([timer, respond = std::move(respond)](boost::system::error_code) {
      respond(Response{.status = 200, .headers = {}, .body = "finally"});
    });
  });

  Client kept(ts.endpoint());
  kept.send(get("/"));
  REQUIRE(kept.read_response());
  Client fresh(ts.endpoint());
  Client busy(ts.endpoint());
  busy.send(get("/slow"));
  const auto deadline = Clock::now() + 1s;
  while (*called < 2 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(*called == 2);
  REQUIRE(ts.wait_connections(3));

  net::post(ts.io, [&ts] { ts.server->stop(); });
  CHECK(kept.closed_within(80ms));
  CHECK(fresh.closed_within(80ms));
  auto r = busy.read_response(1s);
  REQUIRE(r);
  CHECK(r->body == "finally");
  CHECK(r->header("Connection") == "close");
  CHECK(busy.closed_within(1s));
  CHECK(ts.ran_out_within(2s));
  CHECK_THROWS(Client(ts.endpoint()));  // no longer listening
}

TEST_CASE("server start() reports its address and bind failures", "[server]") {
  Echo echo;
  TestServer ts;
  ts.start(test_options(), echo.handler());
  CHECK(ts.address.rfind("127.0.0.1:", 0) == 0);
  CHECK(ts.endpoint().port() != 0);

  net::io_context io;
  auto taken = test_options();
  taken.listen = ts.address;
  Server clash(io, taken, echo.handler());
  CHECK_THROWS_AS(clash.start(), std::system_error);

  auto bogus = test_options();
  bogus.listen = "no-port-here";
  Server bad(io, bogus, echo.handler());
  CHECK_THROWS_AS(bad.start(), std::system_error);

  auto v6 = test_options();
  v6.listen = "[::1]:0";
  TestServer ts6;
  try {
    ts6.start(v6, echo.handler());
  } catch (const std::system_error& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  CHECK(ts6.address.rfind("[::1]:", 0) == 0);
  Client c(ts6.endpoint());
  c.send(get("/six"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->header("X-Target") == "/six");
}

TEST_CASE("server adopts a passed listening socket and stop() leaves it listening for the next",
          "[server]") {
  // The test holds the socket as systemd would; each server gets a copy.
  net::io_context io;
  tcp::acceptor held(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const auto endpoint = held.local_endpoint();
  Echo echo;

  auto options = test_options();
  options.listen_fd = ::dup(held.native_handle());
  REQUIRE(options.listen_fd >= 0);
  auto first = std::make_unique<TestServer>();
  first->start(options, echo.handler());
  CHECK(first->endpoint() == endpoint);
  Client before(endpoint);
  before.send(get("/first"));
  auto r1 = before.read_response();
  REQUIRE(r1);
  CHECK(r1->header("X-Target") == "/first");
  net::post(first->io, [&s = *first] { s.server->stop(); });
  REQUIRE(first->ran_out_within(2s));
  first.reset();

  // Between servers: the connection is queued, not refused or reset.
  Client between(endpoint);
  between.send(get("/between"));
  CHECK(!between.read_response(100ms));
  CHECK(!between.closed());

  options.listen_fd = ::dup(held.native_handle());
  TestServer second;
  second.start(options, echo.handler());
  auto r2 = between.read_response();
  REQUIRE(r2);
  CHECK(r2->header("X-Target") == "/between");
}

TEST_CASE("server refuses a passed descriptor that is not a TCP socket", "[server]") {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  ::close(pipe_fds[1]);
  net::io_context io;
  Echo echo;
  auto options = test_options();
  options.listen_fd = pipe_fds[0];
  Server s(io, options, echo.handler());
  CHECK_THROWS_AS(s.start(), std::system_error);
  ::close(pipe_fds[0]);
}

TEST_CASE("server stop() answers a request that has arrived but was not read yet", "[server]") {
  Echo echo;
  TestServer ts;
  ts.start(test_options(), echo.handler());
  Client c(ts.endpoint());
  REQUIRE(ts.wait_connections(1));  // accepted, waiting for its first byte
  // On the io thread, so that the server cannot read the request before
  // stop() looks at the connection.
  ts.on_io([&] {
    c.send(post("/late", "payload"));
    std::this_thread::sleep_for(20ms);  // loopback delivers it meanwhile
    ts.server->stop();
    return 0;
  });
  auto r = c.read_response(1s);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "payload");
  CHECK(r->header("Connection") == "close");
  CHECK(ts.ran_out_within(2s));
}

TEST_CASE("the per-address cap counts an IPv6 /64 as one address, IPv4 as it is", "[server][hardening]") {
  using tocsin::http::admission_key;
  CHECK(admission_key("192.0.2.7") == "192.0.2.7");
  CHECK(admission_key("192.0.2.7") != admission_key("192.0.2.8"));
  // One /64: a host that rotates through its own addresses is one key.
  CHECK(admission_key("2001:db8:1:2::1") == "2001:db8:1:2::/64");
  CHECK(admission_key("2001:db8:1:2:ffff:eeee:dddd:cccc") == "2001:db8:1:2::/64");
  CHECK(admission_key("2001:db8:1:3::1") == "2001:db8:1:3::/64");
  CHECK(admission_key("::1") == "::/64");
  // A dual-stack socket sees IPv4 peers as v4-mapped: still the IPv4 address.
  CHECK(admission_key("::ffff:192.0.2.7") == "192.0.2.7");
  CHECK(admission_key("not an address").empty());
}
