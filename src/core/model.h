// The domain vocabulary shared by every layer: channels, CAP-derived report
// enums, delivery states. Plain values with string forms for JSON and SQL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tocsin {

// Milliseconds since the Unix epoch: the one time unit stored and compared.
using UnixMs = int64_t;

// Enums stored in the database carry explicit numbers: SQL compares them
// (`state = 0`, indexes `WHERE state = 0`), so a value never changes meaning.
// sms, signal and voice reach a subscriber's phone number; email their address.
enum class Channel { kSms = 0, kEmail = 1, kSignal = 2, kVoice = 3 };
inline constexpr Channel kAllChannels[] = {Channel::kSms, Channel::kEmail, Channel::kSignal,
                                           Channel::kVoice};
// Whether the channel's address is the subscriber's phone number.
constexpr bool uses_phone(Channel c) { return c != Channel::kEmail; }

enum class MsgType { kAlert = 0, kUpdate = 1, kCancel = 2 };
enum class ReportStatus { kActual = 0, kExercise = 1, kTest = 2 };
// Ordered: a higher value is more severe.
enum class Severity { kMinor = 0, kModerate = 1, kSevere = 2, kExtreme = 3 };

// A delivery's life: pending (waiting or retrying) → sent (a gateway accepted
// it) → delivered/undelivered (receipt); or failed (permanent error),
// expired (deadline passed), cancelled (recipient erased or opted out).
enum class DeliveryState {
  kPending = 0,
  kSent = 1,
  kDelivered = 2,
  kUndelivered = 3,
  kFailed = 4,
  kExpired = 5,
  kCancelled = 6,
};

std::string_view to_string(Channel c);
std::string_view to_string(MsgType t);
std::string_view to_string(ReportStatus s);
std::string_view to_string(Severity s);
std::string_view to_string(DeliveryState s);

std::optional<Channel> parse_channel(std::string_view s);
std::optional<MsgType> parse_msg_type(std::string_view s);
std::optional<ReportStatus> parse_report_status(std::string_view s);
std::optional<Severity> parse_severity(std::string_view s);
std::optional<DeliveryState> parse_delivery_state(std::string_view s);

// CAP 1.2 certainty of a report, ordered: a higher value is more certain.
// A report without one is `observed` (what every report meant before).
enum class Certainty { kUnknown = 0, kUnlikely = 1, kPossible = 2, kLikely = 3, kObserved = 4 };
std::string_view to_string(Certainty c);
std::optional<Certainty> parse_certainty(std::string_view s);

}  // namespace tocsin
