// What happens to a delivery after an attempt. Pure.
#pragma once

#include <string>

#include "core/backoff.h"
#include "delivery/gateway.h"
#include "store/store.h"

namespace tocsin::delivery {

// Accepted → sent; permanent → failed (and the opt-out flag passed on);
// transient → pending again after a jittered exponential backoff that
// honours the provider's Retry-After, or expired when that would pass the
// delivery's deadline. `unit_random` is uniform in [0, 1).
store::DeliveryUpdate decide(const store::ClaimedDelivery& delivery, const Outcome& outcome,
                             const std::string& gateway, UnixMs now, const BackoffPolicy& policy,
                             double unit_random);

}  // namespace tocsin::delivery
