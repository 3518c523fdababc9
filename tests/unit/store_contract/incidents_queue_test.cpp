// Store contract: idempotency answers, incidents and reports, dedup
// candidates, fan-out planning and the delivery queue (claims, leases,
// results, receipts, requeues, expiry), for every store in STORE_FACTORIES.
#include <algorithm>
#include <set>

#include "unit/store_contract/contract.h"

using namespace tocsin;
using tocsin::test::contract::Contract;

namespace {

bool has_id(const std::vector<store::IncidentRecord>& v, const std::string& id) {
  return std::any_of(v.begin(), v.end(), [&](const auto& i) { return i.id == id; });
}

int64_t count_of(const std::vector<store::DeliveryCount>& counts, DeliveryState state) {
  int64_t n = 0;
  for (const auto& c : counts)
    if (c.state == state) n += c.count;
  return n;
}

}  // namespace

TEMPLATE_TEST_CASE("contract: a webhook-id's first answer is found again, per coordinator, until purged",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  c.tx([](store::Store& s) { s.save_answer("c1", "w1", {202, R"({"outcome":"new_incident"})"}, 1000); });
  auto a = c.s().find_answer("c1", "w1");
  REQUIRE(a);
  CHECK(a->status == 202);
  CHECK(a->body == R"({"outcome":"new_incident"})");
  CHECK_FALSE(c.s().find_answer("c2", "w1"));  // another coordinator's id space
  CHECK_FALSE(c.s().find_answer("c1", "w2"));
  c.tx([](store::Store& s) { s.save_answer("c1", "w3", {202, "{}"}, 5000); });
  CHECK(c.tx([](store::Store& s) { return s.purge_answers(2000); }) == 1);
  CHECK_FALSE(c.s().find_answer("c1", "w1"));
  CHECK(c.s().find_answer("c1", "w3"));
}

TEMPLATE_TEST_CASE("contract: incidents round-trip, ids are unique, updates close and reopen",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  auto i = c.incident("ABC123", 1000);
  i.location = Location{34.05, -118.25, "1st St & Soto St"};
  i.dedup_key = "k1";
  i.status = ReportStatus::kExercise;
  CHECK(c.tx([&](store::Store& s) { return s.insert_incident(i); }));
  CHECK_FALSE(c.tx([&](store::Store& s) { return s.insert_incident(i); }));  // the id is taken
  auto got = c.s().incident("ABC123");
  REQUIRE(got);
  CHECK(got->event == i.event);
  CHECK(got->area == i.area);
  REQUIRE(got->location);
  CHECK(got->location->lat == 34.05);
  CHECK(got->location->lon == -118.25);
  CHECK(got->location->description == "1st St & Soto St");
  CHECK(got->dedup_key == "k1");
  CHECK(got->severity == Severity::kSevere);
  CHECK(got->status == ReportStatus::kExercise);
  CHECK(got->open);
  CHECK(got->opened_at == 1000);
  CHECK_FALSE(c.s().incident("NOPE00"));

  // An update that stays open, a close, a reopen: every field is written each time.
  i.severity = Severity::kExtreme;
  i.last_report_at = 2000;
  i.report_count = 2;
  i.spread_m = 120.5;
  c.tx([&](store::Store& s) { s.update_incident(i); });
  got = c.s().incident("ABC123");
  CHECK(got->severity == Severity::kExtreme);
  CHECK(got->last_report_at == 2000);
  CHECK(got->report_count == 2);
  CHECK(got->spread_m == 120.5);
  i.open = false;
  i.closed_at = 3000;
  c.tx([&](store::Store& s) { s.update_incident(i); });
  got = c.s().incident("ABC123");
  CHECK_FALSE(got->open);
  CHECK(got->closed_at == 3000);
  i.open = true;
  i.closed_at = 0;
  c.tx([&](store::Store& s) { s.update_incident(i); });
  CHECK(c.s().incident("ABC123")->open);
  CHECK(c.s().incident("ABC123")->closed_at == 0);

  // Newest first; open_only filters; limit holds.
  auto later = c.incident("DEF456", 5000);
  later.open = false;
  c.tx([&](store::Store& s) { s.insert_incident(later); });
  auto all = c.s().list_incidents(false, 10);
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "DEF456");
  CHECK(c.s().list_incidents(true, 10).size() == 1);
  CHECK(c.s().list_incidents(false, 1).size() == 1);
}

TEMPLATE_TEST_CASE("contract: reports of an incident, their evidence and latest body",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    int64_t r1 = c.report("ABC123", 1000, "new_incident", "c1", Certainty::kLikely);
    int64_t r2 = c.report("ABC123", 2000, "merged", "c2", Certainty::kObserved, "ana");
    int64_t r3 = c.report("ABC123", 3000, "released");  // a row tocsin adds: not a coordinator's
    CHECK(r1 < r2);
    CHECK(r2 < r3);
    s.set_report_recipients(r1, 7);
  });
  auto reps = c.s().incident_reports("ABC123");
  REQUIRE(reps.size() == 2);
  CHECK(reps[0].coordinator == "c1");
  CHECK(reps[0].outcome == "new_incident");
  CHECK(reps[0].recipients == 7);
  CHECK(reps[0].received_at == 1000);
  CHECK(reps[1].outcome == "merged");
  auto evidence = c.s().incident_evidence("ABC123");
  REQUIRE(evidence.size() == 2);
  CHECK(evidence[0] == ReportEvidence{"c1", "", Certainty::kLikely});
  CHECK(evidence[1] == ReportEvidence{"c2", "ana", Certainty::kObserved});
  CHECK(c.s().latest_report_body("ABC123") == R"({"n":2})");
  CHECK(c.s().latest_report_body("NOPE00").empty());
}

TEMPLATE_TEST_CASE("contract: dedup candidates include every open incident a report could join",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  auto by_area = c.incident("AREA01", 1000);  // unlocated, same area
  auto by_place = c.incident("PLACE1", 1000);  // located ~300 m away, another area
  by_place.area = "la/boyle-heights";
  by_place.location = Location{34.0500, -118.2500, ""};
  auto by_key = c.incident("KEY001", 1000);  // another event, same dedup_key
  by_key.event = "checkpoint";
  by_key.area = "sf";
  by_key.dedup_key = "k1";
  c.tx([&](store::Store& s) {
    for (const auto& i : {by_area, by_place, by_key}) s.insert_incident(i);
  });
  Report unlocated;
  unlocated.event = "enforcement_activity";
  unlocated.area = "la/east-la";
  CHECK(has_id(c.s().dedup_candidates(unlocated, 500, 0), "AREA01"));
  Report located = unlocated;
  located.area = "la/elsewhere";
  located.location = Location{34.0527, -118.2500, ""};
  CHECK(has_id(c.s().dedup_candidates(located, 500, 0), "PLACE1"));
  Report keyed = unlocated;
  keyed.area = "ny";
  keyed.dedup_key = "k1";
  CHECK(has_id(c.s().dedup_candidates(keyed, 500, 0), "KEY001"));
}

TEMPLATE_TEST_CASE("contract: planning reaches reachable members once, follow-ups the original recipients",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  int64_t ana = c.subscribe("+12135550001", "ana@example.org", "es", {"east", "all"});
  int64_t bob = c.subscribe("+12135550002", "", "en", {"east"});
  c.subscribe("", "cy@example.org", "en", {"east"});
  int64_t later = 0;
  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    int64_t r1 = c.report("ABC123", 1000);
    CHECK(s.group_audience({"east", "all"}, Channel::kSms) ==
          std::vector<std::pair<std::string, int64_t>>{{"en", 1}, {"es", 1}});
    auto langs = s.group_languages({"east"}, Channel::kEmail);
    std::sort(langs.begin(), langs.end());
    CHECK(langs == std::vector<std::string>{"en", "es"});
    // Ana is in both groups: one SMS.
    CHECK(s.plan_group_deliveries(r1, "ABC123", {"east", "all"}, Channel::kSms, 1000, 900'000) == 2);
    CHECK(s.plan_group_deliveries(r1, "ABC123", {"east"}, Channel::kSms, 1000, 900'000) == 0);
    CHECK(s.plan_group_deliveries(r1, "ABC123", {"east"}, Channel::kEmail, 1000, 900'000) == 2);
    CHECK(s.recipient_languages("ABC123", Channel::kSms).size() == 2);
    // Who a follow-up reaches: messages per channel, and Ana once as a person.
    auto reach = s.followup_reach("ABC123");
    CHECK(reach.people == 3);
    CHECK(reach.by_channel ==
          std::vector<std::pair<Channel, int64_t>>{{Channel::kSms, 2}, {Channel::kEmail, 2}});
    CHECK(s.followup_reach("NONE00").people == 0);
    CHECK(s.last_sms_incident(bob, 0) == "ABC123");
    // Someone who joins later gets the update only by the safety path, not as a follow-up.
    later = c.subscribe("+12135550003", "", "en", {"east"});
    int64_t r2 = c.report("ABC123", 2000, "update");
    CHECK(s.plan_followup_deliveries(r2, "ABC123", Channel::kSms, 2000, 900'000) == 2);
    CHECK(s.plan_new_recipient_deliveries(r2, "ABC123", {"east"}, Channel::kSms, 2000, 900'000) == 1);
    CHECK(s.group_recipients("ABC123", "east").size() == 4);
  });
  auto sms = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 2000, 60'000); });
  std::vector<int64_t> to;
  for (const auto& d : sms.claimed) to.push_back(d.subscriber_id);
  std::sort(to.begin(), to.end());
  CHECK(to == std::vector<int64_t>{ana, ana, bob, bob, later});
  auto mail = c.tx([](store::Store& s) { return s.claim_due(Channel::kEmail, 10, 2000, 60'000); });
  REQUIRE(mail.claimed.size() == 2);
  CHECK(*mail.claimed[0].subject == "subject");
  CHECK(*mail.claimed[0].body == "email text");
  CHECK_FALSE(mail.claimed[0].followup);  // of the incident's first report
}

TEMPLATE_TEST_CASE("contract: claim, lease, record, receipt, release and requeue",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  for (int i = 0; i < 4; ++i) c.subscribe("+1213555001" + std::to_string(i), "", "en", {"east"});
  int64_t r1 = 0;
  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    r1 = c.report("ABC123", 1000);
    s.plan_group_deliveries(r1, "ABC123", {"east"}, Channel::kSms, 1000, 900'000);
  });
  CHECK(c.s().pending_count() == 4);
  CHECK(c.s().next_due(Channel::kSms) == 1000);
  auto first = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 3, 1000, 5000); });
  REQUIRE(first.claimed.size() == 3);
  const auto& d0 = first.claimed[0];
  CHECK(d0.to.rfind("+1213555001", 0) == 0);  // the number, decrypted
  CHECK(*d0.body == "sms text");
  CHECK(d0.report_id == r1);
  CHECK(d0.incident_id == "ABC123");
  CHECK(d0.attempts == 0);
  CHECK(d0.deadline_at == 900'000);
  // Leased rows are not claimed again; the fourth is, then nothing is due until a lease ends.
  auto second = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 5000); });
  REQUIRE(second.claimed.size() == 1);
  CHECK(c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 5000); }).claimed.empty());
  CHECK(c.s().next_due(Channel::kSms) == 5000);
  // A renewal extends a held lease; it cannot lease what is not leased.
  c.tx([&](store::Store& s) { s.renew_leases({second.claimed[0].id}, 8000); });
  CHECK(c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 6000, 9000); }).claimed.size() == 3);
  CHECK(c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 8000, 9000); }).claimed.size() == 1);
  c.tx([&](store::Store& s) { s.renew_leases({first.claimed[0].id, first.claimed[1].id,
                                               first.claimed[2].id, second.claimed[0].id}, 5000); });

  // Results: sent (with the provider's id), retry later, failed; one never sent is released.
  std::vector<store::DeliveryUpdate> ups(3);
  ups[0] = {first.claimed[0].id, DeliveryState::kSent, 0, "twilio", "SM1", ""};
  ups[1] = {first.claimed[1].id, DeliveryState::kPending, 3000, "twilio", "", "http 503"};
  ups[2] = {first.claimed[2].id, DeliveryState::kFailed, 0, "twilio", "", "21211"};
  c.tx([&](store::Store& s) {
    s.record_results(ups, 1500);
    s.release_leases({second.claimed[0].id});
  });
  CHECK(c.s().pending_count() == 2);
  auto t = c.s().delivery_target(first.claimed[0].id);
  REQUIRE(t);
  CHECK(t->incident_id == "ABC123");
  CHECK(t->subscriber_id == first.claimed[0].subscriber_id);
  CHECK(t->channel == Channel::kSms);
  CHECK(t->state == DeliveryState::kSent);
  CHECK_FALSE(c.s().delivery_target(999'999));
  // A note (SendGrid's "deferred") on a sent delivery keeps its state; on one not sent, nothing.
  CHECK(c.tx([&](store::Store& s) {
    return s.note_receipt_to(first.claimed[0].id, "sendgrid deferred (attempt 1)", 1900);
  }));
  CHECK(c.s().delivery_target(first.claimed[0].id)->state == DeliveryState::kSent);
  CHECK_FALSE(c.tx([&](store::Store& s) {
    return s.note_receipt_to(first.claimed[1].id, "sendgrid deferred", 1900);
  }));
  // Receipts move sent on, once, never back.
  CHECK(c.tx([](store::Store& s) { return s.apply_receipt("SM1", DeliveryState::kDelivered, 2000); }));
  CHECK_FALSE(c.tx([](store::Store& s) { return s.apply_receipt("SM1", DeliveryState::kUndelivered, 2100); }));
  CHECK_FALSE(c.tx([&](store::Store& s) {
    return s.apply_receipt_to(first.claimed[1].id, DeliveryState::kDelivered, 2100);  // not sent
  }));
  auto progress = c.s().fanout_progress({{r1, Channel::kSms}}, true);
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].pending);
  CHECK(progress[0].accepted == 1);

  // The released one is claimable at once; the retry when due, counting its attempt.
  auto again = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1600, 9000); });
  REQUIRE(again.claimed.size() == 1);
  CHECK(again.claimed[0].id == second.claimed[0].id);
  auto retry = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 3000, 9000); });
  REQUIRE(retry.claimed.size() == 1);
  CHECK(retry.claimed[0].attempts == 1);
  CHECK(c.tx([](store::Store& s) { return s.release_all_leases(); }) == 2);

  auto counts = c.s().incident_delivery_counts("ABC123");
  CHECK(count_of(counts, DeliveryState::kDelivered) == 1);
  CHECK(count_of(counts, DeliveryState::kFailed) == 1);
  CHECK(count_of(counts, DeliveryState::kPending) == 2);
  bool twilio_failed = false;
  for (const auto& [gateway, count] : c.s().incident_gateway_counts("ABC123"))
    twilio_failed = twilio_failed || (gateway == "twilio" && count.state == DeliveryState::kFailed);
  CHECK(twilio_failed);
  // The failed one goes back in the queue with a fresh deadline.
  CHECK(c.tx([](store::Store& s) { return s.requeue_failed("ABC123", 4000, 800'000, 700'000); }) == 1);
  CHECK(c.s().pending_count() == 3);

  // Past the deadline, what is pending and unleased expires instead of being sent.
  auto late = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 950'000, 960'000); });
  CHECK(late.claimed.empty());
  CHECK(late.expired == 3);
  CHECK(c.s().pending_count() == 0);
  CHECK_FALSE(c.s().next_due(Channel::kSms));
  CHECK_FALSE(c.s().fanout_progress({{r1, Channel::kSms}}, false)[0].pending);
}

TEMPLATE_TEST_CASE("contract: results are stored as given, whatever characters they hold",
                   "[store][contract]", STORE_FACTORIES) {
  // PostgreSQL records a flush in one statement, its values in text
  // arrays: a quote, a backslash, a comma or a brace in one must stay in it.
  Contract<TestType> c;
  for (int i = 0; i < 4; ++i) c.subscribe("+1213555000" + std::to_string(i), "", "en", {"east"});
  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    s.plan_group_deliveries(c.report("ABC123", 1000), "ABC123", {"east"}, Channel::kSms, 1000,
                            900'000);
  });
  auto claim = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 5000); });
  REQUIRE(claim.claimed.size() == 4);
  const std::vector<std::string> ids{"SM\"1\"", "SM\\2", "SM{3},x", "SM 4 \u00e9"};
  std::vector<store::DeliveryUpdate> ups;
  for (std::size_t i = 0; i < 4; ++i)
    ups.push_back({claim.claimed[i].id, DeliveryState::kSent, 0, i == 0 ? "gw\",{x}" : "gw", ids[i],
                   "err \"q\" \\ ,{}"});
  c.tx([&](store::Store& s) { s.record_results(ups, 1500); });
  for (std::size_t i = 0; i < 4; ++i) {
    INFO(ids[i]);
    CHECK(c.tx(
        [&](store::Store& s) { return s.apply_receipt(ids[i], DeliveryState::kDelivered, 2000); }));
  }
  CHECK_FALSE(c.tx(
      [](store::Store& s) { return s.apply_receipt("SM1", DeliveryState::kDelivered, 2000); }));
  std::set<std::string> gateways;
  for (const auto& [gateway, count] : c.s().incident_gateway_counts("ABC123"))
    gateways.insert(gateway);
  CHECK(gateways == std::set<std::string>{"gw", "gw\",{x}"});
  CHECK(c.s().pending_count() == 0);
}

TEMPLATE_TEST_CASE("contract: a provider's opt-out stops the number's pending SMS",
                   "[store][contract]", STORE_FACTORIES) {
  Contract<TestType> c;
  int64_t ana = c.subscribe("+12135550001", "ana@example.org", "en", {"east"});
  c.tx([&](store::Store& s) {
    s.insert_incident(c.incident("ABC123", 1000));
    int64_t r1 = c.report("ABC123", 1000);
    int64_t r2 = c.report("ABC123", 1000, "update");
    s.plan_group_deliveries(r1, "ABC123", {"east"}, Channel::kSms, 1000, 900'000);
    s.plan_group_deliveries(r2, "ABC123", {"east"}, Channel::kSms, 1000, 900'000);
    s.plan_group_deliveries(r1, "ABC123", {"east"}, Channel::kEmail, 1000, 900'000);
  });
  auto claim = c.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 1, 1000, 5000); });
  REQUIRE(claim.claimed.size() == 1);
  store::DeliveryUpdate u{claim.claimed[0].id, DeliveryState::kFailed, 0, "twilio", "", "21610"};
  u.opt_out = true;
  c.tx([&](store::Store& s) { s.record_results({u}, 1500); });
  CHECK(c.s().subscriber(ana)->sms_opted_out);
  CHECK(c.s().pending_count() == 1);  // the email stays
}
