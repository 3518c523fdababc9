// Store contract: subscribers (with the encryption round trip across a
// reopen and a key rotation), opt-outs, join by text and consents,
// acknowledgements and provider events, the safety rules' state, console
// accounts and the audit log, and retention, for every store in
// STORE_FACTORIES.
#include "unit/store_contract/contract.h"

using namespace tocsin;
using tocsin::test::contract::Contract;

TEMPLATE_TEST_CASE("contract: subscribers round-trip encrypted, across a reopen and a key rotation",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  int64_t ana = c.tx([&](store::Store&) {
    return c.subscribe("+12135550001", "Ana@Example.org", "es", {"east", "all"}, "Ana Privada");
  });
  int64_t bob = c.tx([&](store::Store&) { return c.subscribe("", "bob@example.org", "en", {"all"}); });
  auto check_ana = [&] {
    auto got = c.s().subscriber(ana);
    REQUIRE(got);
    CHECK(got->name == "Ana Privada");
    CHECK(got->phone == "+12135550001");
    CHECK(got->email == "Ana@Example.org");
    CHECK(got->language == "es");
    CHECK(got->groups == std::vector<std::string>{"all", "east"});
    CHECK(got->channels == std::vector<Channel>{Channel::kSms, Channel::kEmail});
    CHECK(got->created_at == 1000);
    CHECK(c.s().subscribers_by_phone("+12135550001") == std::vector<int64_t>{ana});
    CHECK(c.s().subscribers_by_email("ana@EXAMPLE.org") == std::vector<int64_t>{ana});  // ASCII case ignored
  };
  check_ana();
  CHECK(c.s().subscriber(bob)->phone.empty());
  // Absent fields are absent, not sealed: nobody is reachable by SMS without a number.
  CHECK(c.s().group_audience({"all"}, Channel::kSms) ==
        std::vector<std::pair<std::string, int64_t>>{{"es", 1}});
  CHECK(c.s().subscribers_by_phone("").empty());
  CHECK(c.s().subscribers_by_phone("+12135559999").empty());
  CHECK(c.s().subscriber_language(bob) == "en");
  CHECK_FALSE(c.s().subscriber(999'999));

  c.reopen(c.keys);
  check_ana();
  // Another key file: refused at open. A rotated one: re-encrypted in batches.
  CHECK_THROWS_AS(c.reopen(store::Keyring::generate()), store::StoreError);
  auto rotated = c.keys->with_new_key();
  c.reopen(rotated);
  CHECK(c.tx([](store::Store& s) { return s.reencrypt_subscribers(1); }) == 1);
  CHECK(c.tx([](store::Store& s) { return s.reencrypt_subscribers(10); }) == 1);
  CHECK(c.tx([](store::Store& s) { return s.reencrypt_subscribers(10); }) == 0);
  check_ana();
  c.tx([&](store::Store& s) { s.set_keyring(rotated); });  // a reload with the same keys
  CHECK_THROWS_AS(c.s().set_keyring(store::Keyring::generate()), store::StoreError);
  check_ana();  // the refused keyring was not taken
}

TEMPLATE_TEST_CASE("contract: update, list, opt-outs and erasure of subscribers",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  std::vector<int64_t> ids;
  c.tx([&](store::Store&) {
    for (int i = 0; i < 5; ++i)
      ids.push_back(c.subscribe("+1213555000" + std::to_string(i), "p" + std::to_string(i) + "@example.org",
                                "en", i % 2 ? std::vector<std::string>{"east"} : std::vector<std::string>{"west"}));
  });
  auto page = c.s().list_subscribers("", 0, 2);
  REQUIRE(page.size() == 2);
  CHECK(page[0].id == ids[0]);
  CHECK(c.s().list_subscribers("", page[1].id, 10).size() == 3);
  auto east = c.s().list_subscribers("east", 0, 10);
  REQUIRE(east.size() == 2);
  CHECK(east[0].id == ids[1]);
  CHECK(east[0].phone == "+12135550001");

  store::Subscriber changed = *c.s().subscriber(ids[0]);
  changed.phone = "+12135559000";
  changed.name = "New Name";
  changed.language = "es";
  changed.groups = {"east"};
  changed.channels = {Channel::kEmail};
  CHECK(c.tx([&](store::Store& s) { return s.update_subscriber(changed); }));
  auto got = *c.s().subscriber(ids[0]);
  CHECK(got.phone == "+12135559000");
  CHECK(got.name == "New Name");
  CHECK(got.language == "es");
  CHECK(got.groups == std::vector<std::string>{"east"});
  CHECK(got.channels == std::vector<Channel>{Channel::kEmail});
  CHECK(c.s().subscribers_by_phone("+12135550000").empty());  // the old number's hash is gone
  CHECK(c.s().subscribers_by_phone("+12135559000") == std::vector<int64_t>{ids[0]});
  changed.id = 999'999;
  CHECK_FALSE(c.tx([&](store::Store& s) { return s.update_subscriber(changed); }));

  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    int64_t r = c.report("ABC123", 1000);
    s.plan_group_deliveries(r, "ABC123", {"west"}, Channel::kSms, 1000, 900'000);
    s.plan_group_deliveries(r, "ABC123", {"west"}, Channel::kEmail, 1000, 900'000);
  });
  // West: ids[2] and ids[4] by SMS and email (ids[0] left it).
  CHECK(c.s().pending_count() == 4);
  CHECK(c.tx([&](store::Store& s) { return s.set_sms_opt_out(ids[2], true, 2000); }) == 1);
  CHECK(c.s().subscriber(ids[2])->sms_opted_out);
  CHECK(c.s().group_audience({"west"}, Channel::kSms) ==
        std::vector<std::pair<std::string, int64_t>>{{"en", 1}});
  CHECK(c.tx([&](store::Store& s) { return s.set_sms_opt_out(ids[2], false, 2000); }) == 0);
  CHECK_FALSE(c.s().subscriber(ids[2])->sms_opted_out);
  CHECK(c.tx([&](store::Store& s) { return s.set_email_opt_out(ids[2], 2000); }) == std::optional<int64_t>(1));
  CHECK(c.s().subscriber(ids[2])->email_opted_out);
  CHECK_FALSE(c.tx([](store::Store& s) { return s.set_email_opt_out(999'999, 2000); }));
  CHECK(c.s().pending_count() == 2);

  // Erasure cancels what was still to be sent and forgets the person.
  CHECK(c.tx([&](store::Store& s) { return s.delete_subscriber(ids[4]); }));
  CHECK(c.s().pending_count() == 0);
  CHECK_FALSE(c.s().subscriber(ids[4]));
  CHECK(c.s().subscribers_by_phone("+12135550004").empty());
  CHECK(c.s().subscribers_by_email("p4@example.org").empty());
  CHECK_FALSE(c.tx([&](store::Store& s) { return s.delete_subscriber(ids[4]); }));
  // An erased subscriber's id is never given to someone else.
  int64_t next = c.tx([&](store::Store&) { return c.subscribe("+12135550100", "", "en", {}); });
  CHECK(next > ids[4]);
}

TEMPLATE_TEST_CASE("contract: join requests count, close and purge, and consents go with the subscriber",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  const std::string phone = "+12135550001";
  c.tx([&](store::Store& s) {
    s.insert_join_request(phone, {"east", "es", "UNIRSE", "SM1", 1000});
    s.insert_join_request(phone, {"west", "en", "JOIN", "SM2", 2000});
    s.insert_join_request("+12135550002", {"east", "en", "JOIN", "SM3", 3000});
  });
  CHECK(c.s().join_prompts_since(phone, 0) == 2);
  CHECK(c.s().join_prompts_since(phone, 1500) == 1);
  CHECK(c.s().all_join_prompts_since(0) == 3);
  auto pending = c.s().pending_join(phone, 0);
  REQUIRE(pending);
  CHECK(pending->group == "west");  // the latest
  CHECK(pending->keyword == "JOIN");
  CHECK(pending->provider_message_id == "SM2");
  CHECK_FALSE(c.s().pending_join(phone, 2500));
  c.tx([&](store::Store& s) { s.close_join_requests(phone); });
  CHECK_FALSE(c.s().pending_join(phone, 0));
  CHECK(c.s().join_prompts_since(phone, 0) == 2);  // still counted against the limits
  CHECK(c.s().pending_join("+12135550002", 0));
  CHECK(c.tx([](store::Store& s) { return s.purge_join_requests(2500); }) == 2);
  CHECK(c.s().all_join_prompts_since(0) == 1);

  int64_t ana = c.tx([&](store::Store&) { return c.subscribe(phone, "", "es", {"east", "west"}); });
  c.tx([&](store::Store& s) { s.insert_consent({ana, "east", "UNIRSE", "SM1", "SM9", 1000, 1100}); });
  auto consents = c.s().consents(ana);
  REQUIRE(consents.size() == 1);
  CHECK(consents[0].group == "east");
  CHECK(consents[0].keyword == "UNIRSE");
  CHECK(consents[0].request_message_id == "SM1");
  CHECK(consents[0].confirm_message_id == "SM9");
  CHECK(consents[0].requested_at == 1000);
  CHECK(consents[0].confirmed_at == 1100);
  CHECK(c.tx([&](store::Store& s) { return s.leave_group(ana, "west"); }));
  CHECK_FALSE(c.tx([&](store::Store& s) { return s.leave_group(ana, "west"); }));
  CHECK(c.s().subscriber(ana)->groups == std::vector<std::string>{"east"});
  c.tx([&](store::Store& s) { s.delete_subscriber(ana); });
  CHECK(c.s().consents(ana).empty());
}

TEMPLATE_TEST_CASE("contract: provider events are recorded once and purged by age, acknowledgements once per person",
                   "[store][contract][replay]", STORE_FACTORIES) {
  Contract<TestType> c;
  auto& s = c.s();
  s.begin();
  CHECK(s.first_event("twilio", "sms:SM1", 1000));
  CHECK_FALSE(s.first_event("twilio", "sms:SM1", 2000));
  CHECK(s.first_event("sendgrid", "sms:SM1", 2000));  // another provider's id space
  CHECK(s.first_event("twilio", "sms:SM2", 5000));
  CHECK(s.purge_events(3000) == 2);
  CHECK(s.first_event("twilio", "sms:SM1", 6000));  // forgotten after retention
  CHECK_FALSE(s.first_event("twilio", "sms:SM2", 6000));

  CHECK(s.insert_ack({"ABC123", 7, "responding", 1000}));
  CHECK_FALSE(s.insert_ack({"ABC123", 7, "responding", 2000}));
  CHECK(s.insert_ack({"ABC123", 7, "reply", 2000}));
  CHECK(s.insert_ack({"ABC123", 8, "responding", 2000}));
  CHECK(s.insert_ack({"OTHER1", 7, "responding", 2000}));
  // Erased subscribers' acknowledgements (id 0) cannot be told apart: kept.
  CHECK(s.insert_ack({"ABC123", 0, "responding", 3000}));
  CHECK(s.insert_ack({"ABC123", 0, "responding", 3000}));
  auto acks = s.incident_acks("ABC123");
  REQUIRE(acks.size() == 5);
  CHECK(acks[0].kind == "responding");
  CHECK(acks[0].received_at == 1000);
  s.commit();
}

TEMPLATE_TEST_CASE("contract: incident groups, escalation timers and the safety timeline",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  c.tx([](store::Store& s) {
    s.put_incident_group({"ABC123", "east", "held", "", "waits for 2 coordinators", 1000, 0, 0});
    s.put_incident_group({"ABC123", "west", "sent", "match", "", 0, 1000, 0});
    s.put_incident_group({"ABC123", "east", "sent", "released", "", 1000, 2000, 0});  // replaces
    s.insert_escalation("ABC123", "east", 2000, 5000);
    s.insert_escalation("ABC123", "east", 2500, 9000);  // one per (incident, group): ignored
    s.insert_escalation("ABC123", "west", 1000, 4000);
    s.insert_escalation("DEF456", "east", 1000, 6000);
  });
  auto groups = c.s().incident_groups("ABC123");
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].group == "east");
  CHECK(groups[0].state == "sent");
  CHECK(groups[0].via == "released");
  CHECK(groups[0].sent_at == 2000);
  CHECK(c.s().due_escalations(3000, 10).empty());
  auto due = c.s().due_escalations(5000, 10);
  REQUIRE(due.size() == 2);
  CHECK(due[0].group == "west");  // oldest first
  CHECK(due[1].due_at == 5000);
  CHECK(due[1].sent_at == 2000);
  CHECK(c.s().due_escalations(5000, 1).size() == 1);
  c.tx([](store::Store& s) { s.end_escalation("ABC123", "west", store::TimerEnd::kFired, 5000); });
  CHECK(c.s().due_escalations(5000, 10).size() == 1);
  CHECK(c.tx([](store::Store& s) { return s.cancel_escalations("ABC123", 5500); }) ==
        std::vector<std::string>{"east"});
  CHECK(c.tx([](store::Store& s) { return s.cancel_escalations("ABC123", 5600); }).empty());
  CHECK(c.s().due_escalations(10'000, 10).size() == 1);  // DEF456's

  c.tx([](store::Store& s) {
    s.insert_safety_event("ABC123", {1000, "held", "east", "waits for 2 coordinators (has 1)", 0});
    s.insert_safety_event("ABC123", {2000, "released", "east", "", 12});
  });
  auto events = c.s().safety_events("ABC123");
  REQUIRE(events.size() == 2);
  CHECK(events[0].what == "held");
  CHECK(events[0].detail == "waits for 2 coordinators (has 1)");
  CHECK(events[1].recipients == 12);
  CHECK(c.s().safety_events("DEF456").empty());
}

TEMPLATE_TEST_CASE("contract: console accounts, sessions, throttle, drafts and the audit log",
                   "[store][contract][console]", STORE_FACTORIES) {
  Contract<TestType> c;
  auto& s = c.s();
  store::ConsoleUser u;
  u.name = "ana";
  u.role = "coordinator";
  u.coordinator = "la";
  u.enrol_hash = "enrol-hash";
  u.enrol_expires = 9000;
  int64_t id = s.insert_console_user(u);
  REQUIRE(id > 0);
  CHECK(s.insert_console_user(u) == 0);  // the name is taken
  CHECK(s.console_user_by_enrol("enrol-hash")->name == "ana");
  CHECK_FALSE(s.console_user_by_enrol(""));
  auto got = *s.console_user_by_name("ana");
  CHECK(got.id == id);
  got.pw_hash = "$argon2id$...";
  got.totp_secret = "JBSWY3DPEHPK3PXP";
  got.enrol_hash = "";
  got.disabled = true;
  s.update_console_user(got);
  auto again = *s.console_user(id);
  CHECK(again.pw_hash == "$argon2id$...");
  CHECK(again.totp_secret == "JBSWY3DPEHPK3PXP");
  CHECK(again.disabled);
  CHECK_FALSE(s.console_user_by_enrol("enrol-hash"));
  CHECK(s.console_users().size() == 1);
  CHECK(s.use_totp_step(id, 100));
  CHECK_FALSE(s.use_totp_step(id, 100));  // the same code again: refused
  CHECK_FALSE(s.use_totp_step(id, 99));   // an older one too
  CHECK(s.use_totp_step(id, 101));

  s.insert_session({"h1", id, "c1", 1, 1});
  s.insert_session({"h2", id, "c2", 1, 1});
  s.touch_session("h1", 50);
  CHECK(s.session("h1")->csrf == "c1");
  CHECK(s.session("h1")->last_seen == 50);
  s.delete_session("h1");
  CHECK_FALSE(s.session("h1"));
  CHECK(s.delete_user_sessions(id) == 1);
  CHECK_FALSE(s.session("h2"));

  s.set_throttle("addr:x", 3, 500, 1);
  CHECK(s.throttle("addr:x") == std::pair<int64_t, UnixMs>{3, 500});
  s.set_throttle("addr:x", 4, 900, 2);
  CHECK(s.throttle("addr:x") == std::pair<int64_t, UnixMs>{4, 900});
  s.clear_throttle("addr:x");
  CHECK(s.throttle("addr:x").first == 0);

  store::Draft d;
  d.coordinator = "la";
  d.author = "ana";
  d.report_json = "{}";
  int64_t did = s.insert_draft(d);
  CHECK(s.waiting_drafts().size() == 1);
  auto draft = *s.draft(did);
  CHECK(draft.author == "ana");
  draft.state = "approved";
  draft.decided_by = "ben";
  draft.incident_id = "ABC123";
  s.update_draft(draft);
  CHECK(s.waiting_drafts().empty());
  CHECK(s.draft(did)->incident_id == "ABC123");

  int64_t a1 = s.insert_audit({0, 1000, "ops", "DELETE", "/v1/subscribers/{id}", "7", 204, 0});
  int64_t a2 = s.insert_audit({0, 2000, "token:1a2b3c4d", "POST", "/v1/subscribers", "", 201, 3});
  CHECK(a1 < a2);
  auto log = s.audit_after(0, 10);
  REQUIRE(log.size() == 2);
  CHECK(log[0].route == "/v1/subscribers/{id}");
  CHECK(log[0].object_id == "7");
  CHECK(log[1].count == 3);
  CHECK(s.audit_after(a1, 10).size() == 1);
  CHECK(s.purge_audit(1500) == 1);
  CHECK(s.audit_after(0, 10).size() == 1);
}

TEMPLATE_TEST_CASE("contract: retention deletes old ended deliveries in batches, counts and bodies kept right",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  int64_t ana = 0;
  c.tx([&](store::Store& s) {
    ana = c.subscribe("+12135550001", "", "en", {"east"});
    for (int i = 0; i < 2; ++i) c.subscribe("+1213555001" + std::to_string(i), "", "en", {"east"});
    s.insert_incident(c.incident("ABC123", 1000));
    int64_t r = c.report("ABC123", 1000);
    s.plan_group_deliveries(r, "ABC123", {"east"}, Channel::kSms, 1000, 900'000);
    s.insert_ack({"ABC123", ana, "responding", 1200});
  });
  auto claim = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 5000); });
  REQUIRE(claim.claimed.size() == 3);
  std::vector<store::DeliveryUpdate> ups;
  for (const auto& d : claim.claimed) ups.push_back({d.id, DeliveryState::kSent, 0, "twilio", "", ""});
  c.tx([&](store::Store& s) { s.record_results(ups, 1500); });
  CHECK(c.tx([](store::Store& s) { return s.purge_deliveries(2000, 2); }) == 2);
  CHECK(c.tx([](store::Store& s) { return s.purge_deliveries(2000, 2); }) == 1);
  CHECK(c.tx([](store::Store& s) { return s.purge_deliveries(2000, 2); }) == 0);
  int64_t sent = 0;
  for (const auto& n : c.s().incident_delivery_counts("ABC123"))
    if (n.state == DeliveryState::kSent) sent += n.count;
  CHECK(sent == 3);  // the incident keeps its counts
  CHECK(c.s().latest_report_body("ABC123").empty());  // the body is gone
  CHECK(c.s().incident_acks("ABC123").at(0).subscriber_id == 0);  // detached from the person
  CHECK_FALSE(c.s().delivery_target(claim.claimed[0].id));
}
