#include "core/ecdsa.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include <charconv>
#include <memory>

#include "core/signature.h"

namespace tocsin {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

Key p256_key(std::string_view base64_der) {
  auto der = base64_decode(base64_der);
  if (!der || der->empty()) return nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  Key key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size())));
  if (!key || p != reinterpret_cast<const unsigned char*>(der->data()) + der->size()) return nullptr;
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_EC) return nullptr;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key.get(), "group", group, sizeof group, &len) != 1 ||
      std::string_view(group, len) != "prime256v1")
    return nullptr;
  return key;
}

}  // namespace

bool ecdsa_p256_public_key(std::string_view base64_der) { return p256_key(base64_der) != nullptr; }

bool verify_ecdsa_p256(std::string_view base64_der_key, std::string_view message,
                       std::string_view base64_signature) {
  Key key = p256_key(base64_der_key);
  auto sig = base64_decode(base64_signature);
  if (!key || !sig || sig->empty()) return false;
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1)
    return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                          sig->size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

EventWebhookPrecheck precheck_event_webhook(std::string_view signature,
                                            std::string_view timestamp, std::size_t body_bytes,
                                            int64_t now_unix) {
  if (signature.empty() || timestamp.empty()) return EventWebhookPrecheck::kMissingHeaders;
  int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc{} || end != timestamp.data() + timestamp.size())
    return EventWebhookPrecheck::kBadTimestamp;
  if (ts < now_unix - kEventWebhookToleranceS || ts > now_unix + kEventWebhookToleranceS)
    return EventWebhookPrecheck::kStale;
  if (body_bytes > kEventWebhookMaxBody) return EventWebhookPrecheck::kTooLarge;
  return EventWebhookPrecheck::kOk;
}

}  // namespace tocsin
