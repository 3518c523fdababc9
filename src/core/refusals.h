// Counts refused requests (4xx answers) between summary log lines, so that
// a flood of unsigned or malformed requests costs one log line per interval
// instead of one per request. Pure: no clock, no logging; the caller takes
// the summary when its interval has passed. Signed requests that change
// nothing (a provider callback or a report already applied, replayed or
// retried; a signed text tocsin does not act on) are answered 2xx and are
// tallied here too, by reason: a captured request replayed at full speed
// costs no log line per request either.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace tocsin {

// Why a signed request was answered without changing anything.
enum class Ignored {
  kAlreadyApplied,  // its provider event id or webhook-id was applied before
  kNoMessageSid,    // a signed inbound SMS without a MessageSid (cannot be applied once)
  kJoinNotMobile,   // a join keyword from a number that cannot be a mobile phone
  kJoinLimit,       // a join keyword over join.max_prompts_per_number or _per_hour
};
inline constexpr Ignored kAllIgnored[] = {Ignored::kAlreadyApplied, Ignored::kNoMessageSid,
                                          Ignored::kJoinNotMobile, Ignored::kJoinLimit};
// The metric label: already_applied, no_message_sid, join_not_mobile, join_limit.
std::string_view to_string(Ignored why);

class RefusalTally {
 public:
  // One refused request answered with `status`.
  void add(int status);
  // One signed request answered without changing anything, because of `why`.
  void add_ignored(Ignored why);
  // Refused requests since the last take().
  uint64_t pending() const { return total_; }
  uint64_t ignored() const { return ignored_total_; }
  // "refused 1234 requests in the last 60 s: 401×1200, 400×34" (statuses in
  // ascending order), with "; ignored 7 signed requests: already applied×5,
  // no MessageSid×2" after it when some were ignored (or only that, as
  // "ignored 7 signed requests in the last 60 s: already applied×7"), and
  // starts counting afresh; "" when nothing was added. `interval_s` is only
  // the figure the line names.
  std::string take(int interval_s);

 private:
  std::map<int, uint64_t> by_status_;
  std::map<Ignored, uint64_t> ignored_;
  uint64_t total_ = 0;
  uint64_t ignored_total_ = 0;
};

// Whether an answer with `status` counts as a refusal (every 4xx).
inline bool is_refusal(int status) {
  return status >= 400 && status < 500;
}

}  // namespace tocsin
