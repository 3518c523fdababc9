#include <catch2/catch.hpp>
#include <openssl/hmac.h>

#include <random>

#include "core/ecdsa.h"
#include "core/signature.h"

using namespace tocsin;

namespace {
// The Standard Webhooks reference example (from the spec's test vectors).
const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const std::string kId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const int64_t kTs = 1614265330;
const std::string kBody = R"({"test": 2432232314})";
const std::string kExpected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
}  // namespace

TEST_CASE("signing matches the Standard Webhooks reference vector", "[signature]") {
  auto key = decode_webhook_secret(kSecret);
  REQUIRE(key);
  CHECK(sign_webhook(*key, kId, kTs, kBody) == kExpected);
}

TEST_CASE("verification accepts within ±300 s and refuses beyond", "[signature]") {
  std::vector<std::string> keys = {*decode_webhook_secret(kSecret)};
  auto at = [&](int64_t now) {
    return verify_webhook(kId, std::to_string(kTs), kExpected, kBody, keys, now).check;
  };
  CHECK(at(kTs) == SignatureCheck::kValid);
  CHECK(at(kTs + 299) == SignatureCheck::kValid);
  CHECK(at(kTs - 299) == SignatureCheck::kValid);
  CHECK(at(kTs + 300) == SignatureCheck::kValid);
  CHECK(at(kTs + 301) == SignatureCheck::kStale);
  CHECK(at(kTs - 301) == SignatureCheck::kStale);
}

TEST_CASE("verification refuses tampering, wrong keys and junk", "[signature]") {
  std::vector<std::string> keys = {*decode_webhook_secret(kSecret)};
  auto ts = std::to_string(kTs);
  CHECK(verify_webhook(kId, ts, kExpected, kBody + " ", keys, kTs).check == SignatureCheck::kNoMatch);
  CHECK(verify_webhook("msg_other", ts, kExpected, kBody, keys, kTs).check == SignatureCheck::kNoMatch);
  CHECK(verify_webhook(kId, std::to_string(kTs + 1), kExpected, kBody, keys, kTs).check ==
        SignatureCheck::kNoMatch);
  std::vector<std::string> other = {std::string(24, 'k')};
  CHECK(verify_webhook(kId, ts, kExpected, kBody, other, kTs).check == SignatureCheck::kNoMatch);
  CHECK(verify_webhook(kId, ts, "v1,notbase64!!", kBody, keys, kTs).check == SignatureCheck::kNoMatch);
  CHECK(verify_webhook(kId, ts, "v2," + kExpected.substr(3), kBody, keys, kTs).check ==
        SignatureCheck::kNoMatch);
  CHECK(verify_webhook("", ts, kExpected, kBody, keys, kTs).check == SignatureCheck::kMissingHeaders);
  CHECK(verify_webhook(kId, "", kExpected, kBody, keys, kTs).check == SignatureCheck::kMissingHeaders);
  CHECK(verify_webhook(kId, ts, "", kBody, keys, kTs).check == SignatureCheck::kMissingHeaders);
  CHECK(verify_webhook(kId, "12ab", kExpected, kBody, keys, kTs).check == SignatureCheck::kBadTimestamp);
}

TEST_CASE("key rotation: any listed signature under any key verifies", "[signature]") {
  std::string old_key(32, 'o'), new_key(32, 'n');
  std::string sig_old = sign_webhook(old_key, kId, kTs, kBody);
  std::string sig_new = sign_webhook(new_key, kId, kTs, kBody);
  auto ts = std::to_string(kTs);
  // The sender signs with both keys during rotation; the receiver knows only the new one.
  auto r = verify_webhook(kId, ts, sig_old + " " + sig_new, kBody, {new_key}, kTs);
  CHECK(r.check == SignatureCheck::kValid);
  // The receiver knows both; the sender already moved to the new key.
  r = verify_webhook(kId, ts, sig_new, kBody, {old_key, new_key}, kTs);
  CHECK(r.check == SignatureCheck::kValid);
  CHECK(r.key_index == 1);
  CHECK(verify_webhook(kId, ts, sig_old, kBody, {new_key}, kTs).check == SignatureCheck::kNoMatch);
}

TEST_CASE("secrets decode only with valid base64", "[signature]") {
  CHECK_FALSE(decode_webhook_secret("whsec_"));
  CHECK_FALSE(decode_webhook_secret("whsec_***"));
  CHECK(decode_webhook_secret("whsec_AAAA") == std::string(3, '\0'));
  CHECK(base64_decode(base64_encode("hello!?")) == std::string("hello!?"));
  CHECK(base64_decode(base64_encode("ab")) == std::string("ab"));
}

TEST_CASE("base64 decodes only the strict padded form", "[signature]") {
  // OpenSSL's block decoder trims whitespace and reads '=' anywhere; ours
  // must not (the fuzzer found "    " decoding to an empty key).
  CHECK_FALSE(base64_decode("    "));
  CHECK_FALSE(base64_decode("\n\n\n\n"));
  CHECK_FALSE(base64_decode("QQ==    "));
  CHECK_FALSE(base64_decode("  QQ=="));
  CHECK_FALSE(base64_decode("Q=Q="));
  CHECK_FALSE(base64_decode("===="));
  CHECK_FALSE(base64_decode("A==="));
  CHECK(base64_decode("QQ==") == std::string("A"));
  CHECK(base64_decode("QUI=") == std::string("AB"));
  CHECK(base64_decode("QUJD") == std::string("ABC"));
}

TEST_CASE("sendgrid event webhook: refused before any crypto without fresh headers or with a huge body",
          "[signature][reach]") {
  using P = EventWebhookPrecheck;
  const int64_t now = 1796083200;
  const std::string ts = std::to_string(now);
  CHECK(precheck_event_webhook("sig", ts, 100, now) == P::kOk);
  CHECK(precheck_event_webhook("", ts, 100, now) == P::kMissingHeaders);
  CHECK(precheck_event_webhook("sig", "", 100, now) == P::kMissingHeaders);
  for (const char* bad : {"yesterday", "1796083200.5", " 1796083200", "1796083200x", "-", "1e9",
                          "99999999999999999999999"})
    CHECK(precheck_event_webhook("sig", bad, 100, now) == P::kBadTimestamp);
  // 10 minutes each way, inclusive.
  CHECK(precheck_event_webhook("sig", std::to_string(now - 600), 100, now) == P::kOk);
  CHECK(precheck_event_webhook("sig", std::to_string(now + 600), 100, now) == P::kOk);
  CHECK(precheck_event_webhook("sig", std::to_string(now - 601), 100, now) == P::kStale);
  CHECK(precheck_event_webhook("sig", std::to_string(now + 601), 100, now) == P::kStale);
  CHECK(precheck_event_webhook("sig", "0", 100, now) == P::kStale);
  CHECK(precheck_event_webhook("sig", ts, kEventWebhookMaxBody, now) == P::kOk);
  CHECK(precheck_event_webhook("sig", ts, kEventWebhookMaxBody + 1, now) == P::kTooLarge);
}

TEST_CASE("hmac_sha256 matches RFC 4231 and OpenSSL's HMAC for every key and data length", "[signature]") {
  auto hex = [](const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) out += {d[c >> 4], d[c & 15]};
    return out;
  };
  CHECK(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hex(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  std::mt19937 rng(4231);
  for (std::size_t klen : {0, 1, 32, 63, 64, 65, 128, 300}) {
    for (std::size_t dlen : {0, 1, 55, 56, 64, 119, 1000}) {
      std::string key(klen, '\0'), data(dlen, '\0');
      for (auto& c : key) c = static_cast<char>(rng());
      for (auto& c : data) c = static_cast<char>(rng());
      unsigned char buf[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), buf, &len);
      INFO("key " << klen << " data " << dlen);
      CHECK(hmac_sha256(key, data) == std::string(reinterpret_cast<char*>(buf), len));
    }
  }
}
