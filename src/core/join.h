// Join by text: what a text to the alert number means for self-service
// groups (double opt-in), and what tocsin answers. Pure.
//
//   KEYWORD            → a prompt in the keyword's language (else the
//                        group's) asking to confirm
//                        (YES / SÍ / SI), offering the other language;
//   YES | SI | SÍ      → confirms the number's pending request, in English
//                        (YES) or Spanish (SI, SÍ); without one it is an
//                        ordinary reply to an alert;
//   LEAVE KEYWORD      → leaves that group (SALIR KEYWORD too).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/routing.h"

namespace tocsin {

enum class JoinAction { kNone, kJoin, kConfirm, kLeave };

struct JoinIntent {
  JoinAction action = JoinAction::kNone;
  const Group* group = nullptr;  // kJoin, kLeave
  std::string keyword;           // kJoin, kLeave: as configured (upper case)
  std::string language;          // kJoin: the keyword's; kConfirm: "en" (YES) or "es" (SI)
};

// Matches the whole message, ignoring case, surrounding spaces and trailing
// punctuation, against the keywords of `groups`.
JoinIntent classify_join(std::string_view body, const std::vector<Group>& groups);

// The texts tocsin answers, in `language` (es, else en). Plain GSM-7.
std::string join_prompt(std::string_view language, std::string_view keyword);
std::string join_confirmed(std::string_view language, std::string_view keyword);
std::string join_left(std::string_view language, std::string_view keyword);
// How to join, for a HELP from a number with no subscriber: " Text ESTE or
// EASTSIDE to join." naming every group's keywords; "" when no group has any.
std::string join_how(std::string_view language, const std::vector<Group>& groups);
// The language of the first group that can be joined by text ("en" if none):
// the network's, for answering someone it knows nothing of.
std::string first_join_language(const std::vector<Group>& groups);

// A keyword as stored and matched: trimmed, upper case (ASCII).
std::string normalize_keyword(std::string_view keyword);

}  // namespace tocsin
