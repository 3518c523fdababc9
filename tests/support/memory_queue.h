// The delivery queue in memory, for the dispatcher's unit tests: rows with
// the states, attempts, leases and deadlines the SQLite store keeps, the
// same claim order and expiry, and jobs run on the io_context with no
// thread. A test may hold jobs (a commit in progress) and fail writes of
// results (a full disk, a lost lock): a failed job changes nothing.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/delivery_queue.h"

namespace tocsin::test {

struct QueueRow {
  int64_t id = 0;
  Channel channel = Channel::kSms;
  DeliveryState state = DeliveryState::kPending;
  int attempts = 0;
  UnixMs next_attempt_at = 0;
  UnixMs lease_until = 0;
  UnixMs deadline_at = 0;
  int64_t report_id = 1;
  UnixMs planned_at = 0;
  std::string to;
  std::string language = "en";
  std::shared_ptr<const std::string> body;
  std::string gateway;  // the last one tried
  std::string error;
  int records = 0;  // results recorded for it (each attempt's, once)
};

class MemoryQueue final : public store::DeliveryQueue, public store::QueueJobs {
 public:
  explicit MemoryQueue(boost::asio::io_context& io) : io_(io) {}

  // `n` pending deliveries due at `due`, with `text` as body, expiring at
  // `deadline`; returns their ids.
  std::vector<int64_t> add(int n, Channel channel, UnixMs due, UnixMs deadline,
                           const std::string& text = "ALERT #A72WYM: ICE at 5th and Main",
                           int64_t report_id = 1);
  const QueueRow& row(int64_t id) const { return rows_.at(id); }
  int64_t count(DeliveryState state) const;
  int64_t leased(UnixMs now) const;  // pending rows under a lease
  int64_t duplicate_records() const;  // results written beyond one per attempt (0 when right)

  // Jobs wait in order until release_jobs() while held.
  void hold_jobs(bool hold) { hold_ = hold; }
  // Runs the held jobs (and what they complete) now; returns how many.
  std::size_t release_jobs();
  std::size_t held_jobs() const { return held_.size(); }
  // The next `n` writes of results fail (the job reports not committed).
  void fail_records(int n) { fail_records_ = n; }
  int64_t record_jobs() const { return record_jobs_; }  // committed ones

  // DeliveryQueue
  store::ClaimResult claim_due(Channel channel, std::size_t limit, UnixMs now,
                               UnixMs lease_until) override;
  void record_results(const std::vector<store::DeliveryUpdate>& updates, UnixMs now) override;
  std::optional<UnixMs> next_due(Channel channel) override;
  void release_leases(const std::vector<int64_t>& ids) override;
  void renew_leases(const std::vector<int64_t>& ids, UnixMs until) override;
  std::vector<store::FanoutProgress> fanout_progress(
      const std::vector<std::pair<int64_t, Channel>>& keys, bool count_accepted) override;

  // QueueJobs
  void submit(Job job, Done done) override;

 private:
  void run(Job job, Done done);

  boost::asio::io_context& io_;
  std::map<int64_t, QueueRow> rows_;
  int64_t next_id_ = 1;
  bool hold_ = false;
  int fail_records_ = 0;
  int64_t record_jobs_ = 0;
  std::deque<std::pair<Job, Done>> held_;
};

}  // namespace tocsin::test
