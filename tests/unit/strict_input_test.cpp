// The pure parts of hardening: strict JSON (duplicate keys), control
// characters, Content-Type checks, subscriber bodies, the refusal tally.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "app/api_common.h"
#include "app/config.h"
#include "app/subscriber_input.h"
#include "core/json_reader.h"
#include "core/refusals.h"

using namespace tocsin;
using nlohmann::json;

namespace {

// The path of a duplicate key in `text`, "" when it parses, "invalid" when it is not JSON.
std::string duplicate_path(std::string_view text) {
  auto r = parse_json_strict(text);
  if (std::holds_alternative<json>(r)) return "";
  auto& e = std::get<JsonSyntaxError>(r);
  return e.path.empty() ? "invalid" : e.path;
}

app::Config subscriber_config() {
  app::Config c;
  c.groups.push_back({});
  c.groups.back().name = "east";
  return c;
}

std::string first_subscriber_problem(const std::string& body) {
  auto r = app::parse_subscriber(body, subscriber_config());
  if (std::holds_alternative<store::Subscriber>(r)) return "";
  if (auto* m = std::get_if<app::MalformedBody>(&r)) return "malformed " + m->field;
  return std::get<std::vector<FieldProblem>>(r).front().path;
}

http::Request with_content_type(std::string value) {
  http::Request r;
  r.headers.emplace_back("Content-Type", std::move(value));
  return r;
}

}  // namespace

TEST_CASE("strict JSON refuses duplicate keys at any depth and names their path", "[strict]") {
  CHECK(duplicate_path(R"({"a":1,"b":{"c":[1,{"d":2}]}})") == "");
  CHECK(duplicate_path(R"({"status":"exercise","x":1,"status":"actual"})") == "status");
  CHECK(duplicate_path(R"({"a":{"b":1,"b":2}})") == "a.b");
  CHECK(duplicate_path(R"({"rows":[{"name":"x"},{"phone":"1","phone":"2"}]})") == "rows[1].phone");
  CHECK(duplicate_path(R"([[1,2],{"k":1},{"k":1,"k":2}])") == "[2].k");
  // The same key in sibling objects is no duplicate.
  CHECK(duplicate_path(R"({"a":{"k":1},"b":{"k":1}})") == "");
  CHECK(duplicate_path("{nope") == "invalid");
  auto r = parse_json_strict(R"({"s":1,"s":2})");
  REQUIRE(std::holds_alternative<JsonSyntaxError>(r));
  CHECK(std::get<JsonSyntaxError>(r).detail == "duplicate key \"s\"");
}

TEST_CASE("control characters: NUL and C0 refused, line breaks only where allowed", "[strict]") {
  CHECK_FALSE(has_control_chars("Ana María, 1st St & Soto"));
  CHECK(has_control_chars(std::string("a\0b", 3)));
  CHECK(has_control_chars(std::string("a\0b", 3), /*allow_newline=*/true));
  CHECK(has_control_chars("a\nb"));
  CHECK_FALSE(has_control_chars("a\nb\r\n\tc", /*allow_newline=*/true));
  CHECK(has_control_chars("\x1b[31m", true));
  CHECK(has_control_chars("del\x7f"));
}

TEST_CASE("subscriber bodies refuse duplicate keys and control characters in personal fields",
          "[strict]") {
  CHECK(first_subscriber_problem(R"({"email":"a@b.org","groups":["east"]})") == "");
  CHECK(first_subscriber_problem(R"({"email":"a\u0000@b.org","groups":["east"]})") == "email");
  CHECK(first_subscriber_problem(
            R"({"email":"a@b.org","name":"Ana\u001b[2J","groups":["east"]})") == "name");
  CHECK(first_subscriber_problem(R"({"phone":"+1 213 555\u0000 0101","groups":["east"]})") ==
        "phone");
  CHECK(first_subscriber_problem(R"({"email":"a@b.org","groups":["east"],"email":"c@d.org"})") ==
        "malformed email");
  CHECK_FALSE(app::plausible_email(std::string("a\0@b.org", 8)));
  // A patch is parsed as strictly.
  auto patch = app::parse_patch(R"({"name":"x","name":null})");
  REQUIRE(std::holds_alternative<app::MalformedBody>(patch));
  CHECK(std::get<app::MalformedBody>(patch).field == "name");
}

TEST_CASE("JSON bodies need Content-Type application/json", "[strict]") {
  using app::api::require_json;
  CHECK_FALSE(require_json(with_content_type("application/json")));
  CHECK_FALSE(require_json(with_content_type("Application/JSON; charset=UTF-8")));
  CHECK_FALSE(require_json(with_content_type("application/json;charset=\"utf-8\"")));
  CHECK(require_json(with_content_type("application/json; charset=latin1")));
  CHECK(require_json(with_content_type("text/plain")));
  CHECK(require_json(with_content_type("application/jsonx")));
  CHECK(require_json(http::Request{}));
  auto p = require_json(with_content_type("text/plain"));
  REQUIRE(p);
  CHECK(p->status == 415);
  CHECK(p->field == "Content-Type");
  CHECK(require_json(with_content_type("application/merge-patch+json")));
  CHECK_FALSE(
      require_json(with_content_type("application/merge-patch+json"), /*merge_patch=*/true));
}

TEST_CASE("the refusal tally summarises a flood in one line and starts afresh", "[strict][logs]") {
  RefusalTally t;
  CHECK(t.take(60) == "");
  for (int i = 0; i < 1200; ++i) t.add(401);
  for (int i = 0; i < 34; ++i) t.add(400);
  t.add(415);
  CHECK(t.pending() == 1235);
  CHECK(t.take(60) ==
        "refused 1235 requests in the last 60 s: 400\u00d734, 401\u00d71200, 415\u00d71");
  CHECK(t.pending() == 0);
  CHECK(t.take(60) == "");
  t.add(404);
  CHECK(t.take(5) == "refused 1 request in the last 5 s: 404\u00d71");
  // Signed requests that change nothing (answered 2xx) are summarised the
  // same way, by reason.
  for (int i = 0; i < 200; ++i) t.add_ignored(Ignored::kAlreadyApplied);
  CHECK(t.ignored() == 200);
  CHECK(t.take(60) == "ignored 200 signed requests in the last 60 s: already applied\u00d7200");
  t.add(403);
  t.add_ignored(Ignored::kJoinLimit);
  t.add_ignored(Ignored::kNoMessageSid);
  t.add_ignored(Ignored::kNoMessageSid);
  CHECK(t.take(60) ==
        "refused 1 request in the last 60 s: 403\u00d71; ignored 3 signed requests: no "
        "MessageSid\u00d72, join prompt limit (join.max_prompts_*)\u00d71");
  CHECK(t.take(60) == "");
  CHECK(is_refusal(401));
  CHECK(is_refusal(499));
  CHECK_FALSE(is_refusal(503));
  CHECK_FALSE(is_refusal(202));
}
