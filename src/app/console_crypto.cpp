// Tokens, hashes and passphrases of the console (see console_crypto.h).
#include "app/console_crypto.h"

#include <sodium.h>

#include <stdexcept>

namespace tocsin::app {

namespace {
std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}
void init() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot start");
}
}  // namespace

std::string random_bytes(std::size_t bytes) {
  init();
  std::string out(bytes, '\0');
  randombytes_buf(out.data(), bytes);
  return out;
}

std::string random_token(std::size_t bytes) {
  std::string raw = random_bytes(bytes);
  return hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string token_hash(std::string_view token) {
  init();
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  return hex(out, sizeof out);
}

std::string hash_passphrase(std::string_view passphrase) {
  init();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, passphrase.data(), passphrase.size(),
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return {};
  return out;
}

bool verify_passphrase(const std::string& stored, std::string_view passphrase) {
  init();
  if (stored.empty()) return false;
  return crypto_pwhash_str_verify(stored.c_str(), passphrase.data(), passphrase.size()) == 0;
}

}  // namespace tocsin::app
