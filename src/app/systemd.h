// The systemd glue of `tocsin serve`: the listening socket systemd passes
// (tocsin.socket), the open-files limit, the readiness and stopping notices,
// and the watchdog that pings only while the store commits. Outside systemd
// each of these is a no-op (or, for the socket, "none passed").
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <string>

#include "store/store_worker.h"

namespace tocsin::app::systemd {

// The listening socket systemd passed (LISTEN_FDS), or -1 when started
// without one: then the server binds server.listen itself. Exactly one
// listening TCP socket is accepted; anything else is a unit
// misconfiguration, refused at start (std::runtime_error) rather than
// half-served. The LISTEN_* variables are unset, so no child inherits them.
int passed_socket();

// Raises the soft limit on open files to the hard one (systemd's default
// soft limit, 1024, is below what max_connections needs: accept() would fail
// with EMFILE before the server's own cap), and logs what it is.
void raise_file_limit(std::size_t max_connections);

void notify_ready(const std::string& status);
void notify_stopping();

// Under WatchdogSec= (WATCHDOG_USEC in the environment), pings the watchdog
// every third of its interval, but only after a no-op store job has gone
// through the store thread, committed, and come back through the io loop: a
// wedged loop or a store that cannot commit stops the pings and systemd
// restarts the daemon. The next probe waits for the previous one, so a stuck
// store does not pile probes up.
class Watchdog {
 public:
  Watchdog(boost::asio::io_context& io, store::StoreWorker& worker) : timer_(io), worker_(worker) {}
  void start();

 private:
  void probe();

  boost::asio::steady_timer timer_;
  store::StoreWorker& worker_;
  std::chrono::microseconds interval_{0};
};

}  // namespace tocsin::app::systemd
