// Time as a dependency: logic takes `now` as an argument; the wiring reads
// it from a Clock, which tests replace.
#pragma once

#include <chrono>

#include "core/model.h"

namespace tocsin {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual UnixMs now_ms() const = 0;  // wall clock: stored timestamps, signatures
};

class SystemClock final : public Clock {
 public:
  UnixMs now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace tocsin
