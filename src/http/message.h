// Plain HTTP request and response values. The server (Beast) and the outbound
// client (libcurl) translate to and from these, so that routes, gateways and
// tests never include Beast or curl.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tocsin::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Value of the first header called `name` (ASCII case-insensitive), or "" when absent.
std::string_view find_header(const Headers& headers, std::string_view name);

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // origin-form: path plus optional "?query"
  Headers headers;     // as received; look up with header()
  std::string body;    // raw bytes, exactly as received (signatures are over these)
  std::string remote;  // peer "address:port", for logs only

  std::string_view header(std::string_view name) const { return find_header(headers, name); }
  // The target without its query string.
  std::string_view path() const;
  // The raw query string (after '?'), or "".
  std::string_view query() const;
};

struct Response {
  int status = 200;
  Headers headers;  // Content-Length, Date and Server are set by the server
  std::string body;
  // The request proved a key (a signature or a token): the server keeps
  // this connection when it has to close others for room (ServerOptions).
  bool trusted = false;

  Response& set(std::string name, std::string value);
  std::string_view header(std::string_view name) const { return find_header(headers, name); }
};

// A JSON response: Content-Type application/json.
Response json_response(int status, std::string body);

}  // namespace tocsin::http
