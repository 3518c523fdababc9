// The HTTP side of reaching people beyond admin-added SMS and email: the
// email unsubscribe link (GET|POST /u/{token}, RFC 8058), alert calls'
// callbacks (/v1/inbound/twilio/voice/...) and SendGrid's Event Webhook
// (/v1/receipts/sendgrid).
#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "app/api.h"
#include "app/api_common.h"
#include "app/email_events.h"
#include "app/safety.h"
#include "core/form.h"
#include "core/html.h"
#include "core/problem.h"
#include "core/ecdsa.h"
#include "core/join.h"
#include "core/phone.h"
#include "core/unsubscribe.h"
#include "delivery/gateways/providers.h"

namespace tocsin::app {

using namespace api;

namespace {

http::Response html(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.set("Content-Type", "text/html; charset=utf-8");
  // A page of our own text with one form posting back to itself.
  r.set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
  r.set("Referrer-Policy", "no-referrer");
  r.set("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

// RFC 8058: the POST body holds List-Unsubscribe=One-Click, form-urlencoded
// (as Gmail and our page send it) or multipart/form-data (the RFC's example).
bool one_click(const http::Request& req) {
  std::string_view type = req.header("content-type");
  if (type.starts_with("multipart/form-data"))
    return req.body.find("name=\"List-Unsubscribe\"") != std::string::npos &&
           req.body.find("One-Click") != std::string::npos;
  return form_value(parse_form(req.body), "List-Unsubscribe") == "One-Click";
}

}  // namespace

void Api::unsubscribe(http::Request& req, std::string_view token, Respond respond) {
  auto cfg = config_();
  // Authenticated before anything touches the store: a forged or altered
  // token costs one MAC.
  auto target = parse_unsubscribe_token(unsubscribe_key(cfg->config), token);
  if (!target || target->channel != Channel::kEmail)
    return respond(problem(not_found("no such unsubscribe link")));
  const bool post = req.method == "POST";
  if (post && !one_click(req))
    return respond(problem(bad_request("the body must be List-Unsubscribe=One-Click",
                                       "List-Unsubscribe")));
  const std::string action = "/u/" + std::string(token);
  const int64_t id = target->subscriber_id;
  const UnixMs now = clock_.now_ms();
  struct Result {
    std::optional<std::string> language;
    std::optional<int64_t> cancelled;
  };
  store_.call<Result>(
      [id, post, now](store::Store& s) {
        Result r;
        r.language = s.subscriber_language(id);
        if (post && r.language) r.cancelled = s.set_email_opt_out(id, now);
        return r;
      },
      [id, post, action, respond = std::move(respond)](std::optional<Result> r) {
        if (!r) return respond(problem(unavailable()));
        // An erased subscriber's link answers as done: there is nobody to mail.
        std::string language = r->language.value_or("en");
        if (post) {
          if (r->cancelled)
            spdlog::info("unsubscribe: subscriber {} opted out of email ({} pending cancelled)", id,
                         *r->cancelled);
          return respond(html(200, unsubscribe_page(language, action, true)));
        }
        respond(html(200, unsubscribe_page(language, action, !r->language)));
      });
}

namespace {

http::Response twiml_say(std::string_view language, std::string_view text) {
  http::Response r;
  r.status = 200;
  r.set("Content-Type", "text/xml");
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>";
  if (!text.empty())
    r.body += "<Say language=\"" + xml_escape(delivery::voice_language(language)) +
              "\">" + xml_escape(text) + "</Say>";
  r.body += "</Response>";
  return r;
}

std::optional<int64_t> query_id(std::string_view query, std::string_view name) {
  for (const auto& [k, v] : parse_form(query))
    if (k == name) return parse_id(v);
  return std::nullopt;
}

}  // namespace

void Api::voice_gather(http::Request& req, Respond respond) {
  auto cfg = config_();
  FormFields fields = parse_form(req.body);
  if (!twilio_verified(req, *cfg, fields, respond)) return;
  auto delivery = query_id(req.query(), "d");
  std::string call(form_value(fields, "CallSid"));
  const bool responding = form_value(fields, "Digits") == "1";
  if (!delivery || call.empty() || !responding) return respond(twiml_say("en", ""));
  const UnixMs now = clock_.now_ms();
  struct Result {
    bool counted = false;
    std::string incident, language = "en";
    SafetySteps covered;  // "covered" sent because of this answer
  };
  store_.call<Result>(
      [cfg, id = *delivery, call, now](store::Store& s) {
        Result r;
        auto t = s.delivery_target(id);
        if (!t || t->channel != Channel::kVoice) return r;
        r.language = t->language;
        // One acknowledgement per call, however often Twilio (or a replay)
        // posts its Gather.
        if (!s.first_event("twilio-voice-gather", call, now)) return r;
        r.counted = s.insert_ack({t->incident_id, t->subscriber_id, "responding", now});
        r.incident = t->incident_id;
        // Pressing 1 is a responding reply as much as an SMS "1" is: it
        // counts toward a group's enough_responding.
        if (r.counted) r.covered = check_covered(s, cfg->config, cfg->templates, r.incident, now);
        return r;
      },
      [this, respond = std::move(respond)](std::optional<Result> r) {
        if (!r) return respond(problem(unavailable()));
        if (r->counted) {
          spdlog::info("inbound call: acknowledgement (responding) on incident {}", r->incident);
          count_safety(r->incident, r->covered);
          if (r->covered.recipients > 0 && hooks_.deliveries_planned) hooks_.deliveries_planned();
        }
        bool es = r->language.starts_with("es");
        respond(twiml_say(r->language, es ? "Gracias." : "Thank you."));
      });
}

void Api::voice_status(http::Request& req, Respond respond) {
  twilio_status(req, std::move(respond), "CallSid", "CallStatus", [](std::string_view status) {
    std::optional<DeliveryState> target;
    if (status == "completed") target = DeliveryState::kDelivered;
    else if (status == "no-answer" || status == "busy" || status == "failed" || status == "canceled")
      target = DeliveryState::kUndelivered;
    return target;  // queued, ringing, in-progress: nothing new
  });
}

// Anyone can post here, so a refusal writes no log line of its own: it is
// counted (tocsin_http_refused_total{route="/v1/receipts/sendgrid"}) and in
// the periodic refusal summary (Api::Hooks::refused). The cheap checks come
// first, so a flood without a fresh timestamp costs no ECDSA verification;
// a missing event_webhook_public_key is a config warning at load, not a line
// per request.
void Api::receipt_sendgrid(http::Request& req, Respond respond) {
  auto cfg = config_();
  constexpr std::string_view kSignature = "X-Twilio-Email-Event-Webhook-Signature";
  constexpr std::string_view kTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp";
  std::string_view signature = req.header("x-twilio-email-event-webhook-signature");
  std::string_view timestamp = req.header("x-twilio-email-event-webhook-timestamp");
  auto refuse = [&](int status, std::string_view field, std::string detail) {
    respond(problem(Problem{.status = status,
                            .type = status == 413 ? "too-large" : "bad-signature",
                            .title = status == 413 ? "Body too large" : "Bad signature",
                            .detail = std::move(detail),
                            .field = std::string(field)}));
  };
  switch (precheck_event_webhook(signature, timestamp, req.body.size(), clock_.now_ms() / 1000)) {
    case EventWebhookPrecheck::kOk:
      break;
    case EventWebhookPrecheck::kMissingHeaders:
      return refuse(403, signature.empty() ? kSignature : kTimestamp, "is missing");
    case EventWebhookPrecheck::kBadTimestamp:
      return refuse(403, kTimestamp, "must be Unix seconds");
    case EventWebhookPrecheck::kStale:
      return refuse(403, kTimestamp, "is more than 10 minutes from now");
    case EventWebhookPrecheck::kTooLarge:
      return refuse(413, "body", "is larger than SendGrid's event batches");
  }
  bool keyed = false, valid = false;
  const std::string message = std::string(timestamp) + req.body;
  for (const auto& g : cfg->config.gateways)
    if (g.type == GatewayType::kSendgrid && !g.event_webhook_public_key.empty()) {
      keyed = true;
      valid = valid || verify_ecdsa_p256(g.event_webhook_public_key, message, signature);
    }
  if (!valid)
    return refuse(403, kSignature,
                  keyed ? "does not verify"
                        : "cannot verify: no sendgrid gateway has an event_webhook_public_key");
  // Signed by SendGrid from here on: strict like every other body, so a
  // duplicate key is refused rather than read as its last value.
  if (auto p = require_json(req)) return respond(problem(*p));
  auto parsed = parse_email_events(req.body);
  if (auto* bad = std::get_if<MalformedBody>(&parsed))
    return respond(problem(bad_request(bad->detail, bad->field)));
  auto events =
      std::make_shared<std::vector<EmailEvent>>(std::move(std::get<std::vector<EmailEvent>>(parsed)));
  const UnixMs now = clock_.now_ms();
  struct Result {
    int64_t applied = 0, repeats = 0, opted_out = 0;
  };
  store_.call<Result>(
      [events, now](store::Store& s) {
        Result r;
        for (const auto& e : *events) {
          if (!s.first_event("sendgrid", e.event_id, now)) {
            ++r.repeats;
            continue;
          }
          ++r.applied;
          auto t = s.delivery_target(e.delivery_id);
          if (!t || t->channel != Channel::kEmail) continue;
          if (e.state) s.apply_receipt_to(e.delivery_id, *e.state, now);
          if (!e.note.empty()) s.note_receipt_to(e.delivery_id, e.note, now);
          if (e.opt_out && t->subscriber_id && s.set_email_opt_out(t->subscriber_id, now))
            ++r.opted_out;
        }
        return r;
      },
      [this, respond = std::move(respond)](std::optional<Result> r) {
        if (!r) return respond(problem(unavailable()));
        // A body whose events were all applied before is a replay (its
        // signature verifies for 10 minutes) or SendGrid's retry: counted,
        // and in the periodic summary, not a line each.
        if (r->applied)
          spdlog::info("SendGrid events: {} applied, {} repeats ignored, {} email opt-outs",
                       r->applied, r->repeats, r->opted_out);
        else if (r->repeats)
          ignored(Ignored::kAlreadyApplied);
        http::Response ok;
        ok.status = 200;
        respond(std::move(ok));
      });
}

bool Api::inbound_join(const std::shared_ptr<const ActiveConfig>& cfg, const std::string& from,
                       const FormFields& fields, Respond& respond) {
  const Config& c = cfg->config;
  JoinIntent intent = classify_join(form_value(fields, "Body"), c.groups);
  if (intent.action == JoinAction::kNone) return false;
  // Prompts are the one unsolicited text tocsin sends: never to a number
  // that cannot be a phone in someone's hand (SMS pumping runs on premium
  // and VoIP ranges). Such a keyword text gets no answer at all.
  if (intent.action == JoinAction::kJoin && !may_text_back(from)) {
    ignored(Ignored::kJoinNotMobile);  // a signed text replays for ever: no line of its own
    respond(twiml());
    return true;
  }
  std::string sid(form_value(fields, "MessageSid"));
  const UnixMs now = clock_.now_ms();
  const JoinConfig limits = c.join;
  const std::string group = intent.group ? intent.group->name : "";
  enum class Did {
    kNothing,
    kReplayed,
    kPrompted,
    kLimited,
    kMember,
    kConfirmed,
    kLeft,
    kNotJoining
  };
  struct Result {
    Did did = Did::kNothing;
    std::string language, keyword;
    int64_t subscriber = 0;
  };
  store_.call<Result>(
      [intent, group, from, sid, now, limits](store::Store& s) {
        Result r;
        r.language = intent.language;
        r.keyword = intent.keyword;
        // A replayed callback (same MessageSid) is applied once; a YES with
        // no request pending is an ordinary reply and is not recorded here.
        std::optional<store::JoinRequest> pending;
        if (intent.action == JoinAction::kConfirm) {
          pending = s.pending_join(from, now - limits.confirm_window_s * 1000);
          if (!pending) {
            r.did = Did::kNotJoining;  // e.g. "yes" to an alert
            return r;
          }
        }
        if (!sid.empty() && !s.first_event("twilio-join", sid, now)) {
          r.did = Did::kReplayed;
          return r;
        }
        auto ids = s.subscribers_by_phone(from);
        switch (intent.action) {
          case JoinAction::kNone: break;
          case JoinAction::kJoin: {
            for (int64_t id : ids)
              if (auto sub = s.subscriber(id); sub && !sub->sms_opted_out &&
                  std::find(sub->groups.begin(), sub->groups.end(), group) != sub->groups.end()) {
                r.did = Did::kMember;
                return r;
              }
            if (s.join_prompts_since(from, now - 86'400'000) >= limits.max_prompts_per_number ||
                s.all_join_prompts_since(now - 3'600'000) >= limits.max_prompts_per_hour) {
              r.did = Did::kLimited;
              return r;
            }
            s.insert_join_request(from, {group, intent.language, intent.keyword, sid, now});
            r.did = Did::kPrompted;
            return r;
          }
          case JoinAction::kConfirm: {
            r.keyword = pending->keyword;
            int64_t id = ids.empty() ? 0 : ids.front();
            if (auto sub = id ? s.subscriber(id) : std::nullopt) {
              if (std::find(sub->groups.begin(), sub->groups.end(), pending->group) ==
                  sub->groups.end())
                sub->groups.push_back(pending->group);
              if (std::find(sub->channels.begin(), sub->channels.end(), Channel::kSms) ==
                  sub->channels.end())
                sub->channels.push_back(Channel::kSms);
              s.update_subscriber(*sub);
              s.set_sms_opt_out(id, false, now);  // confirming is asking for texts
            } else {
              store::Subscriber fresh;
              fresh.phone = from;
              fresh.language = intent.language;
              fresh.groups = {pending->group};
              fresh.channels = {Channel::kSms};
              id = s.insert_subscriber(fresh, now);
            }
            s.insert_consent({id, pending->group, pending->keyword, pending->provider_message_id, sid,
                              pending->created_at, now});
            s.close_join_requests(from);
            r.did = Did::kConfirmed;
            r.subscriber = id;
            return r;
          }
          case JoinAction::kLeave:
            for (int64_t id : ids)
              if (s.leave_group(id, group)) r.did = Did::kLeft;
            if (!ids.empty())
              if (auto lang = s.subscriber_language(ids.front())) r.language = *lang;
            return r;
        }
        return r;
      },
      [this, cfg, from, fields, respond](std::optional<Result> r) mutable {
        if (!r) return respond(problem(unavailable()));
        switch (r->did) {
          case Did::kPrompted:
            spdlog::info("join: confirmation prompt for keyword {}", r->keyword);
            return respond(twiml(join_prompt(r->language, r->keyword)));
          case Did::kLimited:
            // The limit holds off a pumping flood: a line per text would
            // let the same flood fill the log.
            ignored(Ignored::kJoinLimit);
            return respond(twiml());
          case Did::kConfirmed:
            spdlog::info("join: subscriber {} joined by text (keyword {})", r->subscriber, r->keyword);
            return respond(twiml(join_confirmed(r->language, r->keyword)));
          case Did::kLeft:
            spdlog::info("join: a subscriber left the group of keyword {} by text", r->keyword);
            return respond(twiml(join_left(r->language, r->keyword)));
          case Did::kNotJoining:
            return inbound_reply(cfg, from, fields, std::move(respond));
          case Did::kReplayed:  // this MessageSid was applied before
            ignored(Ignored::kAlreadyApplied);
            return respond(twiml());
          case Did::kMember:
          case Did::kNothing:
            return respond(twiml());
        }
      });
  return true;
}

}  // namespace tocsin::app
