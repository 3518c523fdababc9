// StoreWorker: what a caller learns of a failed job. A StoreError (busy,
// full, I/O) is "unavailable" (503, retry); anything else a job throws is a
// bug (500), rolled back alone while the other jobs of its group commit.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <stdexcept>

#include "app/api_common.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store_worker.h"

using namespace tocsin;
using store::JobFailure;
using store::JobResult;

namespace {

struct Outcome {
  bool done = false;
  JobResult<int> result;
};

}  // namespace

TEST_CASE("a store job's failure reaches its caller with its kind", "[store_worker]") {
  boost::asio::io_context io;
  // Keeps run_one() waiting for the worker's completions instead of
  // returning (and stopping the context) while none is posted yet.
  auto work = boost::asio::make_work_guard(io);
  store::StoreWorker worker(store::open_sqlite_store(":memory:", store::Keyring::generate()), io);
  Outcome good, busy, bug;
  auto keep = [](Outcome& o) {
    return [&o](JobResult<int> r) {
      o.done = true;
      o.result = std::move(r);
    };
  };
  worker.call<int>([](store::Store& s) { return static_cast<int>(s.pending_count()) + 7; },
                   keep(good));
  worker.call<int>([](store::Store&) -> int { throw store::StoreError("database is locked"); },
                   keep(busy));
  worker.call<int>([](store::Store&) -> int { throw std::out_of_range("vector index"); },
                   keep(bug));
  while (!(good.done && busy.done && bug.done)) io.run_one();

  REQUIRE(good.result);
  CHECK(*good.result == 7);
  CHECK(good.result.failure == JobFailure::kNone);
  CHECK_FALSE(busy.result);
  CHECK(busy.result.failure == JobFailure::kUnavailable);
  CHECK_FALSE(bug.result);
  CHECK(bug.result.failure == JobFailure::kBug);
}

TEST_CASE("a job submitted after stop is unavailable, not a bug", "[store_worker]") {
  boost::asio::io_context io;
  // Keeps run_one() waiting for the worker's completions instead of
  // returning (and stopping the context) while none is posted yet.
  auto work = boost::asio::make_work_guard(io);
  store::StoreWorker worker(store::open_sqlite_store(":memory:", store::Keyring::generate()), io);
  worker.stop();
  Outcome late;
  worker.call<int>([](store::Store&) { return 1; }, [&late](JobResult<int> r) {
    late.done = true;
    late.result = std::move(r);
  });
  while (!late.done) io.run_one();
  CHECK_FALSE(late.result);
  CHECK(late.result.failure == JobFailure::kUnavailable);
}

TEST_CASE("a failed store job answers 500 when it was a bug, 503 + Retry-After otherwise",
          "[store_worker]") {
  auto bug = app::api::store_failure(JobFailure::kBug);
  CHECK(bug.status == 500);
  CHECK(bug.type == "internal");
  CHECK(bug.retry_after_s == 0);
  auto busy = app::api::store_failure(JobFailure::kUnavailable);
  CHECK(busy.status == 503);
  CHECK(busy.retry_after_s == 2);
}
