#include "core/unsubscribe.h"

#include <sodium.h>

#include <array>

#include "core/templates.h"

namespace tocsin {
namespace {

// The 9 bytes a token names: subscriber id (big-endian) and channel.
constexpr std::size_t kIdBytes = 9, kMacBytes = 16;
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::size_t kV1Bytes = kIdBytes + kMacBytes;                // 25
constexpr std::size_t kV2Bytes = kNonceBytes + kIdBytes + kTagBytes;  // 49
constexpr auto kBase64 = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
using Id = std::array<unsigned char, kIdBytes>;
using Key = std::array<unsigned char, 32>;

std::string_view hash_key(std::string_view key) {
  return key.substr(0, crypto_generichash_KEYBYTES_MAX);
}

// Version 1 (mail sent before tokens were sealed): the id in clear and a
// keyed BLAKE2b MAC.
std::array<unsigned char, kMacBytes> mac_of(std::string_view key, const unsigned char* data) {
  std::array<unsigned char, kMacBytes> mac{};
  std::string_view k = hash_key(key);
  crypto_generichash(mac.data(), mac.size(), data, kIdBytes,
                     reinterpret_cast<const unsigned char*>(k.data()), k.size());
  return mac;
}

// A subkey of `key` for one use, named by `purpose`.
Key subkey(std::string_view key, std::string_view purpose) {
  Key out{};
  std::string_view k = hash_key(key);
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(purpose.data()),
                     purpose.size(), reinterpret_cast<const unsigned char*>(k.data()), k.size());
  return out;
}

Id id_bytes(int64_t subscriber_id, Channel channel) {
  Id raw{};
  auto id = static_cast<uint64_t>(subscriber_id);
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<unsigned char>(id >> (56 - 8 * i));
  raw[8] = static_cast<unsigned char>(channel);
  return raw;
}

std::optional<UnsubscribeTarget> target_of(const unsigned char* raw) {
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | raw[i];
  if (id == 0 || id > INT64_MAX || raw[8] > static_cast<unsigned char>(Channel::kVoice))
    return std::nullopt;
  return UnsubscribeTarget{static_cast<int64_t>(id), static_cast<Channel>(raw[8])};
}

bool is_spanish(std::string_view language) {
  return resolve_language(language, std::vector<std::string>{"en", "es"}) == "es";
}

}  // namespace

std::string unsubscribe_token(std::string_view key, int64_t subscriber_id, Channel channel) {
  const Id id = id_bytes(subscriber_id, channel);
  // The nonce is a keyed hash of what is sealed: the same person's token is
  // the same in every mail (a retry, a follow-up), and a nonce repeats only
  // with its plaintext, so it reveals no more than that equality.
  const Key nonce_key = subkey(key, "tocsin unsubscribe token v2 nonce");
  const Key seal_key = subkey(key, "tocsin unsubscribe token v2 seal");
  std::array<unsigned char, kV2Bytes> raw{};
  crypto_generichash(raw.data(), kNonceBytes, id.data(), id.size(), nonce_key.data(),
                     nonce_key.size());
  unsigned long long sealed = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(raw.data() + kNonceBytes, &sealed, id.data(),
                                             id.size(), nullptr, 0, nullptr, raw.data(),
                                             seal_key.data());
  char out[sodium_base64_ENCODED_LEN(kV2Bytes, kBase64)];
  sodium_bin2base64(out, sizeof out, raw.data(), raw.size(), kBase64);
  return out;
}

std::optional<UnsubscribeTarget> parse_unsubscribe_token(std::string_view key,
                                                         std::string_view token) {
  if (token.size() > sodium_base64_ENCODED_LEN(kV2Bytes, kBase64)) return std::nullopt;
  std::array<unsigned char, kV2Bytes> raw{};
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(raw.data(), raw.size(), token.data(), token.size(), nullptr, &len, &end,
                        kBase64) != 0 ||
      end != token.data() + token.size())
    return std::nullopt;
  if (len == kV2Bytes) {
    const Key seal_key = subkey(key, "tocsin unsubscribe token v2 seal");
    Id id{};
    unsigned long long opened = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(id.data(), &opened, nullptr,
                                                   raw.data() + kNonceBytes, kV2Bytes - kNonceBytes,
                                                   nullptr, 0, raw.data(), seal_key.data()) != 0 ||
        opened != id.size())
      return std::nullopt;
    return target_of(id.data());
  }
  // A version 1 token, in mail sent before tokens were sealed: still honoured.
  if (len != kV1Bytes) return std::nullopt;
  auto mac = mac_of(key, raw.data());
  if (sodium_memcmp(mac.data(), raw.data() + kIdBytes, kMacBytes) != 0) return std::nullopt;
  return target_of(raw.data());
}

std::string unsubscribe_footer(std::string_view language, std::string_view url) {
  if (is_spanish(language))
    return "\n-- \nPara no recibir más estas alertas por correo:\n" + std::string(url) + "\n";
  return "\n-- \nTo stop receiving these alerts by email:\n" + std::string(url) + "\n";
}

std::string unsubscribe_page(std::string_view language, std::string_view action, bool done) {
  const bool es = is_spanish(language);
  std::string title = es ? "Alertas por correo" : "Email alerts";
  std::string text =
      done ? (es ? "Listo: ya no recibirá alertas por correo. Los demás canales (SMS) no cambian."
                 : "Done: you will receive no more alerts by email. Other channels (SMS) are "
                   "unchanged.")
           : (es ? "¿Dejar de recibir estas alertas por correo?"
                 : "Stop receiving these alerts by email?");
  std::string page = "<!DOCTYPE html>\n<html lang=\"" + std::string(es ? "es" : "en") +
                     "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                     "content=\"width=device-width\"><title>" +
                     title + "</title></head><body><h1>" + title + "</h1><p>" + text + "</p>";
  if (!done) {
    // `action` is our own token (base64url): nothing in it needs escaping.
    page += "<form method=\"post\" action=\"" + std::string(action) +
            "\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button "
            "type=\"submit\">" +
            (es ? "Darme de baja" : "Unsubscribe") + "</button></form>";
  }
  return page + "</body></html>\n";
}

}  // namespace tocsin
