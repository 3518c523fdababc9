// The dispatcher's queue jobs on the SQLite store: each runs as a
// StoreWorker job (store thread, group commit), its completion posted to
// the io_context after the commit.
#pragma once

#include <utility>

#include "store/delivery_queue.h"
#include "store/store_worker.h"

namespace tocsin::store {

class WorkerQueue final : public QueueJobs {
 public:
  explicit WorkerQueue(StoreWorker& worker) : worker_(worker) {}
  void submit(Job job, Done done) override {
    worker_.submit([job = std::move(job)](Store& s) { job(s); }, std::move(done));
  }

 private:
  StoreWorker& worker_;
};

}  // namespace tocsin::store
