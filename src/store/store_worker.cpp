#include "store/store_worker.h"

#include <boost/asio/post.hpp>
#include <future>
#include <spdlog/spdlog.h>
#include <vector>

namespace tocsin::store {

StoreWorker::StoreWorker(std::unique_ptr<Store> store, boost::asio::io_context& io,
                         std::size_t max_batch)
    : store_(std::move(store)), io_(io), max_batch_(max_batch), thread_([this] { loop(); }) {}

StoreWorker::~StoreWorker() { stop(); }

void StoreWorker::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StoreWorker::submit(Job job, Done done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      boost::asio::post(io_, [done = std::move(done)] { done(false); });
      return;
    }
    queue_.push_back({std::move(job), std::move(done)});
  }
  cv_.notify_one();
}

void StoreWorker::run_sync(const std::function<void(Store&)>& fn) {
  std::promise<void> finished;
  auto result = finished.get_future();
  {
    std::lock_guard lock(mu_);
    queue_.push_back({[&fn, &finished](Store& s) {
                        try {
                          fn(s);
                          finished.set_value();
                        } catch (...) {
                          finished.set_exception(std::current_exception());
                        }
                      },
                      nullptr});
  }
  cv_.notify_one();
  result.get();
}

std::size_t StoreWorker::queue_depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool StoreWorker::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_;
}

void StoreWorker::loop() {
  std::vector<Item> batch;
  std::vector<bool> ok;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      // A synchronous chore runs alone, outside the group transaction.
      if (!queue_.front().done) {
        Item chore = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        chore.job(*store_);
        continue;
      }
      while (!queue_.empty() && queue_.front().done && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ok.assign(batch.size(), false);
    bool committed = false;
    try {
      store_->begin();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        store_->savepoint();
        try {
          batch[i].job(*store_);
          store_->release_savepoint();
          ok[i] = true;
        } catch (const std::exception& e) {  // StoreError, or a bug: roll back this job only
          spdlog::error("store job failed and was rolled back: {}", e.what());
          store_->rollback_to_savepoint();
        }
      }
      store_->commit();
      committed = true;
    } catch (const StoreError& e) {
      spdlog::error("store transaction of {} jobs failed: {}", batch.size(), e.what());
      store_->rollback();
    }
    {
      std::lock_guard lock(mu_);
      healthy_ = committed;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      bool good = committed && ok[i];
      boost::asio::post(io_, [done = std::move(batch[i].done), good] { done(good); });
    }
    batch.clear();
  }
}

}  // namespace tocsin::store
