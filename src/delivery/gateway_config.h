// One gateway's settings, as the config file gives them: which provider
// type, its channel, endpoint, credentials and limits. The gateways read these;
// app/config.cpp loads and validates them.
#pragma once

#include <cstdint>
#include <string>

#include "core/model.h"

namespace tocsin::delivery {

enum class GatewayType { kTwilio, kSendgrid, kSmtp, kWebhook, kFile, kSignal, kTwilioVoice };

struct GatewayConfig {
  std::string name;          // unique; appears in logs and metrics
  GatewayType type = GatewayType::kFile;
  Channel channel = Channel::kSms;
  std::string base_url;      // twilio, twilio_voice, sendgrid, signal: API root (an emulator's in tests)
  std::string account_sid;   // twilio, twilio_voice
  std::string auth_token;    // twilio, twilio_voice (secret)
  std::string api_key;       // sendgrid (secret)
  std::string from;          // sender phone number (E.164; signal: the bridge's registered number) or email address
  // sendgrid: the Event Webhook's verification key, base64 DER
  // SubjectPublicKeyInfo (ECDSA P-256) as SendGrid shows it ("" = no receipts)
  std::string event_webhook_public_key;
  std::string from_name;     // sendgrid, smtp: display name of the sender
  std::string url;           // smtp: smtp://host:port or smtps://host:port; webhook: POST target
  std::string username;      // smtp: AUTH user ("" = no AUTH)
  std::string password;      // smtp: AUTH password (secret)
  bool starttls = false;     // smtp: upgrade smtp:// with STARTTLS, and refuse to send without it
  std::string ca_file;       // twilio, sendgrid, smtp, webhook: PEM CA certificates the gateway's
                             // TLS certificate is verified against ("" = the system's bundle)
  std::string webhook_key;   // webhook: HMAC key, the decoded whsec_ secret (secret)
  std::string path;          // file: JSON-lines file each message is appended to
  double rate_per_s = 10;    // token bucket rate: SMS segments or requests per second
  int max_in_flight = 16;    // concurrent requests to this gateway
  int64_t timeout_ms = 15000;  // one request
  bool operator==(const GatewayConfig&) const = default;
};

}  // namespace tocsin::delivery
