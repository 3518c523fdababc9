#include "core/unsubscribe.h"

#include <sodium.h>

#include <array>

#include "core/templates.h"

namespace tocsin {
namespace {

constexpr std::size_t kIdBytes = 9, kMacBytes = 16;

std::array<unsigned char, kMacBytes> mac_of(std::string_view key, const unsigned char* data) {
  std::array<unsigned char, kMacBytes> mac{};
  std::string_view k = key.substr(0, crypto_generichash_KEYBYTES_MAX);
  crypto_generichash(mac.data(), mac.size(), data, kIdBytes,
                     reinterpret_cast<const unsigned char*>(k.data()), k.size());
  return mac;
}

bool is_spanish(std::string_view language) {
  return resolve_language(language, std::vector<std::string>{"en", "es"}) == "es";
}

}  // namespace

std::string unsubscribe_token(std::string_view key, int64_t subscriber_id, Channel channel) {
  std::array<unsigned char, kIdBytes + kMacBytes> raw{};
  auto id = static_cast<uint64_t>(subscriber_id);
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<unsigned char>(id >> (56 - 8 * i));
  raw[8] = static_cast<unsigned char>(channel);
  auto mac = mac_of(key, raw.data());
  std::copy(mac.begin(), mac.end(), raw.begin() + kIdBytes);
  char out[sodium_base64_ENCODED_LEN(kIdBytes + kMacBytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, raw.data(), raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

std::optional<UnsubscribeTarget> parse_unsubscribe_token(std::string_view key,
                                                         std::string_view token) {
  if (token.size() > 64) return std::nullopt;
  std::array<unsigned char, kIdBytes + kMacBytes> raw{};
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(raw.data(), raw.size(), token.data(), token.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      len != raw.size() || end != token.data() + token.size())
    return std::nullopt;
  auto mac = mac_of(key, raw.data());
  if (sodium_memcmp(mac.data(), raw.data() + kIdBytes, kMacBytes) != 0) return std::nullopt;
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | raw[i];
  auto channel = static_cast<Channel>(raw[8]);
  if (id == 0 || id > INT64_MAX || raw[8] > static_cast<unsigned char>(Channel::kVoice))
    return std::nullopt;
  return UnsubscribeTarget{static_cast<int64_t>(id), channel};
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
