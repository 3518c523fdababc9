#include "core/ids.h"

#include <string_view>

namespace tocsin {

namespace {
constexpr std::string_view kAlphabet = "23456789ABCDEFGHJKMNPQRSTVWXYZ";
}

std::string incident_code(uint64_t random) {
  std::string out(6, '2');
  for (auto& c : out) {
    c = kAlphabet[random % kAlphabet.size()];
    random /= kAlphabet.size();
  }
  return out;
}

bool looks_like_incident_code(const std::string& s) {
  if (s.size() != 6) return false;
  for (char c : s)
    if (kAlphabet.find(c) == std::string_view::npos) return false;
  return true;
}

}  // namespace tocsin
