// The instances that share one store, as each sees them: how many are alive
// (so that a gateway's limits, which are the provider account's, are split
// among them and their sum never exceeds the account's) and which one leads
// the housekeeping that must run once (purges, escalation timers,
// re-encryption). An instance says it is alive by a heartbeat; one that stops
// sending them is dead once its last one runs out, and the others take back
// its share then. The SQLite store has one instance by construction (its
// lock file); the PostgreSQL store keeps a membership table.
#pragma once

#include <string>

#include "core/model.h"

namespace tocsin::store {

struct Membership {
  int live = 1;         // instances alive now, this one included (at least 1)
  bool leader = true;   // this instance runs the once-only housekeeping
  bool shared = false;  // other instances can share this store (PostgreSQL)
};

class Cluster {
 public:
  virtual ~Cluster() = default;
  // This instance (`instance`, unique per process) is alive until `until`.
  // Returns the membership as of `now`.
  virtual Membership heartbeat(const std::string& instance, UnixMs now, UnixMs until) = 0;
  // A graceful stop: the others take this instance's share back at once
  // rather than when its last heartbeat runs out.
  virtual void leave(const std::string& instance) = 0;
};

}  // namespace tocsin::store
