// Report helpers: the nesting-depth check, area paths and scopes, language
// tags, RFC 3339 times (parse_report itself is in report_parse.cpp).
#include "core/report.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

namespace tocsin {

bool json_too_deep(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') --depth;
  }
  return false;
}

bool valid_area(std::string_view area) {
  if (area.empty() || area.size() > 200) return false;
  bool segment_start = true;
  for (char c : area) {
    if (c == '/') {
      if (segment_start) return false;  // empty segment
      segment_start = true;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
    segment_start = false;
  }
  return !segment_start;
}

bool area_covers(std::string_view scope, std::string_view area) {
  if (!area.starts_with(scope)) return false;
  return area.size() == scope.size() || area[scope.size()] == '/';
}

bool any_area_covers(const std::vector<std::string>& scopes, std::string_view area) {
  return std::any_of(scopes.begin(), scopes.end(),
                     [&](const std::string& scope) { return area_covers(scope, area); });
}

bool valid_language(std::string_view tag) {
  if (tag.empty() || tag.size() > 35) return false;
  std::size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    auto end = tag.find('-', start);
    if (end == std::string_view::npos) end = tag.size();
    auto part = tag.substr(start, end - start);
    if (first) {
      if (part.size() < 2 || part.size() > 3) return false;
      for (char c : part)
        if (!std::isalpha(static_cast<unsigned char>(c))) return false;
    } else {
      if (part.size() < 2 || part.size() > 8) return false;
      for (char c : part)
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    }
    first = false;
    start = end + 1;
  }
  return true;
}

namespace {

bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  for (std::size_t i = pos; i < pos + n; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  std::from_chars(s.data() + pos, s.data() + pos + n, out);
  return true;
}

}  // namespace

std::optional<UnixMs> parse_rfc3339(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !parse_digits(s, 0, 4, y) || s[4] != '-' || !parse_digits(s, 5, 2, mo) ||
      s[7] != '-' || !parse_digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
      !parse_digits(s, 11, 2, h) || s[13] != ':' || !parse_digits(s, 14, 2, mi) || s[16] != ':' ||
      !parse_digits(s, 17, 2, sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    std::size_t digits = 0;
    ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < 3; ++i) ms *= 10;
  }
  int offset_min = 0;
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (!parse_digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !parse_digits(s, pos + 4, 2, om) || oh > 14 || om > 59 || (oh == 14 && om > 0))
      return std::nullopt;
    offset_min = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  if (tm.tm_mday != d) return std::nullopt;  // 31 February and friends
  return (static_cast<int64_t>(t) - offset_min * 60) * 1000 + ms;
}

std::string format_rfc3339(UnixMs ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace tocsin
