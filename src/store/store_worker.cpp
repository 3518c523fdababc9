#include "store/store_worker.h"

#include <boost/asio/post.hpp>
#include <future>
#include <spdlog/spdlog.h>
#include <vector>

namespace tocsin::store {

namespace {

// "src/app/api.cpp" of a call site's full path: names the job in a log line.
std::string_view short_file(const JobSite& where) {
  std::string_view f = where.file;
  auto at = f.rfind("src/");
  return at == std::string_view::npos ? f : f.substr(at);
}

}  // namespace

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

void StoreWorker::submit(Job job, Done done, const char* file, int line) {
  submit(std::move(job),
         DoneWhy([done = std::move(done)](JobFailure f) { done(f == JobFailure::kNone); }),
         JobSite{file, line});
}

void StoreWorker::submit(Job job, DoneWhy done, JobSite where) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      boost::asio::post(io_, [done = std::move(done)] { done(JobFailure::kUnavailable); });
      return;
    }
    queue_.push_back({std::move(job), std::move(done), where});
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
                      nullptr, JobSite{__FILE__, __LINE__}});
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
  std::vector<JobFailure> failed;
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
    failed.assign(batch.size(), JobFailure::kNone);
    bool committed = false;
    try {
      store_->begin();
      bool open = false;  // the previous job's savepoint, still to release
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (open) store_->next_savepoint();
        else store_->savepoint();
        open = true;
        // Either way only this job rolls back; the others commit.
        try {
          batch[i].job(*store_);
          store_->end_job();
        } catch (const StoreError& e) {
          spdlog::error("store job ({}:{}) failed and was rolled back: {}",
                        short_file(batch[i].where), batch[i].where.line, e.what());
          failed[i] = JobFailure::kUnavailable;
          store_->rollback_to_savepoint();
          open = false;
        } catch (const std::exception& e) {
          spdlog::error("store job ({}:{}) has a bug and was rolled back: {}",
                        short_file(batch[i].where), batch[i].where.line, e.what());
          failed[i] = JobFailure::kBug;
          store_->rollback_to_savepoint();
          open = false;
        }
      }
      if (open) store_->release_savepoint();
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
      // A failed commit loses every job's writes: retryable, whatever the job did.
      JobFailure f = committed ? failed[i] : JobFailure::kUnavailable;
      boost::asio::post(io_, [done = std::move(batch[i].done), f] { done(f); });
    }
    batch.clear();
  }
}

}  // namespace tocsin::store
