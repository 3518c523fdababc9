#include "delivery/gateways/gateways.h"

#include <boost/asio/post.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/report.h"
#include "core/sms.h"
#include "core/unsubscribe.h"
#include "delivery/gateways/providers.h"

namespace tocsin::delivery {
namespace {

class HttpGateway : public Gateway {
 public:
  HttpGateway(GatewayConfig config, GatewayContext ctx)
      : config_(std::move(config)), ctx_(std::move(ctx)) {}
  const std::string& name() const override { return config_.name; }
  Channel channel() const override { return config_.channel; }

 protected:
  // Email: each message's {public_url}/u/TOKEN (RFC 8058), when the
  // daemon has a public URL to put in it.
  void add_unsubscribe_links(std::vector<Outgoing>& batch) const {
    if (ctx_.public_url.empty() || ctx_.unsubscribe_key.empty()) return;
    for (auto& m : batch)
      if (m.subscriber_id)
        m.unsubscribe_url = ctx_.public_url + "/u/" +
                            unsubscribe_token(ctx_.unsubscribe_key, m.subscriber_id, Channel::kEmail);
  }

  GatewayConfig config_;
  GatewayContext ctx_;
};

class TwilioGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  // The segments of a message: every message of a fan-out shares one body,
  // so the last body's count is kept (sms_size walks the text: ~7k
  // instructions per message). A weak_ptr: no body is kept alive for it, and
  // its control block cannot be reused by another body while it is held.
  double cost(const std::vector<Outgoing>& batch) const override {
    const auto& body = batch.front().body;
    bool same = !cost_of_.owner_before(body) && !body.owner_before(cost_of_) && !cost_of_.expired();
    if (!same) {
      cost_ = static_cast<double>(std::max<std::size_t>(1, sms_size(*body).segments));
      cost_of_ = body;
    }
    return cost_;
  }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    std::string callback =
        ctx_.public_url.empty() ? std::string() : ctx_.public_url + "/v1/receipts/twilio";
    auto req = twilio_request(config_, batch.front(), callback, ctx_.clock.now_ms());
    ctx_.http.send(std::move(req), [this, done = std::move(done)](OutboundResponse r) {
      done({twilio_outcome(r, ctx_.clock.now_ms())});
    });
  }

 private:
  mutable std::weak_ptr<const std::string> cost_of_;  // the body cost_ was computed for
  mutable double cost_ = 1;
};

class SendgridGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  std::size_t max_batch() const override { return 1000; }
  // SendGrid limits requests, not recipients.
  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    add_unsubscribe_links(batch);
    auto req = sendgrid_request(config_, batch);
    std::size_t n = batch.size();
    ctx_.http.send(std::move(req), [this, n, done = std::move(done)](OutboundResponse r) {
      done(std::vector<Outcome>(n, sendgrid_outcome(r, ctx_.clock.now_ms())));
    });
  }
};

// One SMTP transaction per recipient (RFC 5321 has no per-recipient text),
// through the same curl multi as the HTTP gateways.
class SmtpGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    add_unsubscribe_links(batch);
    const Outgoing& m = batch.front();
    auto req = smtp_request(config_, m, ctx_.clock.now_ms());
    std::string message_id = smtp_message_id(config_, m);
    ctx_.http.send(std::move(req), [message_id = std::move(message_id),
                                    done = std::move(done)](OutboundResponse r) {
      Outcome o = smtp_outcome(r);
      if (o.kind == OutcomeKind::kAccepted) o.provider_id = message_id;
      done({std::move(o)});
    });
  }
};

// One message per request to signal-cli-rest-api: an unregistered number's
// 400 is about that recipient (failed), not the bridge (no breaker).
class SignalGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    auto req = signal_request(config_, batch.front());
    ctx_.http.send(std::move(req),
                   [done = std::move(done)](OutboundResponse r) { done({signal_outcome(r)}); });
  }
};

// One call per request; Twilio counts calls per second (rate_per_s).
class TwilioVoiceGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    auto req = voice_request(config_, batch.front(), ctx_.public_url);
    ctx_.http.send(std::move(req), [this, done = std::move(done)](OutboundResponse r) {
      done({twilio_outcome(r, ctx_.clock.now_ms())});
    });
  }
};

// A signed JSON POST per message, for bridges to Signal, ntfy, Matrix...
class WebhookGateway final : public HttpGateway {
 public:
  using HttpGateway::HttpGateway;

  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    auto req = webhook_request(config_, batch.front(), ctx_.clock.now_ms() / 1000);
    ctx_.http.send(std::move(req),
                   [done = std::move(done)](OutboundResponse r) { done({webhook_outcome(r)}); });
  }
};

// Appends each message as one JSON line: demos and dry runs without any
// provider account. The file holds recipients' addresses: it is an outbox,
// not a log, and is created readable by its owner only.
class FileGateway final : public Gateway {
 public:
  FileGateway(GatewayConfig config, GatewayContext ctx)
      : config_(std::move(config)), io_(ctx.io), clock_(ctx.clock) {
    auto dir = std::filesystem::path(config_.path).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    file_.reset(std::fopen(config_.path.c_str(), "ae"));
    if (!file_) throw std::runtime_error("cannot open " + config_.path + " for gateway " + config_.name);
    std::filesystem::permissions(config_.path, std::filesystem::perms::owner_read |
                                                   std::filesystem::perms::owner_write, ec);
  }
  const std::string& name() const override { return config_.name; }
  Channel channel() const override { return config_.channel; }
  std::size_t max_batch() const override { return 100; }
  double cost(const std::vector<Outgoing>&) const override { return 1; }

  void send(std::vector<Outgoing> batch, std::function<void(std::vector<Outcome>)> done) override {
    std::vector<Outcome> outcomes;
    std::string now = format_rfc3339(clock_.now_ms());
    for (const auto& m : batch) {
      nlohmann::json line = {{"at", now},
                             {"gateway", config_.name},
                             {"channel", to_string(config_.channel)},
                             {"delivery_id", m.delivery_id},
                             {"incident", m.incident_id},
                             {"to", m.to}};
      if (config_.channel == Channel::kEmail) line["subject"] = m.subject ? *m.subject : "";
      line["body"] = *m.body;
      std::string text = line.dump() + "\n";
      bool ok = std::fwrite(text.data(), 1, text.size(), file_.get()) == text.size();
      outcomes.push_back(ok ? Outcome{.kind = OutcomeKind::kAccepted,
                                      .provider_id = "file-" + std::to_string(m.delivery_id)}
                            : Outcome{.kind = OutcomeKind::kRetry, .error = "file write failed"});
    }
    if (std::fflush(file_.get()) != 0)
      for (auto& o : outcomes) o = Outcome{.kind = OutcomeKind::kRetry, .error = "file write failed"};
    boost::asio::post(io_, [done = std::move(done), outcomes = std::move(outcomes)]() mutable {
      done(std::move(outcomes));
    });
  }

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  GatewayConfig config_;
  boost::asio::io_context& io_;
  const Clock& clock_;
  std::unique_ptr<std::FILE, Closer> file_;
};

}  // namespace

std::unique_ptr<Gateway> make_gateway(const GatewayConfig& config, GatewayContext ctx) {
  switch (config.type) {
    case GatewayType::kTwilio:
      return std::make_unique<TwilioGateway>(config, std::move(ctx));
    case GatewayType::kSendgrid:
      return std::make_unique<SendgridGateway>(config, std::move(ctx));
    case GatewayType::kSmtp:
      return std::make_unique<SmtpGateway>(config, std::move(ctx));
    case GatewayType::kWebhook:
      return std::make_unique<WebhookGateway>(config, std::move(ctx));
    case GatewayType::kFile:
      return std::make_unique<FileGateway>(config, std::move(ctx));
    case GatewayType::kSignal:
      return std::make_unique<SignalGateway>(config, std::move(ctx));
    case GatewayType::kTwilioVoice:
      return std::make_unique<TwilioVoiceGateway>(config, std::move(ctx));
  }
  throw std::runtime_error("unknown gateway type");
}

}  // namespace tocsin::delivery
