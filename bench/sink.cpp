// tocsin-sink: a fast loopback HTTP/1.1 sink for benchmarks. It accepts what
// tocsin's gateways and Alertmanager's webhook receiver send, answers at once,
// and counts messages:
//
//   POST /2010-04-01/Accounts/{sid}/Messages.json  Twilio: 201 {"sid":...}, 1 message
//   POST /v3/mail/send                             SendGrid: 202, 1 message per personalization
//   POST /am (any POST path starting /am)          Alertmanager webhook: 200, 1 per alert
//   GET  /stats   {"messages","requests","first_ns","last_ns","bad"}
//   GET  /tags    {"<tag>":first_ns,...}: first receive time of every "bseq<digits>"
//                 marker seen in a message body (the loadgen puts one in each report)
//   POST /reset   forgets counts and tags
//
// Times are CLOCK_MONOTONIC nanoseconds (steady_clock), the loadgen's clock too:
// both run on the same machine, so they compare directly.
//
// The HTTP parser is deliberately minimal (Content-Length bodies, keep-alive,
// Expect: 100-continue): it only has to read what curl and Go's net/http send,
// and it must not be the bottleneck. Not for untrusted networks: loopback only.
//
// Threads: --threads N runs one io_context on N threads. Each connection has a
// single chain of operations, so its state needs no strand; counters are
// atomics and the tag map has its own mutex.
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Stats {
  std::atomic<int64_t> messages{0};
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> bad{0};  // requests we could not count (unparsable bodies)
  std::atomic<int64_t> first_ns{0};
  std::atomic<int64_t> last_ns{0};
  std::mutex tags_mutex;
  std::unordered_map<uint64_t, int64_t> tags;  // guarded by tags_mutex

  void record(int64_t n, int64_t t) {
    if (n <= 0) return;
    int64_t zero = 0;
    first_ns.compare_exchange_strong(zero, t);
    int64_t prev = last_ns.load();
    while (prev < t && !last_ns.compare_exchange_weak(prev, t)) {
    }
    messages += n;
  }

  void reset() {
    messages = 0;
    requests = 0;
    bad = 0;
    first_ns = 0;
    last_ns = 0;
    std::lock_guard lock(tags_mutex);
    tags.clear();
  }
};

// Every distinct "bseq<digits>" marker in `body`, recorded at `t` unless seen before.
void record_tags(Stats& stats, std::string_view body, int64_t t) {
  std::vector<uint64_t> found;
  for (std::size_t pos = body.find("bseq"); pos != std::string_view::npos; pos = body.find("bseq", pos)) {
    pos += 4;
    uint64_t v = 0;
    std::size_t digits = 0;
    while (pos < body.size() && body[pos] >= '0' && body[pos] <= '9' && digits < 18) {
      v = v * 10 + static_cast<uint64_t>(body[pos] - '0');
      ++pos;
      ++digits;
    }
    if (digits > 0 && (found.empty() || found.back() != v)) found.push_back(v);
  }
  if (found.empty()) return;
  std::lock_guard lock(stats.tags_mutex);
  for (uint64_t v : found) stats.tags.emplace(v, t);
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char a = line[i], b = name[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// Counts the messages in one accepted request; -1 when the body does not parse.
int64_t count_messages(std::string_view path, std::string_view body) {
  if (path.rfind("/2010-04-01/Accounts/", 0) == 0) return 1;
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded()) return -1;
  if (path == "/v3/mail/send") {
    auto it = doc.find("personalizations");
    if (it == doc.end() || !it->is_array()) return -1;
    int64_t n = 0;
    for (auto& p : *it) {
      auto to = p.find("to");
      n += (to != p.end() && to->is_array()) ? static_cast<int64_t>(to->size()) : 0;
    }
    return n;
  }
  auto it = doc.find("alerts");
  if (it == doc.end() || !it->is_array()) return -1;
  return static_cast<int64_t>(it->size());
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Stats& stats) : socket_(std::move(socket)), stats_(stats) {
    socket_.set_option(tcp::no_delay(true));
    buf_.reserve(64 * 1024);
  }
  void start() { read_more(); }

 private:
  void read_more() {
    if (buf_.size() > (64u << 20)) return;  // a runaway request: drop the connection
    std::size_t old = buf_.size();
    buf_.resize(old + 65536);
    socket_.async_read_some(asio::buffer(buf_.data() + old, 65536),
                            [self = shared_from_this(), old](boost::system::error_code ec, std::size_t n) {
                              self->buf_.resize(old + n);
                              if (ec) return;
                              self->parse();
                            });
  }

  // Handles every complete request in buf_, then reads more or writes answers.
  void parse() {
    out_.clear();
    std::size_t consumed = 0;
    bool need_continue = false;
    for (;;) {
      std::string_view data(buf_.data() + consumed, buf_.size() - consumed);
      auto hdr_end = data.find("\r\n\r\n");
      if (hdr_end == std::string_view::npos) break;
      std::string_view head = data.substr(0, hdr_end);
      auto line_end = head.find("\r\n");
      std::string_view start = head.substr(0, line_end);
      auto sp1 = start.find(' ');
      auto sp2 = start.find(' ', sp1 + 1);
      if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return;  // garbage: close
      std::string_view method = start.substr(0, sp1);
      std::string_view target = start.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t length = 0;
      bool expect = false, close = false;
      std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        auto e = head.find("\r\n", pos);
        if (e == std::string_view::npos) e = head.size();
        std::string_view line = head.substr(pos, e - pos);
        if (iequals_prefix(line, "content-length:")) {
          length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
        } else if (iequals_prefix(line, "expect:")) {
          expect = true;
        } else if (iequals_prefix(line, "connection:") && line.find("close") != std::string_view::npos) {
          close = true;
        }
        pos = e + 2;
      }
      std::size_t total = hdr_end + 4 + length;
      if (data.size() < total) {
        if (expect && !continued_) need_continue = true;
        break;
      }
      continued_ = false;
      handle(method, target, data.substr(hdr_end + 4, length));
      consumed += total;
      if (close) close_after_ = true;
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(consumed));
    if (need_continue) {
      continued_ = true;
      out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    }
    if (out_.empty()) return read_more();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec || self->close_after_) return;
                        self->read_more();
                      });
  }

  void answer(int status, std::string_view reason, std::string_view content_type, std::string_view body) {
    char head[256];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %.*s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n\r\n", status,
                          static_cast<int>(reason.size()), reason.data(),
                          static_cast<int>(content_type.size()), content_type.data(), body.size());
    out_.append(head, static_cast<std::size_t>(n));
    out_.append(body);
  }

  void handle(std::string_view method, std::string_view target, std::string_view body) {
    int64_t t = now_ns();
    if (method == "GET" && target == "/stats") {
      char json[256];
      int n = std::snprintf(json, sizeof json,
                            "{\"messages\":%lld,\"requests\":%lld,\"bad\":%lld,\"first_ns\":%lld,\"last_ns\":%lld}",
                            static_cast<long long>(stats_.messages.load()),
                            static_cast<long long>(stats_.requests.load()),
                            static_cast<long long>(stats_.bad.load()),
                            static_cast<long long>(stats_.first_ns.load()),
                            static_cast<long long>(stats_.last_ns.load()));
      return answer(200, "OK", "application/json", std::string_view(json, static_cast<std::size_t>(n)));
    }
    if (method == "GET" && target == "/tags") {
      std::string json = "{";
      {
        std::lock_guard lock(stats_.tags_mutex);
        json.reserve(stats_.tags.size() * 32 + 2);
        for (auto& [tag, ns] : stats_.tags) {
          if (json.size() > 1) json += ',';
          json += '"';
          json += std::to_string(tag);
          json += "\":";
          json += std::to_string(ns);
        }
      }
      json += '}';
      return answer(200, "OK", "application/json", json);
    }
    if (method == "POST" && target == "/reset") {
      stats_.reset();
      return answer(200, "OK", "application/json", "{}");
    }
    if (method != "POST") return answer(404, "Not Found", "text/plain", "not found");
    bool twilio = target.rfind("/2010-04-01/Accounts/", 0) == 0 && target.size() > 14 &&
                  target.substr(target.size() - 14) == "/Messages.json";
    bool sendgrid = target == "/v3/mail/send";
    bool am = target.rfind("/am", 0) == 0;
    if (!twilio && !sendgrid && !am) return answer(404, "Not Found", "text/plain", "not found");
    ++stats_.requests;
    int64_t n = count_messages(twilio ? std::string_view("/2010-04-01/Accounts/") : target, body);
    if (n < 0) {
      ++stats_.bad;
      return answer(400, "Bad Request", "text/plain", "unparsable body");
    }
    record_tags(stats_, body, t);
    stats_.record(n, t);
    if (twilio) {
      uint64_t id = static_cast<uint64_t>(stats_.requests.load());
      char json[160];
      int len = std::snprintf(json, sizeof json, "{\"sid\":\"SM%032llx\",\"status\":\"queued\"}",
                              static_cast<unsigned long long>(id));
      return answer(201, "Created", "application/json", std::string_view(json, static_cast<std::size_t>(len)));
    }
    if (sendgrid) return answer(202, "Accepted", "text/plain", "");
    return answer(200, "OK", "text/plain", "");
  }

  tcp::socket socket_;
  Stats& stats_;
  std::vector<char> buf_;
  std::string out_;
  bool continued_ = false;
  bool close_after_ = false;
};

void accept_loop(tcp::acceptor& acceptor, Stats& stats) {
  acceptor.async_accept([&acceptor, &stats](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) std::make_shared<Connection>(std::move(socket), stats)->start();
    accept_loop(acceptor, stats);
  });
}

int usage() {
  std::cerr << "usage: tocsin-sink [--port N (0: any; the bound port is printed)] [--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--port" && i + 1 < argc) port = static_cast<unsigned short>(std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else return usage();
  }
  asio::io_context io(threads);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  std::printf("%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  Stats stats;
  accept_loop(acceptor, stats);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
