// The Dispatcher: leasing, sending, recording (see dispatcher.h).
#include "delivery/dispatcher.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <limits>

#include "delivery/policy.h"
#include "store/worker_queue.h"

namespace tocsin::delivery {

using std::chrono::milliseconds;

struct Dispatcher::Slot {
  std::unique_ptr<Gateway> gateway;
  // This instance's share of the provider's rate, as the provider counts it.
  // Shared with the slot that replaces this one on a reload (same channel,
  // same account): requests still in flight here settle into it.
  std::shared_ptr<RateWindow> limit;
  int max_in_flight;  // this instance's share of the configured bound
  CircuitBreaker breaker;
  double rate_per_s;  // this instance's share
  double configured_rate_per_s = 0;  // the account's, from the config
  int configured_max_in_flight = 0;
  // Requests at the gateway, not yet answered. A slot is freed when its
  // answer is queued for recording; max_unrecorded bounds what waits there.
  int in_flight = 0;
};

struct Dispatcher::Lane {
  Channel channel;
  std::vector<std::unique_ptr<Slot>> slots;  // the failover chain, in config order
  std::deque<store::ClaimedDelivery> ready;  // leased, not yet handed to a gateway
  std::size_t held = 0;      // leased and not yet recorded (ready + at gateways + unrecorded)
  bool claiming = false;
  bool more_due = false;     // the last claim was full: more may be waiting
  std::unique_ptr<Timer> poll_timer;
  std::unique_ptr<Timer> token_timer;  // room in the rate window, or a circuit's cooldown
  bool token_wait = false;
  // No delivery in `ready` has an earlier deadline (a lower bound).
  UnixMs earliest_deadline = std::numeric_limits<UnixMs>::max();

  Lane(Timers& timers, Channel ch)
      : channel(ch), poll_timer(timers.timer()), token_timer(timers.timer()) {}

  // How many deliveries to hold leased at once: enough to keep every
  // gateway busy for a few seconds (claims are transactions: fewer, larger
  // ones are cheaper), little enough that none waits in memory for long.
  // Holding them unsent adds no duplicates after a crash: only sent and
  // unrecorded ones can repeat, and in_flight and max_unrecorded bound
  // those. Answered results count here until their commit; at any rate
  // that is a commit cycle's worth, small beside five seconds of pacing.
  // No room is added for them: a leased delivery is past the reach of an
  // opt-out (STOP), so the lease window stays as short as the pace allows.
  std::size_t capacity(std::size_t max_claim) const {
    std::size_t c = 0;
    for (const auto& s : slots) {
      auto concurrent = static_cast<std::size_t>(s->max_in_flight) * s->gateway->max_batch();
      auto paced = static_cast<std::size_t>(s->rate_per_s * 5);
      c += std::max(concurrent, paced);
    }
    return std::min(c, max_claim);
  }
};

Dispatcher::Dispatcher(boost::asio::io_context& io, store::StoreWorker& store, const Clock& clock,
                       DispatcherOptions options, std::vector<GatewaySpec> gateways)
    : Dispatcher(io, std::make_unique<store::WorkerQueue>(store), std::make_unique<AsioTimers>(io),
                 clock, std::move(options), std::move(gateways)) {}

Dispatcher::Dispatcher(boost::asio::io_context& io, std::unique_ptr<store::QueueJobs> queue,
                       std::unique_ptr<Timers> timers, const Clock& clock,
                       DispatcherOptions options, std::vector<GatewaySpec> gateways)
    : Dispatcher(io, *queue, clock, *timers, std::move(options), std::move(gateways)) {
  own_queue_ = std::move(queue);
  own_timers_ = std::move(timers);
}

Dispatcher::Dispatcher(boost::asio::io_context& io, store::QueueJobs& queue, const Clock& clock,
                       Timers& timers, DispatcherOptions options, std::vector<GatewaySpec> gateways)
    : io_(io), queue_(queue), timers_(timers), clock_(clock), options_(options),
      stop_timer_(timers.timer()), flush_timer_(timers.timer()), renew_timer_(timers.timer()) {
  for (Channel ch : kAllChannels) lanes_.push_back(std::make_unique<Lane>(timers, ch));
  reconfigure(options, std::move(gateways));
}

void Dispatcher::reconfigure(const DispatcherOptions& options, std::vector<GatewaySpec> gateways) {
  options_.lease = options.lease;
  options_.backoff = options.backoff;
  options_.breaker_threshold = options.breaker_threshold;
  options_.breaker_cooldown = options.breaker_cooldown;
  options_.max_unrecorded = std::max<std::size_t>(1, options.max_unrecorded);
  std::map<std::string, std::unique_ptr<Slot>, std::less<>> running;
  for (auto& lane : lanes_) {
    for (auto& slot : lane->slots) {
      std::string name = slot->gateway->name();
      running[name] = std::move(slot);
    }
    lane->slots.clear();
  }
  for (auto& spec : gateways) {
    auto it = running.find(spec.name);
    std::unique_ptr<Slot> slot;
    if (!spec.gateway) {
      if (it == running.end()) {  // the caller's mistake; never with the daemon's specs
        spdlog::error("reconfigure: no running gateway {} to keep", spec.name);
        continue;
      }
      slot = std::move(it->second);
      running.erase(it);
    } else {
      slot = std::make_unique<Slot>(Slot{
          std::move(spec.gateway), std::make_shared<RateWindow>(spec.rate_per_s),
          spec.max_in_flight, CircuitBreaker(options_.breaker_threshold, options_.breaker_cooldown),
          spec.rate_per_s});
      if (it != running.end() && it->second->gateway->channel() == slot->gateway->channel())
        slot->limit = it->second->limit;
    }
    slot->configured_rate_per_s = spec.rate_per_s;
    slot->configured_max_in_flight = spec.max_in_flight;
    apply_share(*slot);
    slot->breaker.set_limits(options_.breaker_threshold, options_.breaker_cooldown);
    Channel ch = slot->gateway->channel();
    for (auto& lane : lanes_)
      if (lane->channel == ch) lane->slots.push_back(std::move(slot));
  }
  // What is left was removed or replaced: it finishes what it has in flight.
  for (auto& [name, slot] : running)
    if (slot && slot->in_flight > 0) retired_.push_back(std::move(slot));
  for (auto& lane : lanes_) {
    if (!lane->slots.empty() || lane->ready.empty()) continue;
    std::vector<int64_t> ids;
    for (auto& d : lane->ready) ids.push_back(d.id);
    lane->ready.clear();
    Lane* l = lane.get();
    std::size_t n = ids.size();
    spdlog::warn("no gateway serves {} any more: {} leased deliveries handed back to the store",
                 to_string(lane->channel), n);
    release(std::move(ids), [this, l, n] {
      l->held -= n;
      kick();
    });
  }
  kick();
}

void Dispatcher::release(std::vector<int64_t> ids, std::function<void()> done) {
  for (int64_t id : ids) leased_.erase(id);
  auto shared = std::make_shared<std::vector<int64_t>>(std::move(ids));
  queue_.submit([shared](store::DeliveryQueue& q) { q.release_leases(*shared); },
                [done = std::move(done), alive = alive_](bool) {
                  if (*alive) done();
                });
}

Dispatcher::~Dispatcher() { *alive_ = false; }

milliseconds Dispatcher::steady_now() const { return timers_.now(); }

void Dispatcher::start() {
  started_ = true;
  schedule_renewal();
  kick();
}

// A third of the lease: two renewals may fail (the store busy or away)
// before a lease held here runs out.
void Dispatcher::schedule_renewal() {
  renew_timer_->start(std::max(milliseconds(200), options_.lease / 3), [this] {
    if (!leased_.empty()) {
      auto ids = std::make_shared<std::vector<int64_t>>(leased_.begin(), leased_.end());
      UnixMs until = clock_.now_ms() + options_.lease.count();
      queue_.submit([ids, until](store::DeliveryQueue& q) { q.renew_leases(*ids, until); },
                    [](bool) {});
    }
    if (!stopping_ || !leased_.empty()) schedule_renewal();  // until the drain has let go of all
  });
}

void Dispatcher::kick() {
  if (pump_posted_ || stopping_ || !started_) return;
  pump_posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    pump_posted_ = false;
    pump();
  });
}

void Dispatcher::pump() {
  for (auto& lane : lanes_) {
    claim(*lane);
    drain(*lane);
  }
}

void Dispatcher::schedule_poll(Lane& lane, milliseconds after) {
  lane.poll_timer->start(after, [this, &lane] {
    if (stopping_) return;
    claim(lane);
    drain(lane);
  });
}

void Dispatcher::claim(Lane& lane) {
  if (stopping_ || lane.claiming) return;
  std::size_t cap = lane.capacity(options_.max_claim);
  if (lane.held >= cap) return;  // results will free room and pump again
  std::size_t want = std::min(cap - lane.held, options_.max_claim);
  lane.claiming = true;
  UnixMs now = clock_.now_ms();
  UnixMs lease_until = now + options_.lease.count();
  Channel ch = lane.channel;
  struct Claimed {
    store::ClaimResult result;
    std::optional<UnixMs> next_due;
  };
  auto c = std::make_shared<Claimed>();
  queue_.submit(
      [c, ch, want, now, lease_until](store::DeliveryQueue& q) {
        c->result = q.claim_due(ch, want, now, lease_until);
        if (c->result.claimed.size() < want) c->next_due = q.next_due(ch);
      },
      [this, &lane, c, alive = alive_](bool ok) {
        if (!*alive) return;
        lane.claiming = false;  // one claim at a time per lane: no over-claiming
        if (!ok) {  // store trouble: try again shortly
          schedule_poll(lane, milliseconds(500));
          return;
        }
        if (c->result.expired)
          spdlog::warn("{} {} deliveries expired before they could be sent",
                       c->result.expired, to_string(lane.channel));
        stats_.expired += c->result.expired;
        if (options_.on_result)
          for (int64_t i = 0; i < c->result.expired; ++i)
            options_.on_result("", lane.channel, DeliveryState::kExpired);
        lane.held += c->result.claimed.size();
        for (auto& d : c->result.claimed) {
          leased_.insert(d.id);
          lane.earliest_deadline = std::min(lane.earliest_deadline, d.deadline_at);
          lane.ready.push_back(std::move(d));
        }
        lane.more_due = !c->next_due.has_value() && !c->result.claimed.empty();
        if (stopping_) {
          maybe_finish_stop();
          return;
        }
        drain(lane);
        if (lane.more_due) {
          claim(lane);
        } else {
          milliseconds wait = options_.idle_poll;
          if (c->next_due) {
            auto until = milliseconds(*c->next_due - clock_.now_ms());
            wait = std::clamp(until, milliseconds(5), options_.idle_poll);
          }
          schedule_poll(lane, wait);
        }
      });
}

void Dispatcher::drain(Lane& lane) {
  // Stopping: requests in flight finish, nothing new starts (what is ready
  // is handed back by maybe_finish_stop).
  if (lane.token_wait || stopping_) return;
  expire_ready(lane);
  // Enough answered results wait for their commit: the flush that records
  // them pumps again (the duplicate bound, see dispatcher.h).
  auto may_send = [this] { return unrecorded_count_ < options_.max_unrecorded; };
  if (!may_send()) return;
  milliseconds now = steady_now();
  // The first gateway of the chain whose circuit is closed takes the
  // traffic; a later one only while those before it are open (or probing).
  for (std::size_t gi = 0; gi < lane.slots.size() && !lane.ready.empty(); ++gi) {
    Slot& slot = *lane.slots[gi];
    while (!lane.ready.empty() && slot.in_flight < slot.max_in_flight && may_send() &&
           slot.breaker.allows(now)) {
      // A batch: messages sharing the first one's text, up to max_batch.
      std::vector<store::ClaimedDelivery> batch;
      std::vector<Outgoing> out;
      const auto body = lane.ready.front().body;
      const auto subject = lane.ready.front().subject;
      const std::string language = lane.ready.front().language;  // email footers, voice
      const std::size_t max = slot.gateway->max_batch();
      auto same_text = [&](const store::ClaimedDelivery& d) {
        auto eq = [](const auto& a, const auto& b) { return a == b || (a && b && *a == *b); };
        return eq(d.body, body) && eq(d.subject, subject) && d.language == language;
      };
      // Recipients of one text may be interleaved with others (languages):
      // gather them from the whole queue, keeping the rest in order.
      std::deque<store::ClaimedDelivery> rest;
      while (!lane.ready.empty()) {
        auto& d = lane.ready.front();
        if (batch.size() < max && same_text(d)) {
          out.push_back(Outgoing{.delivery_id = d.id,
                                 .to = d.to,
                                 .subject = d.subject,
                                 .body = d.body,
                                 .incident_id = d.incident_id,
                                 .deadline_at = d.deadline_at,
                                 .subscriber_id = d.subscriber_id,
                                 .language = d.language,
                                 .followup = d.followup});
          batch.push_back(std::move(d));
        } else if (max == 1) {
          break;
        } else {
          rest.push_back(std::move(d));
        }
        lane.ready.pop_front();
      }
      while (!rest.empty()) {
        lane.ready.push_front(std::move(rest.back()));
        rest.pop_back();
      }
      double cost = slot.gateway->cost(out);
      if (!slot.limit->try_take(cost, now)) {
        // Put the batch back in front, in order, and wait for room.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) lane.ready.push_front(std::move(*it));
        lane.token_wait = true;
        lane.token_timer->start(slot.limit->wait_for(cost, now), [this, &lane] {
          lane.token_wait = false;
          drain(lane);
        });
        return;
      }
      slot.breaker.on_request(now);
      ++slot.in_flight;
      ++stats_.in_flight;
      // The slot outlives the request: reconfigure() retires a slot with
      // requests in flight instead of destroying it.
      slot.gateway->send(std::move(out), [this, &lane, &slot, batch = std::move(batch), cost,
                                          alive = alive_](std::vector<Outcome> outcomes) mutable {
        if (!*alive) return;
        // The provider counted the request by now: date its units here.
        slot.limit->settle(cost, steady_now());
        on_outcomes(lane, slot, std::move(batch), std::move(outcomes));
      });
    }
    // A healthy gateway that is merely busy keeps its traffic: wait for it.
    if (slot.breaker.state(now) == CircuitBreaker::State::kClosed) break;
  }
  // Every circuit open: look again once the first cooldown may have passed.
  if (!lane.ready.empty() && !lane.token_wait && !lane.slots.empty() && may_send()) {
    bool any_in_flight = false;
    for (auto& s : lane.slots) any_in_flight = any_in_flight || s->in_flight > 0;
    if (!any_in_flight) {
      lane.token_wait = true;
      lane.token_timer->start(milliseconds(250), [this, &lane] {
        lane.token_wait = false;
        drain(lane);
      });
    }
  }
}

void Dispatcher::expire_ready(Lane& lane) {
  // A delivery can outlive its deadline while leased and unsent (every
  // circuit open, a slow pace): it is not sent stale. Its lease is given
  // back, and the claim that finds it past its deadline expires it, as the
  // store expires any other (the last gateway tried stays on the row).
  UnixMs now = clock_.now_ms();
  if (lane.earliest_deadline >= now) return;
  std::vector<int64_t> stale;
  UnixMs earliest = std::numeric_limits<UnixMs>::max();
  std::erase_if(lane.ready, [&](const store::ClaimedDelivery& d) {
    if (d.deadline_at < now) {
      stale.push_back(d.id);
      return true;
    }
    earliest = std::min(earliest, d.deadline_at);
    return false;
  });
  lane.earliest_deadline = earliest;
  if (stale.empty()) return;
  std::size_t n = stale.size();
  Lane* l = &lane;
  release(std::move(stale), [this, l, n] {
    l->held -= n;
    kick();
  });
}

void Dispatcher::on_outcomes(Lane& lane, Slot& slot, std::vector<store::ClaimedDelivery> batch,
                             std::vector<Outcome> outcomes) {
  UnixMs now = clock_.now_ms();
  // The slot is free again: its answer is queued below and counted in
  // unrecorded_count_ until it commits (the leases stay until then).
  --slot.in_flight;
  --stats_.in_flight;
  // The gateway is failing when it answers like an outage (5xx, timeouts,
  // refused connections, rejected credentials); a 429 is our pace, and a
  // permanent error is about one recipient, not the gateway.
  bool gateway_failed = std::any_of(outcomes.begin(), outcomes.end(), [](const Outcome& o) {
    return o.kind == OutcomeKind::kRetry;
  });
  if (gateway_failed) {
    if (slot.breaker.on_failure(steady_now())) {
      spdlog::error("gateway {} failing ({}): circuit open, {} traffic moves down its chain",
                    slot.gateway->name(), outcomes.front().error, to_string(lane.channel));
    }
  } else if (slot.breaker.state(steady_now()) != CircuitBreaker::State::kClosed) {
    spdlog::info("gateway {} answers again: circuit closed", slot.gateway->name());
    slot.breaker.on_success();
  } else {
    slot.breaker.on_success();
  }
  // With another gateway in the chain, a delivery that failed on this one
  // need not wait out a long backoff: cap it so it moves on promptly.
  bool has_alternative = lane.slots.size() > 1 || (lane.slots.size() == 1 && lane.slots[0].get() != &slot);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Outcome& o = i < outcomes.size() ? outcomes[i] : Outcome{.error = "no outcome"};
    BackoffPolicy policy = options_.backoff;
    if (has_alternative && gateway_failed) policy.cap = std::min(policy.cap, milliseconds(1000));
    auto u = decide(batch[i], o, slot.gateway->name(), now, policy, unit(rng_));
    if (options_.on_result) options_.on_result(slot.gateway->name(), lane.channel, u.state);
    switch (u.state) {
      case DeliveryState::kSent: ++stats_.sent; break;
      case DeliveryState::kFailed:
        ++stats_.failed;
        spdlog::warn("delivery {} failed at gateway {}: {}", u.id, slot.gateway->name(), u.error);
        break;
      case DeliveryState::kExpired:
        ++stats_.expired;
        spdlog::warn("delivery {} expired at gateway {}: {}", u.id, slot.gateway->name(), u.error);
        break;
      default:
        ++stats_.retried;
        spdlog::debug("delivery {} retry at gateway {}: {}", u.id, slot.gateway->name(), u.error);
        break;
    }
    UnixMs accepted_at = u.state == DeliveryState::kSent ? now : 0;
    unrecorded_.push_back({std::move(u), &lane, batch[i].report_id, batch[i].planned_at, accepted_at});
  }
  unrecorded_count_ += batch.size();
  flush();
  drain(lane);
}

void Dispatcher::flush() {
  if (flushing_ || unrecorded_.empty()) return;
  flushing_ = true;
  auto answered = std::make_shared<std::vector<Answered>>(std::move(unrecorded_));
  unrecorded_.clear();
  UnixMs now = clock_.now_ms();
  // Fan-outs this batch advanced: how far each is, read in the same
  // transaction (the accepted count only until its first send was seen).
  std::vector<std::pair<int64_t, Channel>> keys, first_keys;
  if (options_.on_report_sent) {
    for (const auto& a : *answered) {
      auto key = std::make_pair(a.report_id, a.lane->channel);
      auto it = fanouts_.find(key);
      if (it == fanouts_.end() && a.accepted_at == 0) continue;  // nothing of it sent yet
      bool first = it == fanouts_.end() || !it->second.first_seen;
      auto& list = first ? first_keys : keys;
      if (std::find(list.begin(), list.end(), key) == list.end()) list.push_back(key);
    }
  }
  auto updates = std::make_shared<std::vector<store::DeliveryUpdate>>();
  updates->reserve(answered->size());
  for (const auto& a : *answered) updates->push_back(a.update);
  auto progress = std::make_shared<std::vector<store::FanoutProgress>>();
  queue_.submit(
      [updates, now, keys = std::move(keys), first_keys = std::move(first_keys),
       progress](store::DeliveryQueue& q) {
        q.record_results(*updates, now);
        if (!first_keys.empty()) *progress = q.fanout_progress(first_keys, true);
        if (!keys.empty()) {
          auto more = q.fanout_progress(keys, false);
          progress->insert(progress->end(), more.begin(), more.end());
        }
      },
      [this, answered, progress, alive = alive_](bool ok) {
        if (!*alive) return;
        flushing_ = false;
        if (!ok) {
          // Keep them, ahead of what was answered since: a result is never
          // dropped while we run, and the leases keep these deliveries ours
          // meanwhile. They still count against max_unrecorded.
          spdlog::error("recording {} delivery results failed; retrying", answered->size());
          unrecorded_.insert(unrecorded_.begin(), std::make_move_iterator(answered->begin()),
                             std::make_move_iterator(answered->end()));
          flush_timer_->start(milliseconds(200), [this] { flush(); });
          return;
        }
        for (const auto& a : *answered) {
          --a.lane->held;
          leased_.erase(a.update.id);
        }
        unrecorded_count_ -= answered->size();
        std::erase_if(retired_, [](const auto& slot) { return slot->in_flight == 0; });
        if (options_.on_report_sent) observe_fanouts(*answered, *progress);
        flush();
        if (stopping_) maybe_finish_stop();
        else pump();
      });
}

void Dispatcher::stop(milliseconds bound, std::function<void()> done) {
  stopping_ = true;
  stop_done_ = std::move(done);
  for (auto& lane : lanes_) lane->poll_timer->cancel();
  stop_timer_->start(bound, [this] {
    if (!stop_done_) return;
    spdlog::warn("stop: {} requests still at gateways and {} results not recorded after the "
                 "drain bound; they will be sent again on the next start",
                 stats_.in_flight, unrecorded_count_);
    auto finish = std::move(stop_done_);
    stop_done_ = nullptr;
    finish();
  });
  maybe_finish_stop();
}

void Dispatcher::observe_fanouts(const std::vector<Answered>& results,
                                 const std::vector<store::FanoutProgress>& progress) {
  // In this batch: per fan-out, how many were accepted and the first and
  // last acceptance.
  struct Batch {
    int64_t accepted = 0;
    UnixMs planned_at = 0, first = 0, last = 0;
  };
  std::map<std::pair<int64_t, Channel>, Batch> batch;
  for (const auto& t : results) {
    if (t.accepted_at == 0) continue;
    auto& b = batch[{t.report_id, t.lane->channel}];
    b.planned_at = t.planned_at;
    b.first = b.first == 0 ? t.accepted_at : std::min(b.first, t.accepted_at);
    b.last = std::max(b.last, t.accepted_at);
    ++b.accepted;
  }
  auto report = [this](Channel ch, bool first, UnixMs from, UnixMs to) {
    options_.on_report_sent(ch, first, milliseconds(std::max<UnixMs>(0, to - from)));
  };
  for (const auto& p : progress) {
    auto key = std::make_pair(p.report_id, p.channel);
    auto b = batch.find(key);
    auto [it, added] = fanouts_.try_emplace(key);
    Fanout& f = it->second;
    if (b != batch.end()) {
      if (added) f.planned_at = b->second.planned_at;
      f.last_accepted_at = std::max(f.last_accepted_at, b->second.last);
      // Its first send is in this batch when the store knows of no other.
      if (!f.first_seen && p.accepted == b->second.accepted)
        report(p.channel, true, f.planned_at, b->second.first);
    }
    f.first_seen = true;
    if (!p.pending) {
      if (f.last_accepted_at != 0) report(p.channel, false, f.planned_at, f.last_accepted_at);
      fanouts_.erase(it);
    }
  }
  // Fan-outs whose end was not seen here (expired in the queue, opted out,
  // erased) are forgotten after the longest deadline a config allows.
  UnixMs forget_before = clock_.now_ms() - 8LL * 24 * 3600 * 1000;
  std::erase_if(fanouts_, [&](const auto& e) { return e.second.planned_at < forget_before; });
}

void Dispatcher::maybe_finish_stop() {
  if (!stopping_ || !stop_done_) return;
  bool busy = flushing_ || !unrecorded_.empty();
  for (auto& lane : lanes_) {
    busy = busy || lane->claiming;
    for (auto& s : lane->slots) busy = busy || s->in_flight > 0;
  }
  busy = busy || !retired_.empty();
  if (busy) return;
  // Give back what was leased but never sent, so the next start sends it at once.
  auto ids = std::make_shared<std::vector<store::DeliveryUpdate>>();
  for (auto& lane : lanes_) {
    lane->token_timer->cancel();
    for (auto& d : lane->ready) {
      store::DeliveryUpdate u;
      u.id = d.id;
      ids->push_back(u);
    }
    lane->ready.clear();
  }
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  stop_timer_->cancel();
  if (ids->empty()) {
    done();
    return;
  }
  queue_.submit(
      [ids](store::DeliveryQueue& q) {
        std::vector<int64_t> v;
        for (auto& u : *ids) v.push_back(u.id);
        q.release_leases(v);
      },
      [done = std::move(done)](bool) { done(); });
}

std::vector<GatewayHealth> Dispatcher::gateway_health() const {
  std::vector<GatewayHealth> out;
  milliseconds now = steady_now();
  for (const auto& lane : lanes_)
    for (const auto& s : lane->slots)
      out.push_back({s->gateway->name(), lane->channel, s->breaker.state(now)});
  return out;
}

// A provider's limits are its account's: with `live` instances sending
// through one account, each takes 1/live of the rate (sliding windows of one
// second each, so the sum in any second stays within the account's) and of
// max_in_flight, rounded down but never below one request (so with more
// instances than max_in_flight the sum can reach `live`; the README says to
// keep max_in_flight at least the number of instances).
void Dispatcher::set_share(int live) {
  live = std::max(1, live);
  if (live == share_) return;
  share_ = live;
  for (auto& lane : lanes_)
    for (auto& slot : lane->slots) apply_share(*slot);
  kick();
}

void Dispatcher::apply_share(Slot& slot) const {
  slot.rate_per_s = slot.configured_rate_per_s / share_;
  slot.limit->set_rate(slot.rate_per_s);
  slot.max_in_flight = std::max(1, slot.configured_max_in_flight / share_);
}

DispatcherStats Dispatcher::stats() const {
  DispatcherStats s = stats_;
  s.held = 0;
  for (auto& lane : lanes_) s.held += static_cast<int64_t>(lane->held);
  return s;
}

}  // namespace tocsin::delivery
