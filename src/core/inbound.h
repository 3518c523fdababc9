// What a subscriber's text message to the alert number means. Pure.
#pragma once

#include <string>
#include <string_view>

namespace tocsin {

enum class InboundAction {
  kOptOut,       // STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT (any case)
  kOptIn,        // START, UNSTOP
  kHelp,         // HELP, INFO
  kAcknowledge,  // anything else: a reply to the latest alert
};

struct InboundIntent {
  InboundAction action = InboundAction::kAcknowledge;
  // For acknowledgements: "responding" ("1", "yes", "sí", "on my way", ...)
  // or "reply" (anything else; its text is not kept).
  std::string ack_kind;
};

// Keywords match the whole message, ignoring case, surrounding spaces and
// trailing punctuation, as carriers and Twilio match them: "stop" opts out,
// "please don't stop" is a reply.
InboundIntent classify_sms_reply(std::string_view body);

}  // namespace tocsin
