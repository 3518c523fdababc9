#include "core/join.h"

#include <cctype>

namespace tocsin {
namespace {

bool spanish(std::string_view language) { return language.starts_with("es"); }

// The language a keyword's prompt is in: its own, else the group's.
const std::string& keyword_language(const Group& g, const std::string& keyword) {
  auto it = g.join_keyword_languages.find(keyword);
  return it == g.join_keyword_languages.end() ? g.join_language : it->second;
}

}  // namespace

std::string normalize_keyword(std::string_view k) {
  auto trim = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) || c == '.' || c == '!' || c == '"' ||
           c == '\'';
  };
  while (!k.empty() && trim(k.front())) k.remove_prefix(1);
  while (!k.empty() && trim(k.back())) k.remove_suffix(1);
  std::string out;
  bool space = false;
  for (char c : k) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

JoinIntent classify_join(std::string_view body, const std::vector<Group>& groups) {
  const std::string word = normalize_keyword(body);
  if (word == "YES") return {JoinAction::kConfirm, nullptr, "", "en"};
  // "SÍ" upper-cased byte-wise keeps the UTF-8 í (0xC3 0xAD) or shows Í.
  if (word == "SI" || word == "S\xc3\xad" || word == "S\xc3\x8d")
    return {JoinAction::kConfirm, nullptr, "", "es"};
  for (std::string_view prefix : {"LEAVE ", "SALIR "}) {
    if (!word.starts_with(prefix)) continue;
    std::string rest = word.substr(prefix.size());
    for (const auto& g : groups)
      for (const auto& k : g.join_keywords)
        if (k == rest) return {JoinAction::kLeave, &g, k, keyword_language(g, k)};
  }
  for (const auto& g : groups)
    for (const auto& k : g.join_keywords)
      if (k == word) return {JoinAction::kJoin, &g, k, keyword_language(g, k)};
  return {};
}

std::string join_prompt(std::string_view language, std::string_view keyword) {
  const std::string k(keyword);
  if (spanish(language))
    return "Alertas de respuesta rapida " + k +
           ": responda SI para recibirlas. Reply YES for English. Sin respuesta, no "
           "guardamos su numero.";
  return "Rapid-response alerts " + k +
         ": reply YES to get them in English. Responda SI para espanol. Without a reply we do not "
         "keep your number.";
}

std::string join_confirmed(std::string_view language, std::string_view keyword) {
  const std::string k(keyword);
  if (spanish(language))
    return "Listo: recibira las alertas " + k + ". LEAVE " + k +
           " para salir de este grupo, STOP para salir de todo, HELP para ayuda.";
  return "Done: you will get " + k + " alerts. LEAVE " + k +
         " to leave this group, STOP to stop everything, HELP for help.";
}

std::string join_left(std::string_view language, std::string_view keyword) {
  const std::string k(keyword);
  if (spanish(language)) return "Salio del grupo " + k + ". STOP para salir de todo.";
  return "You left " + k + ". STOP to stop everything.";
}

std::string first_join_language(const std::vector<Group>& groups) {
  for (const auto& g : groups)
    if (!g.join_keywords.empty()) return g.join_language;
  return "en";
}

std::string join_how(std::string_view language, const std::vector<Group>& groups) {
  std::vector<std::string> words;
  for (const auto& g : groups)
    for (const auto& k : g.join_keywords) words.push_back(k);
  if (words.empty()) return "";
  const bool es = spanish(language);
  std::string list;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) list += i + 1 == words.size() ? (es ? " o " : " or ") : ", ";
    list += words[i];
  }
  return es ? " Para unirse, envie " + list + "." : " Text " + list + " to join.";
}

}  // namespace tocsin
