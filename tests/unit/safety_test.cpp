// The safety rules of core/safety.h as functions of (incident evidence,
// acknowledgements, now): qualify, release, escalate, covered; and the
// config checks built on them.
#include <catch2/catch.hpp>

#include "core/report.h"
#include "core/safety.h"

using namespace tocsin;

namespace {
constexpr UnixMs kNow = 1796083200000;  // 2026-12-01T00:00:00Z: observed_at is checked against it

Group gated(std::optional<Certainty> min_certainty, int min_corroboration) {
  Group g;
  g.name = "wide";
  g.areas = {"la"};
  g.channels = {Channel::kSms};
  g.min_certainty = min_certainty;
  g.min_corroboration = min_corroboration;
  return g;
}

}  // namespace

TEST_CASE("certainty: CAP names, ordered, default observed", "[safety]") {
  CHECK(parse_certainty("observed") == Certainty::kObserved);
  CHECK(parse_certainty("likely") == Certainty::kLikely);
  CHECK(parse_certainty("unknown") == Certainty::kUnknown);
  CHECK_FALSE(parse_certainty("Observed"));
  CHECK_FALSE(parse_certainty("certain"));
  CHECK(Certainty::kObserved > Certainty::kLikely);
  CHECK(Certainty::kLikely > Certainty::kPossible);
  CHECK(Certainty::kPossible > Certainty::kUnlikely);
  CHECK(Certainty::kUnlikely > Certainty::kUnknown);
  CHECK(to_string(Certainty::kPossible) == "possible");

  auto body = R"({"msg_type":"alert","status":"actual","event":"enforcement_activity",
    "severity":"severe","area":"la","observed_at":"2026-11-22T13:05:00Z","headline":{"en":"x"}})";
  auto plain = parse_report(body, kNow);
  REQUIRE(std::holds_alternative<Report>(plain));
  CHECK(std::get<Report>(plain).certainty == Certainty::kObserved);
  std::string possible = std::string(body);
  possible.insert(1, R"("certainty":"possible",)");
  auto p = parse_report(possible, kNow);
  REQUIRE(std::holds_alternative<Report>(p));
  CHECK(std::get<Report>(p).certainty == Certainty::kPossible);
  std::string bad = std::string(body);
  bad.insert(1, R"("certainty":"sure",)");
  auto b = parse_report(bad, kNow);
  REQUIRE(std::holds_alternative<std::vector<FieldProblem>>(b));
  CHECK(std::get<std::vector<FieldProblem>>(b).front().path == "certainty");
}

TEST_CASE("incident evidence: highest certainty, distinct reporters", "[safety]") {
  CHECK(evidence_of({}) == Evidence{Certainty::kUnknown, 0});
  auto e = evidence_of({{"la-hotline", "", Certainty::kPossible},
                        {"la-hotline", "", Certainty::kLikely},
                        {"la-observers", "", Certainty::kUnlikely}});
  CHECK(e.certainty == Certainty::kLikely);
  CHECK(e.corroboration == 2);
}

TEST_CASE("incident evidence: console people of one coordinator count apart", "[safety]") {
  constexpr auto kObs = Certainty::kObserved;
  // Two people of one coordinator, from the console: 2.
  CHECK(evidence_of({{"la-hotline", "ana", kObs}, {"la-hotline", "ben", kObs}}).corroboration == 2);
  // The same person twice: 1.
  CHECK(evidence_of({{"la-hotline", "ana", kObs}, {"la-hotline", "ana", kObs}}).corroboration == 1);
  // Webhook reports still count per coordinator: two of one coordinator are
  // 1, of two coordinators 2.
  CHECK(evidence_of({{"la-hotline", "", kObs}, {"la-hotline", "", kObs}}).corroboration == 1);
  CHECK(evidence_of({{"la-hotline", "", kObs}, {"la-observers", "", kObs}}).corroboration == 2);
  // A webhook report may be one of the coordinator's console people: with
  // ana it is 1, with ana and ben 2; another coordinator's ana is somebody else.
  CHECK(evidence_of({{"la-hotline", "", kObs}, {"la-hotline", "ana", kObs}}).corroboration == 1);
  CHECK(evidence_of({{"la-hotline", "", kObs},
                     {"la-hotline", "ana", kObs},
                     {"la-hotline", "ben", kObs}})
            .corroboration == 2);
  CHECK(evidence_of({{"la-hotline", "ana", kObs}, {"la-observers", "ana", kObs}}).corroboration ==
        2);
  CHECK(evidence_of({{"la-hotline", "ana", kObs}, {"la-observers", "", kObs}}).corroboration == 2);

  // And a group waiting for 2 is released by the second person, not by the
  // first person's second report.
  Group g = gated(std::nullopt, 2);
  CHECK(waiting_for(g, evidence_of({{"la-hotline", "ana", kObs}, {"la-hotline", "ana", kObs}})) ==
        "2 reporters (has 1)");
  CHECK(qualify(g, evidence_of({{"la-hotline", "ana", kObs}, {"la-hotline", "ben", kObs}}))
            .qualifies());
}

TEST_CASE("qualify and release: a held group qualifies once the evidence is enough", "[safety]") {
  Group g = gated(Certainty::kObserved, 2);
  CHECK(has_gate(g));
  CHECK_FALSE(has_gate(gated(std::nullopt, 1)));

  // One coordinator, possible: waits for both.
  Evidence first = evidence_of({{"a", "", Certainty::kPossible}});
  auto q = qualify(g, first);
  CHECK_FALSE(q.qualifies());
  CHECK(q.needs_certainty);
  CHECK(q.needs_corroboration);
  CHECK(waiting_for(g, first) == "certainty observed (has possible); 2 reporters (has 1)");

  // The same coordinator again, observed: still one coordinator.
  Evidence again = evidence_of({{"a", "", Certainty::kPossible}, {"a", "", Certainty::kObserved}});
  CHECK_FALSE(qualify(g, again).qualifies());
  CHECK(waiting_for(g, again) == "2 reporters (has 1)");

  // A second coordinator's merged report: released.
  Evidence second = evidence_of({{"a", "", Certainty::kPossible}, {"a", "", Certainty::kObserved},
                                 {"b", "", Certainty::kUnknown}});
  CHECK(qualify(g, second).qualifies());
  CHECK(waiting_for(g, second).empty());

  // Certainty alone.
  Group certain = gated(Certainty::kLikely, 1);
  CHECK_FALSE(qualify(certain, evidence_of({{"a", "", Certainty::kPossible}})).qualifies());
  CHECK(qualify(certain, evidence_of({{"a", "", Certainty::kLikely}})).qualifies());
  // No gate: everything qualifies.
  CHECK(qualify(gated(std::nullopt, 1), evidence_of({{"a", "", Certainty::kUnknown}})).qualifies());
}

TEST_CASE("responding: distinct people among the group's recipients, up to now", "[safety]") {
  std::vector<int64_t> recipients = {1, 2, 3, 4, 5};
  std::vector<Reply> replies = {{1, true, 100},  {1, true, 200},  // one person twice
                                {2, false, 100},                   // a reply, not responding
                                {3, true, 500},                    // later than now
                                {9, true, 100},                    // not a recipient
                                {0, true, 100}};                   // erased
  CHECK(responding_count(replies, recipients, 300) == 1);
  CHECK(responding_count(replies, recipients, 500) == 2);
}

TEST_CASE("escalate: after after_s, only when fewer than the threshold respond", "[safety]") {
  EscalateRule rule{.after_s = 300, .if_responding_below = 3, .to = {"wide", "lawyers"}};
  const UnixMs sent = 1'000'000;
  CHECK(escalation_due(rule, sent) == sent + 300'000);
  std::vector<int64_t> five = {1, 2, 3, 4, 5};
  std::vector<Reply> two = {{1, true, sent + 10}, {2, true, sent + 20}};
  std::vector<Reply> all = {{1, true, sent + 1}, {2, true, sent + 1}, {3, true, sent + 1},
                            {4, true, sent + 1}, {5, true, sent + 1}};
  auto decide = [&](const std::vector<Reply>& replies, UnixMs now, bool open = true) {
    return decide_escalation(rule, open, sent, responding_count(replies, five, now), now);
  };
  CHECK(decide(two, sent + 299'999) == EscalationDecision::kWait);
  CHECK(decide(two, sent + 300'000) == EscalationDecision::kEscalate);  // 2 of 5 < 3
  CHECK(decide(all, sent + 300'000) == EscalationDecision::kNotNeeded);
  CHECK(decide(two, sent + 300'000, /*open=*/false) == EscalationDecision::kCancelled);
  CHECK(decide(two, sent + 10, /*open=*/false) == EscalationDecision::kCancelled);

  CHECK(escalation_targets(rule, {}) == std::vector<std::string>{"wide", "lawyers"});
  CHECK(escalation_targets(rule, {"eastside", "wide"}) == std::vector<std::string>{"lawyers"});
  CHECK(escalation_targets(rule, {"wide", "lawyers"}).empty());
}

TEST_CASE("covered: at enough_responding, to exactly the non-responders", "[safety]") {
  Group g = gated(std::nullopt, 1);
  CHECK_FALSE(is_covered(g, 100));  // no rule
  g.enough_responding = 2;
  std::vector<int64_t> recipients = {1, 2, 3, 4};
  std::vector<Reply> one = {{1, true, 10}, {3, false, 10}};
  std::vector<Reply> two = {{1, true, 10}, {3, false, 10}, {2, true, 20}};
  CHECK_FALSE(is_covered(g, responding_count(one, recipients, 100)));
  CHECK(is_covered(g, responding_count(two, recipients, 100)));
  CHECK(covered_recipients(two, recipients, 100) == std::vector<int64_t>{3, 4});
  CHECK(covered_recipients(two, recipients, 15) == std::vector<int64_t>{2, 3, 4});
}

TEST_CASE("config checks: escalate cycles, reachable corroboration", "[safety]") {
  auto group = [](std::string name, std::vector<std::string> to) {
    Group g;
    g.name = std::move(name);
    g.areas = {"la/east-la"};
    if (!to.empty()) g.escalate = EscalateRule{60, 1, std::move(to)};
    return g;
  };
  CHECK(escalation_cycle({group("a", {"b"}), group("b", {"c"}), group("c", {})}).empty());
  CHECK(escalation_cycle({group("a", {"b"}), group("b", {"c"}), group("c", {"a"})}) ==
        std::vector<std::string>{"a", "b", "c", "a"});
  CHECK(escalation_cycle({group("a", {"b", "x"}), group("b", {"b"})}) ==
        std::vector<std::string>{"b", "b"});

  Group g = group("east", {});
  std::vector<std::vector<std::string>> coordinators = {{"la"}, {"la/east-la"}, {"sf"},
                                                        {"la/east-la/north"}, {"la/west"}};
  CHECK(possible_reporters(g, coordinators) == 3);
}
