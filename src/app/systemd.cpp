#include "app/systemd.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tocsin::app::systemd {

int passed_socket() {
  const int n = sd_listen_fds(1);
  if (n < 0) throw std::runtime_error(std::string("sd_listen_fds: ") + std::strerror(-n));
  if (n == 0) return -1;
  if (n > 1)
    throw std::runtime_error(std::to_string(n) +
                             " sockets passed; tocsin serves one (one ListenStream= in tocsin.socket)");
  const int fd = SD_LISTEN_FDS_START;
  const int r = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, /*listening=*/1, /*port=*/0);
  if (r < 0) throw std::runtime_error(std::string("fd 3: ") + std::strerror(-r));
  if (r == 0) throw std::runtime_error("fd 3 is not a listening TCP socket (ListenStream=HOST:PORT)");
  return fd;
}

void raise_file_limit(std::size_t max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("open files limit: cannot read it: {}", std::strerror(errno));
    return;
  }
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("open files limit: cannot raise {} to {}: {}", before, lim.rlim_max,
                   std::strerror(errno));
      lim.rlim_cur = before;
    }
  }
  if (lim.rlim_cur == before)
    spdlog::info("open files limit: {}", lim.rlim_cur);
  else
    spdlog::info("open files limit: {} (raised from {})", lim.rlim_cur, before);
  // Connections, the database, gateway connections and a margin.
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < max_connections + 256)
    spdlog::warn("open files limit {} is low for server.max_connections {}: raise LimitNOFILE= "
                 "in the unit",
                 lim.rlim_cur, max_connections);
}

void notify_ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

void Watchdog::start() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  interval_ = std::chrono::microseconds(usec / 3);
  spdlog::info("systemd watchdog: {} ms; pinging every {} ms while the store commits",
               usec / 1000, usec / 3000);
  probe();
}

void Watchdog::probe() {
  worker_.submit([](store::Store&) {},
                 [this](bool committed) {
                   if (!committed) {
                     spdlog::warn("watchdog probe did not commit; not pinging");
                   } else {
                     sd_notify(0, "WATCHDOG=1");
                   }
                   timer_.expires_after(interval_);
                   timer_.async_wait([this](boost::system::error_code ec) {
                     if (!ec) probe();
                   });
                 });
}

}  // namespace tocsin::app::systemd
