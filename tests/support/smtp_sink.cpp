#include "support/smtp_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include "core/signature.h"

namespace tocsin::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<addr>" (and any ESMTP parameters after it) -> "addr".
std::optional<std::string> path_argument(std::string_view arg) {
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  if (arg.empty() || arg.front() != '<') return std::nullopt;
  auto close = arg.find('>');
  if (close == std::string_view::npos) return std::nullopt;
  return std::string(arg.substr(1, close - 1));
}

// Header fields (unfolded) and the body of a message.
void parse_message(SmtpMessage& m) {
  const std::string& d = m.data;
  auto blank = d.find("\r\n\r\n");
  std::string head = blank == std::string::npos ? d : d.substr(0, blank + 2);
  std::string body = blank == std::string::npos ? std::string() : d.substr(blank + 4);
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) m.headers.emplace(lower(name), value);
    name.clear();
    value.clear();
  };
  for (std::size_t start = 0, eol; (eol = head.find("\r\n", start)) != std::string::npos;
       start = eol + 2) {
    std::string line = head.substr(start, eol - start);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      value += line;  // folded: CRLF removed, whitespace kept
      continue;
    }
    flush();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    name = line.substr(0, colon);
    value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  }
  flush();
  m.subject = decode_rfc2047(m.headers["subject"]);
  if (lower(m.headers["content-transfer-encoding"]) == "quoted-printable") {
    body = decode_quoted_printable(body);
  }
  std::string lf;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') continue;
    lf += body[i];
  }
  m.body = std::move(lf);
}

}  // namespace

std::string decode_quoted_printable(std::string_view t) {
  std::string out;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '=') {
      out += t[i];
    } else if (i + 2 < t.size() && t[i + 1] == '\r' && t[i + 2] == '\n') {
      i += 2;  // soft line break
    } else if (i + 2 < t.size() && hex_value(t[i + 1]) >= 0 && hex_value(t[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(t[i + 1]) * 16 + hex_value(t[i + 2]));
      i += 2;
    } else {
      out += t[i];
    }
  }
  return out;
}

std::string decode_rfc2047(std::string_view v) {
  std::string out;
  bool last_was_word = false;
  std::size_t i = 0;
  while (i < v.size()) {
    if (v.substr(i, 2) == "=?") {
      auto q1 = v.find('?', i + 2);
      auto q2 = q1 == std::string_view::npos ? q1 : v.find('?', q1 + 1);
      auto end = q2 == std::string_view::npos ? q2 : v.find("?=", q2 + 1);
      if (end != std::string_view::npos) {
        char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(v[q1 + 1])));
        std::string_view text = v.substr(q2 + 1, end - q2 - 1);
        if (enc == 'B') {
          out += base64_decode(text).value_or("");
        } else {
          for (std::size_t k = 0; k < text.size(); ++k) {
            if (text[k] == '_')
              out += ' ';
            else if (text[k] == '=' && k + 2 < text.size() && hex_value(text[k + 1]) >= 0 &&
                     hex_value(text[k + 2]) >= 0) {
              out += static_cast<char>(hex_value(text[k + 1]) * 16 + hex_value(text[k + 2]));
              k += 2;
            } else
              out += text[k];
          }
        }
        i = end + 2;
        last_was_word = true;
        continue;
      }
    }
    // Whitespace between two encoded words is not part of the text.
    if (last_was_word && (v[i] == ' ' || v[i] == '\t')) {
      auto next = v.find_first_not_of(" \t", i);
      if (next != std::string_view::npos && v.substr(next, 2) == "=?") {
        i = next;
        continue;
      }
    }
    out += v[i++];
    last_was_word = false;
  }
  return out;
}

struct SmtpSink::Impl {
  struct Conn {
    int fd = -1;
    std::thread thread;
  };

  explicit Impl(Options o) : options(std::move(o)), rng(options.seed) {}

  Options options;
  mutable std::mutex mu;
  std::condition_variable changed;
  bool stopping = false;
  SmtpFaults faults;
  std::set<std::string> rejected;  // lower-case addresses
  SmtpObservations obs;
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> uniform{0.0, 1.0};

  int listen_fd = -1;
  uint16_t port = 0;
  std::thread accept_thread;
  std::list<Conn> conns;  // guarded by mu

  void start() {
    listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
    int one = 1;
    ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd, 128) != 0 ||
        ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      int e = errno;
      ::close(listen_fd);
      throw std::system_error(e, std::generic_category(), "bind");
    }
    port = ntohs(addr.sin_port);
    accept_thread = std::thread([this] { accept_loop(); });
  }

  void stop() {
    std::list<Conn> to_join;
    {
      std::lock_guard lock(mu);
      stopping = true;
      // Wakes accept() and every blocked recv().
      ::shutdown(listen_fd, SHUT_RDWR);
      for (auto& c : conns) ::shutdown(c.fd, SHUT_RDWR);
    }
    changed.notify_all();
    if (accept_thread.joinable()) accept_thread.join();
    {
      std::lock_guard lock(mu);
      to_join.splice(to_join.end(), conns);
    }
    for (auto& c : to_join) {
      if (c.thread.joinable()) c.thread.join();
      ::close(c.fd);
    }
    ::close(listen_fd);
  }

  void accept_loop() {
    for (;;) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      std::lock_guard lock(mu);
      if (stopping) {
        if (fd >= 0) ::close(fd);
        return;
      }
      if (fd < 0) continue;
      ++obs.connections;
      auto& c = conns.emplace_back();
      c.fd = fd;
      c.thread = std::thread([this, fd] { serve(fd); });
    }
  }

  // One connection's session. Lines end in CRLF; a read error or EOF ends it.
  void serve(int fd) {
    std::string in;
    auto read_line = [&]() -> std::optional<std::string> {
      for (;;) {
        if (auto eol = in.find("\r\n"); eol != std::string::npos) {
          std::string line = in.substr(0, eol);
          in.erase(0, eol + 2);
          return line;
        }
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return std::nullopt;
        in.append(buf, static_cast<std::size_t>(n));
      }
    };
    auto reply = [&](int code, const std::string& text) {
      std::string line = std::to_string(code) + " " + text + "\r\n";
      {
        std::lock_guard lock(mu);
        ++obs.replies[code];
      }
      changed.notify_all();
      return ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) ==
             static_cast<ssize_t>(line.size());
    };
    auto send_raw = [&](const std::string& text) {
      return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
             static_cast<ssize_t>(text.size());
    };

    const bool auth_required = !options.username.empty();
    std::string auth_user;
    bool greeted = false;
    std::optional<std::string> mail_from;
    std::vector<std::string> rcpts;
    auto reset_transaction = [&] {
      mail_from.reset();
      rcpts.clear();
    };
    auto check_credentials = [&](const std::string& user, const std::string& password) {
      if (user == options.username && password == options.password) {
        auth_user = user;
        return reply(235, "2.7.0 Authentication successful");
      }
      return reply(535, "5.7.8 Authentication credentials invalid");
    };

    if (!reply(220, "127.0.0.1 tocsin-smtp-sink ESMTP")) return;
    while (auto line = read_line()) {
      const std::string& cmd = *line;
      if (starts_with_ci(cmd, "EHLO ") || starts_with_ci(cmd, "EHLO")) {
        greeted = true;
        reset_transaction();
        std::string ehlo = "250-127.0.0.1\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n";
        if (auth_required) ehlo += "250-AUTH PLAIN LOGIN\r\n";
        ehlo += "250 HELP\r\n";
        {
          std::lock_guard lock(mu);
          ++obs.replies[250];
        }
        if (!send_raw(ehlo)) break;
      } else if (starts_with_ci(cmd, "HELO")) {
        greeted = true;
        reset_transaction();
        if (!reply(250, "127.0.0.1")) break;
      } else if (starts_with_ci(cmd, "AUTH PLAIN")) {
        std::string arg = cmd.size() > 11 ? cmd.substr(11) : std::string();
        if (arg.empty()) {
          if (!send_raw("334 \r\n")) break;
          auto resp = read_line();
          if (!resp) break;
          arg = *resp;
        }
        // authzid NUL authcid NUL password
        std::string plain = base64_decode(arg).value_or("");
        auto n1 = plain.find('\0');
        auto n2 = n1 == std::string::npos ? n1 : plain.find('\0', n1 + 1);
        if (n2 == std::string::npos) {
          if (!reply(501, "5.5.2 Cannot decode response")) break;
          continue;
        }
        if (!check_credentials(plain.substr(n1 + 1, n2 - n1 - 1), plain.substr(n2 + 1))) break;
      } else if (starts_with_ci(cmd, "AUTH LOGIN")) {
        std::string user;
        if (cmd.size() > 11) {
          user = base64_decode(cmd.substr(11)).value_or("");
        } else {
          if (!send_raw("334 VXNlcm5hbWU6\r\n")) break;  // "Username:"
          auto u = read_line();
          if (!u) break;
          user = base64_decode(*u).value_or("");
        }
        if (!send_raw("334 UGFzc3dvcmQ6\r\n")) break;  // "Password:"
        auto p = read_line();
        if (!p) break;
        if (!check_credentials(user, base64_decode(*p).value_or(""))) break;
      } else if (starts_with_ci(cmd, "AUTH")) {
        if (!reply(504, "5.5.4 Unrecognized authentication type")) break;
      } else if (starts_with_ci(cmd, "MAIL FROM:")) {
        if (!greeted) {
          if (!reply(503, "5.5.1 EHLO/HELO first")) break;
        } else if (auth_required && auth_user.empty()) {
          if (!reply(530, "5.7.0 Authentication required")) break;
        } else if (auto addr = path_argument(std::string_view(cmd).substr(10))) {
          reset_transaction();  // a new MAIL starts over, as after RSET
          mail_from = *addr;
          if (!reply(250, "2.1.0 Ok")) break;
        } else if (!reply(501, "5.1.7 Bad sender address syntax")) {
          break;
        }
      } else if (starts_with_ci(cmd, "RCPT TO:")) {
        auto addr = path_argument(std::string_view(cmd).substr(8));
        bool rejected_rcpt = false;
        if (addr) {
          std::lock_guard lock(mu);
          rejected_rcpt = rejected.count(lower(*addr)) > 0;
        }
        if (!mail_from) {
          if (!reply(503, "5.5.1 Need MAIL before RCPT")) break;
        } else if (!addr) {
          if (!reply(501, "5.1.3 Bad recipient address syntax")) break;
        } else if (rejected_rcpt) {
          if (!reply(550, "5.1.1 <" + *addr + ">: Recipient address rejected: User unknown")) break;
        } else {
          rcpts.push_back(*addr);
          if (!reply(250, "2.1.5 Ok")) break;
        }
      } else if (starts_with_ci(cmd, "DATA")) {
        if (!mail_from || rcpts.empty()) {
          if (!reply(503, "5.5.1 Need RCPT before DATA")) break;
          continue;
        }
        if (!reply(354, "End data with <CR><LF>.<CR><LF>")) break;
        std::string data;
        bool complete = false;
        while (auto l = read_line()) {
          if (*l == ".") {
            complete = true;
            break;
          }
          // Dot-unstuffing (RFC 5321 4.5.2).
          data += (!l->empty() && (*l)[0] == '.') ? l->substr(1) : *l;
          data += "\r\n";
        }
        if (!complete) break;
        if (!finish_data(*mail_from, rcpts, std::move(data), auth_user, reply)) break;
        reset_transaction();
      } else if (starts_with_ci(cmd, "RSET")) {
        reset_transaction();
        if (!reply(250, "2.0.0 Ok")) break;
      } else if (starts_with_ci(cmd, "NOOP")) {
        if (!reply(250, "2.0.0 Ok")) break;
      } else if (starts_with_ci(cmd, "QUIT")) {
        reply(221, "2.0.0 Bye");
        break;
      } else if (!reply(502, "5.5.2 Command not recognized")) {
        break;
      }
    }
    ::shutdown(fd, SHUT_RDWR);
  }

  // The answer to the data's final ".": faults first, then acceptance.
  // Returns false when the connection is to be closed.
  template <typename Reply>
  bool finish_data(const std::string& from, const std::vector<std::string>& rcpts, std::string data,
                   const std::string& auth_user, Reply& reply) {
    bool drop, stall, temp;
    std::chrono::milliseconds stall_for;
    {
      std::lock_guard lock(mu);
      // Always draw all three, so each message consumes the same randomness.
      double d = uniform(rng), s = uniform(rng), t = uniform(rng);
      drop = d < faults.p_drop;
      stall = s < faults.p_stall;
      temp = t < faults.p_451;
      stall_for = faults.stall;
    }
    if (drop) {
      {
        std::lock_guard lock(mu);
        ++obs.dropped;
      }
      changed.notify_all();
      return false;
    }
    if (stall) {
      std::unique_lock lock(mu);
      changed.wait_for(lock, stall_for, [this] { return stopping; });
      if (stopping) return false;
    }
    if (temp) return reply(451, "4.3.0 Temporary failure, try again later");
    SmtpMessage m;
    m.from = from;
    m.rcpts = rcpts;
    m.data = std::move(data);
    m.auth_user = auth_user;
    parse_message(m);
    m.accepted_at = Clock::now();
    {
      std::lock_guard lock(mu);
      obs.messages.push_back(std::move(m));
    }
    return reply(250, "2.0.0 Ok: queued");
  }
};

SmtpSink::SmtpSink() : SmtpSink(Options{}) {}

SmtpSink::SmtpSink(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->start();
}

SmtpSink::~SmtpSink() {
  impl_->stop();
}

uint16_t SmtpSink::port() const {
  return impl_->port;
}

std::string SmtpSink::url() const {
  return "smtp://127.0.0.1:" + std::to_string(impl_->port);
}

void SmtpSink::set_faults(const SmtpFaults& faults) {
  std::lock_guard lock(impl_->mu);
  impl_->faults = faults;
}

void SmtpSink::set_p_451(double p) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_451 = p;
}

void SmtpSink::set_stall(double p, std::chrono::milliseconds duration) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_stall = p;
  impl_->faults.stall = duration;
}

void SmtpSink::set_p_drop(double p) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.p_drop = p;
}

void SmtpSink::reject_recipient(const std::string& address) {
  std::lock_guard lock(impl_->mu);
  impl_->rejected.insert(lower(address));
}

SmtpObservations SmtpSink::observations() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs;
}

std::vector<SmtpMessage> SmtpSink::messages() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.messages;
}

std::size_t SmtpSink::message_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.messages.size();
}

std::size_t SmtpSink::count(int code) const {
  std::lock_guard lock(impl_->mu);
  return impl_->obs.count(code);
}

bool SmtpSink::wait_for(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_for([n](const SmtpObservations& o) { return o.messages.size() >= n; }, timeout);
}

bool SmtpSink::wait_for(const std::function<bool(const SmtpObservations&)>& pred,
                        std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->changed.wait_for(lock, timeout, [&] { return pred(impl_->obs); });
}

void SmtpSink::reset() {
  std::lock_guard lock(impl_->mu);
  impl_->obs = SmtpObservations{};
}

}  // namespace tocsin::test
