#include "core/inbound.h"

#include <array>
#include <cctype>

namespace tocsin {

InboundIntent classify_sms_reply(std::string_view body) {
  auto trim_char = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) || c == '.' || c == '!' || c == '"' ||
           c == '\'';
  };
  while (!body.empty() && trim_char(body.front())) body.remove_prefix(1);
  while (!body.empty() && trim_char(body.back())) body.remove_suffix(1);
  std::string word;
  word.reserve(body.size());
  for (char c : body) word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

  static constexpr std::array<std::string_view, 6> kStop = {"stop", "stopall", "unsubscribe",
                                                            "cancel", "end", "quit"};
  static constexpr std::array<std::string_view, 2> kStart = {"start", "unstop"};
  static constexpr std::array<std::string_view, 2> kHelp = {"help", "info"};
  static constexpr std::array<std::string_view, 14> kResponding = {
      "1", "yes", "y", "si", "s\xc3\xad", "ok", "on my way", "omw", "coming", "voy",
      "en camino", "voy en camino", "responding", "en route"};
  for (auto k : kStop)
    if (word == k) return {InboundAction::kOptOut, ""};
  for (auto k : kStart)
    if (word == k) return {InboundAction::kOptIn, ""};
  for (auto k : kHelp)
    if (word == k) return {InboundAction::kHelp, ""};
  for (auto k : kResponding)
    if (word == k) return {InboundAction::kAcknowledge, "responding"};
  return {InboundAction::kAcknowledge, "reply"};
}

}  // namespace tocsin
