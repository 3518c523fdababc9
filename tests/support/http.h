// A small synchronous HTTP client for end-to-end tests (libcurl easy), and
// the signing of reports as a coordinator would sign them. Test code only:
// it blocks the calling thread, follows no redirects and never throws on an
// HTTP error status; a transport failure is reported in HttpResult::error.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace tocsin::test {

// One exchange's outcome. `status` is 0 when no HTTP response arrived
// (refused, reset, empty reply, timeout); `error` then says why.
struct HttpResult {
  int status = 0;
  http::Headers headers;  // of the final response (not of a "100 Continue")
  std::string body;
  std::string error;  // curl's message when the transport failed, else ""

  // True when an HTTP response (of any status) was received.
  bool ok() const { return status != 0; }
  // First header called `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const { return http::find_header(headers, name); }
  // The body parsed as JSON; throws nlohmann::json::parse_error if it is not.
  nlohmann::json json() const;
};

// A client that keeps its connection open between requests (HTTP keep-alive)
// to the same host. Not thread-safe: one per thread.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method` (GET, POST, PUT, PATCH, DELETE, ...) to `url` with the
  // given headers and body (sent as is; no Content-Type is added). Waits at
  // most `timeout` for the whole exchange. Sends "Expect: 100-continue" only
  // when `headers` ask for it.
  HttpResult request(std::string_view method, const std::string& url,
                     const http::Headers& headers = {}, std::string_view body = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

// One request on a fresh connection; see HttpClient::request.
HttpResult request(std::string_view method, const std::string& url,
                   const http::Headers& headers = {}, std::string_view body = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

// POST of `body` serialized, with Content-Type: application/json.
HttpResult post_json(const std::string& url, const nlohmann::json& body,
                     const http::Headers& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

// POST of a raw JSON text (e.g. exactly the bytes that were signed).
HttpResult post_json(const std::string& url, std::string_view body,
                     const http::Headers& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

HttpResult get(const std::string& url, const http::Headers& headers = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

// "Basic <base64(user:password)>", the value of an Authorization header.
std::string basic_auth(std::string_view user, std::string_view password);

// application/x-www-form-urlencoded encoding of `fields`, in order
// (space as '+', everything but unreserved characters as %XX).
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// The three Standard Webhooks headers of a signed report.
struct SignedHeaders {
  std::string id;         // webhook-id
  std::string timestamp;  // webhook-timestamp (unix seconds, decimal)
  std::string signature;  // webhook-signature ("v1,<base64>")

  // webhook-id, webhook-timestamp, webhook-signature, ready to send.
  http::Headers headers() const;
};

// Signs `body` as coordinator holding `secret` ("whsec_<base64>") would, for
// message `webhook_id` at unix time `timestamp`. Throws std::invalid_argument
// if the secret does not decode.
SignedHeaders sign_report(std::string_view secret, std::string_view body, std::string webhook_id,
                          int64_t timestamp);

// The same, at the current wall-clock time.
SignedHeaders sign_report(std::string_view secret, std::string_view body, std::string webhook_id);

}  // namespace tocsin::test
