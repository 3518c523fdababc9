// Email unsubscribe tokens and texts (core/unsubscribe.h).
#include "core/unsubscribe.h"

#include <catch2/catch.hpp>

using namespace tocsin;

namespace {
const std::string kKey(32, 'k');
}

TEST_CASE("unsubscribe token: round trip, opaque, and refused when altered or forged",
          "[unsubscribe]") {
  std::string t = unsubscribe_token(kKey, 1234, Channel::kEmail);
  CHECK(t.size() == 34);
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
