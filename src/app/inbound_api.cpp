// Twilio's callbacks to tocsin: inbound SMS (STOP, START, HELP, replies
// that acknowledge an alert, and the join flow of reach_api.cpp) and message
// status receipts, each verified by X-Twilio-Signature and applied once.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "app/api.h"
#include "app/api_common.h"
#include "core/form.h"
#include "core/inbound.h"
#include "core/join.h"
#include "core/phone.h"
#include "core/signature.h"

namespace tocsin::app {

using nlohmann::json;
using namespace api;

bool Api::twilio_verified(const http::Request& req, const ActiveConfig& cfg,
                          const FormFields& fields, Respond& respond) {
  const Config& c = cfg.config;
  // Twilio signs the URL it called: ours as the outside world sees it.
  if (c.server.public_url.empty()) {
    spdlog::error("Twilio callback refused: server.public_url is not configured, so its "
                  "signature cannot be checked");
    respond(problem(Problem{.status = 403, .type = "forbidden", .title = "Forbidden",
                            .detail = "Twilio callbacks need server.public_url"}));
    return false;
  }
  std::string url = c.server.public_url + std::string(req.target);
  auto offered = req.header("x-twilio-signature");
  bool valid = false;
  for (const auto& g : c.gateways)
    if ((g.type == GatewayType::kTwilio || g.type == GatewayType::kTwilioVoice) &&
        !g.auth_token.empty())
      valid = constant_time_equal(offered, twilio_signature(g.auth_token, url, fields)) || valid;
  if (!valid) {
    // No log line: anyone can send these (see Api::Hooks::refused).
    respond(problem(Problem{.status = 403, .type = "bad-signature", .title = "Bad signature",
                            .detail = "X-Twilio-Signature does not verify",
                            .field = "X-Twilio-Signature"}));
  }
  return valid;
}

void Api::receipt_twilio(http::Request& req, Respond respond) {
  twilio_status(req, std::move(respond), "MessageSid", "MessageStatus", [](std::string_view status) {
    std::optional<DeliveryState> target;
    if (status == "delivered" || status == "read") target = DeliveryState::kDelivered;
    else if (status == "undelivered" || status == "failed") target = DeliveryState::kUndelivered;
    return target;
  });
}

void Api::twilio_status(http::Request& req, Respond respond, std::string_view sid_field,
                        std::string_view status_field,
                        std::optional<DeliveryState> (*target_of)(std::string_view)) {
  auto cfg = config_();
  FormFields fields = parse_form(req.body);
  if (!twilio_verified(req, *cfg, fields, respond)) return;
  respond = trusted(std::move(respond));
  std::string sid(form_value(fields, sid_field));
  std::string_view status = form_value(fields, status_field);
  std::optional<DeliveryState> target = target_of(status);
  http::Response ok;
  ok.status = 204;
  if (!target || sid.empty()) return respond(std::move(ok));  // queued, sent, ringing: nothing new
  UnixMs now = clock_.now_ms();
  // Each (message, status) once: a replayed receipt changes nothing.
  std::string event = "receipt:" + sid.substr(0, 64) + ":" + std::string(status);
  store_.call<bool>(
      [sid, event, state = *target, now](store::Store& s) {
        return s.first_event("twilio", event, now) && s.apply_receipt(sid, state, now);
      },
      [state = *target, respond = std::move(respond), ok](store::JobResult<bool> changed) {
        if (!changed) return respond(problem(store_failure(changed.failure)));
        if (*changed) spdlog::debug("receipt: a delivery is now {}", to_string(state));
        respond(ok);
      });
}

void Api::inbound_twilio(http::Request& req, Respond respond) {
  auto cfg = config_();
  const Config& c = cfg->config;
  FormFields fields = parse_form(req.body);
  if (!twilio_verified(req, *cfg, fields, respond)) return;
  respond = trusted(std::move(respond));
  auto from = normalize_phone(form_value(fields, "From"), c.subscribers.default_region);
  if (!from) return respond(twiml());
  // Twilio's signature has no timestamp: a captured request verifies for
  // ever. Each MessageSid is applied once (remembered for
  // retention.provider_events_days); one without an id is not applied.
  std::string sid(form_value(fields, "MessageSid").substr(0, 64));
  if (sid.empty()) {
    ignored(Ignored::kNoMessageSid);  // replayable for ever: no line of its own
    return respond(twiml());
  }
  if (inbound_join(cfg, *from, fields, respond)) return;
  inbound_reply(cfg, *from, fields, std::move(respond));
}

void Api::inbound_reply(const std::shared_ptr<const ActiveConfig>& cfg, const std::string& from,
                        const FormFields& fields, Respond respond) {
  const Config& c = cfg->config;
  std::string sid(form_value(fields, "MessageSid").substr(0, 64));
  InboundIntent intent = classify_sms_reply(form_value(fields, "Body"));
  UnixMs now = clock_.now_ms();
  UnixMs since = now - c.dedup.window_s * 1000;
  struct Outcome {
    std::size_t subscribers = 0;
    int64_t cancelled = 0;
    std::vector<std::string> acked;  // incident codes
    std::string language = "en";
    SafetySteps covered;  // "covered" sent because of this reply
    bool replayed = false;  // this MessageSid was applied before
    bool help_stranger = false;  // answer a HELP from a number with no subscriber
  };
  const bool may_answer = may_text_back(from);
  store_.call<Outcome>(
      [cfg, from, sid, intent, now, since, may_answer](store::Store& s) {
        Outcome o;
        if (!s.first_event("twilio", "sms:" + sid, now)) {
          o.replayed = true;
          return o;
        }
        // STOP also ends a join request the number has not confirmed.
        if (intent.action == InboundAction::kOptOut) s.close_join_requests(from);
        auto ids = s.subscribers_by_phone(from);
        o.subscribers = ids.size();
        // A stranger's HELP is answered like a join prompt, under the same
        // limits (it costs an SMS too: SMS pumping), and counts toward them
        // as a closed request (no group: nothing to confirm).
        if (ids.empty() && intent.action == InboundAction::kHelp && may_answer) {
          const JoinConfig& limits = cfg->config.join;
          if (s.join_prompts_since(from, now - 86'400'000) < limits.max_prompts_per_number &&
              s.all_join_prompts_since(now - 3'600'000) < limits.max_prompts_per_hour) {
            s.insert_join_request(from, {"", "en", "", "", now});
            o.help_stranger = true;
          }
        }
        for (int64_t id : ids) {
          if (auto sub = s.subscriber(id)) o.language = sub->language;
          switch (intent.action) {
            case InboundAction::kOptOut:
              o.cancelled += s.set_sms_opt_out(id, true, now);
              break;
            case InboundAction::kOptIn:
              s.set_sms_opt_out(id, false, now);
              break;
            case InboundAction::kHelp:
              break;
            case InboundAction::kAcknowledge:
              if (auto inc = s.last_sms_incident(id, since)) {
                if (s.insert_ack({*inc, id, intent.ack_kind, now})) {
                  o.acked.push_back(*inc);
                  if (intent.ack_kind == "responding")
                    o.covered += check_covered(s, cfg->config, cfg->templates, *inc, now);
                }
              }
              break;
          }
        }
        return o;
      },
      [this, cfg, intent, respond = std::move(respond)](store::JobResult<Outcome> o) {
        if (!o) return respond(problem(store_failure(o.failure)));
        if (o->replayed) {
          // Anyone holding one captured signed request can replay it at
          // full speed: counted in the periodic summary, not a line each.
          ignored(Ignored::kAlreadyApplied);
          return respond(twiml());
        }
        if (!o->acked.empty()) count_safety(o->acked.front(), o->covered);
        if (o->covered.recipients > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        if (o->help_stranger) {
          spdlog::info("inbound SMS: HELP from a number with no subscriber: answered");
          const std::string lang = first_join_language(cfg->config.groups);
          return respond(
              twiml(help_text(cfg->templates, lang) + join_how(lang, cfg->config.groups)));
        }
        if (o->subscribers == 0) {
          spdlog::info("inbound SMS from a number with no subscriber: ignored");
          return respond(twiml());
        }
        switch (intent.action) {
          case InboundAction::kOptOut:
            spdlog::info("inbound SMS: opt-out for {} subscriber(s); {} pending SMS cancelled",
                         o->subscribers, o->cancelled);
            return respond(twiml());
          case InboundAction::kOptIn:
            spdlog::info("inbound SMS: opt-in for {} subscriber(s)", o->subscribers);
            return respond(twiml());
          case InboundAction::kHelp:
            return respond(twiml(help_text(cfg->templates, o->language)));
          case InboundAction::kAcknowledge:
            for (const auto& inc : o->acked)
              spdlog::info("inbound SMS: acknowledgement ({}) on incident {}", intent.ack_kind, inc);
            return respond(twiml());
        }
        respond(twiml());
      });
}


}  // namespace tocsin::app
