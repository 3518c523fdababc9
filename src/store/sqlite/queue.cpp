// The delivery queue: planning deliveries for a report, claims and leases,
// results, receipts, requeues and fan-out progress. Table: deliveries.
#include "store/sqlite/sqlite_store.h"

#include <map>

#include <spdlog/spdlog.h>

namespace tocsin::store::sqlite {

namespace {

// The head of every statement that plans deliveries: one pending row per
// (report, subscriber, channel), bound ?1 report, ?2 incident, ?3 channel,
// ?4 now, ?5 deadline.
#define PLAN_INSERT                                                                      \
  "INSERT OR IGNORE INTO deliveries (report_id, incident_id, subscriber_id, channel, "  \
  "language, state, next_attempt_at, deadline_at, created_at, updated_at) "

// ...for the members of group ?6 reachable on ?3 (plan_each binds ?6).
#define PLAN_GROUP_MEMBERS                                                                \
  PLAN_INSERT                                                                             \
  "SELECT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM subscriber_groups g "      \
  "JOIN subscribers s ON s.id = g.subscriber_id WHERE g.group_name = ?6 AND " REACHABLE_ON( \
      "?3")

}  // namespace

int64_t SqliteStore::requeue_failed(const std::string& id, UnixMs now, UnixMs sms_deadline,
                       UnixMs email_deadline) {
  stmt("UPDATE deliveries SET state = 0, next_attempt_at = ?1, lease_until = 0, "
       "deadline_at = CASE channel WHEN 1 THEN ?3 ELSE ?2 END, updated_at = ?1 "
       "WHERE incident_id = ?4 AND state IN (4, 5)")
      .reset()
      .bind(now)
      .bind(sms_deadline)
      .bind(email_deadline)
      .bind(id)
      .run();
  return db_.changes();
}

bool SqliteStore::apply_receipt(const std::string& provider_id, DeliveryState state, UnixMs now) {
  stmt("UPDATE deliveries SET state = ?, updated_at = ? WHERE provider_id = ? AND state = 1")
      .reset()
      .bind(static_cast<int>(state))
      .bind(now)
      .bind(provider_id)
      .run();
  return db_.changes() > 0;
}

int64_t SqliteStore::plan_group_deliveries(int64_t report_id, const std::string& incident_id,
                              const std::vector<std::string>& groups, Channel channel,
                              UnixMs now, UnixMs deadline) {
  auto& s = stmt(
      PLAN_GROUP_MEMBERS " ORDER BY g.subscriber_id");  // the group's key order: no sort of the whole group
  return plan_each(s, report_id, incident_id, groups, channel, now, deadline);
}

int64_t SqliteStore::plan_followup_deliveries(int64_t report_id, const std::string& incident_id,
                                 Channel channel, UnixMs now, UnixMs deadline) {
  auto& s = stmt(
      PLAN_INSERT
      "SELECT DISTINCT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM deliveries d "
      "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.incident_id = ?2 AND d.channel = ?3 "
      "AND d.report_id <> ?1 AND " REACHABLE_ON("?3") " ORDER BY s.id");
  s.reset()
      .bind(report_id)
      .bind(incident_id)
      .bind(static_cast<int>(channel))
      .bind(now)
      .bind(deadline)
      .run();
  return db_.changes();
}

ClaimResult SqliteStore::claim_due(Channel channel, std::size_t limit, UnixMs now,
                      UnixMs lease_until) {
  ClaimResult result;
  int ch = static_cast<int>(channel);
  // Past their deadline: a stale alert misleads more than none.
  auto& expire = stmt(
      "UPDATE deliveries SET state = 5, last_error = 'deadline passed', updated_at = ?1 "
      "WHERE state = 0 AND channel = ?2 AND deadline_at < ?1 AND lease_until <= ?1");
  expire.reset().bind(now).bind(ch).run();
  result.expired = db_.changes();

  auto& s = stmt(
      "SELECT d.id, d.incident_id, d.language, d.attempts, d.deadline_at, d.report_id, "
      "s.id IS NOT NULL AND " REACHABLE_ON("d.channel") ", "
      "CASE WHEN d.channel = 1 THEN s.email ELSE s.phone END, s.id, s.key_id, d.created_at, "
      // An email follow-up threads under the alert: is this not the
      // incident's first report?
      "d.channel = 1 AND d.report_id > (SELECT min(r.id) FROM reports r WHERE "
      "r.incident_id = d.incident_id) "
      "FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id "
      "WHERE d.state = 0 AND d.channel = ?1 AND max(d.next_attempt_at, d.lease_until) <= ?2 "
      "ORDER BY max(d.next_attempt_at, d.lease_until), d.id LIMIT ?3");
  s.reset().bind(ch).bind(now).bind(static_cast<int64_t>(limit));
  auto& lease = stmt("UPDATE deliveries SET lease_until = ? WHERE id = ?");
  auto& cancel = stmt(
      "UPDATE deliveries SET state = 6, last_error = 'recipient unreachable', updated_at = ? "
      "WHERE id = ?");
  auto& msg = stmt(
      "SELECT subject, body FROM messages WHERE report_id = ? AND channel = ? AND language = ?");
  std::map<std::pair<int64_t, std::string>,
           std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>>>
      texts;
  std::vector<int64_t> to_cancel;
  while (s.step()) {
    int64_t id = s.i64(0);
    if (s.i64(6) == 0) {
      to_cancel.push_back(id);
      continue;
    }
    ClaimedDelivery d;
    d.id = id;
    d.channel = channel;
    d.incident_id = s.text(1);
    d.language = s.text(2);
    d.attempts = static_cast<int>(s.i64(3));
    d.deadline_at = s.i64(4);
    d.report_id = s.i64(5);
    d.planned_at = s.i64(10);
    d.subscriber_id = s.i64(8);
    d.followup = s.i64(11) != 0;
    try {
      d.to = crypto_.open(s.i64(8), static_cast<uint32_t>(s.i64(9)),
                          uses_phone(channel) ? SubscriberCrypto::kPhone : SubscriberCrypto::kEmail,
                          s.blob(7));
    } catch (const StoreError&) {  // one altered row must not stop the queue
      spdlog::error("delivery {}: the subscriber's address does not decrypt; cancelled", id);
      to_cancel.push_back(id);
      continue;
    }
    auto key = std::make_pair(s.i64(5), d.language);
    auto it = texts.find(key);
    if (it == texts.end()) {
      msg.reset().bind(key.first).bind(ch).bind(key.second);
      std::pair<std::shared_ptr<const std::string>, std::shared_ptr<const std::string>> t;
      if (msg.step()) {
        t.first = std::make_shared<const std::string>(msg.text(0));
        t.second = std::make_shared<const std::string>(msg.text(1));
      }
      msg.reset();
      it = texts.emplace(key, std::move(t)).first;
    }
    if (!it->second.second) {  // no text for it: cannot happen unless the row was edited
      to_cancel.push_back(id);
      continue;
    }
    d.subject = it->second.first;
    d.body = it->second.second;
    result.claimed.push_back(std::move(d));
  }
  s.reset();
  for (const auto& d : result.claimed) lease.reset().bind(lease_until).bind(d.id).run();
  for (int64_t id : to_cancel) cancel.reset().bind(now).bind(id).run();
  result.cancelled = static_cast<int64_t>(to_cancel.size());
  return result;
}

void SqliteStore::record_results(const std::vector<DeliveryUpdate>& updates, UnixMs now) {
  auto& s = stmt(
      "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
      "lease_until = 0, gateway = ?, provider_id = ?, last_error = ?, updated_at = ? WHERE id = ?");
  auto& opt_out = stmt(
      "UPDATE subscribers SET sms_opted_out = 1 WHERE id = (SELECT subscriber_id FROM "
      "deliveries WHERE id = ?)");
  auto& cancel_rest = stmt(
      "UPDATE deliveries SET state = 6, last_error = 'opted out', updated_at = ?1 WHERE state = "
      "0 AND channel <> 1 AND subscriber_id = (SELECT subscriber_id FROM deliveries WHERE id = ?2)");
  for (const auto& u : updates) {
    s.reset()
        .bind(static_cast<int>(u.state))
        .bind(u.next_attempt_at)
        .bind(u.gateway)
        .bind(u.provider_id)
        .bind(u.error)
        .bind(now)
        .bind(u.id)
        .run();
    if (u.opt_out) {
      opt_out.reset().bind(u.id).run();
      cancel_rest.reset().bind(now).bind(u.id).run();
    }
  }
}

std::optional<UnixMs> SqliteStore::next_due(Channel channel) {
  auto& s = stmt(
      "SELECT max(next_attempt_at, lease_until) FROM deliveries WHERE state = 0 AND "
      "channel = ? ORDER BY max(next_attempt_at, lease_until) LIMIT 1");
  s.reset().bind(static_cast<int>(channel));
  if (!s.step()) return std::nullopt;
  return s.i64(0);  // the statement stays on its row until end_reads()
}

int64_t SqliteStore::release_all_leases() {
  stmt("UPDATE deliveries SET lease_until = 0 WHERE state = 0 AND lease_until <> 0").reset().run();
  return db_.changes();
}

void SqliteStore::release_leases(const std::vector<int64_t>& ids) {
  auto& s = stmt("UPDATE deliveries SET lease_until = 0 WHERE id = ? AND state = 0");
  for (int64_t id : ids) s.reset().bind(id).run();
}

void SqliteStore::renew_leases(const std::vector<int64_t>& ids, UnixMs until) {
  auto& s = stmt("UPDATE deliveries SET lease_until = ? WHERE id = ? AND state = 0 AND lease_until > 0");
  for (int64_t id : ids) s.reset().bind(until).bind(id).run();
}

int64_t SqliteStore::pending_count() {
  auto& s = stmt("SELECT count(*) FROM deliveries WHERE state = 0");
  s.reset();
  s.step();
  return s.i64(0);
}

std::vector<FanoutProgress> SqliteStore::fanout_progress(const std::vector<std::pair<int64_t, Channel>>& keys,
                                            bool count_accepted) {
  auto& pending = stmt(
      "SELECT EXISTS (SELECT 1 FROM deliveries WHERE report_id = ? AND channel = ? AND state = 0)");
  auto& accepted = stmt(
      "SELECT count(*) FROM deliveries WHERE report_id = ? AND channel = ? AND state IN (1, 2, 3)");
  std::vector<FanoutProgress> out;
  for (const auto& [report, channel] : keys) {
    FanoutProgress p{report, channel};
    pending.reset().bind(report).bind(static_cast<int>(channel));
    p.pending = pending.step() && pending.i64(0) != 0;
    if (count_accepted) {
      accepted.reset().bind(report).bind(static_cast<int>(channel));
      if (accepted.step()) p.accepted = accepted.i64(0);
    }
    out.push_back(p);
  }
  return out;
}

std::optional<DeliveryTarget> SqliteStore::delivery_target(int64_t delivery_id) {
  auto& s = stmt(
      "SELECT incident_id, coalesce(subscriber_id, 0), channel, state, language FROM deliveries "
      "WHERE id = ?");
  s.reset().bind(delivery_id);
  if (!s.step()) return std::nullopt;
  DeliveryTarget t{s.text(0), s.i64(1), static_cast<Channel>(s.i64(2)),
                   static_cast<DeliveryState>(s.i64(3)), s.text(4)};
  s.reset();
  return t;
}

bool SqliteStore::apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) {
  stmt("UPDATE deliveries SET state = ?, updated_at = ? WHERE id = ? AND state = 1")
      .reset()
      .bind(static_cast<int>(state))
      .bind(now)
      .bind(delivery_id)
      .run();
  return db_.changes() > 0;
}

bool SqliteStore::note_receipt_to(int64_t delivery_id, std::string_view note, UnixMs now) {
  stmt("UPDATE deliveries SET last_error = ?, updated_at = ? WHERE id = ? AND state = 1")
      .reset()
      .bind(note)
      .bind(now)
      .bind(delivery_id)
      .run();
  return db_.changes() > 0;
}

int64_t SqliteStore::plan_new_recipient_deliveries(int64_t report_id, const std::string& incident_id,
                                      const std::vector<std::string>& groups, Channel channel,
                                      UnixMs now, UnixMs deadline) {
  auto& s = stmt(
      PLAN_GROUP_MEMBERS " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND "
                "d.channel = ?3 AND d.incident_id = ?2) ORDER BY g.subscriber_id");
  return plan_each(s, report_id, incident_id, groups, channel, now, deadline);
}

int64_t SqliteStore::plan_deliveries_to(int64_t report_id, const std::string& incident_id,
                           const std::vector<int64_t>& subscribers, Channel channel, UnixMs now,
                           UnixMs deadline) {
  auto& s = stmt(
      PLAN_INSERT
      "SELECT ?1, ?2, s.id, ?3, s.language, 0, ?4, ?5, ?4, ?4 FROM subscribers s WHERE s.id = "
      "?6 AND " REACHABLE_ON("?3") " AND EXISTS (SELECT 1 FROM deliveries d WHERE "
                                   "d.subscriber_id = s.id AND d.channel = ?3 AND "
                                   "d.incident_id = ?2 AND d.report_id <> ?1)");
  return plan_each(s, report_id, incident_id, subscribers, channel, now, deadline);
}

}  // namespace tocsin::store::sqlite
