#include "http/problem_response.h"

#include <nlohmann/json.hpp>

namespace tocsin {

http::Response to_response(const Problem& p) {
  nlohmann::json j = {{"type", "urn:tocsin:problem:" + p.type},
                      {"title", p.title},
                      {"status", p.status},
                      {"detail", p.detail}};
  if (!p.field.empty()) j["field"] = p.field;
  if (!p.errors.empty()) {
    auto& errs = j["errors"] = nlohmann::json::array();
    for (const auto& e : p.errors) errs.push_back({{"field", e.field}, {"detail", e.detail}});
  }
  http::Response r;
  r.status = p.status;
  r.set("Content-Type", "application/problem+json");
  if (p.retry_after_s > 0) r.set("Retry-After", std::to_string(p.retry_after_s));
  r.body = j.dump();
  return r;
}

}  // namespace tocsin
