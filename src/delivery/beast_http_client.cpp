// BeastHttpClient (http_client.h): the gateways' HTTP/1.1 client on
// Boost.Beast, on the daemon's io_context thread, with keep-alive
// connections pooled per host and TLS through OpenSSL. It exists for speed:
// curl's per-transfer work (URL parse, header formatting, connection
// bookkeeping) was ~130k of the ~170k instructions per fan-out message on
// the io thread, the bound of a fan-out (BENCHMARKS.md). SMTP stays on curl,
// which this client holds and forwards to. Only this file includes Beast's
// HTTP and SSL parts for the client side.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/signature.h"
#include "delivery/http_client.h"

namespace tocsin::delivery {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t kMaxBodyBytes = std::size_t{1}
                                      << 20;  // as the curl client: the rest is read and dropped
constexpr std::uint32_t kMaxHeaderBytes = 64 * 1024;

// A response body kept up to kMaxBodyBytes; the rest is read and dropped,
// so a connection stays usable and memory stays bounded.
struct CappedBody {
  using value_type = std::string;
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>& length, error_code& ec) {
      if (length)
        body_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, kMaxBodyBytes)));
      ec = {};
    }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      std::size_t n = 0;
      for (const auto b : beast::buffers_range_ref(buffers)) {
        const std::size_t room = kMaxBodyBytes - std::min(kMaxBodyBytes, body_.size());
        body_.append(static_cast<const char*>(b.data()), std::min(room, b.size()));
        n += b.size();
      }
      ec = {};
      return n;
    }
    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

struct Url {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  unsigned short port_number = 0;
  std::string host_header;  // the authority as given
  std::string target;       // path and query
};

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// http(s)://host[:port][/path][?query]; credentials in the URL are refused
// (they go in basic_auth, kept out of the URL that is logged).
std::optional<Url> parse_url(std::string_view url) {
  Url u;
  if (url.size() > 7 && iequals(url.substr(0, 7), "http://")) {
    url.remove_prefix(7);
  } else if (url.size() > 8 && iequals(url.substr(0, 8), "https://")) {
    u.tls = true;
    url.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  url = url.substr(0, url.find('#'));
  const std::size_t end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : url.substr(end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  u.host_header = std::string(authority);
  std::string_view port;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return std::nullopt;
  if (!port.empty() && (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
                          return c >= '0' && c <= '9';
                        })))
    return std::nullopt;
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  const unsigned long number = std::stoul(u.port);
  if (number == 0 || number > 65535) return std::nullopt;
  u.port_number = static_cast<unsigned short>(number);
  u.target =
      rest.empty() ? "/" : (rest.front() == '?' ? "/" + std::string(rest) : std::string(rest));
  return u;
}

// One connection to one host: a socket, TLS on it for https, and the
// bytes read past the last response.
struct Connection {
  Connection(asio::io_context& io, ssl::context* tls) {
    if (tls) {
      secure.emplace(io, *tls);
    } else {
      plain.emplace(io);
    }
  }
  tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }
  template <class F>
  void with_stream(F&& f) {
    if (secure) {
      f(*secure);
    } else {
      f(*plain);
    }
  }
  void close() {
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> secure;
  beast::flat_buffer buffer;
  bool used = false;  // has carried a request before: it may have gone stale while idle
};

}  // namespace

struct BeastHttpClient::Impl {
  struct Exchange;
  struct Pool {
    std::vector<std::shared_ptr<Connection>> idle;  // most recently used last
    int open = 0;                                   // idle + carrying a request + connecting
    std::deque<std::shared_ptr<Exchange>> waiting;  // requests waiting for a connection
  };

  // One request, from its start to its callback.
  struct Exchange : std::enable_shared_from_this<Exchange> {
    Exchange(Impl& impl, asio::io_context& io)
        : owner(impl), alive(impl.alive), timer(io), resolver(io) {}
    Impl& owner;
    std::shared_ptr<bool> alive;
    Url url;
    std::string pool_key;
    ssl::context* tls = nullptr;
    bhttp::request<bhttp::string_body> request;
    ResponseCallback done;
    std::chrono::milliseconds timeout{};
    std::chrono::milliseconds connect_timeout{};
    std::chrono::steady_clock::time_point deadline;
    asio::steady_timer timer;
    tcp::resolver resolver;
    std::shared_ptr<Connection> conn;
    std::optional<bhttp::response_parser<CappedBody>> parser;
    bool timed_out = false;
    bool retried = false;
    bool finished = false;
  };

  Impl(asio::io_context& io_context, const HttpClientOptions& opts)
      : io(io_context), options(opts), smtp(io_context, opts) {}

  ~Impl() {
    *alive = false;
    for (auto& [key, pool] : pools)
      for (auto& c : pool.idle) c->close();
    for (auto& weak : active)
      if (auto e = weak.lock()) {
        e->timer.cancel();
        e->resolver.cancel();
        if (e->conn) e->conn->close();
      }
  }

  ssl::context* tls_context(const std::string& ca_file, std::string& error) {
    auto it = tls_contexts.find(ca_file);
    if (it != tls_contexts.end()) return it->second.get();
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(ca_file, ec);
    }
    if (ec) {
      error = "tls: cannot load the CA certificates: " + ec.message();
      return nullptr;
    }
    ctx->set_verify_mode(options.verify_tls ? ssl::verify_peer : ssl::verify_none);
    return tls_contexts.emplace(ca_file, std::move(ctx)).first->second.get();
  }

  void send(OutboundRequest in, ResponseCallback done) {
    ++in_flight;
    auto e = std::make_shared<Exchange>(*this, io);
    e->done = std::move(done);
    if (std::string error = prepare(*e, std::move(in)); !error.empty()) {
      fail_later(e, std::move(error));
      return;
    }
    active.push_back(e);
    if (active.size() > 64 && active.size() > 2 * in_flight)
      std::erase_if(active, [](const std::weak_ptr<Exchange>& w) { return w.expired(); });
    e->deadline = std::chrono::steady_clock::now() + e->timeout;
    e->timer.expires_at(e->deadline);
    e->timer.async_wait([e](const error_code& ec) {
      if (ec || !*e->alive || e->finished) return;
      e->timed_out = true;
      if (!e->conn)  // still waiting for a connection of its pool
        return e->owner.finish(e, false,
                               "timed out after " + std::to_string(e->timeout.count()) +
                                   " ms waiting for a connection");
      e->resolver.cancel();
      e->conn->close();  // the operation under way fails, and failed() answers
    });
    acquire(e);
  }

  std::string prepare(Exchange& e, OutboundRequest in) {
    auto url = parse_url(in.url);
    if (!url) return "invalid url";
    e.url = std::move(*url);
    if (e.url.tls) {
      std::string error;
      e.tls = tls_context(in.ca_file, error);
      if (!e.tls) return error;
    }
    e.pool_key =
        (e.url.tls ? "https://" : "http://") + e.url.host + ":" + e.url.port + "|" + in.ca_file;
    e.timeout = std::max(std::chrono::milliseconds(1), in.timeout);
    e.connect_timeout = std::max(std::chrono::milliseconds(1), in.connect_timeout);
    auto& r = e.request;
    r.version(11);
    const bhttp::verb verb = bhttp::string_to_verb(in.method);
    if (verb == bhttp::verb::unknown) {
      if (in.method.empty() || in.method.find_first_of(" \t\r\n\0") != std::string::npos)
        return "invalid method";
      r.method_string(in.method);
    } else {
      r.method(verb);
    }
    r.target(e.url.target);
    r.set(bhttp::field::host, e.url.host_header);
    r.set(bhttp::field::user_agent, "tocsin/" TOCSIN_VERSION);
    r.set(bhttp::field::accept, "*/*");
    for (const auto& header : in.headers) {
      if (!valid_request_header(header)) return "invalid request header";
      r.insert(header.first, header.second);
    }
    if (!in.basic_auth.empty())
      r.set(bhttp::field::authorization, "Basic " + base64_encode(in.basic_auth));
    const bool sends_body =
        !in.body.empty() || in.method == "POST" || in.method == "PUT" || in.method == "PATCH";
    r.body() = std::move(in.body);
    if (sends_body) r.content_length(r.body().size());
    return {};
  }

  // A connection for `e`: an idle one of its pool, a new one while the pool
  // is under max_host_connections, or a place in the pool's queue.
  void acquire(const std::shared_ptr<Exchange>& e) {
    Pool& pool = pools[e->pool_key];
    if (!pool.idle.empty()) {
      e->conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      write(e);
      return;
    }
    if (pool.open < std::max(1L, options.max_host_connections)) {
      ++pool.open;
      connect(e);
      return;
    }
    pool.waiting.push_back(e);
  }

  // A pool's connection closed or was handed back: the next waiting request may go.
  void wake(Pool& pool) {
    while (!pool.waiting.empty()) {
      auto next = std::move(pool.waiting.front());
      pool.waiting.pop_front();
      if (next->finished) continue;  // timed out while it waited
      acquire(next);
      return;
    }
  }

  void connect(const std::shared_ptr<Exchange>& e) {
    e->conn = std::make_shared<Connection>(io, e->tls);
    // The connect timeout (through the TLS handshake) on a timer of its own.
    auto connect_timer = std::make_shared<asio::steady_timer>(io, e->connect_timeout);
    auto conn = e->conn;
    connect_timer->async_wait([e, conn](const error_code& ec) {
      if (ec || !*e->alive) return;
      e->resolver.cancel();
      conn->close();
    });
    error_code not_literal;
    const auto address = asio::ip::make_address(e->url.host, not_literal);
    if (!not_literal) {  // an IP address: no look-up, no hop to the resolver's thread
      e->conn->socket().async_connect(tcp::endpoint(address, e->url.port_number),
                                      [this, e, connect_timer](const error_code& ec) {
                                        if (!*e->alive) return;
                                        connected(e, connect_timer, ec);
                                      });
      return;
    }
    e->resolver.async_resolve(
        e->url.host, e->url.port, tcp::resolver::numeric_service,
        [this, e, connect_timer](const error_code& ec, tcp::resolver::results_type results) {
          if (!*e->alive) return;
          if (ec) return connect_failed(e, connect_timer, "resolve", ec);
          asio::async_connect(
              e->conn->socket(), results,
              [this, e, connect_timer](const error_code& ec2, const tcp::endpoint&) {
                if (!*e->alive) return;
                connected(e, connect_timer, ec2);
              });
        });
  }

  void connected(const std::shared_ptr<Exchange>& e,
                 const std::shared_ptr<asio::steady_timer>& connect_timer, const error_code& ec) {
    if (ec) return connect_failed(e, connect_timer, "connect", ec);
    error_code ignored;
    e->conn->socket().set_option(tcp::no_delay(true), ignored);
    if (!e->conn->secure) {
      connect_timer->cancel();
      return write(e);
    }
    handshake(e, connect_timer);
  }

  void handshake(const std::shared_ptr<Exchange>& e,
                 const std::shared_ptr<asio::steady_timer>& connect_timer) {
    SSL* native = e->conn->secure->native_handle();
    error_code addr_ec;
    asio::ip::make_address(e->url.host, addr_ec);  // an IP literal, or a name
    if (addr_ec) {
      SSL_set_tlsext_host_name(native, e->url.host.c_str());  // SNI: names only
      if (options.verify_tls) SSL_set1_host(native, e->url.host.c_str());
    } else if (options.verify_tls) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), e->url.host.c_str());
    }
    e->conn->secure->async_handshake(ssl::stream_base::client,
                                     [this, e, connect_timer](const error_code& ec) {
                                       if (!*e->alive) return;
                                       if (ec) return connect_failed(e, connect_timer, "tls", ec);
                                       connect_timer->cancel();
                                       write(e);
                                     });
  }

  void connect_failed(const std::shared_ptr<Exchange>& e,
                      const std::shared_ptr<asio::steady_timer>& connect_timer, const char* step,
                      const error_code& ec) {
    const bool connect_timed_out = connect_timer->expiry() <= std::chrono::steady_clock::now();
    connect_timer->cancel();
    if (e->timed_out)
      return finish(
          e, false,
          std::string(step) + ": timed out after " + std::to_string(e->timeout.count()) + " ms");
    if (connect_timed_out) {
      e->timed_out = true;
      return finish(e, false,
                    std::string(step) + ": connection timed out after " +
                        std::to_string(e->connect_timeout.count()) + " ms");
    }
    finish(e, false, std::string(step) + ": " + ec.message());
  }

  void write(const std::shared_ptr<Exchange>& e) {
    e->conn->with_stream([&](auto& stream) {
      bhttp::async_write(stream, e->request, [this, e](const error_code& ec, std::size_t) {
        if (!*e->alive) return;
        if (ec) return failed(e, "send", ec);
        e->parser.emplace();
        e->parser->header_limit(kMaxHeaderBytes);
        e->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
        read_header(e);
      });
    });
  }

  void read_header(const std::shared_ptr<Exchange>& e) {
    if (e->request.method() == bhttp::verb::head) e->parser->skip(true);
    e->conn->with_stream([&](auto& stream) {
      bhttp::async_read_header(stream, e->conn->buffer, *e->parser,
                               [this, e](const error_code& ec, std::size_t) {
                                 if (!*e->alive) return;
                                 if (ec) return failed(e, "receive", ec);
                                 const unsigned status = e->parser->get().result_int();
                                 if (status >= 100 && status < 200 &&
                                     status != 101) {  // interim: the real answer follows
                                   e->parser.emplace();
                                   e->parser->header_limit(kMaxHeaderBytes);
                                   e->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
                                   return read_header(e);
                                 }
                                 read_body(e);
                               });
    });
  }

  void read_body(const std::shared_ptr<Exchange>& e) {
    e->conn->with_stream([&](auto& stream) {
      bhttp::async_read(stream, e->conn->buffer, *e->parser,
                        [this, e](const error_code& ec, std::size_t) {
                          if (!*e->alive) return;
                          if (ec) return failed(e, "receive", ec);
                          finish(e, true, {});
                        });
    });
  }

  // A send or receive failed. A kept-alive connection the server closed
  // while it idled fails before any byte of an answer: the request goes
  // again, once, on a new connection (as curl does). Anything else is the
  // request's answer.
  void failed(const std::shared_ptr<Exchange>& e, const char* step, const error_code& ec) {
    const bool nothing_received =
        !e->parser || (!e->parser->got_some() && e->conn->buffer.size() == 0);
    if (e->conn->used && nothing_received && !e->timed_out && !e->retried) {
      e->retried = true;
      e->conn->close();
      e->conn.reset();
      connect(e);  // the pool's count already holds this connection's place
      return;
    }
    if (e->timed_out)
      return finish(
          e, false,
          std::string(step) + ": timed out after " + std::to_string(e->timeout.count()) + " ms");
    finish(e, false, std::string(step) + ": " + ec.message());
  }

  void finish(const std::shared_ptr<Exchange>& e, bool answered, std::string error) {
    if (e->finished) return;
    e->finished = true;
    e->timer.cancel();
    OutboundResponse response;
    bool reusable = false;
    if (answered) {
      auto message = e->parser->release();
      response.status = static_cast<int>(message.result_int());
      for (const auto& field : message)
        response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      response.body = std::move(message.body());
      reusable = message.keep_alive() && e->request.keep_alive();
    } else {
      response.error = std::move(error);
      response.timed_out = e->timed_out;
    }
    Pool& pool = pools[e->pool_key];
    if (e->conn) {
      if (reusable) {
        e->conn->used = true;
        pool.idle.push_back(std::move(e->conn));
      } else {
        e->conn->close();
        e->conn.reset();
        --pool.open;
      }
      wake(pool);
    }
    complete(e, std::move(response));
  }

  void complete(const std::shared_ptr<Exchange>& e, OutboundResponse response) {
    auto done = std::move(e->done);
    --in_flight;
    done(std::move(response));
  }

  // Errors found before any I/O are still answered later, never from inside send().
  void fail_later(const std::shared_ptr<Exchange>& e, std::string error) {
    e->finished = true;
    asio::post(io, [this, e, error = std::move(error)]() mutable {
      if (!*e->alive) return;
      OutboundResponse response;
      response.error = std::move(error);
      complete(e, std::move(response));
    });
  }

  asio::io_context& io;
  HttpClientOptions options;
  CurlHttpClient smtp;  // SMTP requests: curl speaks it, this client does not
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::unordered_map<std::string, Pool> pools;
  std::map<std::string, std::unique_ptr<ssl::context>> tls_contexts;
  std::vector<std::weak_ptr<Exchange>> active;  // for the destructor: what to abort
  std::size_t in_flight = 0;
};

BeastHttpClient::BeastHttpClient(asio::io_context& io, HttpClientOptions options)
    : impl_(std::make_unique<Impl>(io, options)) {}

BeastHttpClient::~BeastHttpClient() = default;

void BeastHttpClient::send(OutboundRequest request, ResponseCallback done) {
  if (request.smtp) return impl_->smtp.send(std::move(request), std::move(done));
  impl_->send(std::move(request), std::move(done));
}

std::size_t BeastHttpClient::in_flight() const {
  return impl_->in_flight + impl_->smtp.in_flight();
}

}  // namespace tocsin::delivery
