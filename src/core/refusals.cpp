#include "core/refusals.h"

namespace tocsin {

void RefusalTally::add(int status) {
  ++by_status_[status];
  ++total_;
}

std::string RefusalTally::take(int interval_s) {
  if (total_ == 0 && replays_ == 0) return {};
  const std::string interval = std::to_string(interval_s);
  std::string line;
  if (total_ > 0) {
    line.append("refused ").append(std::to_string(total_));
    line.append(total_ == 1 ? " request" : " requests").append(" in the last ").append(interval);
    line.append(" s:");
    bool first = true;
    for (const auto& [status, n] : by_status_) {
      line.append(first ? " " : ", ");
      line.append(std::to_string(status)).append("\u00d7").append(std::to_string(n));
      first = false;
    }
  }
  if (replays_ > 0) {
    line.append(total_ > 0 ? "; ignored " : "ignored ").append(std::to_string(replays_));
    line.append(replays_ == 1 ? " already applied provider callback"
                              : " already applied provider callbacks");
    if (total_ == 0) line.append(" in the last ").append(interval).append(" s");
  }
  by_status_.clear();
  total_ = 0;
  replays_ = 0;
  return line;
}

}  // namespace tocsin
