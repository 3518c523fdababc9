// parse_report (one SAX pass) against the DOM parse it replaced
// (tests/support/report_dom.cpp): the same Report, problems in the same
// order with the same messages, or the same malformed detail, for edge
// cases, byte mutations of real reports and generated documents.
#include <array>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "core/report.h"
#include "support/report_dom.h"

using namespace tocsin;

namespace {

constexpr UnixMs kNow = 1796083200000;  // 2026-12-01T00:00:00Z

const char* kValid = R"({
  "msg_type": "alert", "status": "actual", "event": "enforcement_activity",
  "severity": "severe", "area": "la/boyle-heights",
  "location": {"lat": 34.0339, "lon": -118.2107, "description": "1st St & Soto St"},
  "observed_at": "2026-11-22T13:05:00Z",
  "headline": {"en": "ICE vehicles at 1st & Soto", "es": "Veh\u00edculos de ICE en 1st y Soto"},
  "instruction": {"en": "Legal observers needed"},
  "dedup_key": "k1"})";

// What differs ("" when nothing); counts the kind of result in `kinds`
// (Report, MalformedReport, problems), so a test can show it reached all three.
std::string same(std::string_view body, std::array<int, 3>* kinds = nullptr) {
  auto parsed = parse_report(body, kNow);
  if (kinds) ++(*kinds)[parsed.index()];
  return testing::parsed_difference(parsed, testing::parse_report_dom(body, kNow));
}

// Both parses agree on `count` bodies from `next` (the first five
// disagreements are shown), which reach each kind of result `min_each` times.
template <class Next>
void agree_on(int count, int min_each, Next next) {
  int disagreements = 0;
  std::array<int, 3> kinds{};
  for (int i = 0; i < count && disagreements < 5; ++i) {
    std::string s = next();
    auto d = same(s, &kinds);
    if (!d.empty()) {
      ++disagreements;
      FAIL_CHECK(d << "\non: " << s);
    }
  }
  CHECK(disagreements == 0);
  INFO("reports " << kinds[0] << ", malformed " << kinds[1] << ", with problems " << kinds[2]);
  CHECK(std::min({kinds[0], kinds[1], kinds[2]}) >= min_each);
}

// Random JSON text with the report's keys in likely and unlikely places,
// duplicates now and then (written as text: a DOM cannot hold them).
class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  std::string document() {
    if (pick(20) == 0) return value(0);
    if (pick(2) == 0) return object(0, kTopKeys, 14);
    // A valid report with a few members changed, left out or added.
    static const std::pair<const char*, const char*> kGood[] = {
        {"msg_type", "\"alert\""}, {"status", "\"actual\""}, {"event", "\"enforcement_activity\""},
        {"severity", "\"severe\""}, {"area", "\"la/boyle-heights\""},
        {"location", R"({"lat": 34.0339, "lon": -118.2107, "description": "1st St"})"},
        {"observed_at", "\"2026-11-22T13:05:00Z\""}, {"headline", R"({"en": "ICE at 1st", "es": "ICE"})"},
        {"instruction", R"({"en": "Bring water.\nStay"})"}, {"dedup_key", "\"k1\""}};
    std::string out = "{";
    for (const auto& [k, v] : kGood) {
      int r = pick(12);
      if (r == 0) continue;
      if (out.size() > 1) out += ",";
      out += "\"" + std::string(k) + "\":" + (r == 1 ? value(1) : std::string(v));
      if (pick(25) == 0) out += "," + key(kTopKeys, std::size(kTopKeys)) + ":" + value(1);
    }
    return out + "}";
  }

 private:
  static constexpr const char* kTopKeys[] = {
      "msg_type", "status", "event", "severity", "area", "location", "observed_at", "headline",
      "instruction", "dedup_key", "references", "certainty", "", "areas", "lat", "en", "a"};
  static constexpr const char* kInnerKeys[] = {"lat", "lon", "description", "en", "es", "es-MX",
                                               "english!", "", "alt", "x-y", "zz"};
  static constexpr const char* kStrings[] = {
      "\"alert\"", "\"update\"", "\"cancel\"", "\"actual\"", "\"exercise\"", "\"severe\"",
      "\"minor\"", "\"enforcement_activity\"", "\"Raid!\"", "\"la/boyle-heights\"", "\"LA//x\"",
      "\"2026-11-22T13:05:00Z\"", "\"2026-02-31T10:00:00Z\"", "\"1999-12-31T23:59:59Z\"",
      "\"observed\"", "\"likely\"", "\"ABCDEF\"", "\"\"", "\"a\\u0000b\"", "\"line\\nbreak\"",
      "\"bell\\u0007\"", "\"\\ud83d\\ude00\"", "\"caf\xc3\xa9\"", "\"tab\\t\"",
      "\"\\\"q\\\"\"", "\"k1\""};
  static constexpr const char* kNumbers[] = {
      "0", "-0", "34.0339", "-118.2107", "91", "-90", "90.0000001", "180", "-181", "1e2", "1e-400",
      "123456789012345678901234567890", "18446744073709551615", "-9223372036854775809", "7",
      "-9223372036854775808", "4e-320", "-0.0", "1.5e+3", "1E-2", "34.03390000000000000001"};
  // Refused by the lexer (a few, so that most documents get to the checks).
  static constexpr const char* kInvalid[] = {"1E400", "01", "1.", ".5", "-", "2e", "\"\\udc00\"",
                                             "\"\\ud800\"", "\"bad\xff\"", "\"\xed\xa0\x80\"",
                                             "\"a\x01\"", "tru", "nul", "\"\\x\""};

  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  std::string key(const char* const* keys, int n) {
    std::string k = pick(12) == 0 ? std::string("x") + std::to_string(pick(30)) : keys[pick(n)];
    if (pick(40) == 0) k += "\\u0041";
    return "\"" + k + "\"";
  }

  template <std::size_t N>
  std::string object(int depth, const char* const (&keys)[N], int max_members) {
    int n = pick(max_members + 1);
    std::vector<std::string> used;
    std::string out = "{";
    for (int i = 0; i < n; ++i) {
      if (i) out += pick(60) == 0 ? " ," : ",";
      std::string k = !used.empty() && pick(25) == 0 ? used[static_cast<std::size_t>(pick(static_cast<int>(used.size())))]
                                                     : key(keys, static_cast<int>(N));
      used.push_back(k);
      out += k + ":" + value(depth + 1);
    }
    return out + (pick(200) == 0 ? "" : "}");
  }

  std::string value(int depth) {
    if (pick(150) == 0) return kInvalid[pick(std::size(kInvalid))];
    int r = pick(depth > 4 ? 6 : 9);
    switch (r) {
      case 0: return "null";
      case 1: return pick(2) ? "true" : "false";
      case 2:
      case 3: return kNumbers[pick(std::size(kNumbers))];
      case 4:
      case 5: return kStrings[pick(std::size(kStrings))];
      case 6:
      case 7: return object(depth, kInnerKeys, 5);
      default: {
        std::string out = "[";
        int n = pick(4);
        for (int i = 0; i < n; ++i) out += (i ? "," : "") + value(depth + 1);
        return out + "]";
      }
    }
  }

  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("the SAX report parse agrees with the DOM parse on edge cases", "[report][strict]") {
  const std::vector<std::string> cases = {
      kValid, "", " ", "{}", "[]", "5", "\"s\"", "null", "{} x", "{}\n", " {} ", std::string("{}\0", 3),
      "[{\"a\":1,\"a\":2}]", R"([1,{"b":[{"c":1,"c":2}]}])", R"({"a":{"b":1},"a":2})",
      R"({"location":{"lat":1,"lon":2,"lat":3}})", R"({"x":[1,2,{"y":0,"y":1}]})",
      R"({"":1})", R"({"location":{"":1,"lat":1,"lon":1}})", R"({"headline":{"":"x"}})",
      R"({"area":null,"location":{"lat":1,"lon":2}})", R"({"location":null})",
      R"({"location":[1]})", R"({"location":{"lat":null,"lon":"w","description":null}})",
      R"({"headline":{}})", R"({"headline":null,"msg_type":"cancel"})",
      R"({"headline":{"en":null,"es":1,"fr":{"a":1}}})", R"({"references":null,"msg_type":"update"})",
      R"({"references":"","msg_type":"update"})", R"({"msg_type":"alert","references":"X"})",
      R"({"msg_type":{"a":[1,2,{"b":null}]}})", R"({"unknown":{"deep":[[[{"k":1,"k":2}]]]}})",
      R"({"location":{"lat":1e400,"lon":0}})", R"({"location":{"lat":-0,"lon":18446744073709551615}})",
      R"({"event":"\ud800"})", R"({"event":"\udc00x"})", "{\"event\":\"\xff\"}",
      "{\"event\":\"a\x01\"}", R"({"event":"a\u0001"})", R"({"zz":1,"aa":2,"msg_type":3,"B":4})",
      R"({"dedup_key":"k\u0000"})", R"({"observed_at":"2026-11-22T13:05:00.123+14:00"})",
      std::string(40, '{'), std::string(32, '[') + std::string(32, ']'),
      // nlohmann's lexer: a NUL where a token starts ends the input; a BOM only first
      std::string("{}\0junk", 7), std::string("{\"a\":1\0}", 9), std::string("{\"a\":\0}", 8),
      "\xEF\xBB\xBF{}", "\xEF\xBB\xBF", "\xEF{}", "\xEF\xBB{}", " \xEF\xBB\xBF{}",
      R"({"a":1,"\u0061":2})", R"({"msg_type":"al\u0065rt"})", R"({"\u006dsg_type":"alert"})",
      R"({"e":"\"\\\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00"})", R"({"e":"\x"})", R"({"e":"\u12G4"})",
      R"({"e":"\ud800\u0041"})", R"({"e":"\ud800\"})", R"({"e":"\u00"})", "{\"e\":\"\x7f\"}",
      "{\"e\":\"\xc0\x80\"}", "{\"e\":\"\xf4\x90\x80\x80\"}", "{\"e\":\"\xf0\x9f\x98\x80\"}",
      R"({"location":{"lat":-9223372036854775808,"lon":-0.0}})",
      R"({"location":{"lat":4e-320,"lon":1.5e+3},"x":[1E-2,-1e-400,1e309]})",
      R"({"location":{"lat":-9223372036854775809,"lon":18446744073709551616}})",
      "[1,]", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[01]", "[-]", "[1.]", "[1e]", "[1e+]",
      "[.5]", "[+1]", "[truex]", "[nul]", "\t{}\r\n", "{}\f", "{}}", "[]]", "{\"a\":1}{}",
  };
  for (const auto& c : cases) {
    INFO(c);
    CHECK(same(c) == "");
  }
}

TEST_CASE("the SAX report parse agrees with the DOM parse on mutated reports", "[report][strict]") {
  std::vector<std::string> seeds = {kValid};
  for (const char* f : {"alert.json", "cancel.json", "dupkey.json", "update.json"}) {
    std::ifstream in(std::string(TOCSIN_SOURCE_DIR) + "/fuzz/corpus/report/" + f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!ss.str().empty()) seeds.push_back(ss.str());
  }
  const std::string tokens[] = {"null", "1", "\"x\"", "{", "}", "[", "]", ",", ":", "\"lat\":",
                                "\"en\":\"y\",", "\\u00e9", "\xc3", "\"status\":\"test\",",
                                std::string(1, '\0'), "\\ud800\\udc00", "\xef\xbb\xbf", "-0.0", "1e-9"};
  std::mt19937 rng(20261203);
  agree_on(20000, 100, [&] {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      std::size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = static_cast<char>(rng() % 256); break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        case 2: s.insert(at, tokens[rng() % std::size(tokens)]); break;
        default: s.insert(at, s.substr(rng() % s.size(), rng() % 24)); break;
      }
    }
    return s;
  });
}

TEST_CASE("the SAX report parse agrees with the DOM parse on generated documents", "[report][strict]") {
  Gen gen(7);
  agree_on(30000, 500, [&] { return gen.document(); });
}
