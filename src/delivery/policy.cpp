#include "delivery/policy.h"

namespace tocsin::delivery {

store::DeliveryUpdate decide(const store::ClaimedDelivery& d, const Outcome& o,
                             const std::string& gateway, UnixMs now, const BackoffPolicy& policy,
                             double unit_random) {
  store::DeliveryUpdate u;
  u.id = d.id;
  u.gateway = gateway;
  u.provider_id = o.provider_id;
  u.error = o.error;
  switch (o.kind) {
    case OutcomeKind::kAccepted:
      u.state = DeliveryState::kSent;
      break;
    case OutcomeKind::kFailed:
      u.state = DeliveryState::kFailed;
      u.opt_out = o.opt_out;
      break;
    case OutcomeKind::kRetry:
    case OutcomeKind::kThrottled: {
      auto delay = retry_delay(policy, d.attempts + 1, unit_random, o.retry_after);
      u.next_attempt_at = now + delay.count();
      if (u.next_attempt_at > d.deadline_at) {
        u.state = DeliveryState::kExpired;
        u.error += " (deadline passed)";
      } else {
        u.state = DeliveryState::kPending;
      }
      break;
    }
  }
  return u;
}

}  // namespace tocsin::delivery
