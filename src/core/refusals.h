// Counts refused requests (4xx answers) between summary log lines, so that
// a flood of unsigned or malformed requests costs one log line per interval
// instead of one per request. Pure: no clock, no logging; the caller takes
// the summary when its interval has passed. Signed provider callbacks that
// were already applied (a replay, or the provider's retry) are answered 200
// and change nothing; they are tallied here too, so that one captured
// request replayed at full speed costs no log line per request either.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace tocsin {

class RefusalTally {
 public:
  // One refused request answered with `status`.
  void add(int status);
  // One signed callback ignored because its provider event id was applied
  // before (answered 200, nothing changed).
  void add_replay() { ++replays_; }
  // Refused requests since the last take().
  uint64_t pending() const { return total_; }
  uint64_t replays() const { return replays_; }
  // "refused 1234 requests in the last 60 s: 401×1200, 400×34" (statuses in
  // ascending order), with "; ignored 7 already applied provider callbacks"
  // after it when there were replays (or only that, as "ignored 7 already
  // applied provider callbacks in the last 60 s"), and starts counting
  // afresh; "" when nothing was added. `interval_s` is only the figure the
  // line names.
  std::string take(int interval_s);

 private:
  std::map<int, uint64_t> by_status_;
  uint64_t total_ = 0;
  uint64_t replays_ = 0;
};

// Whether an answer with `status` counts as a refusal (every 4xx).
inline bool is_refusal(int status) {
  return status >= 400 && status < 500;
}

}  // namespace tocsin
