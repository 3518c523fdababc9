// The instances sharing this database (store/cluster.h): a row per instance
// with the end of its last heartbeat, in the database's clock (instances on
// several machines need not agree on the time), and the housekeeping leader
// chosen by a session-level advisory lock, which the server releases when
// the leader's connection ends (its process died or its machine is gone).
#include "store/postgresql/listener.h"
#include "store/postgresql/pg_store.h"

#include <algorithm>

namespace tocsin::store::postgresql {
namespace {

// Positive, so that pg_locks' (classid, objid) halves compare as one key.
int64_t leader_key() { return lock_key("tocsin housekeeping leader") & 0x7fffffffffffffffLL; }

}  // namespace

Membership PgStore::heartbeat(const std::string& instance, UnixMs now, UnixMs until) {
  q("INSERT INTO instances (id, alive_until) VALUES ($1, clock_timestamp() + $2 * interval "
    "'1 millisecond') ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until")
      .bind(instance)
      .bind(std::max<int64_t>(0, until - now))
      .run();
  // Rows of instances long dead (a minute past their last heartbeat).
  q("DELETE FROM instances WHERE alive_until < clock_timestamp() - interval '1 minute'").run();
  Membership m;
  m.shared = true;
  m.live = static_cast<int>(
      std::max<int64_t>(1, q("SELECT count(*) FROM instances WHERE alive_until > clock_timestamp()")
                               .rows()
                               .i64(0, 0)));
  // Held already on this connection? (A reconnection loses it.) Otherwise try.
  auto held = q("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = "
                "pg_backend_pid() AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1")
                  .bind(leader_key())
                  .rows();
  m.leader = held.i64(0, 0) > 0 ||
             q("SELECT pg_try_advisory_lock($1)::int").bind(leader_key()).rows().i64(0, 0) == 1;
  return m;
}

void PgStore::leave(const std::string& instance) {
  q("DELETE FROM instances WHERE id = $1").bind(instance).run();
  q("SELECT pg_advisory_unlock_all()").rows();
}

void PgStore::notify_deliveries() { q("SELECT pg_notify($1, '')").bind(kDeliveriesChannel).send(); }

}  // namespace tocsin::store::postgresql
