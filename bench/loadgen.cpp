// tocsin-loadgen: an HTTP/1.1 load generator for tocsin's benchmarks (and
// Alertmanager's, for comparison). Keep-alive connections on Boost.Asio +
// Beast, fixed-rate or max-rate, for a duration or a request count; prints one
// JSON line of results on stdout.
//
//   tocsin-loadgen MODE --url http://127.0.0.1:PORT [options]
//
// Modes (what each request is):
//   dedup         POST /v1/reports: the same event every time, a new webhook-id each
//   distinct      POST /v1/reports: each report a new incident (its own dedup_key and a
//                 location far from every other), headline tagged "bseq<seq>"
//   alertmanager  POST /api/v2/alerts: one alert, distinct labels (or --same-labels)
//   subscribers   POST /v1/subscribers, --requests of them (admin --token)
//   twilio        POST a Twilio message straight to a sink (loopback ceiling)
//   sendgrid      POST a SendGrid mail with --batch personalizations to a sink
//   freeport      prints a free loopback TCP port and exits
//
// Latency is measured from the request's intended start (fixed rate: its slot
// in the schedule, so queueing behind a slow server counts; max rate: when it
// was written) to the end of its answer.
//
// With --sink URL, after the load it waits (up to --drain-timeout s) for the
// sink to have received --expect messages (default: one per accepted request),
// then reports the sink's message rate and, for tagged modes, the
// report-to-message latency: the sink's first receive time of each "bseq<seq>"
// tag minus the time the report was written. Both use CLOCK_MONOTONIC.
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/signature.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Log-linear histogram of nanosecond values: exact below 64 ns, then 32
// sub-buckets per power of two (under 3.2% error), so percentiles cost no
// per-sample memory.
class Histogram {
 public:
  Histogram() : counts_(64 + 58 * 32, 0) {}
  void add(int64_t ns) {
    ++counts_[index(static_cast<uint64_t>(std::max<int64_t>(ns, 0)))];
    ++total_;
    max_ = std::max(max_, ns);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return total_; }
  int64_t max() const { return max_; }
  // Value at quantile q (0..1): the midpoint of the bucket holding it.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min<double>(midpoint(i), static_cast<double>(max_));
    }
    return static_cast<double>(max_);
  }

 private:
  static std::size_t index(uint64_t v) {
    if (v < 64) return v;
    int e = 63 - __builtin_clzll(v);
    return 64 + static_cast<std::size_t>(e - 6) * 32 + ((v >> (e - 5)) & 31);
  }
  static double midpoint(std::size_t i) {
    if (i < 64) return static_cast<double>(i);
    std::size_t e = (i - 64) / 32 + 6, m = (i - 64) % 32;
    double lo = std::ldexp(1.0, static_cast<int>(e)) * (1.0 + static_cast<double>(m) / 32.0);
    return lo + std::ldexp(1.0, static_cast<int>(e) - 6);
  }
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  int64_t max_ = 0;
};

struct Url {
  std::string host = "127.0.0.1";
  std::string port = "80";
};

Url parse_url(const std::string& u) {
  Url r;
  std::string rest = u;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    r.host = rest.substr(0, colon);
    r.port = rest.substr(colon + 1);
  } else {
    r.host = rest;
  }
  return r;
}

struct Options {
  std::string mode;
  std::string url = "http://127.0.0.1:8080";
  int connections = 64;
  int threads = 1;
  double rate = 0;        // requests/s over all connections; 0 = as fast as answered
  double duration = 0;    // seconds; 0 = until --requests are done
  uint64_t requests = 0;  // 0 = until --duration is over
  uint64_t seq_base = 0;  // first sequence number (tags, dedup keys, locations)
  std::string secret;     // coordinator whsec_ secret (report modes)
  std::string token;      // admin bearer token (subscribers)
  std::string area = "la/bench";
  std::string groups = "bench";  // subscribers: "name" or "name:limit,name:limit" (member if seq < limit)
  std::string channel = "sms";   // subscribers: sms | email
  bool same_labels = false;      // alertmanager: one alert over and over
  int batch = 1000;              // sendgrid: personalizations per request
  std::string sink;              // sink URL to wait for and read
  int64_t expect = -1;           // messages the sink must receive; -1 = one per accepted request
  double drain_timeout = 60;     // seconds to wait for them
  double request_timeout = 30;   // seconds per request before the connection is dropped
};

// What each request is, by mode; thread-safe (const after construction).
class Workload {
 public:
  explicit Workload(const Options& o) : o_(o), url_(parse_url(o.url.substr(0, o.url.find(',')))) {
    std::random_device rd;
    run_id_ = std::to_string(rd() % 1000000);
    if (!o.secret.empty()) {
      auto key = tocsin::decode_webhook_secret(o.secret);
      if (!key) throw std::runtime_error("--secret is not a whsec_ secret");
      key_ = *key;
    }
    if (o.mode == "dedup") fixed_body_ = report(json{{"lat", 45.0}, {"lon", -100.0}}, "", "bench dedup");
    if (o.mode == "sendgrid") {
      json p = json::array();
      for (int i = 0; i < o.batch; ++i) p.push_back({{"to", {{{"email", "b" + std::to_string(i) + "@example.org"}}}}});
      fixed_body_ = json{{"personalizations", p},
                         {"from", {{"email", "alerts@example.org"}}},
                         {"subject", "bench"},
                         {"content", {{{"type", "text/plain"}, {"value", "ALERT bench"}}}}}
                        .dump();
    }
    auto comma = [&](const std::string& s) {
      std::vector<std::pair<std::string, uint64_t>> v;
      std::size_t p = 0;
      while (p <= s.size()) {
        auto e = s.find(',', p);
        if (e == std::string::npos) e = s.size();
        std::string item = s.substr(p, e - p);
        if (!item.empty()) {
          auto c = item.find(':');
          if (c == std::string::npos) v.emplace_back(item, UINT64_MAX);
          else v.emplace_back(item.substr(0, c), std::stoull(item.substr(c + 1)));
        }
        p = e + 1;
      }
      return v;
    };
    groups_ = comma(o.groups);
  }

  bool tagged() const { return o_.mode == "distinct" || o_.mode == "alertmanager"; }
  std::set<int> ok_statuses() const {
    if (o_.mode == "subscribers" || o_.mode == "twilio") return {201};
    if (o_.mode == "alertmanager") return {200};
    return {202};
  }

  http::request<http::string_body> make(uint64_t seq) const {
    http::request<http::string_body> req;
    req.version(11);
    req.method(http::verb::post);
    req.set(http::field::host, url_.host + ":" + url_.port);
    req.keep_alive(true);
    const std::string& m = o_.mode;
    if (m == "dedup" || m == "distinct") {
      req.target("/v1/reports");
      std::string body = m == "dedup" ? fixed_body_ : distinct_report(seq);
      std::string id = "bench-" + run_id_ + "-" + std::to_string(seq);
      int64_t ts = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
      req.set("webhook-id", id);
      req.set("webhook-timestamp", std::to_string(ts));
      req.set("webhook-signature", tocsin::sign_webhook(key_, id, ts, body));
      req.set(http::field::content_type, "application/json");
      req.body() = std::move(body);
    } else if (m == "alertmanager") {
      req.target("/api/v2/alerts");
      std::string tag = o_.same_labels ? "same" : "bseq" + std::to_string(seq);
      json alert = {{"labels", {{"alertname", "BenchAlert"}, {"seq", tag}, {"area", o_.area}}},
                    {"annotations", {{"summary", "bench " + tag}}}};
      req.set(http::field::content_type, "application/json");
      req.body() = json::array({alert}).dump();
    } else if (m == "subscribers") {
      req.target("/v1/subscribers");
      req.set(http::field::authorization, "Bearer " + o_.token);
      json groups = json::array();
      for (auto& [name, limit] : groups_)
        if (seq < limit) groups.push_back(name);
      json s = {{"name", "Bench " + std::to_string(seq)}, {"groups", groups}, {"language", "en"}};
      if (o_.channel == "email") {
        s["email"] = "b" + std::to_string(seq) + "@example.org";
        s["channels"] = {"email"};
      } else {
        s["phone"] = phone(seq);
        s["channels"] = {"sms"};
      }
      req.set(http::field::content_type, "application/json");
      req.body() = s.dump();
    } else if (m == "twilio") {
      req.target("/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json");
      req.set(http::field::content_type, "application/x-www-form-urlencoded");
      req.set(http::field::authorization, "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDE6eA==");
      req.body() = "To=%2B12135550100&From=%2B12135550101&Body=ALERT+%23A72WYM%3A+bench+bseq" +
                   std::to_string(seq);
    } else {  // sendgrid: one body, built once (the sink's parsing is what is measured)
      req.target("/v3/mail/send");
      req.set(http::field::authorization, "Bearer SG.bench");
      req.set(http::field::content_type, "application/json");
      req.body() = fixed_body_;
    }
    req.prepare_payload();
    return req;
  }

  // A valid US number (Los Angeles area codes), distinct for seq < 64,000,000.
  static std::string phone(uint64_t seq) {
    static const char* kAreas[] = {"213", "310", "323", "424", "562", "626", "747", "818"};
    uint64_t block = seq / 10000;
    uint64_t exchange = 200 + block % 800;  // 200..999
    // N11, 555, 958/959 (test) and 976 (premium) are not ordinary exchanges:
    // shift them into the 9xx range's unused tail while keeping them distinct.
    if (exchange % 100 == 11 || exchange == 555 || exchange == 958 || exchange == 959 || exchange == 976)
      exchange = (exchange + 1) % 1000;
    char buf[32];
    std::snprintf(buf, sizeof buf, "+1%s%03llu%04llu", kAreas[(block / 800) % 8],
                  static_cast<unsigned long long>(exchange), static_cast<unsigned long long>(seq % 10000));
    return buf;
  }

 private:
  std::string report(const json& location, const std::string& dedup_key, const std::string& headline) const {
    json r = {{"msg_type", "alert"},
              {"status", "actual"},
              {"event", "enforcement_activity"},
              {"severity", "severe"},
              {"area", o_.area},
              {"location", location},
              {"observed_at", "2026-11-22T13:05:00Z"},
              {"headline", {{"en", headline}}},
              {"instruction", {{"en", "Legal observers needed"}}}};
    if (!dedup_key.empty()) r["dedup_key"] = dedup_key;
    return r.dump();
  }
  // Incident seq lies on a 0.01° grid (≥ 900 m apart, over twice dedup's
  // 400 m radius), unique for seq < 1,000,000.
  std::string distinct_report(uint64_t seq) const {
    double lat = 30.0 + static_cast<double>(seq % 1000) * 0.01;
    double lon = -120.0 + static_cast<double>((seq / 1000) % 1000) * 0.01;
    std::string tag = "bseq" + std::to_string(seq);
    return report(json{{"lat", lat}, {"lon", lon}, {"description", tag}}, "r" + run_id_ + "-" + tag,
                  "bench " + tag);
  }

  Options o_;
  Url url_;
  std::string run_id_;
  std::string key_;
  std::string fixed_body_;
  std::vector<std::pair<std::string, uint64_t>> groups_;
};

// Shared schedule: hands out request numbers and their intended start times.
struct Schedule {
  const Options& o;
  int64_t t0 = 0;
  int64_t end = 0;  // 0 = no time limit
  std::atomic<uint64_t> next{0};

  Schedule(const Options& opts, int64_t start) : o(opts), t0(start) {
    end = o.duration > 0 ? t0 + static_cast<int64_t>(o.duration * 1e9) : 0;
  }
  bool take(uint64_t& i, int64_t& intended) {
    i = next.fetch_add(1);
    if (o.requests && i >= o.requests) return false;
    intended = o.rate > 0 ? t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / o.rate) : now_ns();
    return !(end && intended >= end);
  }
};

// One thread's results.
struct Results {
  Histogram latency;
  std::map<int, uint64_t> statuses;
  uint64_t errors = 0;  // transport errors and timeouts
  int64_t first_ok_ns = 0;
  int64_t last_done_ns = 0;
  std::vector<std::pair<uint64_t, int64_t>> sends;  // (seq, written at) of accepted tagged requests
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, const tcp::resolver::results_type& ep, const Workload& w, Schedule& s,
             const Options& o, Results& r)
      : stream_(io), timer_(io), ep_(ep), w_(w), s_(s), o_(o), r_(r), ok_(w.ok_statuses()) {}

  void start() { connect(); }

 private:
  void connect() {
    if (++connects_ > 1000) return;  // a server refusing us: give up rather than spin
    stream_.expires_after(std::chrono::seconds(10));
    stream_.async_connect(ep_, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        ++self->r_.errors;
        return self->retry();
      }
      self->stream_.socket().set_option(tcp::no_delay(true));
      self->next();
    });
  }
  void retry() {
    stream_.close();
    buffer_.clear();
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->connect(); });
  }
  void next() {
    if (!s_.take(seq_, intended_)) return;
    seq_ += o_.seq_base;
    if (o_.rate > 0 && intended_ > now_ns()) {
      timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(intended_)));
      timer_.async_wait([self = shared_from_this()](beast::error_code) { self->send(); });
    } else {
      send();
    }
  }
  void send() {
    req_ = w_.make(seq_);
    res_ = {};
    sent_ = now_ns();
    stream_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(o_.request_timeout * 1000)));
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail();
      http::async_read(self->stream_, self->buffer_, self->res_,
                       [self](beast::error_code ec2, std::size_t) { self->done(ec2); });
    });
  }
  // A transport failure: counted; the request is not retried (its latency
  // would be meaningless), the connection is made again.
  void fail() {
    ++r_.errors;
    retry();
  }
  void done(beast::error_code ec) {
    if (ec) return fail();
    int64_t t = now_ns();
    int status = res_.result_int();
    ++r_.statuses[status];
    r_.latency.add(t - (o_.rate > 0 ? intended_ : sent_));
    r_.last_done_ns = t;
    if (ok_.count(status)) {
      if (!r_.first_ok_ns) r_.first_ok_ns = t;
      if (w_.tagged()) r_.sends.emplace_back(seq_, sent_);
    }
    if (!res_.keep_alive()) return retry();
    next();
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  tcp::resolver::results_type ep_;
  const Workload& w_;
  Schedule& s_;
  const Options& o_;
  Results& r_;
  std::set<int> ok_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  uint64_t seq_ = 0;
  int64_t intended_ = 0, sent_ = 0;
  int connects_ = 0;
};

// One synchronous request (sink statistics, tags).
std::pair<int, std::string> call(const std::string& url, http::verb method, const std::string& target) {
  Url u = parse_url(url);
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(30));
  stream.connect(resolver.resolve(u.host, u.port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, u.host);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 31);
  http::read(stream, buf, parser);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return {parser.get().result_int(), parser.get().body()};
}

json sink_stats(const std::string& sink) {
  auto [status, body] = call(sink, http::verb::get, "/stats");
  if (status != 200) throw std::runtime_error("sink /stats answered " + std::to_string(status));
  return json::parse(body);
}

double ms(double ns) { return std::round(ns / 1e3) / 1e3; }

int run(const Options& o) {
  Workload w(o);
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<Results> results(static_cast<std::size_t>(o.threads));
  // --url may list several instances (comma-separated): connection c goes
  // to instance c mod n, so each gets an equal share of the connections.
  std::vector<tcp::resolver::results_type> eps;
  {
    asio::io_context io;
    tcp::resolver resolver(io);
    std::size_t p = 0;
    while (p <= o.url.size()) {
      auto e = std::min(o.url.find(',', p), o.url.size());
      Url u = parse_url(o.url.substr(p, e - p));
      eps.push_back(resolver.resolve(u.host, u.port));
      p = e + 1;
    }
  }
  for (int t = 0; t < o.threads; ++t) ios.push_back(std::make_unique<asio::io_context>(1));
  int64_t t0 = now_ns();
  Schedule schedule(o, t0);
  for (int c = 0; c < o.connections; ++c) {
    auto t = static_cast<std::size_t>(c % o.threads);
    const auto& ep = eps[static_cast<std::size_t>(c) % eps.size()];
    std::make_shared<Connection>(*ios[t], ep, w, schedule, o, results[t])->start();
  }
  std::vector<std::thread> threads;
  for (int t = 1; t < o.threads; ++t) threads.emplace_back([&ios, t] { ios[static_cast<std::size_t>(t)]->run(); });
  ios[0]->run();
  for (auto& th : threads) th.join();
  int64_t t1 = now_ns();

  Results all;
  for (auto& r : results) {
    all.latency.merge(r.latency);
    for (auto& [s, n] : r.statuses) all.statuses[s] += n;
    all.errors += r.errors;
    if (r.first_ok_ns && (!all.first_ok_ns || r.first_ok_ns < all.first_ok_ns)) all.first_ok_ns = r.first_ok_ns;
    all.last_done_ns = std::max(all.last_done_ns, r.last_done_ns);
    all.sends.insert(all.sends.end(), r.sends.begin(), r.sends.end());
  }
  uint64_t ok = 0;
  for (int s : w.ok_statuses()) ok += all.statuses.count(s) ? all.statuses[s] : 0;
  double elapsed = static_cast<double>(t1 - t0) / 1e9;
  json out = {{"mode", o.mode},
              {"connections", o.connections},
              {"threads", o.threads},
              {"rate_target", o.rate},
              {"elapsed_s", std::round(elapsed * 1000) / 1000},
              {"requests", all.latency.count()},
              {"ok", ok},
              {"errors", all.errors},
              {"rps", std::round(static_cast<double>(all.latency.count()) / elapsed)},
              {"ok_rps", std::round(static_cast<double>(ok) / elapsed)},
              {"p50_ms", ms(all.latency.quantile(0.50))},
              {"p99_ms", ms(all.latency.quantile(0.99))},
              {"p999_ms", ms(all.latency.quantile(0.999))},
              {"max_ms", ms(static_cast<double>(all.latency.max()))}};
  json statuses = json::object();
  for (auto& [s, n] : all.statuses) statuses[std::to_string(s)] = n;
  out["statuses"] = statuses;

  bool drained = true;
  if (!o.sink.empty()) {
    int64_t expect = o.expect >= 0 ? o.expect : static_cast<int64_t>(ok);
    int64_t deadline = now_ns() + static_cast<int64_t>(o.drain_timeout * 1e9);
    json st = sink_stats(o.sink);
    while (st["messages"].get<int64_t>() < expect && now_ns() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      st = sink_stats(o.sink);
    }
    int64_t msgs = st["messages"], first = st["first_ns"], last = st["last_ns"];
    drained = msgs >= expect;
    out["sink_expected"] = expect;
    out["sink_messages"] = msgs;
    out["sink_requests"] = st["requests"];
    out["drained"] = drained;
    if (msgs > 0) {
      double span = static_cast<double>(last - first) / 1e9;
      out["sink_span_s"] = std::round(span * 1000) / 1000;
      out["sink_msgs_per_s"] = span > 0 ? std::round(static_cast<double>(msgs) / span) : 0.0;
      // From the first accepted answer (a fan-out's 202) to the last message.
      if (all.first_ok_ns) {
        double fan = static_cast<double>(last - all.first_ok_ns) / 1e9;
        out["first_ok_to_last_msg_s"] = std::round(fan * 1000) / 1000;
        out["msgs_per_s_from_first_ok"] = fan > 0 ? std::round(static_cast<double>(msgs) / fan) : 0.0;
      }
      out["drain_after_load_s"] = std::round(static_cast<double>(last - t1) / 1e6) / 1e3;
    }
    if (w.tagged() && !all.sends.empty()) {
      auto [status, body] = call(o.sink, http::verb::get, "/tags");
      if (status != 200) throw std::runtime_error("sink /tags answered " + std::to_string(status));
      auto tags = json::parse(body);
      Histogram e2e;
      uint64_t missing = 0;
      for (auto& [seq, sent] : all.sends) {
        auto it = tags.find(std::to_string(seq));
        if (it == tags.end()) ++missing;
        else e2e.add(it->get<int64_t>() - sent);
      }
      out["e2e_count"] = e2e.count();
      out["e2e_missing"] = missing;
      out["e2e_p50_ms"] = ms(e2e.quantile(0.50));
      out["e2e_p99_ms"] = ms(e2e.quantile(0.99));
      out["e2e_p999_ms"] = ms(e2e.quantile(0.999));
      out["e2e_max_ms"] = ms(static_cast<double>(e2e.max()));
    }
  }
  std::cout << out.dump() << std::endl;
  // Failed outright: nothing accepted, or the sink never got what was sent.
  return (ok == 0 || !drained) ? 1 : 0;
}

int usage(const char* why) {
  std::cerr << "tocsin-loadgen: " << why << "\n"
            << "usage: tocsin-loadgen dedup|distinct|alertmanager|subscribers|twilio|sendgrid|freeport\n"
               "  --url URL[,URL...] --connections N --threads N --rate R (0: max) --duration S --requests N\n"
               "  --seq-base N --secret whsec_... --token T --area PATH --groups NAME[:LIMIT],...\n"
               "  --channel sms|email --same-labels --batch N --sink URL --expect N --drain-timeout S\n"
               "  --request-timeout S\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("no mode");
  Options o;
  o.mode = argv[1];
  if (o.mode == "freeport") {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::cout << a.local_endpoint().port() << "\n";
    return 0;
  }
  static const std::set<std::string> kModes = {"dedup",       "distinct", "alertmanager",
                                               "subscribers", "twilio",   "sendgrid"};
  if (!kModes.count(o.mode)) return usage("unknown mode");
  try {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--url") o.url = val();
      else if (a == "--connections") o.connections = std::stoi(val());
      else if (a == "--threads") o.threads = std::stoi(val());
      else if (a == "--rate") o.rate = std::stod(val());
      else if (a == "--duration") o.duration = std::stod(val());
      else if (a == "--requests" || a == "--count") o.requests = std::stoull(val());
      else if (a == "--seq-base") o.seq_base = std::stoull(val());
      else if (a == "--secret") o.secret = val();
      else if (a == "--token") o.token = val();
      else if (a == "--area") o.area = val();
      else if (a == "--groups") o.groups = val();
      else if (a == "--channel") o.channel = val();
      else if (a == "--same-labels") o.same_labels = true;
      else if (a == "--batch") o.batch = std::stoi(val());
      else if (a == "--sink") o.sink = val();
      else if (a == "--expect") o.expect = std::stoll(val());
      else if (a == "--drain-timeout") o.drain_timeout = std::stod(val());
      else if (a == "--request-timeout") o.request_timeout = std::stod(val());
      else return usage(("unknown option " + a).c_str());
    }
  } catch (const std::exception& e) {
    return usage(e.what());
  }
  if (o.connections < 1 || o.threads < 1) return usage("--connections and --threads must be at least 1");
  if (o.duration <= 0 && o.requests == 0) return usage("give --duration or --requests");
  if ((o.mode == "dedup" || o.mode == "distinct") && o.secret.empty()) return usage("--secret is required");
  if (o.mode == "subscribers" && o.token.empty()) return usage("--token is required");
  if (o.mode == "subscribers" && o.requests == 0) return usage("subscribers needs --count");
  o.threads = std::min(o.threads, o.connections);
  o.connections = o.requests ? static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(o.connections), o.requests))
                             : o.connections;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "tocsin-loadgen: " << e.what() << "\n";
    return 1;
  }
}
