#include "delivery/http_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tocsin::delivery {
namespace {

namespace asio = boost::asio;

// Gateways answer with small JSON; anything bigger is not worth holding.
constexpr std::size_t kMaxBodyBytes = std::size_t{1} << 20;

struct EasyDeleter {
  void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct MultiDeleter {
  void operator()(CURLM* multi) const noexcept { curl_multi_cleanup(multi); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init is not reentrant and must run before any other curl call;
// a function-local static makes it happen once, thread-safely, without asking
// main() to remember. No curl_global_cleanup: the process exit does that job.
void ensure_curl_global_init() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init: ") + curl_easy_strerror(rc));
  }
}

// scheme://host[:port]/path for logs: query strings carry phone numbers and
// tokens, user-info carries credentials.
std::string loggable_url(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const auto scheme_end = url.find("://");
  const std::size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const auto path = url.find('/', authority);
  const auto at = url.substr(0, path).rfind('@');
  if (at == std::string_view::npos || at < authority) return std::string(url);
  return std::string(url.substr(0, authority)).append(url.substr(at + 1));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// One request from send() until its completion is posted. Owned by the
// transfers_ map; curl holds a raw pointer to it as CURLOPT_PRIVATE and as the
// header/write callback data, valid while the easy handle is in the multi.
struct Transfer {
  EasyPtr easy;
  SlistPtr header_list;
  SlistPtr rcpt_list;        // SMTP: CURLOPT_MAIL_RCPT
  std::string body;          // CURLOPT_POSTFIELDS points into this; it never moves
  std::size_t uploaded = 0;  // SMTP: bytes of `body` handed to curl so far
  bool smtp = false;
  std::string method;
  std::string log_url;
  ResponseCallback done;
  OutboundResponse response;
  bool body_truncated = false;
};

size_t on_header(char* data, size_t size, size_t count, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t total = size * count;
  const std::string_view line = trim(std::string_view(data, total));
  if (line.starts_with("HTTP/")) {
    // A new status line: an interim 1xx response came before; keep only the
    // final response's headers.
    t->response.headers.clear();
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
    t->response.headers.emplace_back(std::string(line.substr(0, colon)),
                                     std::string(trim(line.substr(colon + 1))));
  }
  return total;
}

size_t on_body(char* data, size_t size, size_t count, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t total = size * count;
  const size_t room = kMaxBodyBytes - t->response.body.size();
  if (total > room) t->body_truncated = true;
  t->response.body.append(data, std::min(total, room));
  // Claim the whole chunk: dropping the excess must not fail the transfer.
  return total;
}

// SMTP uploads the message through a read callback (curl has no
// "postfields" for SMTP).
size_t on_upload(char* buffer, size_t size, size_t count, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t n = std::min(size * count, t->body.size() - t->uploaded);
  std::copy_n(t->body.data() + t->uploaded, n, buffer);
  t->uploaded += n;
  return n;
}

// An envelope address must not carry CR/LF (command injection) or brackets.
bool valid_envelope_address(std::string_view address) {
  return !address.empty() &&
         address.find_first_of(std::string_view("\r\n\0<>", 5)) == std::string_view::npos;
}

// Readiness watch on one of curl's sockets. Shared between the socket map and
// the pending async_wait handlers, so a handler that completes after curl
// removed the socket (or after the client died) finds `alive` false and stops
// there, before touching the client.
struct SocketWatch {
  SocketWatch(asio::io_context& io, curl_socket_t s) : fd(s), descriptor(io) {}
  ~SocketWatch() {
    // The fd is curl's: never let the descriptor close it.
    if (descriptor.is_open()) descriptor.release();
  }
  SocketWatch(const SocketWatch&) = delete;
  SocketWatch& operator=(const SocketWatch&) = delete;

  curl_socket_t fd;
  asio::posix::stream_descriptor descriptor;
  int wanted = 0;  // CURL_POLL_IN / CURL_POLL_OUT bits, as curl last asked
  bool read_pending = false;
  bool write_pending = false;
  bool alive = true;
};

}  // namespace

bool valid_request_header(const std::pair<std::string, std::string>& header) {
  const auto& [name, value] = header;
  // CR/LF/NUL would let a value smuggle extra headers; ':' or blanks in a name likewise.
  constexpr std::string_view kBadInName(":\r\n\0 \t", 6);
  constexpr std::string_view kBadInValue("\r\n\0", 3);
  return !name.empty() && name.find_first_of(kBadInName) == std::string::npos &&
         value.find_first_of(kBadInValue) == std::string::npos;
}

struct CurlHttpClient::Impl {
  Impl(asio::io_context& io_context, const HttpClientOptions& opts)
      : io(io_context), timer(io_context) {
    ensure_curl_global_init();
    multi.reset(curl_multi_init());
    if (!multi) throw std::runtime_error("curl_multi_init failed");
    CURLM* m = multi.get();
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &Impl::socket_callback);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &Impl::timer_callback);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
    // Transfers beyond the limit wait inside curl for a free connection, so a
    // burst reuses a few keep-alive connections instead of opening many.
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, opts.max_host_connections);
    options = opts;
  }

  ~Impl() {
    // Every posted completion and timer handler checks this before touching us.
    *alive = false;
    for (auto& [easy, transfer] : transfers) curl_multi_remove_handle(multi.get(), easy);
    transfers.clear();
    // Release our descriptors while the fds are still open (curl closes them
    // in curl_multi_cleanup); this also aborts the pending waits, whose
    // handlers see alive == false.
    while (!sockets.empty()) retire(sockets.begin()->first);
    closing = true;
    multi.reset();
    timer.cancel();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void send(OutboundRequest request, ResponseCallback done) {
    ++in_flight;
    auto t = std::make_unique<Transfer>();
    t->done = std::move(done);
    t->method = request.smtp ? "SMTP" : request.method;
    t->log_url = loggable_url(request.url);
    if (std::string error = configure(*t, std::move(request)); !error.empty()) {
      fail_later(std::move(t), std::move(error));
      return;
    }
    CURL* easy = t->easy.get();
    auto [it, inserted] = transfers.emplace(easy, std::move(t));
    // No socket_action here: add_handle asks for a 0 ms timeout through the
    // timer callback, and the transfer starts from the io_context.
    if (const CURLMcode mc = curl_multi_add_handle(multi.get(), easy); mc != CURLM_OK) {
      auto failed = std::move(it->second);
      transfers.erase(it);
      fail_later(std::move(failed), curl_multi_strerror(mc));
    }
  }

  // Fills t.easy from `request`; returns "" or why the request cannot be sent.
  // Options every transfer (HTTP or SMTP) sets the same way.
  CURLcode set_common_options(CURL* e, const OutboundRequest& request) const {
    CURLcode rc = CURLE_OK;
    auto check = [&rc](CURLcode c) {
      if (rc == CURLE_OK) rc = c;
    };
    // No SIGALRM-based DNS timeouts: we share a process with other threads.
    check(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
    check(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
    check(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                           static_cast<long>(std::max<std::int64_t>(1, request.timeout.count()))));
    check(curl_easy_setopt(
        e, CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(std::max<std::int64_t>(1, request.connect_timeout.count()))));
    if (!request.ca_file.empty()) check(curl_easy_setopt(e, CURLOPT_CAINFO, request.ca_file.c_str()));
    if (!options.verify_tls) {
      check(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L));
      check(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L));
    }
    return rc;
  }

  std::string configure(Transfer& t, OutboundRequest request) {
    if (idle_easy.empty()) {
      t.easy.reset(curl_easy_init());
    } else {
      t.easy = std::move(idle_easy.back());
      idle_easy.pop_back();
    }
    if (!t.easy) return "curl_easy_init failed";
    if (request.smtp) return configure_smtp(t, std::move(request));
    CURL* e = t.easy.get();

    bool has_expect = false;
    curl_slist* list = nullptr;
    for (const auto& header : request.headers) {
      if (!valid_request_header(header)) return "invalid request header";
      has_expect = has_expect || iequals(header.first, "Expect");
      // "Name;" is curl's spelling of a header with an empty value.
      std::string line =
          header.second.empty() ? header.first + ";" : header.first + ": " + header.second;
      curl_slist* next = curl_slist_append(list, line.c_str());
      if (!next) {
        curl_slist_free_all(list);
        return "out of memory";
      }
      list = next;
    }
    // curl would otherwise wait up to a second for "100 Continue" on large
    // bodies; gateways answer directly.
    if (!has_expect) {
      curl_slist* next = curl_slist_append(list, "Expect:");
      if (!next) {
        curl_slist_free_all(list);
        return "out of memory";
      }
      list = next;
    }
    t.header_list.reset(list);

    CURLcode rc = CURLE_OK;
    auto check = [&rc](CURLcode c) {
      if (rc == CURLE_OK) rc = c;
    };
    check(curl_easy_setopt(e, CURLOPT_URL, request.url.c_str()));
    check(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
    check(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list.get()));
    check(curl_easy_setopt(e, CURLOPT_USERAGENT, "tocsin/" TOCSIN_VERSION));
    check(curl_easy_setopt(e, CURLOPT_PRIVATE, &t));
    check(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header));
    check(curl_easy_setopt(e, CURLOPT_HEADERDATA, &t));
    check(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body));
    check(curl_easy_setopt(e, CURLOPT_WRITEDATA, &t));
    check(set_common_options(e, request));
    if (!request.basic_auth.empty()) {
      // Split at the first ':' ourselves so a ':' in the password survives.
      const auto colon = request.basic_auth.find(':');
      const std::string user = request.basic_auth.substr(0, colon);
      const std::string password =
          colon == std::string::npos ? std::string() : request.basic_auth.substr(colon + 1);
      check(curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)));
      check(curl_easy_setopt(e, CURLOPT_USERNAME, user.c_str()));
      check(curl_easy_setopt(e, CURLOPT_PASSWORD, password.c_str()));
    }

    const std::string& method = request.method;
    t.body = std::move(request.body);
    const bool sends_body =
        !t.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    if (sends_body) {
      // Not COPYPOSTFIELDS: the Transfer keeps the body alive, saving a copy.
      // curl adds a form Content-Type when the caller gave none.
      check(
          curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size())));
      check(curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body.data()));
      if (method != "POST") check(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str()));
    } else if (method == "HEAD") {
      check(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
    } else if (method == "GET") {
      check(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
    } else {
      check(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str()));
    }
    return rc == CURLE_OK ? std::string() : std::string(curl_easy_strerror(rc));
  }

  // An SMTP transaction: MAIL FROM, RCPT TO each, DATA with `body`.
  std::string configure_smtp(Transfer& t, OutboundRequest request) {
    CURL* e = t.easy.get();
    t.smtp = true;
    const SmtpEnvelope& envelope = *request.smtp;
    if (!valid_envelope_address(envelope.mail_from) || envelope.rcpt.empty()) {
      return "invalid smtp envelope";
    }
    curl_slist* list = nullptr;
    for (const auto& rcpt : envelope.rcpt) {
      if (!valid_envelope_address(rcpt)) {
        curl_slist_free_all(list);
        return "invalid smtp envelope";
      }
      curl_slist* next = curl_slist_append(list, ("<" + rcpt + ">").c_str());
      if (!next) {
        curl_slist_free_all(list);
        return "out of memory";
      }
      list = next;
    }
    t.rcpt_list.reset(list);
    const std::string mail_from = "<" + envelope.mail_from + ">";
    t.body = std::move(request.body);

    CURLcode rc = CURLE_OK;
    auto check = [&rc](CURLcode c) {
      if (rc == CURLE_OK) rc = c;
    };
    check(curl_easy_setopt(e, CURLOPT_URL, request.url.c_str()));
    check(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps"));
    check(curl_easy_setopt(e, CURLOPT_PRIVATE, &t));
    check(set_common_options(e, request));
    if (envelope.require_tls) {
      check(curl_easy_setopt(e, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL)));
    }
    if (!request.basic_auth.empty()) {
      const auto colon = request.basic_auth.find(':');
      const std::string user = request.basic_auth.substr(0, colon);
      const std::string password =
          colon == std::string::npos ? std::string() : request.basic_auth.substr(colon + 1);
      check(curl_easy_setopt(e, CURLOPT_USERNAME, user.c_str()));
      check(curl_easy_setopt(e, CURLOPT_PASSWORD, password.c_str()));
    }
    check(curl_easy_setopt(e, CURLOPT_MAIL_FROM, mail_from.c_str()));
    check(curl_easy_setopt(e, CURLOPT_MAIL_RCPT, t.rcpt_list.get()));
    check(curl_easy_setopt(e, CURLOPT_UPLOAD, 1L));
    check(curl_easy_setopt(e, CURLOPT_READFUNCTION, &on_upload));
    check(curl_easy_setopt(e, CURLOPT_READDATA, &t));
    check(curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.body.size())));
    // curl says QUIT, and waits for its answer in a blocking read on this
    // thread, when it closes a live SMTP connection (cache eviction, client
    // destruction). That wait is bounded by the reply timeout only, which
    // defaults to 120 s: make it the request's timeout, which bounds every
    // other reply wait anyway.
    check(curl_easy_setopt(
        e, CURLOPT_SERVER_RESPONSE_TIMEOUT,
        static_cast<long>(std::max<std::int64_t>(1, (request.timeout.count() + 999) / 1000))));
    return rc == CURLE_OK ? std::string() : std::string(curl_easy_strerror(rc));
  }

  // --- curl -> Asio wiring ---------------------------------------------------

  static int socket_callback(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
    return static_cast<Impl*>(userp)->on_socket(fd, what, static_cast<SocketWatch*>(socketp));
  }

  static int timer_callback(CURLM*, long timeout_ms, void* userp) {
    static_cast<Impl*>(userp)->on_timer(timeout_ms);
    return 0;
  }

  int on_socket(curl_socket_t fd, int what, SocketWatch* known) {
    if (closing) return 0;
    if (what == CURL_POLL_REMOVE) {
      retire(fd);
      return 0;
    }
    auto it = sockets.find(fd);
    if (it != sockets.end() && it->second.get() != known) {
      // curl does not know this fd yet, so ours is a stale watch on an fd
      // number the kernel has handed out again. Drop it before re-registering.
      retire(fd);
      it = sockets.end();
    }
    if (it == sockets.end()) {
      auto watch = std::make_shared<SocketWatch>(io, fd);
      boost::system::error_code ec;
      watch->descriptor.assign(fd, ec);
      if (ec) {
        spdlog::debug("http client: cannot watch socket: {}", ec.message());
        return -1;
      }
      it = sockets.emplace(fd, std::move(watch)).first;
      curl_multi_assign(multi.get(), fd, it->second.get());
    }
    it->second->wanted = what & (CURL_POLL_IN | CURL_POLL_OUT);
    arm(it->second);
    return 0;
  }

  // Stops watching `fd` without closing it (curl closes its own sockets).
  void retire(curl_socket_t fd) {
    auto node = sockets.extract(fd);
    if (node.empty()) return;
    SocketWatch& watch = *node.mapped();
    watch.alive = false;
    watch.wanted = 0;
    // Deregisters from epoll and completes pending waits with
    // operation_aborted; their handlers hold the watch, not us.
    watch.descriptor.release();
  }

  // Starts a wait for each direction curl wants that has none pending. A
  // wait for a direction curl no longer wants is left to complete and is
  // then ignored: cancelling would abort both directions.
  void arm(const std::shared_ptr<SocketWatch>& watch) {
    if ((watch->wanted & CURL_POLL_IN) && !watch->read_pending) wait(watch, true);
    if ((watch->wanted & CURL_POLL_OUT) && !watch->write_pending) wait(watch, false);
  }

  void wait(const std::shared_ptr<SocketWatch>& watch, bool read) {
    (read ? watch->read_pending : watch->write_pending) = true;
    watch->descriptor.async_wait(
        read ? asio::posix::stream_descriptor::wait_read
             : asio::posix::stream_descriptor::wait_write,
        [this, watch, read](const boost::system::error_code& ec) {
          (read ? watch->read_pending : watch->write_pending) = false;
          if (!watch->alive) return;  // removed, or the client is gone: `this` may dangle
          if (!ec && !(watch->wanted & (read ? CURL_POLL_IN : CURL_POLL_OUT))) return;
          act(watch->fd, ec ? CURL_CSELECT_ERR : (read ? CURL_CSELECT_IN : CURL_CSELECT_OUT));
          // After an error, wait for curl to say what it wants next rather
          // than spin on a broken descriptor.
          if (!ec && watch->alive) arm(watch);
        });
  }

  void on_timer(long timeout_ms) {
    if (closing) return;
    // A generation, because a timer that already fired cannot be cancelled:
    // its queued handler must not act on a deadline curl has since replaced.
    const std::uint64_t generation = ++timer_generation;
    if (timeout_ms < 0) {
      timer.cancel();
      return;
    }
    // curl forbids calling socket_action from inside its callback; even a
    // 0 ms timeout goes through the io_context. "Now" (every new transfer
    // asks for it) is a post, not the timer: re-arming the io_context's
    // timerfd for each was the largest cost of a fan-out's io thread. The
    // armed timer, if any, stays: its generation is stale, so it does nothing.
    if (timeout_ms == 0) {
      asio::post(io, [this, token = alive, generation] {
        if (!*token || generation != timer_generation) return;
        act(CURL_SOCKET_TIMEOUT, 0);
      });
      return;
    }
    timer.expires_after(std::chrono::milliseconds(timeout_ms));
    timer.async_wait([this, token = alive, generation](const boost::system::error_code& ec) {
      if (!*token || ec || generation != timer_generation) return;
      act(CURL_SOCKET_TIMEOUT, 0);
    });
  }

  void act(curl_socket_t fd, int events) {
    int running = 0;
    if (const CURLMcode mc = curl_multi_socket_action(multi.get(), fd, events, &running);
        mc != CURLM_OK) {
      spdlog::debug("http client: curl_multi_socket_action: {}", curl_multi_strerror(mc));
    }
    collect_finished();
  }

  void collect_finished() {
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      // msg dies with the handle's removal: copy what we need first.
      CURL* easy = msg->easy_handle;
      const CURLcode result = msg->data.result;
      auto node = transfers.extract(easy);
      curl_multi_remove_handle(multi.get(), easy);
      if (!node.empty()) finish(std::move(node.mapped()), result);
    }
  }

  // --- completion --------------------------------------------------------------

  void finish(std::unique_ptr<Transfer> t, CURLcode result) {
    OutboundResponse& response = t->response;
    curl_off_t micros = 0;
    curl_easy_getinfo(t->easy.get(), CURLINFO_TOTAL_TIME_T, &micros);
    if (result == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &status);
      response.status = static_cast<int>(status);
      spdlog::debug("http {} {} -> {} in {} ms{}", t->method, t->log_url, response.status,
                    micros / 1000, t->body_truncated ? " (body truncated)" : "");
    } else if (long code = 0;
               t->smtp &&
               curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
               code >= 400) {
      // The server refused the transaction (at MAIL, RCPT, DATA or after the
      // data): its reply code is the answer, and says whether to retry.
      response = OutboundResponse{};
      response.status = static_cast<int>(code);
      response.error = curl_easy_strerror(result);
      spdlog::debug("smtp {} -> {} in {} ms", t->log_url, response.status, micros / 1000);
    } else {
      // A partial response is no response: callers see status 0 only.
      response = OutboundResponse{};
      response.error = curl_easy_strerror(result);
      response.timed_out = result == CURLE_OPERATION_TIMEDOUT;
      spdlog::debug("http {} {} failed after {} ms: {}", t->method, t->log_url, micros / 1000,
                    response.error);
    }
    deliver(std::move(t->done), std::move(response));
    recycle(std::move(t->easy));
  }

  // A finished handle is reset (every option back to its default; curl keeps
  // its caches) and kept for the next request: curl_easy_init and cleanup
  // were a tenth of a fan-out's instructions per message.
  void recycle(EasyPtr easy) {
    if (!easy || idle_easy.size() >= kMaxIdleEasy) return;
    curl_easy_reset(easy.get());
    idle_easy.push_back(std::move(easy));
  }

  void fail_later(std::unique_ptr<Transfer> t, std::string error) {
    spdlog::debug("http {} {} not sent: {}", t->method, t->log_url, error);
    OutboundResponse response;
    response.error = std::move(error);
    deliver(std::move(t->done), std::move(response));
  }

  // Posted, so that `done` never runs inside send() or inside curl, and may
  // itself call send() or destroy the client.
  void deliver(ResponseCallback done, OutboundResponse response) {
    asio::post(io, [this, token = alive, done = std::move(done),
                    response = std::move(response)]() mutable {
      if (!*token) return;
      --in_flight;
      if (done) done(std::move(response));
    });
  }

  asio::io_context& io;
  HttpClientOptions options;
  asio::steady_timer timer;  // curl's single timeout
  std::uint64_t timer_generation = 0;
  // False once the client is destroyed; shared with every handler we post.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool closing = false;  // set in the destructor: ignore curl's last callbacks
  std::size_t in_flight = 0;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers;
  static constexpr std::size_t kMaxIdleEasy = 256;
  std::vector<EasyPtr> idle_easy;
  std::unordered_map<curl_socket_t, std::shared_ptr<SocketWatch>> sockets;
  MultiPtr multi;  // declared last: its cleanup may call back into the members above
};

CurlHttpClient::CurlHttpClient(asio::io_context& io, HttpClientOptions options)
    : impl_(std::make_unique<Impl>(io, options)) {}

CurlHttpClient::~CurlHttpClient() = default;

void CurlHttpClient::send(OutboundRequest request, ResponseCallback done) {
  impl_->send(std::move(request), std::move(done));
}

std::size_t CurlHttpClient::in_flight() const {
  return impl_->in_flight;
}

}  // namespace tocsin::delivery
