// Answers and helpers shared by the HTTP API's translation units (api.cpp:
// the route table; one file per resource: reports_api, incidents_api,
// inbound_api, reach_api, admin_api), and the route table's row type.
// Internal to src/app.
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/api.h"
#include "core/html.h"
#include "core/json_reader.h"
#include "core/problem.h"
#include "http/problem_response.h"
#include "core/report.h"
#include "delivery/gateways/providers.h"
#include "store/store.h"
#include "store/store_worker.h"

namespace tocsin::app::api {

// TwiML: an empty answer, or one message back to the sender.
inline http::Response twiml(std::string_view message = {}) {
  http::Response r;
  r.status = 200;
  r.set("Content-Type", "text/xml");
  r.body = message.empty() ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
                           : "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>" +
                                 xml_escape(message) + "</Message></Response>";
  return r;
}

inline http::Response problem(const Problem& p) {
  return to_response(p);
}

inline Problem unauthorized(std::string detail) {
  return Problem{
      .status = 401, .type = "unauthorized", .title = "Unauthorized", .detail = std::move(detail)};
}

inline Problem not_found(std::string detail) {
  return Problem{
      .status = 404, .type = "not-found", .title = "Not found", .detail = std::move(detail)};
}

inline Problem method_not_allowed() {
  return Problem{.status = 405,
                 .type = "method-not-allowed",
                 .title = "Method not allowed",
                 .detail = "this resource does not take that method"};
}

inline Problem unavailable() {
  return Problem{.status = 503,
                 .type = "unavailable",
                 .title = "Storage unavailable",
                 .detail = "the request could not be stored durably; nothing was accepted, retry",
                 .retry_after_s = 2};
}

// The answer to a store job that gave no value: a bug in the job is a 500
// (its log line names the job), anything else the database could not take
// now is a 503 with Retry-After.
inline Problem store_failure(store::JobFailure failure) {
  if (failure == store::JobFailure::kBug)
    return Problem{.status = 500,
                   .type = "internal",
                   .title = "Internal error",
                   .detail = "the request failed on a defect; nothing was accepted; it is logged"};
  return unavailable();
}

inline Problem field_problems(const std::vector<FieldProblem>& problems) {
  Problem p = unprocessable(problems.front().path, problems.front().message);
  p.detail = problems.front().path + ": " + problems.front().message;
  for (const auto& fp : problems) p.errors.push_back({fp.path, fp.message});
  return p;
}

// Marks every answer through `respond` as answering a request that proved a
// key (a signature or a token): the HTTP server keeps such connections when
// it must close others for room.
template <typename Respond>
Respond trusted(Respond respond) {
  return [respond = std::move(respond)](http::Response r) {
    r.trusted = true;
    respond(std::move(r));
  };
}

// 415 unless the request's Content-Type is application/json (parameters
// allowed; a charset must be utf-8), or, where `merge_patch`,
// application/merge-patch+json.
inline std::optional<Problem> require_json(const http::Request& req, bool merge_patch = false) {
  std::string_view ct = req.header("content-type");
  std::string_view type = ct.substr(0, ct.find(';'));
  std::string_view params = type.size() < ct.size() ? ct.substr(type.size() + 1) : "";
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  auto lower = [](std::string_view v) {
    std::string out(v);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string t = lower(trim(type));
  bool ok = t == "application/json" || (merge_patch && t == "application/merge-patch+json");
  // Parameters: only a charset, and only UTF-8 (RFC 8259 JSON is UTF-8).
  while (ok && !trim(params).empty()) {
    auto end = params.find(';');
    std::string p = lower(trim(params.substr(0, end)));
    params = end == std::string_view::npos ? std::string_view() : params.substr(end + 1);
    if (p.empty()) continue;
    ok = p == "charset=utf-8" || p == "charset=\"utf-8\"";
  }
  if (ok) return std::nullopt;
  return Problem{.status = 415,
                 .type = "unsupported-media-type",
                 .title = "Unsupported media type",
                 .detail = merge_patch ? "Content-Type must be application/merge-patch+json or "
                                         "application/json (UTF-8)"
                                       : "Content-Type must be application/json (UTF-8)",
                 .field = "Content-Type"};
}

// The full record, for one subscriber asked for by id.
inline nlohmann::json subscriber_json(const store::Subscriber& s) {
  using nlohmann::json;
  json channels = json::array();
  for (Channel c : s.channels) channels.push_back(to_string(c));
  return json{{"id", s.id},
              {"name", s.name},
              {"phone", s.phone.empty() ? json() : json(s.phone)},
              {"email", s.email.empty() ? json() : json(s.email)},
              {"language", s.language},
              {"groups", s.groups},
              {"channels", channels},
              {"sms_opted_out", s.sms_opted_out},
              {"email_opted_out", s.email_opted_out},
              {"created_at", format_rfc3339(s.created_at)}};
}

// A positive decimal id, or nullopt.
inline std::optional<int64_t> parse_id(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

// An object id fit for the audit log: a short code of letters, digits, '-'
// or '_' (subscriber ids, incident codes); anything else (a mistyped path
// might hold a phone number) is recorded as "".
inline std::string audit_object(std::string_view s) {
  if (s.empty() || s.size() > 16) return {};
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return {};
  return std::string(s);
}

}  // namespace tocsin::app::api

namespace tocsin::app {

// A row of the API's route table (Api::routes(), api.cpp): where a path
// goes, which methods it takes, who may call it.
// Authentication of a signed route (a report, a provider callback) is its
// handler's first step, over the raw body; an admin route's is admin()'s.
struct Api::Route {
  enum class Match {
    kExact,  // the path itself
    kTree,   // the path, or below it ("/v1/incidents", "/v1/incidents/X")
    kUnder,  // strictly below it ("/u/TOKEN"); `rest` is after the slash
  };
  std::string_view path;
  Match match;
  // Space-separated methods the route takes; empty: the handler decides
  // (for admin routes, after authentication, so a stranger learns nothing).
  std::string_view methods;
  bool admin;  // bearer token and an audit entry (admin())
  bool (*enabled)(const Api&);  // nullptr: always; else the route 404s when false
  void (*serve)(Api&, http::Request&, std::string_view rest, const Audit& audit, Respond);

  bool takes(std::string_view method) const;
};

}  // namespace tocsin::app
