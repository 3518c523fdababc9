// Subscribers, their opt-outs, join by text (double opt-in) and consents.
// Personal data: never logged; stored encrypted under the keyring's active
// key, found by keyed hashes (README "Privacy", SubscriberCrypto).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"

namespace tocsin::store {

struct Subscriber {
  int64_t id = 0;
  std::string name;
  std::string phone;     // E.164 or ""
  std::string email;     // or ""
  std::string language = "en";
  std::vector<std::string> groups;
  std::vector<Channel> channels;
  bool sms_opted_out = false;    // STOP to the alert number: no SMS, Signal or calls
  bool email_opted_out = false;  // the email's unsubscribe link, a hard bounce or spam report
  UnixMs created_at = 0;
};

// A keyword texted to the alert number, waiting for its confirmation. The
// number is kept only as a keyed hash (found again when YES comes from it).
struct JoinRequest {
  std::string group;
  std::string language;
  std::string keyword;
  std::string provider_message_id;  // Twilio's MessageSid of the keyword text
  UnixMs created_at = 0;
};

// Proof of a self-service subscription: when, which keyword, and the
// provider's ids of the keyword and confirmation texts; never the texts.
struct Consent {
  int64_t subscriber_id = 0;
  std::string group;
  std::string keyword;
  std::string request_message_id;
  std::string confirm_message_id;
  UnixMs requested_at = 0;
  UnixMs confirmed_at = 0;
};

class SubscriberStore {
 public:
  virtual ~SubscriberStore() = default;

  virtual int64_t insert_subscriber(const Subscriber& s, UnixMs now) = 0;
  virtual std::optional<Subscriber> subscriber(int64_t id) = 0;
  // Erases the person's data and cancels what was still to be sent to them.
  virtual bool delete_subscriber(int64_t id) = 0;
  // Replaces the subscriber's name, phone, email, language, channels and
  // groups (not the opt-out or created_at). False when there is no such id.
  virtual bool update_subscriber(const Subscriber& s) = 0;
  // Subscribers by id, ascending, after `after_id`, at most `limit`; only
  // members of `group` unless it is "".
  virtual std::vector<Subscriber> list_subscribers(const std::string& group, int64_t after_id,
                                                   int limit) = 0;
  // Ids of the subscribers with this E.164 number.
  virtual std::vector<int64_t> subscribers_by_phone(const std::string& e164) = 0;
  // Ids of the subscribers with this email address (ASCII case ignored).
  virtual std::vector<int64_t> subscribers_by_email(const std::string& email) = 0;
  // Opts the subscriber out of SMS (cancelling every SMS still pending for
  // them, so a fan-out in progress stops for them at once) or back in.
  // Returns how many deliveries were cancelled.
  virtual int64_t set_sms_opt_out(int64_t subscriber_id, bool opted_out, UnixMs now) = 0;
  // Opts the subscriber out of email (their unsubscribe link, a hard bounce,
  // a spam report), cancelling their pending email. nullopt when there is
  // no such subscriber; else how many deliveries were cancelled.
  virtual std::optional<int64_t> set_email_opt_out(int64_t subscriber_id, UnixMs now) = 0;
  // The subscriber's language tag, without decrypting anything.
  virtual std::optional<std::string> subscriber_language(int64_t id) = 0;
  // Confirmation prompts sent since `since`: to this number, and to all.
  // Read them before insert_join_request in the same job: on a shared store
  // the first call also takes a lock held to the job's commit, so that two
  // instances cannot each pass a limit by one (SQLite serialises writers).
  virtual int64_t join_prompts_since(const std::string& e164, UnixMs since) = 0;
  virtual int64_t all_join_prompts_since(UnixMs since) = 0;
  // Records a prompt sent to `e164` (which counts against the limits).
  virtual void insert_join_request(const std::string& e164, const JoinRequest& request) = 0;
  // The latest request from this number since `since`, if any.
  virtual std::optional<JoinRequest> pending_join(const std::string& e164, UnixMs since) = 0;
  // Ends this number's pending requests (confirmed, or left); the rows stay
  // (without a group) to count against the limits until purged.
  virtual void close_join_requests(const std::string& e164) = 0;
  virtual void insert_consent(const Consent& consent) = 0;
  virtual std::vector<Consent> consents(int64_t subscriber_id) = 0;
  // Removes the subscriber from `group`; false when they were not in it.
  virtual bool leave_group(int64_t subscriber_id, const std::string& group) = 0;
};

}  // namespace tocsin::store
