// LISTEN for committed deliveries (see listener.h).
#include "store/postgresql/listener.h"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

namespace tocsin::store::postgresql {
namespace {

using ConnPtr = std::unique_ptr<PGconn, void (*)(PGconn*)>;

ConnPtr connect(const std::string& conninfo, const std::string& password) {
  const char* keys[] = {"dbname", password.empty() ? nullptr : "password", nullptr};
  const char* values[] = {conninfo.c_str(), password.empty() ? nullptr : password.c_str(), nullptr};
  ConnPtr c(PQconnectdbParams(keys, values, /*expand_dbname=*/1), &PQfinish);
  if (!c || PQstatus(c.get()) != CONNECTION_OK) return ConnPtr(nullptr, &PQfinish);
  PGresult* r = PQexec(c.get(), "LISTEN tocsin_deliveries");
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) return ConnPtr(nullptr, &PQfinish);
  return c;
}

}  // namespace

Listener::Listener(std::string conninfo, std::string password, std::function<void()> on_notify)
    : conninfo_(std::move(conninfo)), password_(std::move(password)),
      on_notify_(std::move(on_notify)), thread_([this] { run(); }) {}

Listener::~Listener() { stop(); }

void Listener::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void Listener::run() {
  bool warned = false;
  while (!stopping_) {
    ConnPtr c = connect(conninfo_, password_);
    if (!c) {
      if (!warned) spdlog::warn("listener: cannot LISTEN for other instances' deliveries; polling meanwhile");
      warned = true;
      for (int i = 0; i < 10 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (warned) spdlog::info("listener: listening again for other instances' deliveries");
    warned = false;
    on_notify_();  // what was committed while not listening
    while (!stopping_) {
      pollfd p{PQsocket(c.get()), POLLIN, 0};
      int n = ::poll(&p, 1, 1000);
      if (n < 0) continue;  // EINTR
      if (n == 0) continue;
      if (!PQconsumeInput(c.get())) break;  // the server went away: reconnect
      bool any = false;
      while (PGnotify* note = PQnotifies(c.get())) {
        any = true;
        PQfreemem(note);
      }
      if (any) on_notify_();
    }
  }
}

}  // namespace tocsin::store::postgresql
