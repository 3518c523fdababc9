// The one owner of the Store: a thread that runs store jobs in order and
// commits them in groups (group commit). Jobs queued while a transaction is
// on disk join the next one, so N concurrent reports cost one fsync, not N,
// and synchronous=FULL stays affordable. Each job runs in its own savepoint:
// a failing job rolls back alone. Completions are posted to the io_context,
// after the COMMIT that made the job's writes durable.
#pragma once

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "store/store.h"

namespace tocsin::store {

// Why a job gave no value. kUnavailable: the database could not take it now
// (busy, full, an I/O error, a failed commit, shutting down): the caller
// answers 503 + Retry-After, and a retry may succeed. kBug: the job itself
// threw something that is not a StoreError (a programming error): the caller
// answers 500, and the log line names the job's call site.
enum class JobFailure { kNone = 0, kUnavailable = 1, kBug = 2 };

// Where a job was submitted: names it in the log line when it fails.
// (std::source_location would do, but clang 14 lacks it; these builtins are
// evaluated at the call site in GCC and clang alike.)
struct JobSite {
  const char* file;
  int line;
};

// What a typed job gives its caller: the value, or nullopt and the failure.
// It is an optional, so `if (!r)` and `*r` read as before.
template <typename T>
struct JobResult : std::optional<T> {
  JobFailure failure = JobFailure::kNone;
};

class StoreWorker {
 public:
  using Job = std::function<void(Store&)>;
  // `committed` is false when the job threw or its transaction failed to commit.
  using Done = std::function<void(bool committed)>;
  using DoneWhy = std::function<void(JobFailure)>;

  StoreWorker(std::unique_ptr<Store> store, boost::asio::io_context& io,
              std::size_t max_batch = 512);
  // Runs what is queued, then stops the thread.
  ~StoreWorker();
  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  // Thread-safe. `job` runs on the store thread; `done` on the io_context.
  // `where` names the job in the log line when it fails.
  void submit(Job job, Done done, const char* file = __builtin_FILE(), int line = __builtin_LINE());
  void submit(Job job, DoneWhy done, JobSite where);

  // Typed convenience: `done` gets the job's value, or nullopt and why.
  template <typename T>
  void call(std::function<T(Store&)> job, std::function<void(JobResult<T>)> done,
            const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    auto slot = std::make_shared<std::optional<T>>();
    submit([job = std::move(job), slot](Store& s) { *slot = job(s); },
           DoneWhy([done = std::move(done), slot](JobFailure failure) {
             JobResult<T> r;
             if (failure == JobFailure::kNone) static_cast<std::optional<T>&>(r) = std::move(*slot);
             r.failure = failure;
             done(std::move(r));
           }),
           JobSite{file, line});
  }

  // Runs `fn` on the store thread outside any transaction and waits for it
  // (start-up and shutdown chores). Exceptions propagate to the caller.
  void run_sync(const std::function<void(Store&)>& fn);

  std::size_t queue_depth() const;
  // False after a commit failed, until one succeeds again (for /readyz).
  bool healthy() const;
  // Stops accepting jobs, runs the queued ones, joins. Idempotent.
  void stop();

 private:
  struct Item {
    Job job;
    DoneWhy done;  // empty for a run_sync chore
    JobSite where;
  };
  void loop();

  std::unique_ptr<Store> store_;
  boost::asio::io_context& io_;
  std::size_t max_batch_;
  mutable std::mutex mu_;  // guards queue_, stopping_, healthy_
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  bool healthy_ = true;
  std::thread thread_;
};

}  // namespace tocsin::store
