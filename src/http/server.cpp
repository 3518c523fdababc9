#include "http/server.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "http/problem_response.h"
#include "http/server_internal.h"

namespace tocsin::http {

namespace detail {

std::string endpoint_string(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6()) return fmt::format("[{}]:{}", addr.to_string(), ep.port());
  return fmt::format("{}:{}", addr.to_string(), ep.port());
}

namespace {

// After EMFILE and the like, retrying at once would spin the io thread.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// On EMFILE/ENFILE, this many of the oldest untrusted connections still
// reading a request are closed, so that the accept can succeed at once.
constexpr std::size_t kEvictOnNoFiles = 8;

std::string admission_key_of(const net::ip::address& a) {
  if (a.is_v4()) return a.to_string();
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return net::ip::address_v6(bytes).to_string() + "/64";
}

// The peer's admission key (see admission_key in server.h).
std::string address_key(const tcp::socket& socket) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  return ec ? std::string() : admission_key_of(ep.address());
}

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

}  // namespace

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
    // EMFILE and friends pass; the loop must outlive them. One line when a
    // bad spell starts and one when it ends, never one per failure.
    event(ConnectionEvent::kAcceptError);
    ++accept_failures_;
    if (!accept_failing_) {
      spdlog::warn("http server: accept: {} (retrying; counted in metrics)", ec.message());
      accept_failing_ = true;
    }
    // Out of descriptors: free some held by connections that have sent no
    // complete request, and try again now; otherwise after a pause.
    bool freed = false;
    if (ec == net::error::no_descriptors || ec.value() == ENFILE) {
      for (std::size_t i = 0; i < kEvictOnNoFiles && evict_one(); ++i) freed = true;
    }
    retry_timer_.expires_after(freed ? std::chrono::milliseconds(0) : kAcceptRetryDelay);
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code tec) {
      if (!tec && !self->stopped_) self->do_accept();
    });
    return;
  }
  if (accept_failing_) {
    spdlog::warn("http server: accepting again after {} failed accepts", accept_failures_);
    accept_failing_ = false;
    accept_failures_ = 0;
  }
  std::string address = address_key(socket);
  const auto known = per_address_.find(address);
  const bool address_full = known != per_address_.end() &&
                            known->second >= options_.max_connections_per_address;
  bool full = false;
  if (!address_full && sessions_.size() >= options_.max_connections) {
    // Make room: the oldest connection that has not got as far as a request.
    full = !evict_one();
  }
  ++per_address_[address];  // after evict_one(), which may erase entries
  const std::uint64_t id = next_id_++;
  auto session = std::make_shared<Session>(std::move(socket), shared_from_this(), id,
                                           std::move(address));
  sessions_.emplace(id, session);
  if (address_full || full) {
    event(address_full ? ConnectionEvent::kPerAddress : ConnectionEvent::kFull);
    session->reject(to_response(Problem{
        .status = 503,
        .type = "overloaded",
        .title = "Too many connections",
        .detail = address_full ? "The server is at its connection limit for your address"
                               : "The server is at its connection limit",
        .retry_after_s = 1}));
  } else {
    session->start();
  }
  do_accept();
}

bool ServerState::evict_one() {
  while (!evictable_.empty()) {
    auto node = evictable_.extract(evictable_.begin());
    if (auto s = node.mapped().lock()) {
      s->evict();
      event(ConnectionEvent::kEvicted);
      return true;
    }
  }
  return false;
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

}  // namespace detail

std::string admission_key(std::string_view peer_address) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(peer_address), ec);
  return ec ? std::string() : detail::admission_key_of(a);
}

const char* to_string(ConnectionEvent e) {
  switch (e) {
    case ConnectionEvent::kEvicted: return "evicted";
    case ConnectionEvent::kFull: return "full";
    case ConnectionEvent::kPerAddress: return "per_address";
    case ConnectionEvent::kAcceptError: return "accept_error";
    case ConnectionEvent::kDeadline:
      return "deadline";
  }
  return "unknown";
}

struct Server::Impl : detail::ServerState {
  using detail::ServerState::ServerState;
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
