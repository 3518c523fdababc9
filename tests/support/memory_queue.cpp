// MemoryQueue: the delivery queue in memory (see memory_queue.h).
#include "support/memory_queue.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <stdexcept>

namespace tocsin::test {

std::vector<int64_t> MemoryQueue::add(int n, Channel channel, UnixMs due, UnixMs deadline,
                                      const std::string& text, int64_t report_id) {
  auto body = std::make_shared<const std::string>(text);
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i) {
    QueueRow r;
    r.id = next_id_++;
    r.channel = channel;
    r.next_attempt_at = due;
    r.deadline_at = deadline;
    r.report_id = report_id;
    r.planned_at = due;
    r.to = channel == Channel::kEmail ? "r" + std::to_string(r.id) + "@example.org"
                                      : "+1555000" + std::to_string(1000 + r.id);
    r.body = body;
    ids.push_back(r.id);
    rows_.emplace(r.id, std::move(r));
  }
  return ids;
}

int64_t MemoryQueue::count(DeliveryState state) const {
  return std::count_if(rows_.begin(), rows_.end(),
                       [&](const auto& e) { return e.second.state == state; });
}

int64_t MemoryQueue::leased(UnixMs now) const {
  return std::count_if(rows_.begin(), rows_.end(), [&](const auto& e) {
    return e.second.state == DeliveryState::kPending && e.second.lease_until > now;
  });
}

int64_t MemoryQueue::duplicate_records() const {
  int64_t n = 0;
  for (const auto& [id, r] : rows_) n += r.records - r.attempts;
  return n;
}

store::ClaimResult MemoryQueue::claim_due(Channel channel, std::size_t limit, UnixMs now,
                                          UnixMs lease_until) {
  store::ClaimResult result;
  std::vector<QueueRow*> due;
  for (auto& [id, r] : rows_) {
    if (r.state != DeliveryState::kPending || r.channel != channel || r.lease_until > now) continue;
    if (r.deadline_at < now) {  // past its deadline: expired, as the store does
      r.state = DeliveryState::kExpired;
      r.error = "deadline passed";
      ++result.expired;
      continue;
    }
    if (std::max(r.next_attempt_at, r.lease_until) <= now) due.push_back(&r);
  }
  std::stable_sort(due.begin(), due.end(), [](const QueueRow* a, const QueueRow* b) {
    return std::max(a->next_attempt_at, a->lease_until) < std::max(b->next_attempt_at, b->lease_until);
  });
  if (due.size() > limit) due.resize(limit);
  for (QueueRow* r : due) {
    r->lease_until = lease_until;
    store::ClaimedDelivery d;
    d.id = r->id;
    d.channel = r->channel;
    d.incident_id = "A72WYM";
    d.to = r->to;
    d.language = r->language;
    d.body = r->body;
    d.attempts = r->attempts;
    d.deadline_at = r->deadline_at;
    d.report_id = r->report_id;
    d.planned_at = r->planned_at;
    d.subscriber_id = r->id;
    result.claimed.push_back(std::move(d));
  }
  return result;
}

void MemoryQueue::record_results(const std::vector<store::DeliveryUpdate>& updates, UnixMs) {
  if (fail_records_ > 0) {
    --fail_records_;
    throw std::runtime_error("disk I/O error");  // before any write: nothing changes
  }
  for (const auto& u : updates) {
    QueueRow& r = rows_.at(u.id);
    ++r.records;
    if (r.state != DeliveryState::kPending) continue;  // never reopened
    r.state = u.state;
    ++r.attempts;
    r.next_attempt_at = u.next_attempt_at;
    r.lease_until = 0;
    r.gateway = u.gateway;
    r.error = u.error;
  }
  ++record_jobs_;
}

std::optional<UnixMs> MemoryQueue::next_due(Channel channel) {
  std::optional<UnixMs> next;
  for (const auto& [id, r] : rows_) {
    if (r.state != DeliveryState::kPending || r.channel != channel) continue;
    UnixMs at = std::max(r.next_attempt_at, r.lease_until);
    if (!next || at < *next) next = at;
  }
  return next;
}

void MemoryQueue::release_leases(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) {
    auto it = rows_.find(id);
    if (it != rows_.end() && it->second.state == DeliveryState::kPending) it->second.lease_until = 0;
  }
}

void MemoryQueue::renew_leases(const std::vector<int64_t>& ids, UnixMs until) {
  for (int64_t id : ids) {
    auto it = rows_.find(id);
    if (it != rows_.end() && it->second.state == DeliveryState::kPending && it->second.lease_until > 0)
      it->second.lease_until = until;
  }
}

std::vector<store::FanoutProgress> MemoryQueue::fanout_progress(
    const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) {
  std::vector<store::FanoutProgress> out;
  for (const auto& [report, channel] : keys) {
    store::FanoutProgress p{report, channel};
    for (const auto& [id, r] : rows_) {
      if (r.report_id != report || r.channel != channel) continue;
      p.pending = p.pending || r.state == DeliveryState::kPending;
      if (count_accepted && r.state == DeliveryState::kSent) ++p.accepted;
    }
    out.push_back(p);
  }
  return out;
}

void MemoryQueue::run(Job job, Done done) {
  bool ok = true;
  try {
    job(*this);
  } catch (const std::exception&) {
    ok = false;
  }
  done(ok);
}

void MemoryQueue::submit(Job job, Done done) {
  if (hold_) {
    held_.emplace_back(std::move(job), std::move(done));
    return;
  }
  boost::asio::post(io_, [this, job = std::move(job), done = std::move(done)]() mutable {
    run(std::move(job), std::move(done));
  });
}

std::size_t MemoryQueue::release_jobs() {
  std::size_t n = 0;
  while (!held_.empty()) {
    auto [job, done] = std::move(held_.front());
    held_.pop_front();
    run(std::move(job), std::move(done));
    ++n;
  }
  return n;
}

}  // namespace tocsin::test
