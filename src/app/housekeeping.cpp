// The daemon's background chores (see housekeeping.h).
#include "app/housekeeping.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "app/safety.h"

namespace tocsin::app {
namespace {

constexpr int64_t kIdempotencyKeepMs = 5LL * 24 * 3600 * 1000;  // webhook-ids remembered 5 days
constexpr int64_t kAuditKeepMs = 366LL * 24 * 3600 * 1000;  // audit entries kept a year (README)
constexpr int64_t kJoinRequestKeepMs = 2LL * 24 * 3600 * 1000;  // join prompts: the limits look back 24 h
// Batches of background store chores: each its own store job.
constexpr int kReencryptBatch = 200;
constexpr int kPurgeBatch = 2000;
constexpr auto kEscalationPoll = std::chrono::seconds(1);  // how often due timers are looked for

int64_t events_keep_ms(const Config& c) {
  return static_cast<int64_t>(c.retention.provider_events_days * 86400e3);
}

void purge_kept(store::Store& s, UnixMs now, int64_t events_keep) {
  s.purge_answers(now - kIdempotencyKeepMs);
  s.purge_audit(now - kAuditKeepMs);
  s.purge_events(now - events_keep);
  s.purge_join_requests(now - kJoinRequestKeepMs);
}

}  // namespace

Housekeeping::Housekeeping(Parts parts)
    : p_(std::move(parts)), purges_(p_.io), escalations_(p_.io), refusal_timer_(p_.io),
      heartbeat_(p_.io) {}

int64_t Housekeeping::recover(store::Store& s, const Config& c, UnixMs now) {
  int64_t released = s.release_all_leases();
  purge_kept(s, now, events_keep_ms(c));
  return released;
}

store::Membership Housekeeping::join(store::Store& s) {
  UnixMs now = p_.clock.now_ms();
  membership_ = s.heartbeat(p_.instance, now, now + kHeartbeatLifetimeMs);
  if (membership_.shared)
    spdlog::info("cluster: instance {} joins {} alive{}", p_.instance, membership_.live,
                 membership_.leader ? "; it leads housekeeping" : "");
  return membership_;
}

void Housekeeping::leave(store::Store& s) {
  if (membership_.shared) s.leave(p_.instance);
}

void Housekeeping::start() {
  if (p_.share) p_.share(membership_.live);
  if (membership_.leader) {
    purge_expired(0);
    reencrypt();
  }
  schedule_purges();
  schedule_escalations();
  schedule_refusal_summary();
  if (membership_.shared) schedule_heartbeat();
}

void Housekeeping::stop_timers() {
  purges_.cancel();
  escalations_.cancel();
  heartbeat_.cancel();
}

// A heartbeat that fails (the database away) changes nothing: the share
// and the leadership stay as last seen until one succeeds. Another
// instance cannot lead meanwhile without this one's heartbeat running out,
// and the leader's chores are each idempotent store jobs, so two leaders
// for a moment would repeat work, never double an effect.
void Housekeeping::schedule_heartbeat() {
  heartbeat_.expires_after(kHeartbeat);
  heartbeat_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    UnixMs now = p_.clock.now_ms();
    p_.worker.call<store::Membership>(
        [instance = p_.instance, now](store::Store& s) {
          return s.heartbeat(instance, now, now + kHeartbeatLifetimeMs);
        },
        [this](std::optional<store::Membership> m) {
          if (m) apply(*m);
          schedule_heartbeat();
        });
  });
}

void Housekeeping::apply(const store::Membership& m) {
  bool became_leader = m.leader && !membership_.leader;
  if (m.live != membership_.live || m.leader != membership_.leader)
    spdlog::info("cluster: {} instance(s) alive; this one {}", m.live,
                 m.leader ? "leads housekeeping" : "does not lead housekeeping");
  membership_ = m;
  if (p_.share) p_.share(m.live);
  if (became_leader) {  // the chores a start runs, now that this one leads
    purge_expired(0);
    reencrypt();
  }
}

void Housekeeping::refused(std::string_view route, int status) {
  p_.metrics.http_refused(route, status);
  refusals_.add(status);
}

void Housekeeping::ignored(Ignored why) {
  p_.metrics.request_ignored(to_string(why));
  refusals_.add_ignored(why);
}

void Housekeeping::log_refusals() {
  const auto now = std::chrono::steady_clock::now();
  const auto elapsed = std::chrono::ceil<std::chrono::seconds>(now - last_refusal_summary_);
  last_refusal_summary_ = now;
  auto line = refusals_.take(static_cast<int>(std::max<int64_t>(1, elapsed.count())));
  if (!line.empty()) spdlog::warn("{}", line);
}

// At most one line per log.refused_summary_s, and none when nothing was
// refused.
void Housekeeping::schedule_refusal_summary() {
  refusal_timer_.expires_after(std::chrono::seconds(p_.config()->config.log.refused_summary_s));
  refusal_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    log_refusals();
    schedule_refusal_summary();
  });
}

// Hourly, or every quarter of a shorter retention (at least each second).
void Housekeeping::schedule_purges() {
  const Config& c = p_.config()->config;
  auto retention_ms = std::min(static_cast<int64_t>(c.retention.deliveries_days * 86400e3),
                               events_keep_ms(c));
  purges_.expires_after(
      std::chrono::milliseconds(std::clamp<int64_t>(retention_ms / 4, 1000, 3600 * 1000)));
  purges_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    if (!membership_.leader) return schedule_purges();
    UnixMs now = p_.clock.now_ms();
    p_.worker.submit([now, keep = events_keep_ms(p_.config()->config)](
                         store::Store& s) { purge_kept(s, now, keep); },
                     [](bool) {});
    purge_expired(0);
    schedule_purges();
  });
}

// Escalation timers (README "Safety rules") are rows in the store, so a
// restart neither loses nor repeats one: each second a store job ends the
// due ones, each once, in the same transaction as what they send.
void Housekeeping::schedule_escalations() {
  escalations_.expires_after(kEscalationPoll);
  escalations_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    if (!membership_.leader) return schedule_escalations();
    auto cfg = p_.config();
    // Without an escalate rule no timer is started, and none that is
    // stored can fire (it would end as dropped): no job, no write lock.
    if (std::none_of(cfg->config.groups.begin(), cfg->config.groups.end(),
                     [](const Group& g) { return g.escalate.has_value(); }))
      return schedule_escalations();
    UnixMs now = p_.clock.now_ms();
    p_.worker.call<SafetySteps>(
        [cfg, now](store::Store& s) {
          return run_due_escalations(s, cfg->config, cfg->templates, now);
        },
        [this](std::optional<SafetySteps> steps) {
          if (!steps) spdlog::error("escalation timers not processed; trying again in a second");
          if (steps && steps->escalated + steps->held > 0) {
            spdlog::info("escalation: {} timer(s) fired, {} group(s) held, {} deliveries",
                         steps->escalated, steps->held, steps->recipients);
            p_.metrics.safety_step("escalated", steps->escalated);
            p_.metrics.safety_step("held", steps->held);
          }
          if (steps && steps->recipients > 0) p_.deliveries_planned();
          schedule_escalations();
        });
  });
}

// Retention: deliveries, texts and report bodies older than
// retention.deliveries_days, in batches.
void Housekeeping::purge_expired(int64_t done_so_far) {
  const int days = p_.config()->config.retention.deliveries_days;
  UnixMs before = p_.clock.now_ms() - static_cast<int64_t>(days * 86400e3);
  p_.worker.call<int64_t>(
      [before](store::Store& s) { return s.purge_deliveries(before, kPurgeBatch); },
      [this, done_so_far, days](std::optional<int64_t> n) {
        if (n && *n == kPurgeBatch) return purge_expired(done_so_far + *n);
        if (!n) spdlog::error("retention purge failed; it runs again at the next housekeeping");
        if (done_so_far + n.value_or(0) > 0)
          spdlog::info("retention: {} deliveries older than {} days deleted (counts kept)",
                       done_so_far + n.value_or(0), days);
      });
}

void Housekeeping::reencrypt() {
  if (reencrypting_ || !membership_.leader) return;  // a pass is running; it reads the new key
  reencrypting_ = true;
  reencrypt_from(0);
}

// Re-encrypts subscribers under the active key, a batch per store job,
// until none is left (a no-op query when all are).
void Housekeeping::reencrypt_from(int64_t done_so_far) {
  p_.worker.call<int64_t>(
      [](store::Store& s) { return s.reencrypt_subscribers(kReencryptBatch); },
      [this, done_so_far](std::optional<int64_t> n) {
        if (!n) {
          reencrypting_ = false;
          spdlog::error("re-encryption stopped after {} subscribers; it resumes at the next "
                        "start or reload", done_so_far);
          return;
        }
        if (*n > 0) return reencrypt_from(done_so_far + *n);
        reencrypting_ = false;
        if (done_so_far > 0)
          spdlog::info("re-encrypted {} subscribers under the active key", done_so_far);
      });
}

}  // namespace tocsin::app
