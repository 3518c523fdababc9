#include "e2e/fixture.h"

#include <sqlite3.h>

#include <cstdio>
#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "core/form.h"

namespace tocsin::test {

using nlohmann::json;

json test_config(const Gateways& gw, int rate_per_s, int max_in_flight) {
  return json{
      {"server", {{"listen", "127.0.0.1:0"}, {"max_body_bytes", 65536}, {"public_url", kPublicUrl}}},
      {"storage", {{"sqlite", {{"path", "var/tocsin.db"}}}, {"key_file", "tocsin.key"}}},
      {"coordinators",
       {{{"name", "la-hotline"}, {"secret", kCoordinatorSecret}, {"areas", {"la"}}},
        {{"name", "la-observers"},
         {"secret", kObserverSecret},
         {"areas", {"la/boyle-heights", "la/east-la"}}},
        {{"name", "sf-hotline"}, {"secret", kOtherSecret}, {"areas", {"sf"}}}}},
      {"admin", {{"tokens", {kAdminToken}}}},
      {"dedup", {{"window_s", 1800}, {"radius_m", 400}}},
      {"gateways",
       {{{"name", "twilio-main"},
         {"type", "twilio"},
         {"channel", "sms"},
         {"base_url", gw.twilio.base_url()},
         {"account_sid", gw.twilio.options().account_sid},
         {"auth_token", gw.twilio.options().auth_token},
         {"from", "+12135550100"},
         {"rate_per_s", rate_per_s},
         {"max_in_flight", max_in_flight},
         {"timeout_ms", 5000}},
        {{"name", "sendgrid"},
         {"type", "sendgrid"},
         {"channel", "email"},
         {"base_url", gw.sendgrid.base_url()},
         {"api_key", gw.sendgrid.options().api_key},
         {"from", "alerts@example.org"},
         {"rate_per_s", rate_per_s},
         {"max_in_flight", 8},
         {"timeout_ms", 5000}}}},
      {"groups",
       {{{"name", "eastside"},
         {"match",
          {{"areas", {"la/east-la", "la/boyle-heights"}},
           {"events", {"enforcement_activity"}},
           {"min_severity", "moderate"}}},
         {"channels", {"sms", "email"}}},
        {{"name", "lawyers"},
         {"match", {{"areas", {"la"}}, {"min_severity", "severe"}}},
         {"channels", {"email"}}},
        {{"name", "drills"}, {"match", {{"areas", {"la"}}}}, {"channels", {"sms"}}, {"drills", true}}}},
      {"delivery", {{"max_retry_delay_s", 2}}}};
}

json report_body(const json& overrides) {
  json r = {{"msg_type", "alert"},
            {"status", "actual"},
            {"event", "enforcement_activity"},
            {"severity", "severe"},
            {"area", "la/boyle-heights"},
            {"location", {{"lat", 34.0339}, {"lon", -118.2107}, {"description", "1st St & Soto St"}}},
            {"observed_at", "2026-11-22T13:05:00Z"},
            {"headline", {{"en", "ICE vehicles at 1st & Soto"}, {"es", "Vehículos de ICE en 1st y Soto"}}},
            {"instruction", {{"en", "Legal observers needed"}, {"es", "Se necesitan observadores legales"}}}};
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    if (it->is_null()) r.erase(it.key());
    else r[it.key()] = *it;
  }
  return r;
}

HttpResult post_report(const std::string& base_url, const std::string& body,
                       const std::string& secret, std::string webhook_id) {
  static std::atomic<int> counter{0};
  if (webhook_id.empty()) {
    static const uint64_t run = std::random_device{}();
    webhook_id = "msg_" + std::to_string(run) + "_" + std::to_string(counter++);
  }
  auto signed_headers = sign_report(secret, body, webhook_id);
  auto headers = signed_headers.headers();
  headers.emplace_back("Content-Type", "application/json");
  return request("POST", base_url + "/v1/reports", headers, body);
}

HttpResult inbound_sms(const std::string& base_url, const Gateways& gw, const std::string& from,
                       const std::string& body, bool forged, const std::string& message_sid) {
  static std::atomic<int> counter{0};
  static const uint64_t run = std::random_device{}();
  std::string sid = message_sid;
  if (sid.empty()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "SM%016llx%016x", static_cast<unsigned long long>(run),
                  static_cast<unsigned>(counter++));
    sid = buf;
  }
  std::vector<std::pair<std::string, std::string>> fields = {
      {"AccountSid", gw.twilio.options().account_sid},
      {"Body", body},
      {"From", from},
      {"MessageSid", sid},
      {"To", "+12135550100"}};
  tocsin::FormFields ff(fields.begin(), fields.end());
  std::string sig = tocsin::twilio_signature(forged ? "not-the-token" : gw.twilio.options().auth_token,
                                             std::string(kPublicUrl) + "/v1/inbound/twilio", ff);
  return request("POST", base_url + "/v1/inbound/twilio",
                 {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Twilio-Signature", sig}},
                 form_encode(fields));
}

HttpResult twilio_callback(const std::string& base_url, const std::string& auth_token,
                           const std::string& path,
                           std::vector<std::pair<std::string, std::string>> fields, bool forged) {
  tocsin::FormFields ff(fields.begin(), fields.end());
  std::string sig = tocsin::twilio_signature(forged ? "not-the-token" : auth_token,
                                             std::string(kPublicUrl) + path, ff);
  return request("POST", base_url + path,
                 {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Twilio-Signature", sig}},
                 form_encode(fields));
}

HttpResult twilio_receipt(const std::string& base_url, const Gateways& gw, const std::string& sid,
                          const std::string& status, bool forged) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"AccountSid", gw.twilio.options().account_sid},
      {"MessageSid", sid},
      {"MessageStatus", status},
      {"To", "+12135550199"}};
  tocsin::FormFields ff(fields.begin(), fields.end());
  std::string sig = tocsin::twilio_signature(forged ? "not-the-token" : gw.twilio.options().auth_token,
                                             std::string(kPublicUrl) + "/v1/receipts/twilio", ff);
  return request("POST", base_url + "/v1/receipts/twilio",
                 {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Twilio-Signature", sig}},
                 form_encode(fields));
}

HttpResult admin(const std::string& method, const std::string& url, const json& body) {
  http::Headers h = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  if (body.is_null()) return request(method, url, h);
  h.emplace_back("Content-Type", "application/json");
  return request(method, url, h, body.dump());
}

std::vector<int64_t> add_subscribers(const std::string& base_url, const std::vector<json>& subs) {
  std::vector<int64_t> ids(subs.size(), 0);
  std::vector<int> statuses(subs.size(), 0);
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      HttpClient client;
      http::Headers h = {{"Authorization", std::string("Bearer ") + kAdminToken},
                         {"Content-Type", "application/json"}};
      for (std::size_t i; (i = next++) < subs.size();) {
        auto r = client.request("POST", base_url + "/v1/subscribers", h, subs[i].dump());
        statuses[i] = r.status;
        if (r.status == 201) ids[i] = r.json()["id"].get<int64_t>();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < subs.size(); ++i) {
    INFO("subscriber " << i);
    REQUIRE(statuses[i] == 201);
  }
  return ids;
}

std::vector<int64_t> add_eastside_subscribers(const std::string& base_url, int n) {
  std::vector<json> subs;
  for (int i = 0; i < n; ++i) subs.push_back({{"phone", phone_for(i)}, {"groups", {"eastside"}}});
  return add_subscribers(base_url, subs);
}

std::map<std::string, int> count_by_recipient(const std::vector<ReceivedMessage>& messages) {
  std::map<std::string, int> out;
  for (const auto& m : messages) ++out[m.to];
  return out;
}

int repeated_messages(const std::map<std::string, int>& counts) {
  int n = 0;
  for (const auto& [to, c] : counts) n += c - 1;
  return n;
}

std::function<bool(const Observations&)> distinct_recipients(std::size_t n) {
  return [n](const Observations& o) {
    std::set<std::string> got;
    for (const auto& m : o.messages) got.insert(m.to);
    return got.size() >= n;
  };
}

std::string phone_for(int i) {
  // +1 213 555 01xx are reserved for fiction; further numbers use other
  // exchanges of Los Angeles area codes and two of its neighbours', all
  // valid to libphonenumber: one area code per thousand, ten of them.
  static const char* kAreas[] = {"213", "323", "310", "818", "626", "562", "424", "747", "714", "909"};
  char buf[32];
  std::snprintf(buf, sizeof buf, "+1%s%03d%04d", kAreas[(i / 1000) % 10], 200 + (i / 100) % 10 * 11 + 1,
                1000 + i % 100 + (i / 100) % 10 * 100);
  return buf;
}

std::vector<std::string> query_db(const Daemon& d, const std::string& sql) {
  sqlite3* c = nullptr;
  REQUIRE(sqlite3_open(d.path("var/tocsin.db").c_str(), &c) == SQLITE_OK);
  sqlite3_busy_timeout(c, 5000);
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(c, sql.c_str(), -1, &s, nullptr);
  INFO(sql << ": " << sqlite3_errmsg(c));
  REQUIRE(rc == SQLITE_OK);
  std::vector<std::string> out;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s, 0));
    out.emplace_back(p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, 0))) : "");
  }
  sqlite3_finalize(s);
  sqlite3_close(c);
  REQUIRE(rc == SQLITE_DONE);
  return out;
}

OutsideWriteLock::OutsideWriteLock(const Daemon& d) {
  REQUIRE(sqlite3_open(d.path("var/tocsin.db").c_str(), &db_) == SQLITE_OK);
  sqlite3_busy_timeout(db_, 10000);
  REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds within) {
  const auto until = std::chrono::steady_clock::now() + within;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

double metric(const std::string& base_url, const std::string& series) {
  auto r = get(base_url + "/metrics");
  auto pos = ("\n" + r.body).find("\n" + series + " ");
  if (r.status != 200 || pos == std::string::npos) return -1;
  return std::stod(r.body.substr(pos + series.size() + 1));
}

bool settled(const std::string& base_url, std::chrono::milliseconds within) {
  return eventually(
      [&] {
        return metric(base_url, "tocsin_deliveries_pending") == 0 &&
               metric(base_url, "tocsin_deliveries_in_flight") == 0;
      },
      within);
}

bool settled(const Daemon& d, std::chrono::milliseconds within) { return settled(d.url(), within); }

OutsideWriteLock::~OutsideWriteLock() { release(); }

void OutsideWriteLock::release() {
  if (releaser_.joinable()) releaser_.join();  // it released, or will now
  if (!db_) return;
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db_);
  db_ = nullptr;
}

void OutsideWriteLock::release_after(std::chrono::milliseconds delay) {
  releaser_ = std::thread([this, delay] {
    std::this_thread::sleep_for(delay);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  });
}

int64_t OutsideWriteLock::count(const std::string& sql) {
  int64_t n = -1;
  REQUIRE(sqlite3_exec(
              db_, sql.c_str(),
              [](void* out, int, char** v, char**) {
                *static_cast<int64_t*>(out) = std::stoll(v[0]);
                return 0;
              },
              &n, nullptr) == SQLITE_OK);
  return n;
}

}  // namespace tocsin::test
