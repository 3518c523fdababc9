// Outbound HTTP for the gateways: an interface, and its real implementation
// on libcurl's multi interface driven by Asio (curl_multi_socket_action), so
// every request shares the daemon's one io_context thread and connections
// are reused. Only http_client.cpp includes curl.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "http/message.h"

namespace tocsin::delivery {

struct OutboundRequest {
  std::string method = "POST";
  std::string url;
  http::Headers headers;      // sent as given
  std::string body;
  std::string basic_auth;     // "user:password" for HTTP basic auth, or ""
  std::chrono::milliseconds timeout{15'000};         // whole request
  std::chrono::milliseconds connect_timeout{5'000};
};

struct OutboundResponse {
  int status = 0;             // HTTP status; 0 when no response arrived
  http::Headers headers;      // names as the server sent them; use header()
  std::string body;
  std::string error;          // transport error (status == 0): text for logs, no personal data
  bool timed_out = false;     // the request hit its timeout

  std::string_view header(std::string_view name) const { return http::find_header(headers, name); }
};

using ResponseCallback = std::function<void(OutboundResponse)>;

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Starts `request`; `done` is called exactly once, later, on the
  // io_context's thread (never from inside send()).
  virtual void send(OutboundRequest request, ResponseCallback done) = 0;
  // Requests started and not yet completed.
  virtual std::size_t in_flight() const = 0;
};

struct CurlOptions {
  long max_host_connections = 64;  // per host; also bounds idle connections kept
  bool verify_tls = true;          // false only for tests against self-signed emulators
};

// libcurl multi + Asio. Not thread-safe: use from the io_context's thread.
// Destroying it aborts outstanding requests without calling their callbacks.
class CurlHttpClient final : public HttpClient {
 public:
  CurlHttpClient(boost::asio::io_context& io, CurlOptions options = {});
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  void send(OutboundRequest request, ResponseCallback done) override;
  std::size_t in_flight() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin::delivery
