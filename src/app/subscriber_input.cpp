#include "app/subscriber_input.h"

#include <algorithm>

#include "core/phone.h"
#include "core/report.h"

namespace tocsin::app {

using nlohmann::json;

bool plausible_email(std::string_view e) {
  auto at = e.find('@');
  if (at == std::string_view::npos || at == 0 || e.size() > 254 || e.find('@', at + 1) != e.npos)
    return false;
  if (has_control_chars(e) || std::any_of(e.begin(), e.end(), [](char c) { return c == ' ' || c == ','; }))
    return false;
  auto domain = e.substr(at + 1);
  auto dot = domain.find('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < domain.size();
}

namespace {

std::variant<json, MalformedBody> parse_object(std::string_view body) {
  if (json_too_deep(body)) return MalformedBody{"JSON nests too deeply", ""};
  auto parsed = parse_json_strict(body);
  if (auto* bad = std::get_if<JsonSyntaxError>(&parsed)) return MalformedBody{bad->detail, bad->path};
  if (!std::get<json>(parsed).is_object()) return MalformedBody{"body must be a JSON object", ""};
  return std::move(std::get<json>(parsed));
}

// The editable fields as a POST body would give them.
json subscriber_doc(const store::Subscriber& s) {
  json doc{{"name", s.name}, {"language", s.language}, {"groups", s.groups}};
  if (!s.phone.empty()) doc["phone"] = s.phone;
  if (!s.email.empty()) doc["email"] = s.email;
  json channels = json::array();
  for (Channel c : s.channels) channels.push_back(to_string(c));
  doc["channels"] = channels;
  return doc;
}

template <typename T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

ParsedSubscriber parse_subscriber(std::string_view body, const Config& config) {
  auto parsed = parse_object(body);
  if (auto* bad = std::get_if<MalformedBody>(&parsed)) return *bad;
  return validate_subscriber(std::get<json>(parsed), config);
}

std::variant<json, MalformedBody> parse_patch(std::string_view body) {
  return parse_object(body);
}

ParsedSubscriber patch_subscriber(const store::Subscriber& existing, const json& patch,
                                  const Config& config) {
  json doc = subscriber_doc(existing);
  doc.merge_patch(patch);
  auto parsed = validate_subscriber(doc, config);
  if (auto* s = std::get_if<store::Subscriber>(&parsed)) {
    s->id = existing.id;
    s->sms_opted_out = existing.sms_opted_out;
    s->created_at = existing.created_at;
  }
  return parsed;
}

bool same_data(const store::Subscriber& a, const store::Subscriber& b) {
  return a.name == b.name && a.phone == b.phone && a.email == b.email && a.language == b.language &&
         sorted(a.groups) == sorted(b.groups) && sorted(a.channels) == sorted(b.channels);
}

ParsedSubscriber validate_subscriber(const json& doc, const Config& config) {
  std::vector<FieldProblem> problems;
  JsonReader r(doc, "", problems);
  r.reject_unknown({"name", "phone", "email", "language", "groups", "channels"});
  store::Subscriber s;
  s.name = r.string("name", Need::kOptional, 200).value_or("");
  // Control characters in a name, number or address only ever break what
  // reads them (logs, SMTP headers, provider APIs); NUL truncates in C.
  for (const char* key : {"name", "phone", "email"})
    if (auto* v = r.get(key); v && v->is_string() && has_control_chars(v->get_ref<const std::string&>()))
      r.problem(key, "must not contain control characters");
  if (has_control_chars(s.name)) s.name.clear();
  if (auto phone = r.string("phone", Need::kOptional, 64);
      phone && !phone->empty() && !has_control_chars(*phone)) {
    if (auto e164 = normalize_phone(*phone, config.subscribers.default_region)) s.phone = *e164;
    else r.problem("phone", "is not a valid phone number for region " +
                                config.subscribers.default_region + " (give +country code)");
  }
  if (auto email = r.string("email", Need::kOptional, 254);
      email && !email->empty() && !has_control_chars(*email)) {
    if (plausible_email(*email)) s.email = *email;
    else r.problem("email", "is not an email address");
  }
  if (auto lang = r.string("language", Need::kOptional, 35)) {
    if (valid_language(*lang)) s.language = *lang;
    else r.problem("language", "must be a language tag like en, es or es-MX");
  }
  if (auto groups = r.strings("groups", Need::kRequired, 100)) {
    if (groups->empty()) r.problem("groups", "must name at least one group");
    for (std::size_t i = 0; i < groups->size(); ++i) {
      if (!config.group((*groups)[i]))
        problems.push_back({index_path("groups", i), "no group named \"" + (*groups)[i].substr(0, 100) + "\""});
      else if (std::find(s.groups.begin(), s.groups.end(), (*groups)[i]) == s.groups.end())
        s.groups.push_back((*groups)[i]);
    }
  }
  bool had_contact_error = !problems.empty() && std::any_of(problems.begin(), problems.end(), [](auto& p) {
    return p.path == "phone" || p.path == "email";
  });
  if (r.has("channels")) {
    if (auto chans = r.strings("channels", Need::kRequired, 4)) {
      for (std::size_t i = 0; i < chans->size(); ++i) {
        auto ch = parse_channel((*chans)[i]);
        if (!ch) {
          problems.push_back({index_path("channels", i), "must be sms, email, signal or voice"});
        } else if (uses_phone(*ch) && s.phone.empty() && !had_contact_error) {
          problems.push_back({index_path("channels", i),
                              std::string(to_string(*ch)) + " needs a phone number"});
        } else if (*ch == Channel::kEmail && s.email.empty() && !had_contact_error) {
          problems.push_back({index_path("channels", i), "email needs an email address"});
        } else if (std::find(s.channels.begin(), s.channels.end(), *ch) == s.channels.end()) {
          s.channels.push_back(*ch);
        }
      }
    }
  } else {
    if (!s.phone.empty()) s.channels.push_back(Channel::kSms);
    if (!s.email.empty()) s.channels.push_back(Channel::kEmail);
  }
  if (problems.empty() && s.phone.empty() && s.email.empty())
    problems.push_back({"phone", "a subscriber needs a phone number or an email address"});
  if (!problems.empty()) return problems;
  return s;
}

}  // namespace tocsin::app
