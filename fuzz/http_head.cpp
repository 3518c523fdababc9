// Fuzz target: the bytes of a client's request, through Beast's request
// parser set up as src/http/server.cpp sets it up (header and body limits,
// string body), fed in pieces as reads deliver them, then turned into the
// handler's http::Request the way the server does.
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "http/message.h"
#include "http/server.h"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const tocsin::http::ServerOptions options;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Keep-alive: one connection's bytes may hold several requests.
  for (int requests = 0; requests < 8 && !in.empty(); ++requests) {
    std::optional<bhttp::request_parser<bhttp::string_body>> parser;
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser->body_limit(options.max_body_bytes);
    parser->eager(true);
    // As the server's flat_buffer: reads of up to 7 bytes (so every split
    // point of a short head is tried) are appended to what the parser has
    // not consumed yet, and the whole is offered again.
    constexpr std::size_t kRead = 7;
    std::size_t avail = std::min(in.size(), kRead);
    while (!parser->is_done()) {
      boost::beast::error_code ec;
      std::size_t used = parser->put(boost::asio::buffer(in.data(), avail), ec);
      in.remove_prefix(used);
      avail -= used;
      if (ec == bhttp::error::need_more || (!ec && (avail == 0 || used == 0))) {
        if (avail == in.size()) {  // the peer sent nothing more: end of stream
          parser->put_eof(ec);
          if (ec || !parser->is_done()) return 0;
          break;
        }
        avail = std::min(in.size(), avail + kRead);
        continue;
      }
      if (ec) return 0;  // the server answers 400, 413 or 431 and closes
    }
    if (!parser->is_done()) return 0;
    auto msg = parser->release();
    tocsin::http::Request request;
    request.method = std::string(msg.method_string());
    request.target = std::string(msg.target());
    for (const auto& field : msg)
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    request.body = std::move(msg.body());
    request.path();
    request.query();
    request.header("content-type");
    if (!msg.keep_alive()) return 0;
  }
  return 0;
}
