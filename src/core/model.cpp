#include "core/model.h"

#include <array>

namespace tocsin {
namespace {

template <typename E, std::size_t N>
std::optional<E> parse_from(const std::array<std::string_view, N>& names, std::string_view s) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == s) return static_cast<E>(i);
  }
  return std::nullopt;
}

constexpr std::array<std::string_view, 4> kChannels = {"sms", "email", "signal", "voice"};
constexpr std::array<std::string_view, 3> kMsgTypes = {"alert", "update", "cancel"};
constexpr std::array<std::string_view, 3> kStatuses = {"actual", "exercise", "test"};
constexpr std::array<std::string_view, 4> kSeverities = {"minor", "moderate", "severe", "extreme"};
constexpr std::array<std::string_view, 7> kStates = {
    "pending", "sent", "delivered", "undelivered", "failed", "expired", "cancelled"};
constexpr std::array<std::string_view, 5> kCertainties = {"unknown", "unlikely", "possible",
                                                          "likely", "observed"};

}  // namespace

std::string_view to_string(Channel c) { return kChannels[static_cast<std::size_t>(c)]; }
std::string_view to_string(MsgType t) { return kMsgTypes[static_cast<std::size_t>(t)]; }
std::string_view to_string(ReportStatus s) { return kStatuses[static_cast<std::size_t>(s)]; }
std::string_view to_string(Severity s) { return kSeverities[static_cast<std::size_t>(s)]; }
std::string_view to_string(DeliveryState s) { return kStates[static_cast<std::size_t>(s)]; }

std::optional<Channel> parse_channel(std::string_view s) { return parse_from<Channel>(kChannels, s); }
std::optional<MsgType> parse_msg_type(std::string_view s) { return parse_from<MsgType>(kMsgTypes, s); }
std::optional<ReportStatus> parse_report_status(std::string_view s) {
  return parse_from<ReportStatus>(kStatuses, s);
}
std::optional<Severity> parse_severity(std::string_view s) {
  return parse_from<Severity>(kSeverities, s);
}
std::optional<DeliveryState> parse_delivery_state(std::string_view s) {
  return parse_from<DeliveryState>(kStates, s);
}

std::string_view to_string(Certainty c) { return kCertainties[static_cast<std::size_t>(c)]; }
std::optional<Certainty> parse_certainty(std::string_view s) {
  return parse_from<Certainty>(kCertainties, s);
}

}  // namespace tocsin
