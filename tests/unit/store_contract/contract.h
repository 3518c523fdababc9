// The store contract suite's fixture: every case in this folder is written
// against the Store interface and run once per factory in STORE_FACTORIES:
// SQLite on a real file in a temporary directory, PostgreSQL in a fresh
// schema of the test server (CTest's pg fixture; the cases named
// *PgFactory need it).
#pragma once

#include <catch2/catch.hpp>
#include <deque>
#include <memory>
#include <string>

#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/daemon.h"
#include "support/pg_schema.h"
#include "support/store_tx.h"

namespace tocsin::test::contract {

// A SQLite file in a fresh temporary directory, opened as the daemon opens it.
struct SqliteFactory {
  TempDir dir{"tocsin-contract"};
  std::unique_ptr<store::Store> open(std::shared_ptr<const store::Keyring> keyring) {
    return store::open_store({(dir.path() / "contract.db").string(), std::move(keyring)});
  }
};

// A fresh schema of the test PostgreSQL, opened as the daemon opens it;
// reopened as the same instance.
struct PgFactory {
  PgSchema schema;
  std::string instance_id = "contract-a";
  std::unique_ptr<store::Store> open(std::shared_ptr<const store::Keyring> keyring) {
    store::StoreOptions o;
    o.postgresql_url = schema.conninfo();
    o.keyring = std::move(keyring);
    o.instance_id = instance_id;
    return store::open_store(o);
  }
};

#define STORE_FACTORIES tocsin::test::contract::SqliteFactory, tocsin::test::contract::PgFactory

template <typename Factory>
struct Contract {
  Factory factory;
  std::shared_ptr<const store::Keyring> keys = store::Keyring::generate();
  std::unique_ptr<store::Store> store = factory.open(keys);
  std::deque<Report> reports;  // ReportRecord points at its Report

  store::Store& s() { return *store; }

  // Closes the store and opens the same data again with `keyring`.
  void reopen(std::shared_ptr<const store::Keyring> keyring) {
    store.reset();
    store = factory.open(std::move(keyring));
  }

  // Runs f(store) in one transaction, as the worker does.
  template <typename F>
  auto tx(F f) {
    return in_tx(*store, f);
  }

  int64_t subscribe(std::string phone, std::string email, std::string language,
                    std::vector<std::string> groups, std::string name = "") {
    store::Subscriber sub;
    sub.name = std::move(name);
    sub.phone = std::move(phone);
    sub.email = std::move(email);
    sub.language = std::move(language);
    sub.groups = std::move(groups);
    if (!sub.phone.empty()) sub.channels.push_back(Channel::kSms);
    if (!sub.email.empty()) sub.channels.push_back(Channel::kEmail);
    return store->insert_subscriber(sub, 1000);
  }

  store::IncidentRecord incident(const std::string& id, UnixMs at) {
    store::IncidentRecord i;
    i.id = id;
    i.event = "enforcement_activity";
    i.area = "la/east-la";
    i.severity = Severity::kSevere;
    i.opened_at = at;
    i.last_report_at = at;
    i.report_count = 1;
    return i;
  }

  // A report of `incident_id` received at `at`, with its rendered SMS and
  // email texts in English and Spanish; returns its id.
  int64_t report(const std::string& incident_id, UnixMs at, std::string outcome = "new_incident",
                 std::string coordinator = "c1", Certainty certainty = Certainty::kObserved,
                 std::string person = "") {
    Report& r = reports.emplace_back();
    r.msg_type = outcome == "update" ? MsgType::kUpdate : MsgType::kAlert;
    r.event = "enforcement_activity";
    r.severity = Severity::kSevere;
    r.area = "la/east-la";
    r.certainty = certainty;
    store::ReportRecord rec;
    rec.incident_id = incident_id;
    rec.coordinator = std::move(coordinator);
    rec.person = std::move(person);
    rec.webhook_id = "w" + std::to_string(reports.size());
    rec.outcome = std::move(outcome);
    rec.report = &r;
    rec.raw_json = R"({"n":)" + std::to_string(reports.size()) + "}";
    rec.received_at = at;
    int64_t id = store->insert_report(rec);
    for (const char* language : {"en", "es"}) {
      store->insert_message(id, Channel::kSms, language, "", "sms text");
      store->insert_message(id, Channel::kEmail, language, "subject", "email text");
    }
    return id;
  }
};

}  // namespace tocsin::test::contract
