#include "core/refusals.h"

#include <iterator>

namespace tocsin {

namespace {

// Each reason's metric label and the words of the summary line, in the
// order of the enum.
struct IgnoredNames {
  std::string_view label, text;
};
constexpr IgnoredNames kIgnoredNames[] = {
    {"already_applied", "already applied"},
    {"no_message_sid", "no MessageSid"},
    {"join_not_mobile", "join keyword from a number that is not mobile"},
    {"join_limit", "join prompt limit (join.max_prompts_*)"},
};
static_assert(std::size(kIgnoredNames) == std::size(kAllIgnored));

const IgnoredNames& names(Ignored why) {
  return kIgnoredNames[static_cast<std::size_t>(why)];
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + (n == 1 ? one : many);
}

}  // namespace

std::string_view to_string(Ignored why) {
  return names(why).label;
}

void RefusalTally::add(int status) {
  ++by_status_[status];
  ++total_;
}

void RefusalTally::add_ignored(Ignored why) {
  ++ignored_[why];
  ++ignored_total_;
}

std::string RefusalTally::take(int interval_s) {
  if (total_ == 0 && ignored_total_ == 0) return {};
  const std::string in_the_last = " in the last " + std::to_string(interval_s) + " s:";
  std::string line;
  if (total_ > 0) {
    line.append("refused ").append(plural(total_, " request", " requests")).append(in_the_last);
    bool first = true;
    for (const auto& [status, n] : by_status_) {
      line.append(first ? " " : ", ");
      line.append(std::to_string(status)).append("\u00d7").append(std::to_string(n));
      first = false;
    }
  }
  if (ignored_total_ > 0) {
    line.append(total_ > 0 ? "; ignored " : "ignored ");
    line.append(plural(ignored_total_, " signed request", " signed requests"));
    line.append(total_ > 0 ? ":" : in_the_last);
    bool first = true;
    for (const auto& [why, n] : ignored_) {
      line.append(first ? " " : ", ");
      line.append(names(why).text).append("\u00d7").append(std::to_string(n));
      first = false;
    }
  }
  by_status_.clear();
  ignored_.clear();
  total_ = 0;
  ignored_total_ = 0;
  return line;
}

}  // namespace tocsin
