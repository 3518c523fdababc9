// Wakes this instance when another one commits new deliveries: PostgreSQL's
// LISTEN on a connection of its own (the store's connection belongs to the
// StoreWorker and is busy in transactions). The stores NOTIFY the channel
// in the transaction that plans deliveries, so a notification arrives only
// once they are committed. A thread of its own waits on the connection's
// socket (a second at a time, so stop() is prompt) and reconnects every
// second after the server went away; after each (re)connection it calls
// `on_notify` once too, since what was committed meanwhile is due now. The
// dispatcher's poll (delivery.idle_poll) stays the fallback.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "store/open_store.h"

namespace tocsin::store::postgresql {

inline constexpr const char* kDeliveriesChannel = "tocsin_deliveries";

class Listener final : public DeliveryWatch {
 public:
  // `on_notify` runs on the listener's thread: post it to where it belongs.
  Listener(std::string conninfo, std::string password, std::function<void()> on_notify);
  ~Listener() override;  // stops
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void stop();

 private:
  void run();
  std::string conninfo_, password_;
  std::function<void()> on_notify_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tocsin::store::postgresql
