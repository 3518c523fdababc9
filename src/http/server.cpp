#include "http/server.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/problem_response.h"

namespace tocsin::http {

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// After EMFILE and the like, retrying at once would spin the io thread.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// Closing a socket with unread input makes the kernel send RST, which can
// destroy a 413/503 the client has not read yet; so shut down our side and
// drain for a bounded while before closing.
constexpr std::chrono::milliseconds kLinger{1000};
constexpr std::size_t kReadChunk = 4096;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// The one place I/O errors are reported. Aborts (our own close) and a peer
// hanging up between requests are normal, not worth a line.
void fail(beast::error_code ec, const char* what) {
  if (ec == net::error::operation_aborted || ec == net::error::eof ||
      ec == bhttp::error::end_of_stream) {
    return;
  }
  spdlog::debug("http server: {}: {}", what, ec.message());
}

std::string endpoint_string(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6()) return fmt::format("[{}]:{}", addr.to_string(), ep.port());
  return fmt::format("{}:{}", addr.to_string(), ep.port());
}

// RFC 9110 IMF-fixdate, spelled out by hand so the process locale cannot change it.
std::string http_date() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(a, b);
}

// A handler bug must not become header injection on the wire.
bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == ':') return false;
  }
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool has_close_token(std::string_view value) {
  for (auto part : bhttp::token_list{value}) {
    if (iequals(part, "close")) return true;
  }
  return false;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

class Session;

// Everything the server shares with its connections. Server::Impl is this;
// sessions hold a shared_ptr to it so that a late Responder never dangles.
// All members are touched only on the io_context's thread.
class ServerState : public std::enable_shared_from_this<ServerState> {
 public:
  ServerState(net::io_context& io, ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        acceptor_(io),
        retry_timer_(io) {}

  std::string start();
  void stop();
  // stop(), then close every connection, including those mid-request, and
  // forget the handler: the Server object is going away.
  void shutdown();

  std::size_t connections() const { return sessions_.size(); }
  const ServerOptions& options() const { return options_; }
  // Null once the Server has been destroyed.
  const Handler* handler() const { return handler_ ? &handler_ : nullptr; }
  void forget(std::uint64_t id) { sessions_.erase(id); }

 private:
  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);

  ServerOptions options_;
  Handler handler_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  bool started_ = false;
  bool stopped_ = false;
  bool accept_failing_ = false;
  std::uint64_t next_id_ = 0;
  // Open connections. Weak: a connection lives as long as its pending I/O or
  // an outstanding Responder, and removes itself when it closes.
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions_;
};

// One accepted connection: reads a request, hands it to the Handler, writes
// the response, and either waits for the next request or closes.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> server, std::uint64_t id)
      : stream_(std::move(socket)), server_(std::move(server)), id_(id) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? "-" : endpoint_string(ep);
  }

  ~Session() {
    if (state_ == State::kHandling) {
      spdlog::debug("http server: {} {}: handler dropped the responder", method_, path_);
    }
    server_->forget(id_);
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { wait_for_request(/*fresh=*/true); }

  // Answers with `r` without reading anything, then closes (connection cap).
  void reject(Response r) { write(std::move(r), /*keep_alive=*/false); }

  // The server stops: an idle connection closes now, a busy one after its
  // response. A request that has arrived but is not read yet counts as busy:
  // closing on it would reset it unanswered.
  void on_stop() {
    stopping_ = true;
    if (state_ != State::kIdle) return;
    beast::error_code ec;
    if (stream_.socket().available(ec) == 0 || ec) close();
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    server_->forget(id_);
  }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosing, kClosed };

  const ServerOptions& options() const { return server_->options(); }

  // A fresh connection gets header_timeout from accept to the end of the
  // head; a kept-alive one gets idle_timeout until its next request starts,
  // then header_timeout. Waiting for the first byte separately is what lets
  // the two differ.
  void wait_for_request(bool fresh) {
    if (stopping_) return linger_close();
    state_ = State::kIdle;
    method_.clear();
    path_.clear();
    version_ = 11;
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(options().max_header_bytes, UINT32_MAX)));
    parser_->body_limit(options().max_body_bytes);
    if (buffer_.size() > 0) {  // the client sent its next request early
      stream_.expires_after(options().header_timeout);
      return read_header();
    }
    stream_.expires_after(fresh ? options().header_timeout : options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this(), fresh](
                                                             beast::error_code ec, std::size_t n) {
      self->on_first_bytes(ec, n, fresh);
    });
  }

  void on_first_bytes(beast::error_code ec, std::size_t n, bool fresh) {
    if (state_ == State::kClosed) return;
    if (ec) {
      fail(ec, "wait");
      return close();
    }
    buffer_.commit(n);
    if (!fresh) stream_.expires_after(options().header_timeout);
    read_header();
  }

  void read_header() {
    state_ = State::kReading;
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return on_read_error(ec, "read header");
    const auto& req = parser_->get();
    method_ = std::string(req.method_string());
    path_ = std::string(path_of(req.target()));
    version_ = req.version();
    // The parser has already refused a declared length over the limit, so
    // a 100 here never invites a body we would reject.
    if (!parser_->is_done() && version_ >= 11 &&
        iequals(req[bhttp::field::expect], "100-continue")) {
      stream_.expires_after(options().write_timeout);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code wec, std::size_t) {
                         if (self->state_ == State::kClosed) return;
                         if (wec) {
                           fail(wec, "write 100-continue");
                           return self->close();
                         }
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return dispatch();
    stream_.expires_after(options().body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (self->state_ == State::kClosed) return;
                        if (ec) return self->on_read_error(ec, "read body");
                        self->dispatch();
                      });
  }

  void on_read_error(beast::error_code ec, const char* what) {
    if (ec == bhttp::error::body_limit) {
      return write(to_response(Problem{
                       .status = 413,
                       .type = "too-large",
                       .title = "Request body too large",
                       .detail = fmt::format("The request body exceeds the limit of {} bytes",
                                             options().max_body_bytes)}),
                   false);
    }
    if (ec == bhttp::error::header_limit) {
      return write(to_response(Problem{.status = 431,
                                       .type = "header-too-large",
                                       .title = "Request header fields too large",
                                       .detail = fmt::format(
                                           "The request header block exceeds the limit of {} bytes",
                                           options().max_header_bytes)}),
                   false);
    }
    // Every other error of Beast's HTTP category, apart from the peer going
    // away, means the bytes were not HTTP.
    const bool parse_error =
        ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
    if (parse_error) {
      method_.clear();
      path_.clear();
      return write(to_response(bad_request("The request is not valid HTTP/1.1")), false);
    }
    fail(ec, what);
    close();
  }

  void dispatch() {
    auto msg = parser_->release();
    parser_.reset();
    state_ = State::kHandling;
    keep_alive_ = msg.keep_alive();
    const Handler* handler = server_->handler();
    if (handler == nullptr) return close();

    Request request;
    request.method = method_;
    request.target = std::string(msg.target());
    for (const auto& field : msg) {
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    request.body = std::move(msg.body());
    request.remote = remote_;

    const std::uint64_t generation = ++generation_;
    // Strong, not weak: while the handler works no I/O is pending, so the
    // Responder is what keeps this connection alive. It is a no-op once the
    // connection has closed or answered.
    Responder responder = [self = shared_from_this(), generation](Response r) {
      self->respond(generation, std::move(r));
    };
    try {
      (*handler)(std::move(request), std::move(responder));
    } catch (...) {
      // Exception text may quote the body; keep it out of the log.
      spdlog::error("http server: handler threw on {} {}", method_, path_);
      respond(generation,
              to_response(Problem{.status = 500,
                                  .type = "internal",
                                  .title = "Internal error",
                                  .detail = "The server failed to handle the request"}));
    }
  }

  void respond(std::uint64_t generation, Response r) {
    if (state_ != State::kHandling || generation != generation_) return;
    write(std::move(r), keep_alive_ && !stopping_);
  }

  void write(Response r, bool keep_alive) {
    if (r.status < 200 || r.status > 999) {
      spdlog::error("http server: {} {}: handler gave invalid status {}", method_, path_, r.status);
      r = to_response(Problem{.status = 500,
                              .type = "internal",
                              .title = "Internal error",
                              .detail = "The server produced an invalid response"});
    }
    res_ = {};
    res_.version(version_ == 10 ? 10 : 11);
    res_.result(static_cast<unsigned>(r.status));
    for (auto& [name, value] : r.headers) {
      if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
          iequals(name, "Date") || iequals(name, "Server")) {
        continue;
      }
      if (iequals(name, "Connection")) {
        if (has_close_token(value)) keep_alive = false;
        continue;
      }
      if (!valid_header(name, value)) {
        spdlog::error("http server: {} {}: dropped invalid response header {}", method_, path_,
                      valid_header(name, "") ? name : "(unprintable)");
        continue;
      }
      res_.insert(name, value);
    }
    res_.set(bhttp::field::server, "tocsin");
    res_.set(bhttp::field::date, http_date());
    // 204 and 304 carry no body and (204) must not carry Content-Length; a
    // HEAD response announces the length it would have had.
    if (r.status != 204 && r.status != 304) res_.content_length(r.body.size());
    if (r.status != 204 && r.status != 304 && method_ != "HEAD") res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive);
    close_after_write_ = !keep_alive;

    if (!method_.empty()) spdlog::debug("http: {} {} {}", method_, path_, r.status);
    state_ = State::kWriting;
    stream_.expires_after(options().write_timeout);
    bhttp::async_write(
        stream_, res_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      fail(ec, "write");
      return close();
    }
    if (close_after_write_ || stopping_) return linger_close();
    wait_for_request(/*fresh=*/false);
  }

  void linger_close() {
    state_ = State::kClosing;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(kLinger);
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (self->state_ == State::kClosed) return;
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<ServerState> server_;
  const std::uint64_t id_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  State state_ = State::kIdle;
  bool stopping_ = false;
  bool keep_alive_ = false;
  bool close_after_write_ = false;
  unsigned version_ = 11;
  std::uint64_t generation_ = 0;
  // Of the current request, for the one log line per request.
  std::string method_;
  std::string path_;
};

// options.listen as an endpoint. Throws std::system_error when it is not a
// numeric "host:port" (config validation has said so already).
tcp::endpoint resolve_listen(const auto& executor, const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "listen address is not host:port: " + listen);
  }
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  tcp::resolver resolver(executor);
  auto results = resolver.resolve(host, port, tcp::resolver::numeric_service, ec);
  if (ec) throw std::system_error(ec, "resolve " + listen);
  if (results.empty()) {
    throw std::system_error(std::make_error_code(std::errc::address_not_available),
                            "resolve " + listen);
  }
  return results.begin()->endpoint();
}

std::string ServerState::start() {
  if (started_) throw std::logic_error("http server started twice");
  const std::string& listen = options_.listen;
  beast::error_code ec;
  auto check = [&](const char* what, const std::string& where) {
    if (!ec) return;
    beast::error_code ignored;
    acceptor_.close(ignored);
    throw std::system_error(ec, fmt::format("{} {}", what, where));
  };

  tcp::endpoint bound;
  if (options_.listen_fd >= 0) {
    // Socket activation: the socket is already bound and listening; only
    // its family is needed to adopt it (the caller checked it is a
    // listening TCP socket).
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(options_.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::system_error(errno, std::generic_category(), "getsockname of the passed socket");
    }
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) {
      throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                              "the passed socket is not a TCP/IP socket");
    }
    acceptor_.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), options_.listen_fd, ec);
    check("adopt", "the passed socket");
    bound = acceptor_.local_endpoint(ec);
    check("local address of", "the passed socket");
    // The socket wins (it is what clients reach); port 0 in the config
    // means "any port", so only the address has to match then.
    try {
      const tcp::endpoint wanted = resolve_listen(acceptor_.get_executor(), listen);
      if (wanted.address() != bound.address() ||
          (wanted.port() != 0 && wanted.port() != bound.port())) {
        spdlog::warn("server.listen is {} but the socket passed by systemd is {}; serving on "
                     "the passed socket (make ListenStream= in tocsin.socket and server.listen "
                     "agree)",
                     listen, endpoint_string(bound));
      }
    } catch (const std::system_error& e) {
      spdlog::warn("server.listen {} cannot be compared with the passed socket {}: {}", listen,
                   endpoint_string(bound), e.what());
    }
  } else {
    const tcp::endpoint endpoint = resolve_listen(acceptor_.get_executor(), listen);
    acceptor_.open(endpoint.protocol(), ec);
    check("open", listen);
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    check("set reuse_address on", listen);
    acceptor_.bind(endpoint, ec);
    check("bind", listen);
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    check("listen on", listen);
    bound = acceptor_.local_endpoint(ec);
    check("local address of", listen);
  }

  started_ = true;
  do_accept();
  return endpoint_string(bound);
}

void ServerState::do_accept() {
  acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void ServerState::on_accept(beast::error_code ec, tcp::socket socket) {
  if (stopped_) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    // EMFILE and friends pass; the loop must outlive them. Say so once per
    // bad spell, not ten times a second.
    if (!accept_failing_) {
      spdlog::warn("http server: accept: {} (retrying)", ec.message());
      accept_failing_ = true;
    } else {
      fail(ec, "accept");
    }
    retry_timer_.expires_after(kAcceptRetryDelay);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code tec) {
      if (!tec && !self->stopped_) self->do_accept();
    });
    return;
  }
  accept_failing_ = false;
  const bool over_cap = sessions_.size() >= options_.max_connections;
  const std::uint64_t id = next_id_++;
  auto session = std::make_shared<Session>(std::move(socket), shared_from_this(), id);
  sessions_.emplace(id, session);
  if (over_cap) {
    session->reject(to_response(Problem{.status = 503,
                                        .type = "overloaded",
                                        .title = "Too many connections",
                                        .detail = "The server is at its connection limit",
                                        .retry_after_s = 1}));
  } else {
    session->start();
  }
  do_accept();
}

void ServerState::stop() {
  stopped_ = true;
  beast::error_code ec;
  // close(), never shutdown(): on an adopted socket shutdown() would stop
  // the listening socket the service manager still holds, and the
  // connections queued in its backlog for the next process would be reset.
  acceptor_.close(ec);
  retry_timer_.cancel();
  // Copy first: closing a session removes it from the map.
  std::vector<std::shared_ptr<Session>> open;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) open.push_back(std::move(s));
  }
  for (auto& s : open) s->on_stop();
}

void ServerState::shutdown() {
  stop();
  std::vector<std::shared_ptr<Session>> open;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) open.push_back(std::move(s));
  }
  for (auto& s : open) s->close();
  handler_ = nullptr;
}

}  // namespace

struct Server::Impl : ServerState {
  using ServerState::ServerState;
};

Server::Server(boost::asio::io_context& io, ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(handler))) {}

Server::~Server() {
  impl_->shutdown();
}

std::string Server::start() {
  return impl_->start();
}

void Server::stop() {
  impl_->stop();
}

std::size_t Server::connections() const {
  return impl_->connections();
}

}  // namespace tocsin::http
