#include "core/refusals.h"

namespace tocsin {

void RefusalTally::add(int status) {
  ++by_status_[status];
  ++total_;
}

std::string RefusalTally::take(int interval_s) {
  if (total_ == 0) return {};
  std::string line = "refused " + std::to_string(total_) +
                     (total_ == 1 ? " request" : " requests") + " in the last " +
                     std::to_string(interval_s) + " s:";
  bool first = true;
  for (const auto& [status, n] : by_status_) {
    line += first ? " " : ", ";
    line += std::to_string(status) + "\u00d7" + std::to_string(n);
    first = false;
  }
  by_status_.clear();
  total_ = 0;
  return line;
}

}  // namespace tocsin
