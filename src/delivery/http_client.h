// Outbound HTTP (and SMTP) for the gateways: an interface, and two
// implementations on the daemon's one io_context thread with connections
// reused: BeastHttpClient, the one the daemon uses (HTTP on Beast, SMTP
// forwarded to curl), and CurlHttpClient, libcurl's multi interface driven
// by Asio (curl_multi_socket_action), which carries SMTP. Only
// http_client.cpp includes curl, only beast_http_client.cpp Beast's client.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/message.h"

namespace tocsin::delivery {

// The SMTP part of a request: with it, `url` is smtp://host:port or
// smtps://host:port, `body` is the whole RFC 5322 message (CRLF line
// endings; curl does the dot-stuffing), `basic_auth` ("user:password", or "")
// is used for SMTP AUTH, and `method` and `headers` are ignored. Caveat:
// when curl closes a live SMTP connection (evicted from its connection cache,
// or the client destroyed) it sends QUIT and waits for the answer in a
// blocking read on the io thread, for at most the request's timeout.
struct SmtpEnvelope {
  std::string mail_from;          // MAIL FROM address (no angle brackets)
  std::vector<std::string> rcpt;  // RCPT TO addresses; at least one
  bool require_tls = false;       // smtp:// only: STARTTLS, and fail without it
};

struct OutboundRequest {
  std::string method = "POST";
  std::string url;
  http::Headers headers;      // sent as given
  std::string body;
  std::string basic_auth;     // "user:password" for HTTP basic auth, or ""
  std::string ca_file;        // PEM CA bundle to verify the server's TLS certificate
                              // against (CURLOPT_CAINFO), or "" for the system's
  std::chrono::milliseconds timeout{15'000};         // whole request
  std::chrono::milliseconds connect_timeout{5'000};
  std::optional<SmtpEnvelope> smtp;  // set: an SMTP transaction instead of HTTP
};

struct OutboundResponse {
  // HTTP status; 0 when no response arrived. For SMTP, the last reply code:
  // 250 after an accepted DATA, or the 4xx/5xx reply that ended the
  // transaction (at MAIL, RCPT, DATA or after the data); 0 when the
  // connection failed without an error reply.
  int status = 0;
  http::Headers headers;      // names as the server sent them; use header()
  std::string body;
  std::string error;          // transport error (status == 0): text for logs, no personal data
  bool timed_out = false;     // the request hit its timeout

  std::string_view header(std::string_view name) const { return http::find_header(headers, name); }
};

using ResponseCallback = std::function<void(OutboundResponse)>;

// A request header both clients send as given: a name without ':', blanks,
// CR, LF or NUL, a value without CR, LF or NUL (no header smuggling).
bool valid_request_header(const std::pair<std::string, std::string>& header);

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Starts `request`; `done` is called exactly once, later, on the
  // io_context's thread (never from inside send()).
  virtual void send(OutboundRequest request, ResponseCallback done) = 0;
  // Requests started and not yet completed.
  virtual std::size_t in_flight() const = 0;
};

struct HttpClientOptions {
  long max_host_connections = 64;  // per host; also bounds idle connections kept
  bool verify_tls = true;          // false only for tests against self-signed emulators
};

// libcurl multi + Asio. Not thread-safe: use from the io_context's thread.
// Destroying it aborts outstanding requests without calling their callbacks.
class CurlHttpClient final : public HttpClient {
 public:
  CurlHttpClient(boost::asio::io_context& io, HttpClientOptions options = {});
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  void send(OutboundRequest request, ResponseCallback done) override;
  std::size_t in_flight() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The gateways' client: HTTP/1.1 on Boost.Beast (keep-alive connections
// pooled per host and CA file, at most max_host_connections each; TLS by
// OpenSSL, verifying the name or IP address of the URL), with SMTP requests
// forwarded to a CurlHttpClient it holds. Same contract as CurlHttpClient,
// which the unit tests check against both: a kept-alive connection that the
// server closed while idle is retried once on a new one if no byte of an
// answer came (as curl does), and a body past 1 MiB is read and dropped.
// Credentials in the URL are refused (basic_auth carries them).
class BeastHttpClient final : public HttpClient {
 public:
  BeastHttpClient(boost::asio::io_context& io, HttpClientOptions options = {});
  ~BeastHttpClient() override;
  BeastHttpClient(const BeastHttpClient&) = delete;
  BeastHttpClient& operator=(const BeastHttpClient&) = delete;

  void send(OutboundRequest request, ResponseCallback done) override;
  std::size_t in_flight() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin::delivery
