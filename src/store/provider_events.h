// Provider callbacks (delivery receipts, replies, bounces): whom a delivery
// was for, its receipt, and each callback applied once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/model.h"

namespace tocsin::store {

// Whom one delivery was for (a provider callback names the delivery).
struct DeliveryTarget {
  std::string incident_id;
  int64_t subscriber_id = 0;  // 0 once erased
  Channel channel = Channel::kSms;
  DeliveryState state = DeliveryState::kPending;
  std::string language;  // of the message
};

class ProviderEvents {
 public:
  virtual ~ProviderEvents() = default;

  virtual std::optional<DeliveryTarget> delivery_target(int64_t delivery_id) = 0;
  // apply_receipt for a delivery known by its id (SendGrid custom_args, a
  // call's status callback): sent → delivered or undelivered, never back.
  virtual bool apply_receipt_to(int64_t delivery_id, DeliveryState state, UnixMs now) = 0;
  // A provider's word on a sent delivery that is no outcome yet (SendGrid's
  // "deferred": the receiver asked it to try again later): kept as the
  // delivery's last_error, the state unchanged. False unless it is sent.
  virtual bool note_receipt_to(int64_t delivery_id, std::string_view note, UnixMs now) = 0;
  // Provider callbacks (Twilio's MessageSid, later SendGrid's sg_event_id)
  // applied once: records (provider, event_id) at `now` and returns true the
  // first time, false when it is already recorded (a replay or a retry of a
  // callback whose effect committed).
  virtual bool first_event(std::string_view provider, std::string_view event_id, UnixMs now) = 0;
};

}  // namespace tocsin::store
