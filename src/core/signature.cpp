// Webhook signatures (Standard Webhooks v1) and their primitives: HMAC-SHA-256
// and -SHA-1, strict base64, constant-time comparison.
#include "core/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <algorithm>
#include <charconv>

namespace tocsin {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  // EVP_DecodeBlock trims surrounding whitespace and reads '=' anywhere as
  // zero bits, so "    " would decode to nothing and "QQ==  " to three bytes.
  // Accept only the strict form: alphabet characters, then at most two '='.
  std::size_t pad = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  for (std::size_t i = 0; i < text.size() - pad; ++i) {
    char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/';
    if (!ok) return std::nullopt;
  }
  std::string out(3 * (text.size() / 4), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

namespace {
std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), buf, &len);
  return std::string(reinterpret_cast<char*>(buf), len);
}
}  // namespace

namespace {
// HMAC() (EVP_Q_mac in OpenSSL 3) fetches the MAC and the digest by name
// and builds a context on every call, more than the hashing itself for a
// report-sized message. Here the MAC is fetched once and each thread keeps
// a context with SHA-256 set, re-keyed per call (EVP_MAC_init). Still
// OpenSSL's HMAC, not ours.
struct MacCtx {
  EVP_MAC_CTX* ctx = nullptr;
  MacCtx() {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!mac) return;
    ctx = EVP_MAC_CTX_new(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    if (ctx && EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      ctx = nullptr;
    }
  }
  ~MacCtx() { EVP_MAC_CTX_free(ctx); }
  MacCtx(const MacCtx&) = delete;
  MacCtx& operator=(const MacCtx&) = delete;
};
}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  thread_local MacCtx m;
  unsigned char out[32];
  std::size_t n = 0;
  // A key of zero length is passed as one byte's address with length 0.
  static const unsigned char kEmpty = 0;
  const auto* k = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  if (!m.ctx || EVP_MAC_init(m.ctx, k, key.size(), nullptr) != 1 ||
      EVP_MAC_update(m.ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
      EVP_MAC_final(m.ctx, out, &n, sizeof out) != 1 || n != sizeof out)
    return hmac(EVP_sha256(), key, data);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string hmac_sha1(std::string_view key, std::string_view data) {
  return hmac(EVP_sha1(), key, data);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> decode_webhook_secret(std::string_view secret) {
  if (secret.starts_with("whsec_")) secret.remove_prefix(6);
  auto key = base64_decode(secret);
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string sign_webhook(std::string_view key, std::string_view id, int64_t timestamp,
                         std::string_view body) {
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(std::to_string(timestamp)).append(".").append(body);
  return "v1," + base64_encode(hmac_sha256(key, content));
}

SignatureResult verify_webhook(std::string_view id, std::string_view timestamp,
                               std::string_view signature_header, std::string_view body,
                               const std::vector<std::string>& keys, int64_t now_unix,
                               int64_t tolerance_s) {
  if (id.empty() || timestamp.empty() || signature_header.empty())
    return {SignatureCheck::kMissingHeaders};
  int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc{} || end != timestamp.data() + timestamp.size())
    return {SignatureCheck::kBadTimestamp};
  if (ts < now_unix - tolerance_s || ts > now_unix + tolerance_s) return {SignatureCheck::kStale};

  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(timestamp).append(".").append(body);

  // Decode every offered v1 signature once; compare each against each key.
  std::vector<std::string> offered;
  std::string_view rest = signature_header;
  while (!rest.empty()) {
    auto sp = rest.find(' ');
    std::string_view item = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    if (!item.starts_with("v1,")) continue;
    if (auto raw = base64_decode(item.substr(3))) offered.push_back(std::move(*raw));
  }
  for (std::size_t k = 0; k < keys.size(); ++k) {
    std::string expected = hmac_sha256(keys[k], content);
    for (const auto& sig : offered) {
      if (constant_time_equal(sig, expected)) return {SignatureCheck::kValid, k};
    }
  }
  return {SignatureCheck::kNoMatch};
}

}  // namespace tocsin
