// Webhook signatures (Standard Webhooks v1) and their primitives: HMAC-SHA-256
// and -SHA-1, strict base64, constant-time comparison.
#include "core/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
// SHA-256 fetched once: HMAC() (EVP_Q_mac in OpenSSL 3) looks the MAC and
// the digest up by name and builds a fresh context on every call, which was
// over half of a webhook check's instructions. A digest context per thread.
const EVP_MD* sha256_md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
struct DigestCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~DigestCtx() { EVP_MD_CTX_free(ctx); }
  DigestCtx() = default;
  DigestCtx(const DigestCtx&) = delete;
  DigestCtx& operator=(const DigestCtx&) = delete;
};
bool digest(EVP_MD_CTX* ctx, const EVP_MD* md, std::string_view a, std::string_view b,
            unsigned char* out) {
  unsigned int n = 0;
  return EVP_DigestInit_ex2(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
         EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
         n == 32;
}
}  // namespace

// HMAC-SHA-256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || data)), the key
// hashed first when longer than the 64-byte block.
std::string hmac_sha256(std::string_view key, std::string_view data) {
  constexpr std::size_t kBlock = 64;
  thread_local DigestCtx d;
  const EVP_MD* md = sha256_md();
  if (!md || !d.ctx) return hmac(EVP_sha256(), key, data);
  unsigned char k[kBlock] = {};
  unsigned char pad[kBlock];
  unsigned char inner[32];
  unsigned char out[32];
  bool ok = true;
  if (key.size() > kBlock) ok = digest(d.ctx, md, key, {}, k);
  else std::copy(key.begin(), key.end(), k);
  auto view = [](const unsigned char* p, std::size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
  };
  for (std::size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x36;
  ok = ok && digest(d.ctx, md, view(pad, kBlock), data, inner);
  for (std::size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x5c;
  ok = ok && digest(d.ctx, md, view(pad, kBlock), view(inner, sizeof inner), out);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(pad, sizeof pad);
  if (!ok) return hmac(EVP_sha256(), key, data);
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
