// The delivery queue: planning deliveries for a report, claims and leases,
// results, receipts, requeues and fan-out progress. Table: deliveries.
//
// Several instances share the queue: a claim locks the rows it takes
// (FOR UPDATE SKIP LOCKED: another instance's claim passes them by) and
// leases them to this instance (lease_owner); a result or a release is
// written only while the lease is this instance's, so a late answer for a
// row whose lease expired and went to another instance changes nothing.
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "store/postgresql/pg_store.h"

namespace tocsin::store::postgresql {

namespace {

// The head of every statement that plans deliveries: one pending row per
// (report, subscriber, channel), bound $1 report, $2 incident, $3 channel,
// $4 now, $5 deadline. A row another instance planned already stays.
#define PLAN_INSERT                                                                     \
  "INSERT INTO deliveries (report_id, incident_id, subscriber_id, channel, "            \
  "language, state, next_attempt_at, deadline_at, created_at, updated_at) "

#define PLAN_IGNORE " ON CONFLICT (report_id, subscriber_id, channel) DO NOTHING"

// ...for the members of group $6 reachable on $3 (plan_each binds $6).
#define PLAN_GROUP_MEMBERS                                                                  \
  PLAN_INSERT                                                                               \
  "SELECT $1, $2, s.id, $3, s.language, 0, $4, $5, $4, $4 FROM subscriber_groups g "        \
  "JOIN subscribers s ON s.id = g.subscriber_id WHERE g.group_name = $6 AND " PG_REACHABLE_ON( \
      "$3")

// How long a delivery this instance cannot decrypt waits for another.
constexpr UnixMs kPostpone_ms = 30'000;

}  // namespace

int64_t PgStore::requeue_failed(const std::string& id, UnixMs now, UnixMs sms_deadline,
                                UnixMs email_deadline) {
  notify_deliveries();
  return q("UPDATE deliveries SET state = 0, next_attempt_at = $1, lease_until = 0, "
           "lease_owner = '', deadline_at = CASE channel WHEN 1 THEN $3 ELSE $2 END, "
           "updated_at = $1 WHERE incident_id = $4 AND state IN (4, 5)")
      .bind(now)
      .bind(sms_deadline)
      .bind(email_deadline)
      .bind(id)
      .run();
}

bool PgStore::apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) {
  return q("UPDATE deliveries SET state = $1, updated_at = $2 WHERE provider_id = $3 AND state = 1")
             .bind(static_cast<int>(state))
             .bind(now)
             .bind(provider_id)
             .run() > 0;
}

int64_t PgStore::plan_group_deliveries(int64_t report_id, const std::string& incident_id,
                                       const std::vector<std::string>& groups, Channel channel,
                                       UnixMs now, UnixMs deadline) {
  return plan_each(PLAN_GROUP_MEMBERS " ORDER BY g.subscriber_id" PLAN_IGNORE, report_id,
                   incident_id, groups, channel, now, deadline);
}

int64_t PgStore::plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                          Channel channel, UnixMs now, UnixMs deadline) {
  notify_deliveries();
  return q(PLAN_INSERT
           "SELECT DISTINCT $1::bigint, $2::text, s.id, $3::bigint, s.language, 0, $4::bigint, "
           "$5::bigint, $4::bigint, $4::bigint FROM deliveries d JOIN subscribers s ON s.id = "
           "d.subscriber_id WHERE d.incident_id = $2 AND d.channel = $3 AND d.report_id <> $1 "
           "AND " PG_REACHABLE_ON("$3") " ORDER BY s.id" PLAN_IGNORE)
      .bind(report_id)
      .bind(incident_id)
      .bind(static_cast<int>(channel))
      .bind(now)
      .bind(deadline)
      .run();
}

ClaimResult PgStore::claim_due(Channel channel, std::size_t limit, UnixMs now,
                               UnixMs lease_until) {
  ClaimResult result;
  int ch = static_cast<int>(channel);
  // Past their deadline: a stale alert misleads more than none. Rows
  // another instance is claiming right now are left to it.
  result.expired =
      q("UPDATE deliveries SET state = 5, last_error = 'deadline passed', updated_at = $1 "
        "WHERE id IN (SELECT id FROM deliveries WHERE state = 0 AND channel = $2 AND "
        "deadline_at < $1 AND lease_until <= $1 FOR UPDATE SKIP LOCKED)")
          .bind(now)
          .bind(ch)
          .run();

  auto r = q("SELECT d.id, d.incident_id, d.language, d.attempts, d.deadline_at, d.report_id, "
             "CASE WHEN s.id IS NOT NULL AND " PG_REACHABLE_ON("d.channel") " THEN 1 ELSE 0 END, "
             "CASE WHEN d.channel = 1 THEN s.email ELSE s.phone END, s.id, s.key_id, "
             "d.created_at, "
             // An email follow-up threads under the alert: is this not the
             // incident's first report?
             "CASE WHEN d.channel = 1 AND d.report_id > (SELECT min(r.id) FROM reports r WHERE "
             "r.incident_id = d.incident_id) THEN 1 ELSE 0 END "
             "FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id "
             "WHERE d.state = 0 AND d.channel = $1 AND GREATEST(d.next_attempt_at, "
             "d.lease_until) <= $2 ORDER BY GREATEST(d.next_attempt_at, d.lease_until), d.id "
             "LIMIT $3 FOR UPDATE OF d SKIP LOCKED")
               .bind(ch)
               .bind(now)
               .bind(static_cast<int64_t>(limit))
               .rows();
  std::map<std::pair<int64_t, std::string>,
           std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>>>
      texts;
  std::vector<int64_t> to_cancel, leased, postponed;
  for (int i = 0; i < r.rows(); ++i) {
    int64_t id = r.i64(i, 0);
    if (r.i64(i, 6) == 0) {
      to_cancel.push_back(id);
      continue;
    }
    ClaimedDelivery d;
    d.id = id;
    d.channel = channel;
    d.incident_id = r.text(i, 1);
    d.language = r.text(i, 2);
    d.attempts = static_cast<int>(r.i64(i, 3));
    d.deadline_at = r.i64(i, 4);
    d.report_id = r.i64(i, 5);
    d.planned_at = r.i64(i, 10);
    d.subscriber_id = r.i64(i, 8);
    d.followup = r.i64(i, 11) != 0;
    // Sealed under a key this instance's key file lacks yet: another
    // instance has rotated keys and re-encrypted it, and this one has not
    // read the new key file. Not cancelled: left for an instance that can
    // read it (or this one, reloaded) in kPostpone_ms.
    if (!crypto_.keyring().has_key(static_cast<uint32_t>(r.i64(i, 9)))) {
      postponed.push_back(id);
      continue;
    }
    try {
      d.to = crypto_.open(r.i64(i, 8), static_cast<uint32_t>(r.i64(i, 9)),
                          uses_phone(channel) ? SubscriberCrypto::kPhone : SubscriberCrypto::kEmail,
                          r.bytea(i, 7));
    } catch (const StoreError&) {  // one altered row must not stop the queue
      spdlog::error("delivery {}: the subscriber's address does not decrypt; cancelled", id);
      to_cancel.push_back(id);
      continue;
    }
    auto key = std::make_pair(d.report_id, d.language);
    auto it = texts.find(key);
    if (it == texts.end()) {
      auto m = q("SELECT subject, body FROM messages WHERE report_id = $1 AND channel = $2 AND "
                 "language = $3")
                   .bind(key.first)
                   .bind(ch)
                   .bind(key.second)
                   .rows();
      std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>> t;
      if (m.rows()) {
        t.first = std::make_shared<const std::string>(m.text(0, 0));
        t.second = std::make_shared<const std::string>(m.text(0, 1));
      }
      it = texts.emplace(key, std::move(t)).first;
    }
    if (!it->second.second) {  // no text for it: cannot happen unless the row was edited
      to_cancel.push_back(id);
      continue;
    }
    d.subject = it->second.first;
    d.body = it->second.second;
    leased.push_back(id);
    result.claimed.push_back(std::move(d));
  }
  if (!leased.empty())
    q("UPDATE deliveries SET lease_until = $1, lease_owner = $2 WHERE id = ANY($3)")
        .bind(lease_until)
        .bind(instance_id_)
        .bind_array(leased)
        .send();
  if (!postponed.empty()) {
    spdlog::warn("{} deliveries are sealed under a key this instance lacks: reload its key file",
                 postponed.size());
    q("UPDATE deliveries SET lease_until = $1, lease_owner = '' WHERE id = ANY($2)")
        .bind(now + kPostpone_ms)
        .bind_array(postponed)
        .send();
  }
  if (!to_cancel.empty())
    q("UPDATE deliveries SET state = 6, last_error = 'recipient unreachable', updated_at = $1 "
      "WHERE id = ANY($2)")
        .bind(now)
        .bind_array(to_cancel)
        .send();
  result.cancelled = static_cast<int64_t>(to_cancel.size());
  return result;
}

void PgStore::record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) {
  if (updates.empty()) return;
  // One statement for the whole flush: a fan-out records hundreds at a
  // time, and a statement each was a round trip each.
  std::vector<int64_t> id, state, next_at;
  std::vector<std::string> gateway, provider_id, error;
  for (const auto& u : updates) {
    id.push_back(u.id);
    state.push_back(static_cast<int64_t>(u.state));
    next_at.push_back(u.next_attempt_at);
    gateway.push_back(u.gateway);
    provider_id.push_back(u.provider_id);
    error.push_back(u.error);
  }
  // Only while the lease is ours: another instance may hold it now.
  auto r = q("UPDATE deliveries d SET state = u.state, attempts = d.attempts + 1, "
             "next_attempt_at = u.next_at, lease_until = 0, lease_owner = '', "
             "gateway = u.gateway, provider_id = u.provider_id, last_error = u.error, "
             "updated_at = $7 "
             "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], "
             "$6::text[]) AS u(id, state, next_at, gateway, provider_id, error) "
             "WHERE d.id = u.id AND d.lease_owner = $8 RETURNING d.id")
               .bind_array(id)
               .bind_array(state)
               .bind_array(next_at)
               .bind_array(gateway)
               .bind_array(provider_id)
               .bind_array(error)
               .bind(now)
               .bind(instance_id_)
               .rows();
  std::set<int64_t> recorded;
  for (int i = 0; i < r.rows(); ++i) recorded.insert(r.i64(i, 0));
  for (const auto& u : updates) {
    if (!recorded.count(u.id)) {
      spdlog::warn("delivery {}: its lease is no longer this instance's; result not recorded",
                   u.id);
      continue;
    }
    if (u.opt_out) {
      q("UPDATE subscribers SET sms_opted_out = 1 WHERE id = (SELECT subscriber_id FROM "
        "deliveries WHERE id = $1)")
          .bind(u.id)
          .send();
      q("UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = $1 WHERE "
        "state = 0 AND channel <> 1 AND subscriber_id = (SELECT subscriber_id FROM deliveries "
        "WHERE id = $2)")
          .bind(now)
          .bind(u.id)
          .send();
    }
  }
}

std::optional<UnixMs> PgStore::next_due(Channel channel) {
  auto r = q("SELECT GREATEST(next_attempt_at, lease_until) FROM deliveries WHERE state = 0 AND "
             "channel = $1 ORDER BY GREATEST(next_attempt_at, lease_until) LIMIT 1")
               .bind(static_cast<int>(channel))
               .rows();
  if (!r.rows()) return std::nullopt;
  return r.i64(0, 0);
}

int64_t PgStore::release_all_leases() {
  // This instance's only: another's leases are its work in flight, and if
  // that instance died they end by expiry.
  return q("UPDATE deliveries SET lease_until = 0, lease_owner = '' WHERE state = 0 AND "
           "lease_owner = $1 AND lease_until <> 0")
      .bind(instance_id_)
      .run();
}

void PgStore::release_leases(const std::vector<int64_t>& ids) {
  if (ids.empty()) return;
  notify_deliveries();  // another instance can take them now
  q("UPDATE deliveries SET lease_until = 0, lease_owner = '' WHERE id = ANY($1) AND state = 0 "
    "AND lease_owner = $2")
      .bind_array(ids)
      .bind(instance_id_)
      .send();
}

void PgStore::renew_leases(const std::vector<int64_t>& ids, UnixMs until) {
  if (ids.empty()) return;
  q("UPDATE deliveries SET lease_until = $1 WHERE id = ANY($2) AND state = 0 AND lease_owner = $3 "
    "AND lease_until > 0")
      .bind(until)
      .bind_array(ids)
      .bind(instance_id_)
      .send();
}

int64_t PgStore::pending_count() {
  return q("SELECT count(*) FROM deliveries WHERE state = 0").rows().i64(0, 0);
}

std::vector<FanoutProgress> PgStore::fanout_progress(
    const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) {
  std::vector<FanoutProgress> out;
  for (const auto& [report, channel] : keys) {
    FanoutProgress p{report, channel};
    auto r = q("SELECT EXISTS (SELECT 1 FROM deliveries WHERE report_id = $1 AND channel = $2 "
               "AND state = 0), CASE WHEN $3 = 0 THEN 0 ELSE (SELECT count(*) FROM deliveries "
               "WHERE report_id = $1 AND channel = $2 AND state IN (1, 2, 3)) END")
                 .bind(report)
                 .bind(static_cast<int>(channel))
                 .bind(count_accepted ? 1 : 0)
                 .rows();
    p.pending = r.i64(0, 0) != 0;
    if (count_accepted) p.accepted = r.i64(0, 1);
    out.push_back(p);
  }
  return out;
}

std::optional<DeliveryTarget> PgStore::delivery_target(int64_t delivery_id) {
  auto r = q("SELECT incident_id, coalesce(subscriber_id, 0), channel, state, language FROM "
             "deliveries WHERE id = $1")
               .bind(delivery_id)
               .rows();
  if (!r.rows()) return std::nullopt;
  return DeliveryTarget{r.text(0, 0), r.i64(0, 1), static_cast<Channel>(r.i64(0, 2)),
                        static_cast<DeliveryState>(r.i64(0, 3)), r.text(0, 4)};
}

bool PgStore::apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) {
  return q("UPDATE deliveries SET state = $1, updated_at = $2 WHERE id = $3 AND state = 1")
             .bind(static_cast<int>(state))
             .bind(now)
             .bind(delivery_id)
             .run() > 0;
}

bool PgStore::note_receipt_to(int64_t delivery_id, std::string_view note, UnixMs now) {
  return q("UPDATE deliveries SET last_error = $1, updated_at = $2 WHERE id = $3 AND state = 1")
             .bind(note)
             .bind(now)
             .bind(delivery_id)
             .run() > 0;
}

int64_t PgStore::plan_new_recipient_deliveries(int64_t report_id, const std::string& incident_id,
                                               const std::vector<std::string>& groups,
                                               Channel channel, UnixMs now, UnixMs deadline) {
  return plan_each(PLAN_GROUP_MEMBERS
                   " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND "
                   "d.channel = $3 AND d.incident_id = $2) ORDER BY g.subscriber_id" PLAN_IGNORE,
                   report_id, incident_id, groups, channel, now, deadline);
}

int64_t PgStore::plan_deliveries_to(int64_t report_id, const std::string& incident_id,
                                    const std::vector<int64_t>& subscribers, Channel channel,
                                    UnixMs now, UnixMs deadline) {
  return plan_each(PLAN_INSERT
                   "SELECT $1, $2, s.id, $3, s.language, 0, $4, $5, $4, $4 FROM subscribers s "
                   "WHERE s.id = $6 AND " PG_REACHABLE_ON("$3") " AND EXISTS (SELECT 1 FROM "
                   "deliveries d WHERE d.subscriber_id = s.id AND d.channel = $3 AND "
                   "d.incident_id = $2 AND d.report_id <> $1)" PLAN_IGNORE,
                   report_id, incident_id, subscribers, channel, now, deadline);
}

}  // namespace tocsin::store::postgresql
