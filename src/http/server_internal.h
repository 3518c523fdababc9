// Internal to src/http: the state the server shares with its connections
// (ServerState: the acceptor and admission) and one connection (Session:
// read, dispatch, write). server.cpp owns admission, session.cpp the
// connection; only these two translation units see Beast.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/server.h"

namespace tocsin::http::detail {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// The one place I/O errors are reported. Aborts (our own close) and a peer
// hanging up between requests are normal, not worth a line.
void fail(beast::error_code ec, const char* what);
// "1.2.3.4:5" or "[::1]:5".
std::string endpoint_string(const tcp::endpoint& ep);

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
  void forget(std::uint64_t id, const std::string& address) {
    if (sessions_.erase(id) == 0) return;
    auto it = per_address_.find(address);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }

  // Evictable connections, oldest first: a session enters when it starts
  // waiting for (or reading) a request and leaves when the request is
  // dispatched, it closes, or it becomes trusted. Returns the entry's key.
  std::uint64_t add_evictable(std::weak_ptr<Session> s) {
    const std::uint64_t key = next_evictable_++;
    evictable_.emplace(key, std::move(s));
    return key;
  }
  void remove_evictable(std::uint64_t key) { evictable_.erase(key); }
  // An admission event, to ServerOptions::on_connection_event.
  void event(ConnectionEvent e) const {
    if (options_.on_connection_event) options_.on_connection_event(e);
  }

 private:
  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  // Closes the oldest evictable connection; false when there is none.
  bool evict_one();

  ServerOptions options_;
  Handler handler_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  bool started_ = false;
  bool stopped_ = false;
  bool accept_failing_ = false;
  std::uint64_t accept_failures_ = 0;  // in the current bad spell
  std::uint64_t next_id_ = 0;
  std::uint64_t next_evictable_ = 0;
  std::map<std::uint64_t, std::weak_ptr<Session>> evictable_;
  std::unordered_map<std::string, std::size_t> per_address_;
  // Open connections. Weak: a connection lives as long as its pending I/O or
  // an outstanding Responder, and removes itself when it closes.
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions_;
};

// One accepted connection: reads a request, hands it to the Handler, writes
// the response, and either waits for the next request or closes.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> server, std::uint64_t id,
          std::string address);

  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();

  // Answers with `r` without reading anything, then closes (connection
  // cap). Evictable meanwhile: its slot is not worth keeping.
  void reject(Response r);

  // The server stops: an idle connection closes now, a busy one after its
  // response. A request that has arrived but is not read yet counts as busy:
  // closing on it would reset it unanswered.
  void on_stop();

  // Closed for room (see ServerOptions). The server has already taken it off
  // its list of evictable connections.
  void evict();

  void close();

 private:
  // In or out of the server's list of connections that may be closed for
  // room; a trusted connection never enters it.
  void set_evictable(bool on);

  enum class State { kIdle, kReading, kHandling, kWriting, kClosing, kClosed };

  const ServerOptions& options() const;
  void refused(int status) const;

  // A fresh connection gets header_timeout from accept to the end of the
  // head; a kept-alive one gets idle_timeout until its next request starts,
  // then header_timeout. Waiting for the first byte separately is what lets
  // the two differ.
  void wait_for_request(bool fresh);

  void on_first_bytes(beast::error_code ec, std::size_t n, bool fresh);

  void read_header();

  void on_header(beast::error_code ec);

  void read_body();

  void on_read_error(beast::error_code ec, const char* what);

  void dispatch();

  void respond(std::uint64_t generation, Response r);

  void write(Response r, bool keep_alive);

  void on_write(beast::error_code ec);

  void linger_close();

  void drain();

  beast::tcp_stream stream_;
  std::shared_ptr<ServerState> server_;
  const std::uint64_t id_;
  const std::string address_;  // the peer's IP address, for the per-address cap
  const std::chrono::steady_clock::time_point accepted_at_;
  std::optional<std::uint64_t> evictable_key_;
  bool trusted_ = false;
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

}  // namespace tocsin::http::detail
