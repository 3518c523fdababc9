// SmtpSink: a small SMTP server (RFC 5321) on loopback for end-to-end tests
// of the smtp gateway. It speaks EHLO/HELO, AUTH PLAIN and AUTH LOGIN (when
// a username is configured), MAIL FROM, RCPT TO, DATA (with dot-unstuffing),
// RSET, NOOP and QUIT, and records each accepted message. No TLS: STARTTLS is
// not offered, so only the plain path can be tested against it.
//
// Order of checks for a message: a recipient in the rejected set gets 550 at
// RCPT TO; after the data's final ".", drop, then stall, then 451 are drawn
// from the seeded PRNG (each draw made for every message, so a sequential
// test is reproducible); otherwise 250 and the message is recorded.
//
// Threads: one acceptor thread, one thread per connection. All setters and
// observers may be called from any thread while it runs; one mutex (inside
// Impl) guards faults, observations and the PRNG.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tocsin::test {

struct SmtpMessage {
  std::string from;                            // MAIL FROM address, without brackets
  std::vector<std::string> rcpts;              // accepted RCPT TO addresses, without brackets
  std::string data;                            // DATA as received, dot-unstuffed, CRLF line endings
  std::map<std::string, std::string> headers;  // by lower-case name, unfolded, first wins
  std::string subject;                         // Subject, RFC 2047 words decoded
  std::string body;       // after the blank line, transfer encoding undone, LF endings
  std::string auth_user;  // who authenticated on the connection ("" = nobody)
  std::chrono::steady_clock::time_point accepted_at;
};

struct SmtpFaults {
  double p_451 = 0;    // answer the data's final "." with 451 (message not kept)
  double p_stall = 0;  // wait `stall` before answering the data's final "."
  std::chrono::milliseconds stall{0};
  double p_drop = 0;  // close the connection instead of answering the final "."
};

// What the sink has seen since start or reset().
struct SmtpObservations {
  std::vector<SmtpMessage> messages;   // in acceptance order
  std::map<int, std::size_t> replies;  // replies sent, by code (220, 250, 451, ...)
  std::size_t connections = 0;
  std::size_t dropped = 0;  // connections closed by p_drop

  std::size_t count(int code) const {
    auto it = replies.find(code);
    return it == replies.end() ? 0 : it->second;
  }
};

class SmtpSink {
 public:
  struct Options {
    std::string username;  // "" = AUTH not offered nor required
    std::string password;
    uint64_t seed = 42;
  };

  // Binds 127.0.0.1 on an ephemeral port and starts serving at once.
  // Throws std::system_error when it cannot bind.
  SmtpSink();
  explicit SmtpSink(Options options);
  // Stops promptly: closes the listener and every connection, wakes stalls,
  // joins all threads.
  ~SmtpSink();
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  uint16_t port() const;
  // "smtp://127.0.0.1:PORT": the url of an smtp gateway.
  std::string url() const;

  // Faults; each takes effect for the next message.
  void set_faults(const SmtpFaults& faults);
  void set_p_451(double p);
  void set_stall(double p, std::chrono::milliseconds duration);
  void set_p_drop(double p);
  // RCPT TO this address (exact, case-insensitive) answers
  // "550 5.1.1 User unknown".
  void reject_recipient(const std::string& address);

  SmtpObservations observations() const;
  std::vector<SmtpMessage> messages() const;
  std::size_t message_count() const;
  std::size_t count(int code) const;  // replies sent with this code
  // Blocks until at least `n` messages were accepted, or `timeout` passes.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout);
  // Blocks until `pred` holds (re-evaluated after every change, under the
  // sink's lock; it must not call back into the sink) or `timeout` passes.
  bool wait_for(const std::function<bool(const SmtpObservations&)>& pred,
                std::chrono::milliseconds timeout);
  // Forgets all observations. Faults and rejected recipients stay.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decodes RFC 2047 encoded words (B and Q, any charset copied as bytes) in
// a header value; other text is kept, whitespace between words dropped.
std::string decode_rfc2047(std::string_view value);
// Decodes quoted-printable (soft breaks, =XX).
std::string decode_quoted_printable(std::string_view text);

}  // namespace tocsin::test
