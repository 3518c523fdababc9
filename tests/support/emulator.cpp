#include "support/emulator.h"

#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/signature.h"
#include "http/message.h"

namespace tocsin::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::size_t kBodyLimit = 64 * 1024 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// "Thu, 30 Jul 2015 20:12:31 +0000" (Twilio's date_created) or "... GMT" (HTTP Date).
std::string rfc2822_now(const char* zone) {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S ", &tm);
  return std::string(buf) + zone;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string form_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// application/x-www-form-urlencoded; a repeated name keeps its first value.
std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> fields;
  while (!body.empty()) {
    auto amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string name = form_decode(pair.substr(0, eq));
    std::string value =
        eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
    fields.emplace(std::move(name), std::move(value));
  }
  return fields;
}

std::u32string utf8_to_u32(std::string_view s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    char32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k <= extra && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    out += cp;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

// Twilio's num_segments: GSM-7 (160 alone, 153 per part; extension
// characters count twice), else UCS-2 (70 alone, 67 per part).
int sms_segments(std::string_view body) {
  static const std::u32string kGsm =
      U"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
      U"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  static const std::u32string kGsmExtension = U"\f^{}\\[~]|€";
  std::u32string text = utf8_to_u32(body);
  std::size_t gsm_units = 0;
  bool gsm = true;
  std::size_t ucs2_units = 0;
  for (char32_t c : text) {
    ucs2_units += c > 0xFFFF ? 2 : 1;
    if (kGsm.find(c) != std::u32string::npos) {
      gsm_units += 1;
    } else if (kGsmExtension.find(c) != std::u32string::npos) {
      gsm_units += 2;
    } else {
      gsm = false;
    }
  }
  std::size_t units = gsm ? gsm_units : ucs2_units;
  std::size_t single = gsm ? 160 : 70, part = gsm ? 153 : 67;
  if (units <= single) return 1;
  return static_cast<int>((units + part - 1) / part);
}

// Loose address check, as a provider's first pass: local@domain.tld, no spaces.
bool plausible_email(const json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  auto at = s.find('@');
  return at != std::string::npos && at > 0 && s.find('@', at + 1) == std::string::npos &&
         s.find('.', at) != std::string::npos && s.back() != '.' &&
         s.find_first_of(" \t\r\n<>") == std::string::npos;
}

bool non_empty_string(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_string() &&
         !obj[key].get_ref<const std::string&>().empty();
}

// ---- provider-shaped answers ------------------------------------------------

http::Response twilio_error(int status, int code, std::string message) {
  json j = {{"code", code},
            {"message", std::move(message)},
            {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)},
            {"status", status}};
  return http::json_response(status, j.dump());
}

struct SendgridError {
  std::string message;
  std::optional<std::string> field;
};

http::Response sendgrid_errors(int status, const std::vector<SendgridError>& errors) {
  json list = json::array();
  for (const auto& e : errors) {
    list.push_back({{"message", e.message},
                    {"field", e.field ? json(*e.field) : json(nullptr)},
                    {"help", nullptr}});
  }
  return http::json_response(status, json{{"errors", list}}.dump());
}

enum class Provider { kNone, kTwilio, kSendgrid, kWebhook, kSignal };

Provider provider_of(std::string_view path) {
  if (path == "/hook") return Provider::kWebhook;
  if (path == "/v2/send") return Provider::kSignal;
  if (path.rfind("/2010-04-01/", 0) == 0) return Provider::kTwilio;
  if (path.rfind("/v3/", 0) == 0) return Provider::kSendgrid;
  return Provider::kNone;
}

http::Response unavailable(Provider p) {
  if (p == Provider::kTwilio) return twilio_error(503, 20503, "Service Unavailable");
  if (p == Provider::kWebhook || p == Provider::kSignal)
    return http::json_response(503, R"({"error":"unavailable"})");
  return sendgrid_errors(503, {{"Service Unavailable", std::nullopt}});
}

http::Response too_many(Provider p, int retry_after_s, int limit) {
  if (p == Provider::kWebhook || p == Provider::kSignal) {
    http::Response r = http::json_response(429, R"({"error":"too many requests"})");
    r.set("Retry-After", std::to_string(retry_after_s));
    return r;
  }
  if (p == Provider::kTwilio) {
    http::Response r = twilio_error(429, 20429, "Too Many Requests");
    r.set("Retry-After", std::to_string(retry_after_s));
    return r;
  }
  http::Response r = sendgrid_errors(429, {{"too many requests", std::nullopt}});
  r.set("X-RateLimit-Limit", std::to_string(limit));
  r.set("X-RateLimit-Remaining", "0");
  r.set("X-RateLimit-Reset", std::to_string(unix_now() + retry_after_s));
  return r;
}

std::optional<std::string> twilio_recipient_error(int code, const std::string& to,
                                                  const std::string& from) {
  switch (code) {
    case 21610:
      return "Attempt to send to unsubscribed recipient";
    case 21211:
      return "The 'To' number " + to + " is not a valid phone number.";
    case 21614:
      return "'To' number is not a valid mobile number";
    case 21408:
      return "Permission to send an SMS has not been enabled for the region indicated by the "
             "'To' number: " +
             to;
    case 21612:
      return "The 'To' phone number: " + to + ", is not currently reachable using the 'From' " +
             "phone number: " + from + " via SMS.";
    default:
      return std::nullopt;
  }
}

// The SendGrid v3 /mail/send checks that matter to a sender, all at once as
// SendGrid reports them.
std::vector<SendgridError> validate_sendgrid(const json& mail) {
  std::vector<SendgridError> errors;
  const bool templated = non_empty_string(mail, "template_id");
  const json* ps = mail.contains("personalizations") ? &mail["personalizations"] : nullptr;
  bool every_subject = true;
  if (!ps || !ps->is_array() || ps->empty()) {
    errors.push_back(
        {"The personalizations field is required and must have at least one "
         "personalization.",
         "personalizations"});
    every_subject = false;
  } else if (ps->size() > 1000) {
    errors.push_back(
        {"The personalizations field cannot have more than 1000 personalizations. "
         "You may need to batch your requests.",
         "personalizations"});
  } else {
    std::size_t recipients = 0;
    for (std::size_t i = 0; i < ps->size(); ++i) {
      const json& p = (*ps)[i];
      std::string at = "personalizations." + std::to_string(i);
      if (!non_empty_string(p, "subject")) every_subject = false;
      if (!p.is_object() || !p.contains("to") || !p["to"].is_array() || p["to"].empty()) {
        errors.push_back(
            {"The to array is required for all personalization objects, and must "
             "have at least one email object with a valid email address.",
             at + ".to"});
        continue;
      }
      for (const char* kind : {"to", "cc", "bcc"}) {
        if (!p.contains(kind)) continue;
        if (!p[kind].is_array()) {
          errors.push_back(
              {std::string("The ") + kind + " field must be an array.", at + "." + kind});
          continue;
        }
        for (std::size_t j = 0; j < p[kind].size(); ++j) {
          const json& r = p[kind][j];
          ++recipients;
          if (!r.is_object() || !r.contains("email") || !plausible_email(r["email"])) {
            errors.push_back({"Does not contain a valid address.",
                              at + "." + kind + "." + std::to_string(j) + ".email"});
          }
        }
      }
    }
    if (recipients > 1000) {
      errors.push_back(
          {"The total number of recipients must be no more than 1000. This "
           "includes all recipients defined within the to, cc, and bcc parameters, "
           "across each object that you include in the personalizations array.",
           "personalizations"});
    }
  }
  if (!mail.contains("from") || !mail["from"].is_object() || !mail["from"].contains("email")) {
    errors.push_back(
        {"The from object must be provided for every email send. It is an object "
         "that requires the email parameter, but may also contain a name "
         "parameter.",
         "from.email"});
  } else if (!plausible_email(mail["from"]["email"])) {
    errors.push_back({"The from email does not contain a valid address.", "from.email"});
  }
  if (!templated && !non_empty_string(mail, "subject") && !every_subject) {
    errors.push_back(
        {"The subject is required. You can get around this requirement if you use "
         "a template with a subject defined or if every personalization has a "
         "subject defined.",
         "subject"});
  }
  if (!templated) {
    const json* content = mail.contains("content") ? &mail["content"] : nullptr;
    if (!content || !content->is_array() || content->empty()) {
      errors.push_back(
          {"Unless a valid template_id is provided, the content parameter is "
           "required. There must be at least one defined content block. We "
           "typically suggest both text/plain and text/html blocks are included, "
           "but only one block is required.",
           "content"});
    } else {
      for (std::size_t k = 0; k < content->size(); ++k) {
        const json& c = (*content)[k];
        std::string at = "content." + std::to_string(k);
        if (!non_empty_string(c, "type")) {
          errors.push_back(
              {"The content type must be a string at least one character in "
               "length.",
               at + ".type"});
        }
        if (!non_empty_string(c, "value")) {
          errors.push_back(
              {"The content value must be a string at least one character in "
               "length.",
               at + ".value"});
        }
      }
    }
  }
  // custom_args, headers and substitutions (top level and per
  // personalization) are objects of strings, as SendGrid requires.
  auto string_map = [&](const json& obj, const char* key, const std::string& at) {
    if (!obj.is_object() || !obj.contains(key)) return;
    const json& v = obj[key];
    bool ok = v.is_object();
    if (ok)
      for (const auto& item : v.items()) ok = ok && item.value().is_string();
    if (!ok)
      errors.push_back({std::string("The ") + key + " parameter must be an object of strings.",
                        at + key});
  };
  for (const char* key : {"custom_args", "headers"}) string_map(mail, key, "");
  if (ps && ps->is_array())
    for (std::size_t i = 0; i < ps->size(); ++i)
      for (const char* key : {"custom_args", "headers", "substitutions"})
        string_map((*ps)[i], key, "personalizations." + std::to_string(i) + ".");
  return errors;
}

std::string str_or(const json& obj, const char* key, std::string fallback = {}) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_string()) {
    return obj[key].get<std::string>();
  }
  return fallback;
}

// A uniform double in [0, 1) from 53 random bits: the same on every platform.
double uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

struct GatewayEmulator::Impl {
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::thread thread;
    bool done = false;  // socket closed; guarded by conns_mu
  };

  explicit Impl(Options o) : options(std::move(o)), fault_rng(options.seed), id_rng(options.seed) {}

  Options options;

  // ---- emulated provider state: guarded by mu ----
  mutable std::mutex mu;
  std::condition_variable changed;  // every observation change, and stop
  bool stopping = false;
  Faults faults;
  std::map<std::string, int> twilio_errors;
  std::set<std::string> signal_unregistered;
  Observations obs;
  std::deque<Clock::time_point> window;  // strict rate limit: recent admissions
  std::mt19937_64 fault_rng;
  std::mt19937_64 id_rng;

  // ---- server ----
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::thread accept_thread;
  std::mutex conns_mu;
  bool conns_stopping = false;             // guarded by conns_mu
  std::list<std::shared_ptr<Conn>> conns;  // guarded by conns_mu

  void start();
  void stop();
  void accept_next();
  void serve(const std::shared_ptr<Conn>& conn);

  // One request's life: admit (count, draw drop/stall) → stall → respond or drop.
  struct Admission {
    bool drop = false;
    std::chrono::milliseconds stall{0};
  };
  Admission admit();
  bool stall_for(std::chrono::milliseconds d);       // false when stopping
  http::Response respond(const http::Request& req);  // counts it as answered
  void dropped();

  // Under mu:
  http::Response decide_locked(const http::Request& req);
  http::Response twilio_locked(const http::Request& req);
  http::Response signal_locked(const http::Request& req);
  http::Response call_locked(std::map<std::string, std::string> fields);
  http::Response sendgrid_locked(const http::Request& req);
  http::Response webhook_locked(const http::Request& req);
  std::string random_hex(std::size_t n);
  std::string random_token(std::size_t n);
};

void GatewayEmulator::Impl::start() {
  tcp::endpoint ep(asio::ip::address_v4::loopback(), 0);
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen();
  port = acceptor.local_endpoint().port();
  accept_next();
  accept_thread = std::thread([this] { ioc.run(); });
}

void GatewayEmulator::Impl::accept_next() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // stop()
    if (ec) {
      accept_next();  // e.g. a connection reset before it was accepted
      return;
    }
    {
      std::lock_guard lock(mu);
      ++obs.connections;
    }
    changed.notify_all();
    std::list<std::shared_ptr<Conn>> finished;
    {
      std::lock_guard lock(conns_mu);
      if (conns_stopping) return;
      // Reap connections that ended, so long tests do not pile up threads.
      for (auto it = conns.begin(); it != conns.end();) {
        auto next = std::next(it);
        if ((*it)->done) finished.splice(finished.end(), conns, it);
        it = next;
      }
      auto conn = std::make_shared<Conn>(std::move(socket));
      conns.push_back(conn);
      conn->thread = std::thread([this, conn] { serve(conn); });
    }
    for (auto& c : finished) c->thread.join();
    accept_next();
  });
}

void GatewayEmulator::Impl::stop() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  changed.notify_all();  // wakes stalls
  asio::post(ioc, [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  });
  if (accept_thread.joinable()) accept_thread.join();
  std::list<std::shared_ptr<Conn>> all;
  {
    std::lock_guard lock(conns_mu);
    conns_stopping = true;
    // shutdown() wakes a thread blocked reading or writing this socket; the
    // socket itself is closed by its own thread, so the descriptor cannot be
    // reused under us (both happen under conns_mu).
    for (auto& c : conns) {
      if (!c->done) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
    }
    all.swap(conns);
  }
  for (auto& c : all) c->thread.join();
}

void GatewayEmulator::Impl::serve(const std::shared_ptr<Conn>& conn) {
  tcp::socket& sock = conn->socket;
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  std::string remote;
  if (auto ep = sock.remote_endpoint(ec); !ec) {
    remote = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(kBodyLimit);
    bhttp::read_header(sock, buffer, parser, ec);
    if (ec) break;
    if (iequals(parser.get()[bhttp::field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
      bhttp::write(sock, cont, ec);
      if (ec) break;
    }
    bhttp::read(sock, buffer, parser, ec);
    if (ec) break;
    const auto& in = parser.get();
    http::Request req;
    req.method = std::string(in.method_string());
    req.target = std::string(in.target());
    for (const auto& f : in) req.headers.emplace_back(f.name_string(), f.value());
    req.body = in.body();
    req.remote = remote;
    const bool keep_alive = in.keep_alive();

    Admission admission = admit();
    if (admission.drop || !stall_for(admission.stall)) {
      dropped();
      break;
    }
    http::Response r = respond(req);
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(r.status), 11};
    for (const auto& [name, value] : r.headers) out.set(name, value);
    out.set(bhttp::field::server, "tocsin-gateway-emulator");
    out.set(bhttp::field::date, rfc2822_now("GMT"));
    out.keep_alive(keep_alive);
    out.body() = std::move(r.body);
    out.prepare_payload();
    bhttp::write(sock, out, ec);
    if (ec || !keep_alive) break;
  }
  std::lock_guard lock(conns_mu);
  boost::system::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_both, ignored);
  sock.close(ignored);
  conn->done = true;
}

GatewayEmulator::Impl::Admission GatewayEmulator::Impl::admit() {
  Admission a;
  {
    std::lock_guard lock(mu);
    ++obs.requests;
    ++obs.in_flight;
    obs.peak_in_flight = std::max(obs.peak_in_flight, obs.in_flight);
    // Always draw both, so that one request consumes the same randomness
    // whatever the probabilities are.
    double drop = uniform(fault_rng), stall = uniform(fault_rng);
    a.drop = drop < faults.p_drop;
    if (stall < faults.p_stall) a.stall = faults.stall;
  }
  changed.notify_all();
  return a;
}

bool GatewayEmulator::Impl::stall_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu);
  if (d.count() > 0) changed.wait_for(lock, d, [this] { return stopping; });
  return !stopping;
}

void GatewayEmulator::Impl::dropped() {
  {
    std::lock_guard lock(mu);
    --obs.in_flight;
    ++obs.dropped;
  }
  changed.notify_all();
}

http::Response GatewayEmulator::Impl::respond(const http::Request& req) {
  http::Response r;
  {
    std::lock_guard lock(mu);
    r = decide_locked(req);
    // Counted before the answer is written, so that a client that has its
    // answer never sees observations that lag behind it.
    --obs.in_flight;
    ++obs.statuses[r.status];
  }
  changed.notify_all();
  return r;
}

http::Response GatewayEmulator::Impl::decide_locked(const http::Request& req) {
  const Provider provider = provider_of(req.path());
  if (provider == Provider::kNone) {
    return http::json_response(404, R"({"message":"not found"})");
  }
  double p503 = uniform(fault_rng), p429 = uniform(fault_rng);
  if (faults.down || p503 < faults.p_503) return unavailable(provider);
  if (faults.rate_limit_per_s > 0) {
    const auto now = Clock::now();
    while (!window.empty() && now - window.front() >= std::chrono::seconds(1)) {
      window.pop_front();
    }
    if (window.size() >= static_cast<std::size_t>(faults.rate_limit_per_s)) {
      auto wait = window.front() + std::chrono::seconds(1) - now;
      auto secs = std::chrono::ceil<std::chrono::seconds>(wait).count();
      return too_many(provider, static_cast<int>(std::max<int64_t>(1, secs)),
                      faults.rate_limit_per_s);
    }
    window.push_back(now);
  }
  if (p429 < faults.p_429) {
    return too_many(provider, faults.retry_after_s,
                    faults.rate_limit_per_s > 0 ? faults.rate_limit_per_s : 600);
  }
  if (provider == Provider::kWebhook) return webhook_locked(req);
  if (provider == Provider::kSignal) return signal_locked(req);
  return provider == Provider::kTwilio ? twilio_locked(req) : sendgrid_locked(req);
}

http::Response GatewayEmulator::Impl::webhook_locked(const http::Request& req) {
  if (req.method != "POST") return http::json_response(405, R"({"error":"method not allowed"})");
  const std::string id(req.header("webhook-id")), ts(req.header("webhook-timestamp")),
      sig(req.header("webhook-signature"));
  auto key = decode_webhook_secret(options.webhook_secret);
  if (!key ||
      verify_webhook(id, ts, sig, req.body, {*key}, unix_now()).check != SignatureCheck::kValid) {
    return http::json_response(401, R"({"error":"bad signature"})");
  }
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  const bool valid = j.is_object() && non_empty_string(j, "channel") && non_empty_string(j, "to") &&
                     j.contains("body") && j["body"].is_string() &&
                     non_empty_string(j, "incident") && j.contains("delivery_id") &&
                     j["delivery_id"].is_number_integer() &&
                     (!j.contains("subject") || j["subject"].is_string());
  if (!valid) return http::json_response(400, R"({"error":"invalid message"})");
  ReceivedMessage m;
  m.provider = "webhook";
  m.id = id;
  m.to = str_or(j, "to");
  m.subject = str_or(j, "subject");
  m.body = str_or(j, "body");
  m.fields = {{"channel", str_or(j, "channel")},
              {"incident", str_or(j, "incident")},
              {"delivery_id", std::to_string(j["delivery_id"].get<int64_t>())},
              {"webhook-id", id},
              {"webhook-timestamp", ts},
              {"webhook-signature", sig}};
  m.raw = req.body;
  m.accepted_at = Clock::now();
  obs.messages.push_back(std::move(m));
  return http::json_response(200, R"({"ok":true})");
}

std::string GatewayEmulator::Impl::random_hex(std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += kHex[id_rng() % 16];
  return s;
}

std::string GatewayEmulator::Impl::random_token(std::size_t n) {
  static constexpr char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += kChars[id_rng() % 64];
  return s;
}

http::Response GatewayEmulator::Impl::signal_locked(const http::Request& req) {
  if (req.method != "POST") return http::json_response(405, R"({"error":"method not allowed"})");
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  const bool valid = j.is_object() && non_empty_string(j, "message") &&
                     non_empty_string(j, "number") && j.contains("recipients") &&
                     j["recipients"].is_array() && !j["recipients"].empty();
  if (!valid) return http::json_response(400, R"({"error":"Couldn't process request - invalid request"})");
  if (str_or(j, "number") != options.signal_number)
    return http::json_response(400, json{{"error", "User " + str_or(j, "number") +
                                                       " is not registered."}}.dump());
  for (const auto& r : j["recipients"])
    if (!r.is_string() || signal_unregistered.count(r.get<std::string>()))
      return http::json_response(
          400, json{{"error", "Failed to send message: " +
                                  (r.is_string() ? r.get<std::string>() : std::string("?")) +
                                  ": Unregistered user"}}.dump());
  const std::string ts = std::to_string(unix_now() * 1000 + static_cast<int64_t>(id_rng() % 1000));
  for (const auto& r : j["recipients"]) {
    ReceivedMessage m;
    m.provider = "signal";
    m.id = ts;
    m.to = r.get<std::string>();
    m.from = str_or(j, "number");
    m.body = str_or(j, "message");
    m.raw = req.body;
    m.accepted_at = Clock::now();
    obs.messages.push_back(std::move(m));
  }
  return http::json_response(201, json{{"timestamp", ts}}.dump());
}

http::Response GatewayEmulator::Impl::twilio_locked(const http::Request& req) {
  const std::string_view path = req.path();
  constexpr std::string_view kPrefix = "/2010-04-01/Accounts/";
  const bool calls = path.ends_with("/Calls.json");
  const std::string_view kSuffix = calls ? "/Calls.json" : "/Messages.json";
  const bool messages_path = path.size() > kPrefix.size() + kSuffix.size() &&
                             path.substr(0, kPrefix.size()) == kPrefix &&
                             path.substr(path.size() - kSuffix.size()) == kSuffix;
  const std::string_view sid =
      messages_path ? path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size())
                    : std::string_view{};
  if (!messages_path || sid.find('/') != std::string_view::npos) {
    return twilio_error(404, 20404,
                        "The requested resource " + std::string(path) + " was not found");
  }
  if (req.method != "POST") return twilio_error(405, 20004, "Method not allowed");

  // Basic auth must name this account with its token.
  std::string_view auth = req.header("Authorization");
  bool authed = false;
  if (auth.size() > 6 && iequals(auth.substr(0, 6), "Basic ")) {
    if (auto plain = base64_decode(auth.substr(6))) {
      authed = *plain == options.account_sid + ":" + options.auth_token;
    }
  }
  if (!authed) return twilio_error(401, 20003, "Authenticate");
  if (sid != options.account_sid) {
    return twilio_error(404, 20404,
                        "The requested resource " + std::string(path) + " was not found");
  }

  auto fields = parse_form(req.body);
  auto field = [&](const char* name) {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  };
  const std::string to = field("To"), from = field("From"), body = field("Body");
  if (calls) return call_locked(fields);
  if (to.empty()) return twilio_error(400, 21604, "A 'To' phone number is required.");
  if (from.empty() && field("MessagingServiceSid").empty()) {
    return twilio_error(400, 21603, "A 'From' phone number is required.");
  }
  if (body.empty() && field("MediaUrl").empty()) {
    return twilio_error(400, 21602, "Message body is required.");
  }
  if (utf8_to_u32(body).size() > 1600) {
    return twilio_error(400, 21617,
                        "The concatenated message body exceeds the 1600 character limit.");
  }
  if (auto it = twilio_errors.find(to); it != twilio_errors.end()) {
    return twilio_error(400, it->second, *twilio_recipient_error(it->second, to, from));
  }

  ReceivedMessage m;
  m.provider = "twilio";
  m.id = "SM" + random_hex(32);
  m.to = to;
  m.from = from;
  m.body = body;
  m.fields = fields;
  m.raw = req.body;
  m.accepted_at = Clock::now();
  const std::string date = rfc2822_now("+0000");
  const std::string uri = "/2010-04-01/Accounts/" + options.account_sid + "/Messages/" + m.id;
  json answer = {
      {"account_sid", options.account_sid},
      {"api_version", "2010-04-01"},
      {"body", body},
      {"date_created", date},
      {"date_sent", nullptr},
      {"date_updated", date},
      {"direction", "outbound-api"},
      {"error_code", nullptr},
      {"error_message", nullptr},
      {"from", from.empty() ? json(nullptr) : json(from)},
      {"messaging_service_sid",
       fields.count("MessagingServiceSid") ? json(fields["MessagingServiceSid"]) : json(nullptr)},
      {"num_media", "0"},
      {"num_segments", std::to_string(sms_segments(body))},
      {"price", nullptr},
      {"price_unit", "USD"},
      {"sid", m.id},
      {"status", "queued"},
      {"subresource_uris", {{"media", uri + "/Media.json"}}},
      {"to", to},
      {"uri", uri + ".json"}};
  obs.messages.push_back(std::move(m));
  return http::json_response(201, answer.dump());
}

http::Response GatewayEmulator::Impl::call_locked(std::map<std::string, std::string> fields) {
  const std::string to = fields["To"], from = fields["From"], twiml = fields["Twiml"];
  if (to.empty()) return twilio_error(400, 21201, "No 'To' number is specified");
  if (from.empty()) return twilio_error(400, 21213, "No 'From' number is specified");
  if (twiml.empty() && fields["Url"].empty())
    return twilio_error(400, 21205, "Url or Twiml is required");
  if (twiml.size() > 4000) return twilio_error(400, 13000, "Twiml exceeds 4000 characters");
  if (auto it = twilio_errors.find(to); it != twilio_errors.end())
    return twilio_error(400, it->second, *twilio_recipient_error(it->second, to, from));
  ReceivedMessage m;
  m.provider = "twilio_voice";
  m.id = "CA" + random_hex(32);
  m.to = to;
  m.from = from;
  m.body = twiml;
  m.fields = fields;
  m.accepted_at = Clock::now();
  json answer = {{"sid", m.id}, {"status", "queued"}, {"to", to}, {"from", from},
                 {"account_sid", options.account_sid}, {"direction", "outbound-api"}};
  obs.messages.push_back(std::move(m));
  return http::json_response(201, answer.dump());
}

void GatewayEmulator::set_signal_unregistered(const std::string& number) {
  std::lock_guard lock(impl_->mu);
  impl_->signal_unregistered.insert(number);
}

std::string GatewayEmulator::signal_url() const { return base_url(); }

http::Response GatewayEmulator::Impl::sendgrid_locked(const http::Request& req) {
  if (req.path() != "/v3/mail/send") {
    return sendgrid_errors(404, {{"resource not found", std::nullopt}});
  }
  if (req.method != "POST") {
    return sendgrid_errors(405, {{"method not allowed", std::nullopt}});
  }
  if (req.header("Authorization") != "Bearer " + options.api_key) {
    return sendgrid_errors(
        401, {{"The provided authorization grant is invalid, expired, or revoked", std::nullopt}});
  }
  json mail = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (mail.is_discarded() || !mail.is_object()) {
    return sendgrid_errors(400, {{"Bad Request", std::nullopt}});
  }
  if (auto errors = validate_sendgrid(mail); !errors.empty()) return sendgrid_errors(400, errors);

  const std::string message_id = random_token(22);
  std::string text, html;
  for (const auto& c : mail["content"]) {  // validated above unless templated
    if (str_or(c, "type") == "text/plain" && text.empty()) text = str_or(c, "value");
    if (str_or(c, "type") == "text/html" && html.empty()) html = str_or(c, "value");
  }
  if (text.empty() && mail.contains("content") && !mail["content"].empty()) {
    text = str_or(mail["content"][0], "value");
  }
  const auto now = Clock::now();
  const auto& ps = mail["personalizations"];
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const json& p = ps[i];
    const json& from = p.contains("from") ? p["from"] : mail["from"];
    for (const char* kind : {"to", "cc", "bcc"}) {
      if (!p.contains(kind)) continue;
      for (const auto& r : p[kind]) {
        ReceivedMessage m;
        m.provider = "sendgrid";
        m.id = message_id;
        m.to = str_or(r, "email");
        m.from = str_or(from, "email");
        m.subject = str_or(p, "subject", str_or(mail, "subject"));
        m.body = text;
        // Substitutions apply to the text, as SendGrid applies them; custom
        // args and headers are recorded as "custom_args.K" and "header.K"
        // (the request's headers first, a personalization's override).
        if (p.contains("substitutions"))
          for (const auto& sub : p["substitutions"].items()) {
            const std::string value = sub.value().get<std::string>();
            for (std::size_t at = m.body.find(sub.key()); at != std::string::npos;
                 at = m.body.find(sub.key(), at + value.size()))
              m.body.replace(at, sub.key().size(), value);
          }
        for (const json* holder : {static_cast<const json*>(&mail), &p}) {
          if (holder->contains("headers"))
            for (const auto& h : (*holder)["headers"].items())
              m.fields["header." + h.key()] = h.value().get<std::string>();
          if (holder->contains("custom_args"))
            for (const auto& a : (*holder)["custom_args"].items())
              m.fields["custom_args." + a.key()] = a.value().get<std::string>();
        }
        m.fields["personalization"] = std::to_string(i);
        m.fields["kind"] = kind;
        if (r.contains("name")) m.fields["to_name"] = str_or(r, "name");
        if (from.contains("name")) m.fields["from_name"] = str_or(from, "name");
        if (!html.empty()) m.fields["html"] = html;
        m.raw = req.body;
        m.accepted_at = now;
        obs.messages.push_back(std::move(m));
      }
    }
  }
  http::Response r;
  r.status = 202;
  r.set("X-Message-Id", message_id);
  return r;
}

// ---- public interface -----------------------------------------------------

GatewayEmulator::GatewayEmulator() : GatewayEmulator(Options{}) {}

GatewayEmulator::GatewayEmulator(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->start();
}

GatewayEmulator::~GatewayEmulator() {
  impl_->stop();
}

const GatewayEmulator::Options& GatewayEmulator::options() const {
  return impl_->options;
}
uint16_t GatewayEmulator::port() const {
  return impl_->port;
}
std::string GatewayEmulator::webhook_url() const {
  return base_url() + "/hook";
}

std::string GatewayEmulator::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void GatewayEmulator::set_faults(const Faults& faults) {
  std::lock_guard lock(impl_->mu);
  impl_->faults = faults;
}

Faults GatewayEmulator::faults() const {
  std::lock_guard lock(impl_->mu);
  return impl_->faults;
}

void GatewayEmulator::set_down(bool down) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.down = down;
}

void GatewayEmulator::set_rate_limit(int per_second) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.rate_limit_per_s = per_second;
}

void GatewayEmulator::set_p_503(double p) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_503 = p;
}

void GatewayEmulator::set_p_429(double p, int retry_after_s) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_429 = p;
  impl_->faults.retry_after_s = retry_after_s;
}

void GatewayEmulator::set_stall(double p, std::chrono::milliseconds duration) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_stall = p;
  impl_->faults.stall = duration;
}

void GatewayEmulator::set_p_drop(double p) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_drop = p;
}

void GatewayEmulator::set_seed(uint64_t seed) {
  std::lock_guard lock(impl_->mu);
  impl_->fault_rng.seed(seed);
  impl_->id_rng.seed(seed);
}

void GatewayEmulator::set_twilio_error(const std::string& to, int code) {
  if (!twilio_recipient_error(code, to, "")) {
    throw std::invalid_argument("set_twilio_error: unsupported code " + std::to_string(code));
  }
  std::lock_guard lock(impl_->mu);
  impl_->twilio_errors[to] = code;
}

void GatewayEmulator::clear_twilio_errors() {
  std::lock_guard lock(impl_->mu);
  impl_->twilio_errors.clear();
}

Observations GatewayEmulator::observations() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs;
}

std::vector<ReceivedMessage> GatewayEmulator::messages() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.messages;
}

std::size_t GatewayEmulator::message_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.messages.size();
}

std::size_t GatewayEmulator::count(int status) const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.count(status);
}

std::size_t GatewayEmulator::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.requests;
}

std::size_t GatewayEmulator::peak_in_flight() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.peak_in_flight;
}

bool GatewayEmulator::wait_for(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_for([n](const Observations& o) { return o.messages.size() >= n; }, timeout);
}

bool GatewayEmulator::wait_for(const std::function<bool(const Observations&)>& pred,
                               std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->changed.wait_for(lock, timeout, [&] { return pred(impl_->obs); });
}

void GatewayEmulator::reset() {
  {
    std::lock_guard lock(impl_->mu);
    const std::size_t in_flight = impl_->obs.in_flight;
    impl_->obs = Observations{};
    impl_->obs.in_flight = in_flight;
    impl_->obs.peak_in_flight = in_flight;
    impl_->window.clear();
  }
  impl_->changed.notify_all();
}

}  // namespace tocsin::test
