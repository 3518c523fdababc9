#include "support/http.h"

#include <curl/curl.h>

#include <stdexcept>

#include "core/signature.h"

namespace tocsin::test {
namespace {

// curl_global_init is not thread-safe; do it once before any handle exists.
void ensure_curl_global() {
  static const bool initialized = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)initialized;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<HttpResult*>(user)->body.append(data, size * n);
  return size * n;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* result = static_cast<HttpResult*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line: drop the headers of any interim (1xx) response.
    result->headers.clear();
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    result->headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                 std::string(trim(line.substr(colon + 1))));
  }
  return size * n;
}

}  // namespace

nlohmann::json HttpResult::json() const {
  return nlohmann::json::parse(body);
}

struct HttpClient::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

HttpClient::HttpClient() : handle_(std::make_unique<Handle>()) {
  ensure_curl_global();
  handle_->curl = curl_easy_init();
  if (!handle_->curl) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() = default;

HttpResult HttpClient::request(std::string_view method, const std::string& url,
                               const http::Headers& headers, std::string_view body,
                               std::chrono::milliseconds timeout) {
  CURL* c = handle_->curl;
  curl_easy_reset(c);  // keeps the connection cache: keep-alive survives
  HttpResult result;
  std::string method_str(method);

  curl_slist* list = nullptr;
  for (const auto& [name, value] : headers) {
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    list = curl_slist_append(list, line.c_str());
  }
  // A 100-continue round trip would only slow tests down, unless asked for.
  if (http::find_header(headers, "Expect").empty()) list = curl_slist_append(list, "Expect:");

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &result);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &result);
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    // Never NULL: curl would then read the body from stdin.
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    if (method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method_str.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    result.status = 0;
    result.error = curl_easy_strerror(rc);
    return result;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  result.status = static_cast<int>(status);
  return result;
}

HttpResult request(std::string_view method, const std::string& url, const http::Headers& headers,
                   std::string_view body, std::chrono::milliseconds timeout) {
  HttpClient client;
  return client.request(method, url, headers, body, timeout);
}

HttpResult post_json(const std::string& url, const nlohmann::json& body,
                     const http::Headers& headers, std::chrono::milliseconds timeout) {
  return post_json(url, std::string_view(body.dump()), headers, timeout);
}

HttpResult post_json(const std::string& url, std::string_view body, const http::Headers& headers,
                     std::chrono::milliseconds timeout) {
  http::Headers all = headers;
  if (http::find_header(all, "Content-Type").empty()) {
    all.emplace_back("Content-Type", "application/json");
  }
  return request("POST", url, all, body, timeout);
}

HttpResult get(const std::string& url, const http::Headers& headers,
               std::chrono::milliseconds timeout) {
  return request("GET", url, headers, {}, timeout);
}

std::string basic_auth(std::string_view user, std::string_view password) {
  std::string plain(user);
  plain += ':';
  plain += password;
  return "Basic " + base64_encode(plain);
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  auto encode = [&](std::string_view s) {
    for (unsigned char ch : s) {
      if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.' || ch == '~') {
        out += static_cast<char>(ch);
      } else if (ch == ' ') {
        out += '+';
      } else {
        out += '%';
        out += kHex[ch >> 4];
        out += kHex[ch & 0xF];
      }
    }
  };
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    encode(name);
    out += '=';
    encode(value);
  }
  return out;
}

http::Headers SignedHeaders::headers() const {
  return {{"webhook-id", id}, {"webhook-timestamp", timestamp}, {"webhook-signature", signature}};
}

SignedHeaders sign_report(std::string_view secret, std::string_view body, std::string webhook_id,
                          int64_t timestamp) {
  auto key = decode_webhook_secret(secret);
  if (!key) throw std::invalid_argument("sign_report: secret is not whsec_<base64>");
  SignedHeaders out;
  out.signature = sign_webhook(*key, webhook_id, timestamp, body);
  out.id = std::move(webhook_id);
  out.timestamp = std::to_string(timestamp);
  return out;
}

SignedHeaders sign_report(std::string_view secret, std::string_view body, std::string webhook_id) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return sign_report(secret, body, std::move(webhook_id), static_cast<int64_t>(now));
}

}  // namespace tocsin::test
