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

#include "http/message.h"

namespace tocsin::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // "host:port"; port 0 picks a free port
  std::size_t max_body_bytes = 65536;      // larger bodies get 413 problem+json
  std::size_t max_header_bytes = 16384;    // larger header blocks get 431
  std::chrono::milliseconds header_timeout{10'000};  // from first byte wait to end of headers
  std::chrono::milliseconds body_timeout{30'000};    // to read the body after the headers
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};   // to write one response
  std::size_t max_connections = 1024;  // beyond this, new connections get 503 and are closed
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
