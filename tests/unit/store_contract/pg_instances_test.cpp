// Store contract, PostgreSQL only: what must hold when several instances
// share one database, each test with two (or more) PgStore objects, each
// its own connection and instance id, on one schema: claims never overlap,
// only a lease's owner writes its result or gives it back, one webhook-id
// sent to two instances at once makes one report, two reports of one
// event at once open one incident, and instances starting together
// migrate once.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <set>
#include <stdexcept>
#include <thread>

#include "store/store_worker.h"
#include "unit/store_contract/contract.h"

using namespace tocsin;

namespace {

// Two instances (a and b) on one fresh schema, with subscribers and one
// planned SMS fan-out to `recipients` of them.
struct TwoInstances {
  test::PgSchema schema;
  std::shared_ptr<const store::Keyring> keys = store::Keyring::generate();
  std::unique_ptr<store::Store> a = open("instance-a");
  std::unique_ptr<store::Store> b = open("instance-b");
  Report report;
  int64_t report_id = 0;

  std::unique_ptr<store::Store> open(const std::string& id) {
    store::StoreOptions o;
    o.postgresql_url = schema.conninfo();
    o.keyring = keys;
    o.instance_id = id;
    return store::open_store(o);
  }

  void plan(int recipients) {
    test::in_tx(*a, [&](store::Store& s) {
      for (int i = 0; i < recipients; ++i) {
        store::Subscriber sub;
        sub.phone = "+1213555" + std::to_string(1000 + i);
        sub.language = "en";
        sub.groups = {"east"};
        sub.channels = {Channel::kSms};
        s.insert_subscriber(sub, 1000);
      }
      store::IncidentRecord i;
      i.id = "ABC123";
      i.event = "enforcement_activity";
      i.area = "la/east-la";
      i.opened_at = i.last_report_at = 1000;
      i.report_count = 1;
      s.insert_incident(i);
      report.event = i.event;
      report.area = i.area;
      store::ReportRecord rec;
      rec.incident_id = i.id;
      rec.coordinator = "c1";
      rec.webhook_id = "w1";
      rec.outcome = "new_incident";
      rec.report = &report;
      rec.raw_json = "{}";
      rec.received_at = 1000;
      report_id = s.insert_report(rec);
      s.insert_message(report_id, Channel::kSms, "en", "", "sms text");
      s.plan_group_deliveries(report_id, i.id, {"east"}, Channel::kSms, 1000, 900'000);
    });
  }
};

std::set<int64_t> ids_of(const store::ClaimResult& r) {
  std::set<int64_t> out;
  for (const auto& d : r.claimed) out.insert(d.id);
  return out;
}

}  // namespace

TEST_CASE("PostgreSQL store: two instances' claims never overlap, even while both are open",
          "[store][postgresql]") {
  TwoInstances t;
  t.plan(10);
  // a's claim is not committed yet: b passes its rows by (SKIP LOCKED).
  t.a->begin();
  auto first = t.a->claim_due(Channel::kSms, 4, 1000, 60'000);
  t.b->begin();
  auto second = t.b->claim_due(Channel::kSms, 10, 1000, 60'000);
  t.b->commit();
  t.a->commit();
  REQUIRE(first.claimed.size() == 4);
  REQUIRE(second.claimed.size() == 6);
  auto ia = ids_of(first), ib = ids_of(second);
  for (int64_t id : ia) CHECK_FALSE(ib.count(id));
  // Committed leases hold for both.
  CHECK(test::in_tx(*t.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 60'000); }).claimed.empty());
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 60'000); }).claimed.empty());
}

TEST_CASE("PostgreSQL store: an escalation timer due at two leaders at once is read by one",
          "[store][postgresql]") {
  TwoInstances t;
  t.plan(1);
  test::in_tx(*t.a, [](store::Store& s) {
    s.insert_escalation("ABC123", "wide", 1000, 2000);
    s.insert_escalation("ABC123", "wider", 1000, 2000);
  });
  // a reads (and will end) the timers; b, reading before a commits, passes
  // them by rather than firing them too.
  t.a->begin();
  auto first = t.a->due_escalations(3000, 10);
  t.b->begin();
  auto second = t.b->due_escalations(3000, 10);
  t.b->commit();
  REQUIRE(first.size() == 2);
  CHECK(second.empty());
  t.a->end_escalation("ABC123", "wide", store::TimerEnd::kFired, 3000);
  t.a->end_escalation("ABC123", "wider", store::TimerEnd::kFired, 3000);
  t.a->commit();
  // Once a has ended them, they are due nowhere.
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.due_escalations(3000, 10); }).empty());
}

TEST_CASE("PostgreSQL store: instances claiming at once on threads serve each delivery once",
          "[store][postgresql]") {
  TwoInstances t;
  t.plan(60);
  auto c = t.open("instance-c");
  std::vector<store::Store*> stores{t.a.get(), t.b.get(), c.get()};
  std::vector<std::vector<int64_t>> got(stores.size());
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < stores.size(); ++i)
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      for (;;) {
        auto r = test::in_tx(*stores[i], [](store::Store& s) {
          return s.claim_due(Channel::kSms, 3, 1000, 60'000);
        });
        if (r.claimed.empty()) break;
        for (const auto& d : r.claimed) got[i].push_back(d.id);
      }
    });
  go = true;
  for (auto& th : threads) th.join();
  std::set<int64_t> all;
  std::size_t total = 0;
  for (const auto& g : got) {
    total += g.size();
    all.insert(g.begin(), g.end());
  }
  CHECK(total == 60);
  CHECK(all.size() == 60);  // none claimed twice
}

TEST_CASE("PostgreSQL store: only the lease's owner records its result or releases it",
          "[store][postgresql]") {
  TwoInstances t;
  t.plan(3);
  auto claim = test::in_tx(*t.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 3, 1000, 60'000); });
  REQUIRE(claim.claimed.size() == 3);
  int64_t d0 = claim.claimed[0].id, d1 = claim.claimed[1].id;
  // b answers for a's lease (its own expired and went to a): ignored.
  store::DeliveryUpdate late{d0, DeliveryState::kSent, 0, "twilio", "SMlate", ""};
  test::in_tx(*t.b, [&](store::Store& s) {
    s.record_results({late}, 1500);
    s.release_leases({d1});
  });
  CHECK(t.a->delivery_target(d0)->state == DeliveryState::kPending);
  CHECK(t.a->pending_count() == 3);
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 2000, 60'000); }).claimed.empty());
  // b cannot renew a's leases either: they run out when a's do.
  test::in_tx(*t.b, [&](store::Store& s) { s.renew_leases({d0, d1}, 10'000'000); });
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 70'000, 130'000); }).claimed.size() == 3);
  test::in_tx(*t.b, [&](store::Store& s) { s.release_leases({d0, d1, claim.claimed[2].id}); });
  test::in_tx(*t.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 3, 1000, 60'000); });
  // b's start-up gives back b's leases only: a's stay a's.
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.release_all_leases(); }) == 0);
  CHECK(test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 2000, 60'000); }).claimed.empty());
  // The owner's result is written.
  store::DeliveryUpdate sent{d0, DeliveryState::kSent, 0, "twilio", "SM1", ""};
  test::in_tx(*t.a, [&](store::Store& s) { s.record_results({sent}, 1600); });
  CHECK(t.b->delivery_target(d0)->state == DeliveryState::kSent);
  // a's own release and restart give its rows back; then b may take them.
  test::in_tx(*t.a, [&](store::Store& s) { s.release_leases({d1}); });
  CHECK(test::in_tx(*t.a, [](store::Store& s) { return s.release_all_leases(); }) == 1);
  auto taken = test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 2000, 60'000); });
  CHECK(taken.claimed.size() == 2);
  // A lease that expired is b's to take when a died.
  TwoInstances u;
  u.plan(1);
  auto held = test::in_tx(*u.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 1, 1000, 5000); });
  REQUIRE(held.claimed.size() == 1);
  CHECK(test::in_tx(*u.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 1, 4999, 60'000); }).claimed.empty());
  auto recovered = test::in_tx(*u.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 1, 5000, 60'000); });
  REQUIRE(recovered.claimed.size() == 1);
  CHECK(recovered.claimed[0].id == held.claimed[0].id);
}

TEST_CASE("PostgreSQL store: one webhook-id at two instances at once makes one report and one answer",
          "[store][postgresql][replay]") {
  TwoInstances t;
  Report rep;
  rep.event = "enforcement_activity";
  rep.area = "la/east-la";
  std::atomic<int> ready{0};
  std::string answers[2];
  auto ingest = [&](store::Store& s, int who) {
    ++ready;
    while (ready < 2) std::this_thread::yield();
    answers[who] = test::in_tx(s, [&](store::Store& st) {
      // What app/ingest does: replay a stored answer, else report and save one.
      if (auto a = st.find_answer("c1", "w-same")) return a->body;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the other arrives meanwhile
      store::ReportRecord rec;
      rec.incident_id = "ABC123";
      rec.coordinator = "c1";
      rec.webhook_id = "w-same";
      rec.outcome = "new_incident";
      rec.report = &rep;
      rec.raw_json = "{}";
      rec.received_at = 1000;
      int64_t id = st.insert_report(rec);
      std::string body = "report " + std::to_string(id) + " by " + std::to_string(who);
      st.save_answer("c1", "w-same", {202, body}, 1000);
      return body;
    });
  };
  std::thread ta([&] { ingest(*t.a, 0); });
  std::thread tb([&] { ingest(*t.b, 1); });
  ta.join();
  tb.join();
  CHECK(t.a->incident_reports("ABC123").size() == 1);
  CHECK(answers[0] == answers[1]);
  // The key is unique too: a second answer for it is refused, not added.
  CHECK_THROWS_AS(test::in_tx(*t.b, [](store::Store& s) { s.save_answer("c1", "w-same", {202, "x"}, 2000); }),
                  store::StoreError);
  t.b->rollback();
}

TEST_CASE("PostgreSQL store: two reports of one event at two instances at once open one incident",
          "[store][postgresql]") {
  TwoInstances t;
  Report rep;
  rep.event = "enforcement_activity";
  rep.area = "la/east-la";
  std::atomic<int> ready{0};
  auto ingest = [&](store::Store& s, const std::string& id) {
    ++ready;
    while (ready < 2) std::this_thread::yield();
    test::in_tx(s, [&](store::Store& st) {
      if (!st.dedup_candidates(rep, 500, 0).empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      store::IncidentRecord i;
      i.id = id;
      i.event = rep.event;
      i.area = rep.area;
      i.open = true;
      i.opened_at = i.last_report_at = 1000;
      i.report_count = 1;
      st.insert_incident(i);
    });
  };
  std::thread ta([&] { ingest(*t.a, "AAA111"); });
  std::thread tb([&] { ingest(*t.b, "BBB222"); });
  ta.join();
  tb.join();
  CHECK(t.a->list_incidents(false, 10).size() == 1);
}

TEST_CASE("PostgreSQL store: instances starting at once on a new database migrate it once",
          "[store][postgresql]") {
  test::PgSchema schema;
  auto keys = store::Keyring::generate();
  std::vector<std::unique_ptr<store::Store>> stores(4);
  std::vector<std::string> errors(stores.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < stores.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        store::StoreOptions o;
        o.postgresql_url = schema.conninfo();
        o.keyring = keys;
        stores[i] = store::open_store(o);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (std::size_t i = 0; i < stores.size(); ++i) {
    INFO(errors[i]);
    CHECK(stores[i]);
  }
  // Another key file is refused by the database the first one opened.
  store::StoreOptions o;
  o.postgresql_url = schema.conninfo();
  o.keyring = store::Keyring::generate();
  CHECK_THROWS_AS(store::open_store(o), store::StoreError);
}

TEST_CASE("PostgreSQL store: a connection the server closed is made again at the next transaction",
          "[store][postgresql]") {
  test::PgSchema schema;
  const std::string app = "tocsin-reconnect-" + schema.name();
  store::StoreOptions o;
  o.postgresql_url = schema.conninfo() + " application_name=" + app;
  o.keyring = store::Keyring::generate();
  auto s = store::open_store(o);
  auto kill = [&] {
    schema.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
                app + "'");
  };
  kill();
  // A transaction after the loss: begin finds the connection gone and
  // makes a new one before anything is written.
  CHECK(test::in_tx(*s, [](store::Store& st) { return st.pending_count(); }) == 0);
  // Lost inside a transaction: that transaction fails (and is not
  // committed), the next one runs on a new connection.
  s->begin();
  CHECK(s->pending_count() == 0);
  kill();
  CHECK_THROWS_AS(s->commit(), store::StoreError);
  s->rollback();
  CHECK(test::in_tx(*s, [](store::Store& st) { return st.pending_count(); }) == 0);
  // And outside any transaction: one read fails, the next reconnects.
  kill();
  CHECK_THROWS_AS(s->pending_count(), store::StoreError);
  CHECK(s->pending_count() == 0);
}

TEST_CASE("PostgreSQL store: two instances changing one incident at once lose neither change",
          "[store][postgresql]") {
  TwoInstances t;
  t.plan(0);  // incident ABC123, one report
  std::atomic<int> ready{0};
  // What an update does: read the incident, count the report, write it back.
  auto update = [&](store::Store& s) {
    ++ready;
    while (ready < 2) std::this_thread::yield();
    test::in_tx(s, [&](store::Store& st) {
      auto i = st.incident("ABC123");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the other reads meanwhile
      i->report_count += 1;
      st.update_incident(*i);
    });
  };
  std::thread ta([&] { update(*t.a); });
  std::thread tb([&] { update(*t.b); });
  ta.join();
  tb.join();
  CHECK(t.a->incident("ABC123")->report_count == 3);
}

TEST_CASE("PostgreSQL store: an instance without the new key leaves re-encrypted deliveries to one with it",
          "[store][postgresql][privacy]") {
  TwoInstances t;
  t.plan(1);
  // a reads the rotated key file and re-encrypts; b still has the old one.
  auto next = t.keys->with_new_key();
  test::in_tx(*t.a, [&](store::Store& s) {
    s.set_keyring(next);
    CHECK(s.reencrypt_subscribers(10) == 1);
  });
  auto by_b = test::in_tx(*t.b, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 60'000); });
  CHECK(by_b.claimed.empty());
  CHECK(by_b.cancelled == 0);
  CHECK(t.a->pending_count() == 1);
  // Passed by for a while, then a (with the key) sends it.
  CHECK(test::in_tx(*t.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 60'000); }).claimed.empty());
  auto by_a = test::in_tx(*t.a, [](store::Store& s) { return s.claim_due(Channel::kSms, 10, 31'000, 60'000); });
  REQUIRE(by_a.claimed.size() == 1);
  CHECK(by_a.claimed[0].to == "+12135551000");
}

TEST_CASE("PostgreSQL store: two instances checking the join prompt limit at once pass it once",
          "[store][postgresql][join]") {
  TwoInstances t;
  std::atomic<int> ready{0};
  // The network-wide limit is 1: both see 0 prompts unless the check and the
  // insert take turns (the lock join_prompts_since takes).
  auto prompt = [&](store::Store& s, const std::string& phone) {
    ++ready;
    while (ready < 2) std::this_thread::yield();
    test::in_tx(s, [&](store::Store& st) {
      if (st.join_prompts_since(phone, 0) >= 1 || st.all_join_prompts_since(0) >= 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      st.insert_join_request(phone, {"east", "es", "ESTE", "SM-" + phone, 1000});
    });
  };
  std::thread ta([&] { prompt(*t.a, "+12135550180"); });
  std::thread tb([&] { prompt(*t.b, "+12135550181"); });
  ta.join();
  tb.join();
  CHECK(t.a->all_join_prompts_since(0) == 1);
}

TEST_CASE("PostgreSQL store: a pipelined statement that fails rolls back its own job alone",
          "[store][postgresql][store_worker]") {
  // In a transaction PgStore sends writes without waiting for their answer
  // (libpq's pipeline); the worker reads them at the end of each job, so a
  // failure is its job's, and the other jobs of the batch commit.
  TwoInstances t;
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  store::StoreWorker worker(t.open("instance-w"), io);
  auto answer = [](int status) { return store::StoredAnswer{status, "{}"}; };
  std::vector<store::JobFailure> failures(6, store::JobFailure::kNone);
  std::optional<store::StoredAnswer> seen_by_job3;
  int done = 0;
  auto job = [&](int i, std::function<void(store::Store&)> f) {
    worker.submit(std::move(f), store::StoreWorker::DoneWhy([&, i](store::JobFailure why) {
                    failures[i] = why;
                    ++done;
                  }),
                  store::JobSite{__FILE__, __LINE__});
  };
  // Job 0 holds its batch open until the other five are queued: they run
  // together, in one transaction (its own or the next).
  std::atomic<bool> queued{false};
  job(0, [&](store::Store&) {
    while (!queued) std::this_thread::yield();
  });
  job(1, [&](store::Store& s) { s.save_answer("c1", "w1", answer(202), 1000); });
  job(2, [&](store::Store& s) {
    s.save_answer("c1", "w2", answer(202), 1000);
    s.save_answer("c1", "w2", answer(202), 1000);  // the key is taken: fails, read at the job's end
  });
  job(3, [&](store::Store& s) {
    s.save_answer("c1", "w3", answer(202), 1000);
    seen_by_job3 = s.find_answer("c1", "w1");
  });
  job(4, [&](store::Store& s) {
    s.save_answer("c1", "w4", answer(202), 1000);
    throw std::logic_error("a bug after a sent statement");
  });
  job(5, [&](store::Store& s) { s.save_answer("c1", "w5", answer(202), 1000); });
  queued = true;
  while (done < 6) io.run_one();

  CHECK(failures[0] == store::JobFailure::kNone);
  CHECK(failures[1] == store::JobFailure::kNone);
  CHECK(failures[2] == store::JobFailure::kUnavailable);
  CHECK(failures[3] == store::JobFailure::kNone);
  CHECK(failures[4] == store::JobFailure::kBug);
  CHECK(failures[5] == store::JobFailure::kNone);
  REQUIRE(seen_by_job3);
  CHECK(seen_by_job3->status == 202);
  auto found = [&](const char* id) {
    return test::in_tx(*t.b, [&](store::Store& s) { return s.find_answer("c1", id).has_value(); });
  };
  CHECK(found("w1"));
  CHECK_FALSE(found("w2"));
  CHECK(found("w3"));
  CHECK_FALSE(found("w4"));
  CHECK(found("w5"));
}
