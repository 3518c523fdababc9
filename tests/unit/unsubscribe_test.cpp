// Email unsubscribe tokens and texts (core/unsubscribe.h).
#include "core/unsubscribe.h"

#include <sodium.h>

#include <catch2/catch.hpp>

using namespace tocsin;

namespace {
const std::string kKey(32, 'k');
}

TEST_CASE("unsubscribe token: round trip, opaque, and refused when altered or forged",
          "[unsubscribe]") {
  std::string t = unsubscribe_token(kKey, 1234, Channel::kEmail);
  CHECK(t.size() == 66);
  CHECK(unsubscribe_token(kKey, 1234, Channel::kEmail) == t);  // stable per person
  CHECK(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
        std::string::npos);
  auto target = parse_unsubscribe_token(kKey, t);
  REQUIRE(target);
  CHECK(target->subscriber_id == 1234);
  CHECK(target->channel == Channel::kEmail);
  CHECK(unsubscribe_token(kKey, 1235, Channel::kEmail) != t);
  // Every single-character change is refused.
  const std::string alphabet = "Aa0-_";
  for (std::size_t i = 0; i < t.size(); ++i)
    for (char c : alphabet) {
      if (t[i] == c) continue;
      std::string altered = t;
      altered[i] = c;
      CHECK_FALSE(parse_unsubscribe_token(kKey, altered));
    }
  CHECK_FALSE(parse_unsubscribe_token(std::string(32, 'x'), t));  // another key
  CHECK_FALSE(parse_unsubscribe_token(kKey, t.substr(1)));
  CHECK_FALSE(parse_unsubscribe_token(kKey, t + "A"));
  CHECK_FALSE(parse_unsubscribe_token(kKey, ""));
  CHECK_FALSE(parse_unsubscribe_token(kKey, std::string(500, 'A')));
}

namespace {

std::string decoded(const std::string& token) {
  std::string raw(token.size(), '\0');
  std::size_t len = 0;
  REQUIRE(sodium_base642bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), token.data(),
                            token.size(), nullptr, &len, nullptr,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
  raw.resize(len);
  return raw;
}

// A version 1 token as mail sent before carries it: id and channel in clear, keyed BLAKE2b MAC.
std::string v1_token(const std::string& key, uint64_t id, Channel channel) {
  unsigned char raw[25] = {};
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<unsigned char>(id >> (56 - 8 * i));
  raw[8] = static_cast<unsigned char>(channel);
  crypto_generichash(raw + 9, 16, raw, 9, reinterpret_cast<const unsigned char*>(key.data()),
                     key.size());
  char out[sodium_base64_ENCODED_LEN(25, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

}  // namespace

TEST_CASE("unsubscribe token: the subscriber id is not in it, even in part", "[unsubscribe]") {
  const std::string a = decoded(unsubscribe_token(kKey, 0x0102030405060708, Channel::kEmail));
  CHECK(a.find(std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)) == std::string::npos);
  CHECK(a.find(std::string("\x05\x06\x07\x08", 4)) == std::string::npos);
  // Neighbouring ids share nothing visible: no common prefix.
  const std::string t1 = unsubscribe_token(kKey, 1000, Channel::kEmail);
  const std::string t2 = unsubscribe_token(kKey, 1001, Channel::kEmail);
  CHECK(t1.substr(0, 4) != t2.substr(0, 4));
  CHECK(decoded(t1).substr(0, 7) != decoded(t2).substr(0, 7));
}

TEST_CASE("unsubscribe token: version 1 tokens in mail already sent still work", "[unsubscribe]") {
  const std::string old = v1_token(kKey, 1234, Channel::kEmail);
  REQUIRE(old.size() == 34);
  auto target = parse_unsubscribe_token(kKey, old);
  REQUIRE(target);
  CHECK(target->subscriber_id == 1234);
  CHECK(target->channel == Channel::kEmail);
  // Forged or altered old-format tokens are refused as before.
  CHECK_FALSE(parse_unsubscribe_token(std::string(32, 'x'), old));
  for (std::size_t i = 0; i < old.size(); ++i) {
    std::string altered = old;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    CHECK_FALSE(parse_unsubscribe_token(kKey, altered));
  }
  CHECK_FALSE(parse_unsubscribe_token(kKey, v1_token(std::string(32, 'x'), 1234, Channel::kEmail)));
}

TEST_CASE("unsubscribe footer and page follow the language fallback", "[unsubscribe]") {
  CHECK(unsubscribe_footer("es-MX", "https://x/u/T").find("Para no recibir") != std::string::npos);
  CHECK(unsubscribe_footer("fr", "https://x/u/T").find("To stop receiving") != std::string::npos);
  CHECK(unsubscribe_footer("en", "https://x/u/T").ends_with("https://x/u/T\n"));
  std::string page = unsubscribe_page("es", "/u/T", false);
  CHECK(page.find("<form method=\"post\" action=\"/u/T\">") != std::string::npos);
  CHECK(page.find("name=\"List-Unsubscribe\" value=\"One-Click\"") != std::string::npos);
  CHECK(page.find("lang=\"es\"") != std::string::npos);
  CHECK(unsubscribe_page("en", "/u/T", true).find("<form") == std::string::npos);
}
