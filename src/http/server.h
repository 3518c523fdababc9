// The inbound HTTP/1.1 server (Boost.Beast on Asio). It owns sockets,
// timeouts, limits and keep-alive; what a request means is the Handler's.
// Only server.cpp includes Beast.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"

namespace tocsin::http {

// What admission did with a connection, or an accept that failed.
enum class ConnectionEvent {
  kEvicted,      // an untrusted, unanswered connection closed to make room
  kFull,         // refused (503): every connection was busy or trusted
  kPerAddress,   // refused (503): its address had max_connections_per_address
  kAcceptError,  // accept() failed (EMFILE, ENFILE, ENOBUFS...); retried shortly
  kDeadline,     // closed: no first byte by first_byte_timeout, or no whole head by
                 // header_timeout (an idle keep-alive's end is not counted)
};

// A bounded label for metrics: "evicted", "full", "per_address",
// "accept_error", "deadline".
const char* to_string(ConnectionEvent e);

// The key under which max_connections_per_address counts a peer, from its
// address in text form: an IPv4 address as it is (an IPv4-mapped IPv6 one as
// its IPv4); any other IPv6 address as its /64 ("2001:db8:1:2::/64"). One
// host or subscriber line is given a whole /64, so a cap per exact IPv6
// address would be no cap at all. "" for text that is no address.
std::string admission_key(std::string_view peer_address);

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // "host:port"; port 0 picks a free port
  std::size_t max_body_bytes = 65536;      // larger bodies get 413 problem+json
  std::size_t max_header_bytes = 16384;    // larger header blocks get 431
  // A new connection must send its first byte within first_byte_timeout of
  // being accepted and its whole head within header_timeout of it; a
  // kept-alive one gets idle_timeout for its next first byte, then
  // header_timeout for the rest of that head.
  std::chrono::milliseconds first_byte_timeout{2'000};
  std::chrono::milliseconds header_timeout{5'000};
  std::chrono::milliseconds body_timeout{30'000};    // to read the body after the headers
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};   // to write one response
  // Admission. At max_connections a new connection is still accepted: the
  // oldest connection still reading a request (idle, partial head or body)
  // and never trusted is closed to make room. Only when every connection is
  // answering or trusted does the newcomer get 503 and close. A connection
  // is trusted once a response to it had Response::trusted (its request
  // proved a signature or token); trusted ones are never closed for room.
  std::size_t max_connections = 1024;
  // Open connections from one address (an IPv6 /64: see admission_key);
  // beyond it a new one gets 503.
  std::size_t max_connections_per_address = 256;
  // Called on the io thread for each admission event, for metrics.
  std::function<void(ConnectionEvent)> on_connection_event;
  // Called on the io thread when the server itself refuses a request (400
  // not HTTP, 413, 431), for metrics: no log line is written for those.
  std::function<void(int status)> on_refused;
  // A listening TCP socket to serve on instead of binding `listen` (systemd
  // socket activation); the server owns it from start() on. stop() closes it
  // without shutdown(): the service manager's copy stays open and keeps
  // queueing connections for the next process.
  int listen_fd = -1;
};

// Called once for each request, on the io_context's thread. The handler must
// call the Responder exactly once, on that thread, now or later; the
// connection reads nothing more until it has (HTTP/1.1 without pipelining).
using Responder = std::function<void(Response)>;
using Handler = std::function<void(Request, Responder)>;

// Serves HTTP/1.1 with keep-alive. Not thread-safe: use it from the thread
// that runs its io_context.
class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (or adopts options.listen_fd) and starts accepting. Returns the
  // bound "host:port" (with the real port when options.listen asked for port
  // 0). Throws std::system_error on bind failure or an unusable passed
  // socket (a start-up error). An adopted socket whose address differs from
  // options.listen is served all the same, with a warning naming both.
  std::string start();

  // Stops accepting new connections; open connections finish the request
  // they are on and are then closed. Idle keep-alive connections close now.
  void stop();

  // Number of open connections.
  std::size_t connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tocsin::http
