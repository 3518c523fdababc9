// One accepted HTTP/1.1 connection (Session, declared in server_internal.h):
// reads a request under the first-byte, header and body deadlines, hands it
// to the handler, writes the answer, then keeps the connection alive or
// closes it gently (shutdown, a bounded drain, close).
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>
#include <ctime>

#include "http/problem_response.h"
#include "http/server_internal.h"

namespace tocsin::http::detail {

namespace {

// Closing a socket with unread input makes the kernel send RST, which can
// destroy a 413/503 the client has not read yet; so shut down our side and
// drain for a bounded while before closing.
constexpr std::chrono::milliseconds kLinger{1000};
constexpr std::size_t kReadChunk = 4096;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// RFC 9110 IMF-fixdate, spelled out by hand so the process locale cannot change it.
std::string http_date() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(a, b);
}

// A handler bug must not become header injection on the wire.
bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == ':') return false;
  }
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool has_close_token(std::string_view value) {
  for (auto part : bhttp::token_list{value}) {
    if (iequals(part, "close")) return true;
  }
  return false;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace

void fail(beast::error_code ec, const char* what) {
  if (ec == net::error::operation_aborted || ec == net::error::eof ||
      ec == bhttp::error::end_of_stream) {
    return;
  }
  spdlog::debug("http server: {}: {}", what, ec.message());
}

Session::Session(tcp::socket socket, std::shared_ptr<ServerState> server, std::uint64_t id,
        std::string address)
    : stream_(std::move(socket)),
      server_(std::move(server)),
      id_(id),
      address_(std::move(address)),
      accepted_at_(std::chrono::steady_clock::now()) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  remote_ = ec ? "-" : endpoint_string(ep);
}

Session::~Session() {
  if (state_ == State::kHandling) {
    spdlog::debug("http server: {} {}: handler dropped the responder", method_, path_);
  }
  if (evictable_key_) server_->remove_evictable(*evictable_key_);
  server_->forget(id_, address_);
}

void Session::start() { wait_for_request(/*fresh=*/true); }

void Session::reject(Response r) {
  write(std::move(r), /*keep_alive=*/false);
  set_evictable(true);
}

void Session::on_stop() {
  stopping_ = true;
  if (state_ != State::kIdle) return;
  beast::error_code ec;
  if (stream_.socket().available(ec) == 0 || ec) close();
}

void Session::evict() {
  evictable_key_.reset();
  close();
}

void Session::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  set_evictable(false);
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  server_->forget(id_, address_);
}

void Session::set_evictable(bool on) {
  if (on && !trusted_ && !evictable_key_) {
    evictable_key_ = server_->add_evictable(weak_from_this());
  } else if (!on && evictable_key_) {
    server_->remove_evictable(*evictable_key_);
    evictable_key_.reset();
  }
}

const ServerOptions& Session::options() const { return server_->options(); }

void Session::refused(int status) const {
  if (options().on_refused) options().on_refused(status);
}

void Session::wait_for_request(bool fresh) {
  if (stopping_) return linger_close();
  state_ = State::kIdle;
  set_evictable(true);
  method_.clear();
  path_.clear();
  version_ = 11;
  parser_.emplace();
  parser_->header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(options().max_header_bytes, UINT32_MAX)));
  parser_->body_limit(options().max_body_bytes);
  if (buffer_.size() > 0) {  // the client sent its next request early
    stream_.expires_after(options().header_timeout);
    return read_header();
  }
  stream_.expires_after(fresh ? std::min(options().first_byte_timeout, options().header_timeout)
                              : options().idle_timeout);
  stream_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this(), fresh](
                                                           beast::error_code ec, std::size_t n) {
    self->on_first_bytes(ec, n, fresh);
  });
}

void Session::on_first_bytes(beast::error_code ec, std::size_t n, bool fresh) {
  if (state_ == State::kClosed) return;
  if (ec) {
    if (fresh && ec == beast::error::timeout) server_->event(ConnectionEvent::kDeadline);
    fail(ec, "wait");
    return close();
  }
  buffer_.commit(n);
  if (fresh) {
    stream_.expires_at(accepted_at_ + options().header_timeout);
  } else {
    stream_.expires_after(options().header_timeout);
  }
  read_header();
}

void Session::read_header() {
  state_ = State::kReading;
  bhttp::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

void Session::on_header(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec == beast::error::timeout) server_->event(ConnectionEvent::kDeadline);
  if (ec) return on_read_error(ec, "read header");
  const auto& req = parser_->get();
  method_ = std::string(req.method_string());
  path_ = std::string(path_of(req.target()));
  version_ = req.version();
  // The parser has already refused a declared length over the limit, so
  // a 100 here never invites a body we would reject.
  if (!parser_->is_done() && version_ >= 11 &&
      iequals(req[bhttp::field::expect], "100-continue")) {
    stream_.expires_after(options().write_timeout);
    net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code wec, std::size_t) {
                       if (self->state_ == State::kClosed) return;
                       if (wec) {
                         fail(wec, "write 100-continue");
                         return self->close();
                       }
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void Session::read_body() {
  if (parser_->is_done()) return dispatch();
  stream_.expires_after(options().body_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (self->state_ == State::kClosed) return;
                      if (ec) return self->on_read_error(ec, "read body");
                      self->dispatch();
                    });
}

void Session::on_read_error(beast::error_code ec, const char* what) {
  if (ec == bhttp::error::body_limit) {
    refused(413);
    return write(to_response(Problem{
                     .status = 413,
                     .type = "too-large",
                     .title = "Request body too large",
                     .detail = fmt::format("The request body exceeds the limit of {} bytes",
                                           options().max_body_bytes)}),
                 false);
  }
  if (ec == bhttp::error::header_limit) {
    refused(431);
    return write(to_response(Problem{.status = 431,
                                     .type = "header-too-large",
                                     .title = "Request header fields too large",
                                     .detail = fmt::format(
                                         "The request header block exceeds the limit of {} bytes",
                                         options().max_header_bytes)}),
                 false);
  }
  // Every other error of Beast's HTTP category, apart from the peer going
  // away, means the bytes were not HTTP.
  const bool parse_error =
      ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
  if (parse_error) {
    refused(400);
    method_.clear();
    path_.clear();
    return write(to_response(bad_request("The request is not valid HTTP/1.1")), false);
  }
  fail(ec, what);
  close();
}

void Session::dispatch() {
  auto msg = parser_->release();
  parser_.reset();
  state_ = State::kHandling;
  set_evictable(false);
  keep_alive_ = msg.keep_alive();
  const Handler* handler = server_->handler();
  if (handler == nullptr) return close();

  Request request;
  request.method = method_;
  request.target = std::string(msg.target());
  for (const auto& field : msg) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(msg.body());
  request.remote = remote_;

  const std::uint64_t generation = ++generation_;
  // Strong, not weak: while the handler works no I/O is pending, so the
  // Responder is what keeps this connection alive. It is a no-op once the
  // connection has closed or answered.
  Responder responder = [self = shared_from_this(), generation](Response r) {
    self->respond(generation, std::move(r));
  };
  try {
    (*handler)(std::move(request), std::move(responder));
  } catch (...) {
    // Exception text may quote the body; keep it out of the log.
    spdlog::error("http server: handler threw on {} {}", method_, path_);
    respond(generation,
            to_response(Problem{.status = 500,
                                .type = "internal",
                                .title = "Internal error",
                                .detail = "The server failed to handle the request"}));
  }
}

void Session::respond(std::uint64_t generation, Response r) {
  if (state_ != State::kHandling || generation != generation_) return;
  if (r.trusted) trusted_ = true;
  write(std::move(r), keep_alive_ && !stopping_);
}

void Session::write(Response r, bool keep_alive) {
  if (r.status < 200 || r.status > 999) {
    spdlog::error("http server: {} {}: handler gave invalid status {}", method_, path_, r.status);
    r = to_response(Problem{.status = 500,
                            .type = "internal",
                            .title = "Internal error",
                            .detail = "The server produced an invalid response"});
  }
  res_ = {};
  res_.version(version_ == 10 ? 10 : 11);
  res_.result(static_cast<unsigned>(r.status));
  for (auto& [name, value] : r.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
        iequals(name, "Date") || iequals(name, "Server")) {
      continue;
    }
    if (iequals(name, "Connection")) {
      if (has_close_token(value)) keep_alive = false;
      continue;
    }
    if (!valid_header(name, value)) {
      spdlog::error("http server: {} {}: dropped invalid response header {}", method_, path_,
                    valid_header(name, "") ? name : "(unprintable)");
      continue;
    }
    res_.insert(name, value);
  }
  res_.set(bhttp::field::server, "tocsin");
  res_.set(bhttp::field::date, http_date());
  // 204 and 304 carry no body and (204) must not carry Content-Length; a
  // HEAD response announces the length it would have had.
  if (r.status != 204 && r.status != 304) res_.content_length(r.body.size());
  if (r.status != 204 && r.status != 304 && method_ != "HEAD") res_.body() = std::move(r.body);
  res_.keep_alive(keep_alive);
  close_after_write_ = !keep_alive;

  if (!method_.empty()) spdlog::debug("http: {} {} {}", method_, path_, r.status);
  state_ = State::kWriting;
  stream_.expires_after(options().write_timeout);
  bhttp::async_write(
      stream_, res_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
}

void Session::on_write(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    fail(ec, "write");
    return close();
  }
  if (close_after_write_ || stopping_) return linger_close();
  wait_for_request(/*fresh=*/false);
}

void Session::linger_close() {
  state_ = State::kClosing;
  set_evictable(true);  // answered: the drain is not worth a slot
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  stream_.expires_after(kLinger);
  drain();
}

void Session::drain() {
  buffer_.clear();
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (self->state_ == State::kClosed) return;
                            if (ec) return self->close();
                            self->drain();
                          });
}

}  // namespace tocsin::http::detail
