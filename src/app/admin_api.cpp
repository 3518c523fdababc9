// The admin side of the HTTP API: authentication by bearer token, the audit
// log every admin request goes through, subscribers (create, list, read,
// patch, erase, bulk import). Incidents are in api.cpp.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api.h"
#include "app/api_common.h"
#include "app/subscriber_import.h"
#include "app/subscriber_input.h"
#include "core/masking.h"
#include "core/signature.h"

namespace tocsin::app {

using nlohmann::json;
using namespace api;

namespace {

struct PageQuery {
  int64_t after = 0;  // cursor: the last id of the previous page
  int limit = Api::kDefaultPage;
  std::string group;
};

// ?after=ID&limit=N (and &group=NAME where `with_group`); unknown
// parameters are problems, so a typo does not silently widen a list.
std::variant<PageQuery, std::vector<FieldProblem>> parse_page_query(std::string_view query,
                                                                    bool with_group,
                                                                    const Config& config) {
  PageQuery q;
  std::vector<FieldProblem> problems;
  for (const auto& [key, value] : parse_form(query)) {
    if (key == "after") {
      auto v = value == "0" ? std::optional<int64_t>(0) : parse_id(value);
      if (v)
        q.after = *v;
      else
        problems.push_back({"after", "must be the next cursor of the previous page"});
    } else if (key == "limit") {
      auto v = parse_id(value);
      if (v && *v <= Api::kMaxPage)
        q.limit = static_cast<int>(*v);
      else
        problems.push_back({"limit", "must be from 1 to " + std::to_string(Api::kMaxPage)});
    } else if (key == "group" && with_group) {
      if (config.group(value))
        q.group = value;
      else
        problems.push_back({"group", "no group named \"" + value.substr(0, 100) + "\""});
    } else {
      problems.push_back({key.substr(0, 100), "unknown query parameter"});
    }
  }
  if (!problems.empty()) return problems;
  return q;
}

// A subscriber as lists show it: numbers, addresses and names masked.
json masked_subscriber_json(const store::Subscriber& s) {
  json j = subscriber_json(s);
  j["name"] = mask_name(s.name);
  j["phone"] = s.phone.empty() ? json() : json(mask_phone(s.phone));
  j["email"] = s.email.empty() ? json() : json(mask_email(s.email));
  return j;
}

// A page of `items` fetched with limit + 1: the extra one says there is more.
template <typename T, typename Id>
json page(std::vector<T>& items, int limit, Id id_of) {
  json next;
  if (items.size() > static_cast<std::size_t>(limit)) {
    items.resize(static_cast<std::size_t>(limit));
    next = std::to_string(id_of(items.back()));
  }
  return next;
}

}  // namespace

std::optional<std::string> Api::admin_identity(const http::Request& req,
                                               const ActiveConfig& cfg) const {
  auto auth = req.header("authorization");
  if (!auth.starts_with("Bearer ")) return std::nullopt;
  auto token = auth.substr(7);
  std::optional<std::string> who;
  for (const auto& t : cfg.config.admin_tokens)  // compare with every token: no timing hint
    if (constant_time_equal(token, t.token) && !who) who = t.name;
  return who;
}

void Api::admin(http::Request& req, const Route& route, std::string_view rest, Respond respond) {
  auto cfg = config_();
  auto who = admin_identity(req, *cfg);
  if (!who) {
    auto r = problem(unauthorized("an admin bearer token is required"));
    r.set("WWW-Authenticate", "Bearer");
    return respond(std::move(r));
  }
  respond = trusted(std::move(respond));
  auto audit = std::make_shared<store::AuditEntry>();
  audit->actor = *who;
  audit->method = req.method.substr(0, 10);
  // The answer waits for its audit entry. An answer from a store job
  // (admin_job) comes with its entry committed in that job. Any other (a
  // refusal before the store, a reload, a failed store job's 503) has its
  // entry stored here first; a read whose entry cannot be stored is refused
  // (503: no unrecorded look at personal data); nothing else was written,
  // so the answer goes out and the log says the entry is missing.
  Respond audited = [this, audit, respond = std::move(respond)](http::Response r) {
    if (audit->id != 0) return respond(std::move(r));  // committed with the answer's job
    audit->status = r.status;
    audit->at = clock_.now_ms();
    store_.submit([entry = *audit](store::Store& s) { s.insert_audit(entry); },
                  [audit, respond, r = std::move(r)](bool stored) mutable {
                    if (!stored) {
                      spdlog::error("audit entry for {} {} by {} not stored", audit->method,
                                    audit->route, audit->actor);
                      if (audit->method == "GET") return respond(problem(unavailable()));
                    }
                    respond(std::move(r));
                  });
  };
  audit->route = std::string(route.path);
  if (!route.methods.empty() && !route.takes(req.method))
    return audited(problem(method_not_allowed()));
  route.serve(*this, req, rest, audit, std::move(audited));
}

void Api::admin_job(const Audit& audit, std::function<http::Response(store::Store&)> job,
                    Respond respond, std::function<void(const http::Response&)> after) {
  audit->at = clock_.now_ms();
  store_.call<http::Response>(
      [audit, job = std::move(job)](store::Store& s) {
        http::Response r = job(s);
        audit->status = r.status;
        audit->id = s.insert_audit(*audit);
        return r;
      },
      [audit, after = std::move(after), respond = std::move(respond)](store::JobResult<http::Response> r) {
        if (!r) {
          audit->id = 0;  // rolled back with the job: the 503 (or 500) is audited on its own
          return respond(problem(store_failure(r.failure)));
        }
        if (after) after(*r);
        respond(std::move(*r));
      });
}

void Api::subscribers(http::Request& req, std::string_view rest, const Audit& audit,
                      Respond respond) {
  auto cfg = config_();
  const std::string& m = req.method;
  if (rest.empty() || rest == "/") {
    if (m == "GET") return list_subscribers(req, audit, std::move(respond));
    if (m != "POST") return respond(problem(method_not_allowed()));
    if (auto p = require_json(req)) return respond(problem(*p));
    auto parsed = parse_subscriber(req.body, cfg->config);
    if (auto* bad = std::get_if<MalformedBody>(&parsed))
      return respond(problem(bad_request(bad->detail, bad->field)));
    if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
      return respond(problem(field_problems(*problems)));
    auto sub = std::make_shared<store::Subscriber>(std::move(std::get<store::Subscriber>(parsed)));
    UnixMs now = clock_.now_ms();
    return admin_job(
        audit,
        [sub, now, audit](store::Store& s) {
          sub->id = s.insert_subscriber(*sub, now);
          sub->created_at = now;
          audit->object_id = std::to_string(sub->id);
          auto r = http::json_response(201, subscriber_json(*sub).dump());
          r.set("Location", "/v1/subscribers/" + audit->object_id);
          return r;
        },
        std::move(respond),
        [audit](const http::Response&) { spdlog::info("subscriber {} created", audit->object_id); });
  }
  if (rest == "/import") {
    audit->route = "/v1/subscribers/import";
    if (m != "POST") return respond(problem(method_not_allowed()));
    return import_subscribers(req, audit, std::move(respond));
  }
  audit->route = "/v1/subscribers/{id}";
  auto id = parse_id(rest.substr(1));
  if (!id) return respond(problem(not_found("no such subscriber")));
  audit->object_id = std::to_string(*id);
  if (m == "GET") {
    admin_job(
        audit,
        [id = *id](store::Store& s) {
          auto sub = s.subscriber(id);
          if (!sub) return problem(not_found("no such subscriber"));
          json j = subscriber_json(*sub);
          // The proof of consent of someone who joined by text (README
          // "Join by text"): when, by which keyword, the provider's ids of
          // the keyword text and of the confirmation; never a text.
          json consents = json::array();
          for (const auto& c : s.consents(id))
            consents.push_back({{"group", c.group},
                                {"keyword", c.keyword},
                                {"requested_at", format_rfc3339(c.requested_at)},
                                {"confirmed_at", format_rfc3339(c.confirmed_at)},
                                {"request_message_id", c.request_message_id},
                                {"confirm_message_id", c.confirm_message_id}});
          j["consents"] = std::move(consents);
          return http::json_response(200, j.dump());
        },
        std::move(respond));
  } else if (m == "PATCH") {
    patch_one(req, *id, audit, std::move(respond));
  } else if (m == "DELETE") {
    admin_job(
        audit,
        [id = *id](store::Store& s) {
          if (!s.delete_subscriber(id)) return problem(not_found("no such subscriber"));
          http::Response resp;
          resp.status = 204;
          return resp;
        },
        std::move(respond),
        [id = *id](const http::Response& r) {
          if (r.status == 204) spdlog::info("subscriber {} erased", id);
        });
  } else {
    respond(problem(method_not_allowed()));
  }
}

void Api::list_subscribers(http::Request& req, const Audit& audit, Respond respond) {
  auto cfg = config_();
  auto parsed = parse_page_query(req.query(), /*with_group=*/true, cfg->config);
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return respond(problem(field_problems(*problems)));
  PageQuery q = std::get<PageQuery>(parsed);
  admin_job(
      audit,
      [q, audit](store::Store& s) {
        auto rows = s.list_subscribers(q.group, q.after, q.limit + 1);
        json next = page(rows, q.limit, [](const store::Subscriber& sub) { return sub.id; });
        json list = json::array();
        for (const auto& sub : rows) list.push_back(masked_subscriber_json(sub));
        audit->count = static_cast<int64_t>(rows.size());
        return http::json_response(200, json{{"subscribers", list}, {"next", next}}.dump());
      },
      std::move(respond));
}

void Api::patch_one(http::Request& req, int64_t id, const Audit& audit, Respond respond) {
  auto cfg = config_();
  if (auto p = require_json(req, /*merge_patch=*/true)) {
    auto r = problem(*p);
    r.set("Accept-Patch", "application/merge-patch+json, application/json");
    return respond(std::move(r));
  }
  auto parsed = parse_patch(req.body);
  if (auto* bad = std::get_if<MalformedBody>(&parsed))
    return respond(problem(bad_request(bad->detail, bad->field)));
  auto patch = std::make_shared<json>(std::move(std::get<json>(parsed)));
  // Read, merge, validate and write in one store job: nothing can change
  // the subscriber in between, and a refused patch writes nothing.
  admin_job(
      audit,
      [cfg, patch, id](store::Store& s) -> http::Response {
        auto existing = s.subscriber(id);
        if (!existing) return problem(not_found("no such subscriber"));
        auto merged = patch_subscriber(*existing, *patch, cfg->config);
        if (auto* problems = std::get_if<std::vector<FieldProblem>>(&merged))
          return problem(field_problems(*problems));
        auto& sub = std::get<store::Subscriber>(merged);
        if (!same_data(sub, *existing)) s.update_subscriber(sub);
        return http::json_response(200, subscriber_json(sub).dump());
      },
      std::move(respond),
      [id](const http::Response& r) {
        if (r.status == 200) spdlog::info("subscriber {} updated", id);
      });
}

void Api::import_subscribers(http::Request& req, const Audit& audit, Respond respond) {
  auto cfg = config_();
  if (auto p = require_json(req)) return respond(problem(*p));
  auto parsed = parse_import(req.body);
  if (auto* bad = std::get_if<MalformedBody>(&parsed))
    return respond(problem(bad_request(bad->detail, bad->field)));
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return respond(problem(field_problems(*problems)));
  auto batch = std::make_shared<ImportBatch>(std::move(std::get<ImportBatch>(parsed)));
  audit->count = static_cast<int64_t>(batch->rows.size());
  UnixMs now = clock_.now_ms();
  auto result = std::make_shared<ImportResult>();
  admin_job(
      audit,
      [cfg, batch, now, result](store::Store& s) {
        *result = import_rows(s, cfg->config, *batch, now);
        return http::json_response(200, result->to_json(batch->dry_run).dump());
      },
      std::move(respond),
      [batch, result](const http::Response&) {
        spdlog::info(
            "subscriber import{}: {} rows, {} created, {} updated, {} unchanged, {} refused",
            batch->dry_run ? " (dry run)" : "", batch->rows.size(), result->created,
            result->updated, result->unchanged, result->refused);
      });
}

void Api::audit_log(http::Request& req, const Audit& audit, Respond respond) {
  if (req.method != "GET") return respond(problem(method_not_allowed()));
  auto cfg = config_();
  auto parsed = parse_page_query(req.query(), /*with_group=*/false, cfg->config);
  if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed))
    return respond(problem(field_problems(*problems)));
  PageQuery q = std::get<PageQuery>(parsed);
  admin_job(
      audit,
      [q, audit](store::Store& s) {
        auto entries = s.audit_after(q.after, q.limit + 1);
        json next = page(entries, q.limit, [](const store::AuditEntry& e) { return e.id; });
        json list = json::array();
        for (const auto& e : entries)
          list.push_back({{"id", e.id},
                          {"at", format_rfc3339(e.at)},
                          {"actor", e.actor},
                          {"method", e.method},
                          {"route", e.route},
                          {"object_id", e.object_id.empty() ? json() : json(e.object_id)},
                          {"status", e.status},
                          {"count", e.count}});
        audit->count = static_cast<int64_t>(entries.size());
        return http::json_response(200, json{{"entries", list}, {"next", next}}.dump());
      },
      std::move(respond));
}

}  // namespace tocsin::app
