// A strict JSON reader that calls a SAX handler: the grammar, UTF-8 and
// escape checks and number conversions of nlohmann::json's lexer (3.11.2,
// which parse_json_strict uses), so a text is refused here exactly when it
// is refused there; but without copying strings that hold no escape (the
// handler gets views into the text) and without an allocation per token.
// Used by parse_report; tests/unit/report_diff_test.cpp and fuzz/report.cpp
// hold it to the nlohmann DOM parse.
//
// Handler: null(), boolean(bool), number(double) (integers converted as
// nlohmann's get<double>() converts them), string(std::string_view),
// key(std::string_view), start_object(), end_object(), start_array(),
// end_array(). The views live until the next call.
#pragma once

#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <locale.h>
#include <string>
#include <string_view>
#include <vector>

namespace tocsin {

namespace json_sax_detail {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// strtod in the C locale (nlohmann swaps '.' for the locale's decimal point
// and calls strtod: the same value).
inline double c_strtod(const std::string& text) {
  static locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  return strtod_l(text.c_str(), nullptr, c_locale);
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  template <class Sax>
  bool run(Sax& sax) {
    // A UTF-8 byte order mark is skipped; 0xEF not starting one is refused.
    if (!s_.empty() && static_cast<unsigned char>(s_[0]) == 0xEF) {
      if (s_.size() < 3 || static_cast<unsigned char>(s_[1]) != 0xBB ||
          static_cast<unsigned char>(s_[2]) != 0xBF)
        return false;
      p_ = 3;
    }
    std::vector<bool> stack;  // open containers, true = object
    for (;;) {
      // A value.
      ws();
      if (p_ >= s_.size()) return false;
      char c = s_[p_];
      if (c == '{') {
        ++p_;
        sax.start_object();
        ws();
        if (p_ < s_.size() && s_[p_] == '}') {
          ++p_;
          sax.end_object();
        } else {
          if (!member_key(sax)) return false;
          stack.push_back(true);
          continue;
        }
      } else if (c == '[') {
        ++p_;
        sax.start_array();
        ws();
        if (p_ < s_.size() && s_[p_] == ']') {
          ++p_;
          sax.end_array();
        } else {
          stack.push_back(false);
          continue;
        }
      } else if (c == '"') {
        std::string_view v;
        if (!string(v)) return false;
        sax.string(v);
      } else if (c == 't') {
        if (!literal("true")) return false;
        sax.boolean(true);
      } else if (c == 'f') {
        if (!literal("false")) return false;
        sax.boolean(false);
      } else if (c == 'n') {
        if (!literal("null")) return false;
        sax.null();
      } else if (c == '-' || is_digit(c)) {
        double d = 0;
        if (!number(d)) return false;
        sax.number(d);
      } else {
        return false;
      }
      // After a value: a separator, the end of containers, or of the text.
      for (;;) {
        ws();
        // nlohmann's lexer takes a NUL byte where a token starts for the end
        // of the input: what follows it is not read.
        if (stack.empty()) return p_ == s_.size() || s_[p_] == '\0';
        if (p_ >= s_.size()) return false;
        c = s_[p_++];
        if (c == ',') {
          if (stack.back() && !member_key(sax)) return false;
          break;
        }
        if (c == (stack.back() ? '}' : ']')) {
          if (stack.back()) sax.end_object();
          else sax.end_array();
          stack.pop_back();
          continue;
        }
        return false;
      }
    }
  }

 private:
  void ws() {
    while (p_ < s_.size() && is_ws(s_[p_])) ++p_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }
  template <class Sax>
  bool member_key(Sax& sax) {
    ws();
    if (p_ >= s_.size() || s_[p_] != '"') return false;
    std::string_view k;
    if (!string(k)) return false;
    sax.key(k);
    ws();
    if (p_ >= s_.size() || s_[p_] != ':') return false;
    ++p_;
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; integers that fit
  // int64 (negative) or uint64 are converted from the integer, the rest
  // with strtod; an infinite result is refused (nlohmann: "number overflow").
  bool number(double& out) {
    std::size_t start = p_;
    bool negative = s_[p_] == '-';
    if (negative) ++p_;
    if (p_ >= s_.size() || !is_digit(s_[p_])) return false;
    bool integer = true;
    uint64_t mag = 0;
    bool overflow = false;
    if (s_[p_] == '0') {
      ++p_;
    } else {
      while (p_ < s_.size() && is_digit(s_[p_])) {
        auto d = static_cast<uint64_t>(s_[p_] - '0');
        if (mag > (UINT64_MAX - d) / 10) overflow = true;
        else mag = mag * 10 + d;
        ++p_;
      }
    }
    if (p_ < s_.size() && s_[p_] == '.') {
      integer = false;
      ++p_;
      if (p_ >= s_.size() || !is_digit(s_[p_])) return false;
      while (p_ < s_.size() && is_digit(s_[p_])) ++p_;
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      integer = false;
      ++p_;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (p_ >= s_.size() || !is_digit(s_[p_])) return false;
      while (p_ < s_.size() && is_digit(s_[p_])) ++p_;
    }
    if (integer && !overflow) {
      if (!negative) {
        out = static_cast<double>(mag);
        return true;
      }
      if (mag <= static_cast<uint64_t>(INT64_MAX) + 1) {
        out = static_cast<double>(mag == static_cast<uint64_t>(INT64_MAX) + 1
                                      ? INT64_MIN
                                      : -static_cast<int64_t>(mag));
        return true;
      }
    }
    number_text_.assign(s_.data() + start, p_ - start);
    out = c_strtod(number_text_);
    return std::isfinite(out);
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool hex4(uint32_t& cp) {
    if (p_ + 4 > s_.size()) return false;
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(s_[p_++]);
      if (h < 0) return false;
      cp = cp * 16 + static_cast<uint32_t>(h);
    }
    return true;
  }
  // One UTF-8 sequence of 2-4 bytes at p_ (RFC 3629: no overlong forms, no
  // surrogates, nothing above U+10FFFF).
  bool utf8() {
    auto at = [this](std::size_t i) -> unsigned {
      return p_ + i < s_.size() ? static_cast<unsigned char>(s_[p_ + i]) : 0u;
    };
    unsigned c = at(0);
    auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
      unsigned b = at(i);
      return b >= lo && b <= hi;
    };
    std::size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF) n = cont(1) ? 2 : 0;
    else if (c == 0xE0) n = cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = cont(1) && cont(2) ? 3 : 0;
    else if (c == 0xED) n = cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    else if (c == 0xF0) n = cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
    else if (c >= 0xF1 && c <= 0xF3) n = cont(1) && cont(2) && cont(3) ? 4 : 0;
    else if (c == 0xF4) n = cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    if (n == 0) return false;
    p_ += n;
    return true;
  }
  // A string at p_ (on its '"'): `out` views the text when it holds no
  // escape, else the unescaped copy in scratch_.
  bool string(std::string_view& out) {
    ++p_;
    std::size_t start = p_;
    bool copied = false;
    for (;;) {
      if (p_ >= s_.size()) return false;
      auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        if (copied) {
          scratch_.append(s_.data() + start, p_ - start);
          out = scratch_;
        } else {
          out = s_.substr(start, p_ - start);
        }
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c >= 0x80) {
        if (!utf8()) return false;
        continue;
      }
      if (c != '\\') {
        ++p_;
        continue;
      }
      if (!copied) {
        scratch_.clear();
        copied = true;
      }
      scratch_.append(s_.data() + start, p_ - start);
      ++p_;
      if (p_ >= s_.size()) return false;
      char e = s_[p_++];
      switch (e) {
        case '"': scratch_.push_back('"'); break;
        case '\\': scratch_.push_back('\\'); break;
        case '/': scratch_.push_back('/'); break;
        case 'b': scratch_.push_back('\b'); break;
        case 'f': scratch_.push_back('\f'); break;
        case 'n': scratch_.push_back('\n'); break;
        case 'r': scratch_.push_back('\r'); break;
        case 't': scratch_.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (p_ + 2 > s_.size() || s_[p_] != '\\' || s_[p_ + 1] != 'u') return false;
            p_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          put_utf8(scratch_, cp);
          break;
        }
        default: return false;
      }
      start = p_;
    }
  }

  std::string_view s_;
  std::size_t p_ = 0;
  std::string scratch_;      // the last unescaped string
  std::string number_text_;  // a number's text for strtod
};

}  // namespace json_sax_detail

// True when `text` is one JSON value (with optional surrounding whitespace
// and a leading UTF-8 BOM, as nlohmann accepts), having called `sax` for
// each event; false at the first error (events already called stand).
template <class Sax>
bool json_sax_parse(std::string_view text, Sax& sax) {
  json_sax_detail::Scanner scanner(text);
  return scanner.run(sax);
}

}  // namespace tocsin
