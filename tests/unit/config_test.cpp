#include <algorithm>
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/config.h"
#include "core/areas.h"
#include "support/daemon.h"
#include "support/keys.h"

using namespace tocsin::app;

namespace {

const std::string kValid = R"({
  // comments are allowed
  "server": {"listen": "127.0.0.1:0", "max_body_bytes": 1048576, "public_url": "https://a.example.org"},
  "storage": {"sqlite": {"path": "var/t.db"}, "key_file": ")" + tocsin::test::shared_key_file() + R"("},
  "coordinators": [{"name": "la-hotline", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]}],
  "admin": {"tokens": ["0123456789abcdef0123"]},
  "dedup": {"window_s": 600, "radius_m": 250},
  "gateways": [
    {"name": "sms", "type": "twilio", "channel": "sms", "base_url": "http://127.0.0.1:1",
     "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "0123456789abcdef0123456789abcdef", "from": "+12135550100", "rate_per_s": 5},
    {"name": "mail", "type": "sendgrid", "channel": "email", "base_url": "http://127.0.0.1:1",
     "api_key": "SG.tocsin-test-key-id-00.tocsin-test-secret-0000000000000000000000000", "from": "alerts@example.org",
     "event_webhook_public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECe9afPvVcSa9y3kAvB2LWSDGk3c/V0TgqKq/axSSrK9rPRxJJWJlsDDTlaqbmKUtueUkNLHyQ5FIa1jksB/gFg=="}
  ],
  "groups": [{"name": "east", "match": {"areas": ["la/east-la"], "min_severity": "moderate"},
              "channels": ["sms", "email"]}],
  "templates": {"sms": {"en": "{{headline}}"}}
})";

// "path: message" of each problem or warning.
std::vector<std::string> lines(const std::vector<tocsin::FieldProblem>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.path + ": " + p.message);
  return out;
}

std::vector<std::string> problem_paths(const std::string& text) { return lines(parse_config(text, "").problems); }

}  // namespace

TEST_CASE("a valid config loads into plain structs", "[config]") {
  auto r = parse_config(kValid, "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  const Config& c = r.config;
  CHECK(c.server.listen == "127.0.0.1:0");
  CHECK(c.storage.sqlite_path == "var/t.db");
  REQUIRE(c.coordinators.size() == 1);
  CHECK(c.coordinators[0].keys.size() == 1);
  CHECK(c.dedup.window_s == 600);
  REQUIRE(c.gateways.size() == 2);
  CHECK(c.gateways[0].type == GatewayType::kTwilio);
  CHECK(c.gateways[0].rate_per_s == 5);
  CHECK(c.gateways[1].channel == tocsin::Channel::kEmail);
  REQUIRE(c.groups.size() == 1);
  CHECK(c.groups[0].min_severity == tocsin::Severity::kModerate);
  CHECK(c.templates.sms.at("en") == "{{headline}}");
}

TEST_CASE("every problem is reported with its JSON path", "[config]") {
  std::string bad = R"({
    "server": {"listen": "nowhere", "colour": 1},
    "coordinators": [{"name": "x", "secret": "plain", "areas": ["LA"]}],
    "gateways": [{"name": "g", "type": "pigeon", "channel": "sms"},
                 {"name": "t", "type": "twilio", "channel": "sms", "account_sid": "AC", "from": "2135550100"}],
    "groups": [{"name": "g1", "match": {"areas": []}, "channels": ["fax", "email"]}],
    "templates": {"sms": {"en": "{{#x}}"}}
  })";
  auto paths = problem_paths(bad);
  auto has = [&](const std::string& prefix) {
    for (const auto& p : paths)
      if (p.rfind(prefix, 0) == 0) return true;
    return false;
  };
  CHECK(has("server.listen: "));
  CHECK(has("server.colour: unknown field"));
  CHECK(has("coordinators[0].secret: "));
  CHECK(has("coordinators[0].areas[0]: "));
  CHECK(has("gateways[0].type: "));
  CHECK(has("gateways[1].auth_token: is required"));
  CHECK(has("gateways[1].from: "));
  CHECK(has("groups[0].match.areas: "));
  CHECK(has("groups[0].channels[0]: "));
  CHECK(has("groups[0].channels[1]: no gateway serves channel email"));
  CHECK(has("templates.sms.en: "));
  CHECK(paths.size() >= 11);
}

TEST_CASE("missing sections and non-JSON are problems, not crashes", "[config]") {
  CHECK(problem_paths("not json").size() == 1);
  CHECK(problem_paths("[]").size() == 1);
  auto paths = problem_paths("{}");
  CHECK(paths.size() == 4);  // storage.key_file, coordinators, gateways, groups
}

TEST_CASE("a key given twice in the config is refused, naming it, comments still allowed",
          "[config][strict]") {
  std::string twice = kValid;
  twice.insert(twice.find("\"dedup\""), R"("dedup": {"window_s": 1}, /* second */ )");
  CHECK(problem_paths(twice) ==
        std::vector<std::string>{"dedup: is given twice: duplicate key \"dedup\""});
  std::string nested = kValid;
  nested.insert(nested.find("\"radius_m\""), R"("window_s": 5, )");
  CHECK(problem_paths(nested) ==
        std::vector<std::string>{"dedup.window_s: is given twice: duplicate key \"window_s\""});
  CHECK(parse_config(kValid, "").ok());  // its // comment is no problem
}

TEST_CASE("the key file is required, read at load, and must be private", "[config][privacy]") {
  auto r = parse_config(kValid, "");
  REQUIRE(r.ok());
  REQUIRE(r.config.storage.keyring);
  CHECK(r.config.storage.keyring->active_id() == 1);

  auto with_storage = [](const std::string& storage) {
    std::string text = kValid;
    auto start = text.find("\"storage\":");
    auto end = text.find("\n", start);
    return text.substr(0, start) + "\"storage\": " + storage + "," + text.substr(end);
  };
  auto first = [](const std::string& text) {
    auto res = parse_config(text, "");
    return res.problems.empty() ? std::string() : res.problems.front().path + ": " + res.problems.front().message;
  };
  CHECK(first(with_storage(R"({"sqlite": {"path": "x.db"}})")).rfind("storage.key_file: is required", 0) == 0);
  CHECK(first(with_storage(R"({"key_file": "/nonexistent/tocsin.key"})")).rfind("storage.key_file: cannot read", 0) == 0);

  tocsin::test::TempDir dir;
  auto loose = dir.path() / "loose.key";
  tocsin::test::write_key_file(loose);
  std::filesystem::permissions(loose, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  CHECK(first(with_storage(R"({"key_file": ")" + loose.string() + "\"}")).find("readable by others") != std::string::npos);

  auto bad = dir.path() / "bad.key";
  {
    std::ofstream out(bad);
    out << "hash-key AAAA\n";
  }
  std::filesystem::permissions(bad, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  CHECK(first(with_storage(R"({"key_file": ")" + bad.string() + "\"}")).find("line 1: the hash key must be 32 bytes") !=
        std::string::npos);
  // Relative to the base directory, like every *_file path.
  auto rel = parse_config(with_storage(R"({"key_file": "loose.key"})"), dir.path().string());
  CHECK(rel.config.storage.key_file == (dir.path() / "loose.key").string());
}

TEST_CASE("retention.deliveries_days: default 30, fractions down to a second", "[config][privacy]") {
  CHECK(parse_config(kValid, "").config.retention.deliveries_days == 30);
  std::string text = kValid;
  text.insert(text.rfind('}'), R"(, "retention": {"deliveries_days": 0.5})");
  auto r = parse_config(text, "");
  REQUIRE(r.ok());
  CHECK(r.config.retention.deliveries_days == 0.5);
  text = kValid;
  text.insert(text.rfind('}'), R"(, "retention": {"deliveries_days": 0})");
  CHECK(problem_paths(text).at(0).rfind("retention.deliveries_days: ", 0) == 0);
}

TEST_CASE("admission, replay and refusal-summary settings: defaults and bounds",
          "[config][hardening]") {
  auto d = parse_config(kValid, "").config;
  CHECK(d.server.max_connections_per_address == 256);
  CHECK(d.server.first_byte_timeout_ms == 2000);
  CHECK(d.server.header_timeout_ms == 5000);
  CHECK(d.retention.provider_events_days == 30);
  CHECK(d.log.refused_summary_s == 60);
  auto with = [](const std::string& section, const std::string& body) {
    std::string text = kValid;
    if (section == "server") {
      const std::string at = R"("max_body_bytes": 1048576)";
      text.replace(text.find(at), at.size(), at + ", " + body);
    } else {
      text.insert(text.rfind('}'), ", \"" + section + "\": {" + body + "}");
    }
    return parse_config(text, "");
  };
  auto ok = with("server", R"("max_connections_per_address": 16, "first_byte_timeout_ms": 500, "header_timeout_ms": 3000)");
  REQUIRE(ok.ok());
  CHECK(ok.config.server.max_connections_per_address == 16);
  CHECK(ok.config.server.first_byte_timeout_ms == 500);
  CHECK(ok.config.server.header_timeout_ms == 3000);
  CHECK(lines(with("server", R"("max_connections_per_address": 0)").problems).at(0).rfind(
            "server.max_connections_per_address: ", 0) == 0);
  CHECK(lines(with("server", R"("first_byte_timeout_ms": 6000)").problems) ==
        std::vector<std::string>{"server.first_byte_timeout_ms: must not be longer than header_timeout_ms"});
  CHECK(lines(with("server", R"("header_timeout_ms": 50)").problems).at(0).rfind("server.header_timeout_ms: ", 0) == 0);
  auto r = with("retention", R"("provider_events_days": 2)");
  REQUIRE(r.ok());
  CHECK(r.config.retention.provider_events_days == 2);
  CHECK_FALSE(with("retention", R"("provider_events_days": 0)").ok());
  auto l = with("log", R"("refused_summary_s": 5)");
  REQUIRE(l.ok());
  CHECK(l.config.log.refused_summary_s == 5);
  CHECK_FALSE(with("log", R"("refused_summary_s": 0)").ok());
}

namespace {
// kValid with its gateways replaced by `gateways` (a JSON array text).
std::string with_gateways(const std::string& gateways) {
  std::string text = kValid;
  auto start = text.find("\"gateways\": [");
  auto end = text.find("],", text.find("SG.tocsin-test-key-id-00.tocsin-test-secret-0000000000000000000000000"));
  return text.substr(0, start) + "\"gateways\": " + gateways + text.substr(end + 1);
}
}  // namespace

TEST_CASE("smtp and webhook gateways load with their fields", "[config]") {
  auto r = parse_config(with_gateways(R"([
    {"name": "sms", "type": "webhook", "channel": "sms", "url": "https://bridge.example.org/hook",
     "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "rate_per_s": 3},
    {"name": "mail", "type": "smtp", "channel": "email", "url": "smtp://mail.example.org:587",
     "username": "tocsin", "password": "pw", "starttls": true, "from": "alerts@example.org",
     "from_name": "Rapid Response", "timeout_ms": 9000}
  ])"),
                        "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  const auto& hook = r.config.gateways[0];
  CHECK(hook.type == GatewayType::kWebhook);
  CHECK(hook.url == "https://bridge.example.org/hook");
  CHECK(hook.webhook_key.size() >= 16);
  const auto& mail = r.config.gateways[1];
  CHECK(mail.type == GatewayType::kSmtp);
  CHECK(mail.url == "smtp://mail.example.org:587");
  CHECK(mail.username == "tocsin");
  CHECK(mail.password == "pw");
  CHECK(mail.starttls);
  CHECK(mail.from_name == "Rapid Response");
  CHECK(mail.timeout_ms == 9000);
}

TEST_CASE("smtp and webhook gateway problems name their paths", "[config]") {
  auto paths = problem_paths(with_gateways(R"([
    {"name": "sms", "type": "webhook", "channel": "sms", "url": "ftp://x", "secret": "plain", "colour": 1},
    {"name": "mail", "type": "smtp", "channel": "sms", "url": "http://mail.example.org",
     "username": "u", "from": "not-an-address"},
    {"name": "mail2", "type": "smtp", "channel": "email", "url": "smtp://mail.example.org:25",
     "username": "u", "password": "p", "from": "a@example.org"},
    {"name": "mail3", "type": "smtps", "channel": "email"},
    {"name": "mail4", "type": "smtp", "channel": "email", "url": "smtps://mail.example.org",
     "starttls": true, "from": "a@example.org"},
    {"name": "hook2", "type": "webhook", "channel": "email", "url": "http://127.0.0.1:1/hook"}
  ])"));
  auto has = [&](const std::string& prefix) {
    for (const auto& p : paths)
      if (p.rfind(prefix, 0) == 0) return true;
    return false;
  };
  INFO(paths.size());
  CHECK(has("gateways[0].url: "));
  CHECK(has("gateways[0].secret: "));
  CHECK(has("gateways[0].colour: unknown field"));
  CHECK(has("gateways[1].channel: an smtp gateway sends email"));
  CHECK(has("gateways[1].url: "));
  CHECK(has("gateways[1].password: is required"));
  CHECK(has("gateways[1].from: "));
  CHECK(has("gateways[2].starttls: must be true"));  // a password in clear over a network
  CHECK(has("gateways[3].type: must be one of twilio, twilio_voice, sendgrid, smtp, signal, webhook, file"));
  CHECK(has("gateways[4].starttls: "));
  CHECK(has("gateways[5].secret: is required"));
}

namespace {
// kValid with its templates replaced by `templates` (a JSON object text) and
// `extra` top-level members appended.
std::string with_templates(const std::string& templates, const std::string& extra = "") {
  std::string text = kValid;
  auto start = text.find("\"templates\":");
  return text.substr(0, start) + "\"templates\": " + templates + extra + "\n}";
}
}  // namespace

TEST_CASE("sms.max_segments: default 3, 1 to 10", "[config][sms]") {
  auto r = parse_config(kValid, "");
  CHECK(r.config.sms.max_segments == 3);
  r = parse_config(with_templates("{}", R"(, "sms": {"max_segments": 5})"), "");
  REQUIRE(r.ok());
  CHECK(r.config.sms.max_segments == 5);
  for (const char* bad : {R"({"max_segments": 0})", R"({"max_segments": 11})",
                          R"({"max_segments": "3"})", R"({"max_segment": 3})"}) {
    auto paths = problem_paths(with_templates("{}", std::string(R"(, "sms": )") + bad));
    INFO(bad);
    REQUIRE(paths.size() == 1);
    CHECK(paths[0].rfind("sms.max_segment", 0) == 0);
  }
}

TEST_CASE("template warnings: languages missing from a set, SMS over max_segments", "[config][templates]") {
  // The built-in templates: no warnings.
  CHECK(parse_config(with_templates("{}"), "").warnings.empty());

  auto r = parse_config(with_templates(R"({
      "sms": {"en": "{{headline}}", "es": "{{headline}}", "ar": "{{headline}}"},
      "email": {"subject": {"en": "{{headline}}", "es": "{{headline}}", "ar": "{{headline}}"},
                "body": {"en": "{{headline}}"}}})"),
                        "");
  REQUIRE(r.ok());
  auto w = lines(r.warnings);
  CHECK(w == std::vector<std::string>{
                 R"(templates.email.body: no "ar" template; subscribers in "ar" get the "en" one (fallback ar → en))",
                 R"(templates.email.body: no "es" template; subscribers in "es" get the "en" one (fallback es → en))",
                 R"(templates.help: no "ar" template; subscribers in "ar" get the "en" one (fallback ar → en))",
                 R"(templates.covered: no "ar" template; subscribers in "ar" get the "en" one (fallback ar → en))",
                 R"(templates.voice: no "ar" template; subscribers in "ar" get the "en" one (fallback ar → en))"});

  // A template whose worst case exceeds the limit, and a built-in one once
  // the limit is lowered.
  r = parse_config(with_templates(R"({"sms": {"en": "{{headline}} {{area}}", "es": "{{headline}}"}})"), "");
  REQUIRE(r.ok());
  w = lines(r.warnings);
  REQUIRE(w.size() == 1);
  CHECK(w[0] == "templates.sms.en: worst case 5 UCS-2 segments, above sms.max_segments 3 (alert, "
                "100-character headline, instruction and location cut away): such messages go out "
                "over the limit");
  r = parse_config(with_templates("{}", R"(, "sms": {"max_segments": 2})"), "");
  w = lines(r.warnings);
  REQUIRE(w.size() == 2);
  CHECK(w[0].rfind("templates.sms.en: built-in template: worst case 3 UCS-2 segments, above "
                   "sms.max_segments 2 (drill confirmed alert,",
                   0) == 0);
  CHECK(w[1].rfind("templates.sms.es: built-in template: worst case 3", 0) == 0);
}

TEST_CASE("delivery.max_unrecorded: default 500, 1 to 100000", "[config][delivery]") {
  CHECK(parse_config(kValid, "").config.delivery.max_unrecorded == 500);
  std::string text = kValid;
  text.insert(text.rfind('}'), R"(, "delivery": {"max_unrecorded": 64})");
  auto r = parse_config(text, "");
  REQUIRE(r.ok());
  CHECK(r.config.delivery.max_unrecorded == 64);
  for (const char* bad : {R"({"max_unrecorded": 0})", R"({"max_unrecorded": 100001})",
                          R"({"max_unrecorded": "64"})"}) {
    text = kValid;
    text.insert(text.rfind('}'), std::string(R"(, "delivery": )") + bad);
    auto paths = problem_paths(text);
    INFO(bad);
    REQUIRE(paths.size() == 1);
    CHECK(paths[0].rfind("delivery.max_unrecorded: ", 0) == 0);
  }
}

TEST_CASE("areas_file and areas.circles load, resolved against base_dir, checked as a whole",
          "[config][areas]") {
  tocsin::test::TempDir dir("tocsin-areas");
  auto with = [&](const std::string& extra) {
    std::string t = kValid;
    t.insert(t.rfind('}'), "," + extra);
    return parse_config(t, dir.path().string());
  };
  std::ofstream(dir.path() / "areas.geojson") << R"({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "la"},
     "geometry": {"type": "Polygon", "coordinates": [[[-118.7, 33.7], [-118.0, 33.7], [-118.0, 34.35], [-118.7, 34.35], [-118.7, 33.7]]]}},
    {"type": "Feature", "properties": {"name": "la/bowtie"},
     "geometry": {"type": "Polygon", "coordinates": [[[-118.3, 34.0], [-118.2, 34.1], [-118.2, 34.0], [-118.3, 34.1], [-118.3, 34.0]]]}}]})";
  std::ofstream(dir.path() / "good.geojson") << R"({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "la"},
     "geometry": {"type": "Polygon", "coordinates": [[[-118.7, 33.7], [-118.0, 33.7], [-118.0, 34.35], [-118.7, 34.35], [-118.7, 33.7]]]}}]})";

  auto good = with(R"("areas_file": "good.geojson", "areas": {"tolerance_m": 50, "circles": [
      {"name": "la/courthouse", "center": {"lat": 34.0522, "lon": -118.2437}, "radius_m": 800}]})");
  INFO((lines(good.problems).empty() ? std::string() : lines(good.problems).front()));
  REQUIRE(good.ok());
  REQUIRE(good.config.areas.shapes);
  CHECK(good.config.areas.shapes->areas().size() == 2);
  CHECK(good.config.areas.tolerance_m == 50);
  CHECK(good.config.areas.file == (dir.path() / "good.geojson").string());

  auto bad = with(R"("areas_file": "areas.geojson", "areas": {"tolerance": 5, "circles": [
      {"name": "la", "center": {"lat": 34.0, "lon": -118.2}, "radius_m": 100}]})");
  auto l = lines(bad.problems);
  INFO(Catch::Detail::stringify(l));
  CHECK(std::count(l.begin(), l.end(), "areas.tolerance: unknown field") == 1);
  CHECK(std::any_of(l.begin(), l.end(), [](const std::string& s) {
    return s.starts_with("areas_file.features[1].geometry: feature 1 \"la/bowtie\": crosses itself");
  }));
  CHECK(std::any_of(l.begin(), l.end(), [](const std::string& s) {
    return s.starts_with("areas.circles[0]: \"la\": the name is already used by areas_file.features[0]");
  }));

  // A key given twice in the areas file is refused, naming it.
  std::ofstream(dir.path() / "twice.geojson") << R"({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "la", "name": "la/east"},
     "geometry": {"type": "Polygon", "coordinates": [[[-118.7, 33.7], [-118.0, 33.7], [-118.0, 34.35], [-118.7, 34.35], [-118.7, 33.7]]]}}]})";
  CHECK(lines(with(R"("areas_file": "twice.geojson")").problems) ==
        std::vector<std::string>{
            "areas_file.features[0].properties.name: is given twice: duplicate key \"name\""});

  CHECK(lines(with(R"("areas_file": "missing.geojson")").problems) ==
        std::vector<std::string>{"areas_file: cannot read " + (dir.path() / "missing.geojson").string()});
  // Without areas, nothing changes.
  CHECK_FALSE(parse_config(kValid, "").config.areas.shapes);
}

TEST_CASE("gateway credentials must have the provider's form", "[config]") {
  auto with = [](const std::string& from, const std::string& to) {
    std::string text = kValid;
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return problem_paths(text.replace(at, from.size(), to));
  };
  const std::string sid = "\"account_sid\": \"AC0123456789abcdef0123456789abcdef\"";
  const std::string token = "\"auth_token\": \"0123456789abcdef0123456789abcdef\"";
  const std::string key = "\"api_key\": \"SG.tocsin-test-key-id-00.tocsin-test-secret-0000000000000000000000000\"";
  CHECK(problem_paths(kValid).empty());
  CHECK(with(sid, "\"account_sid\": \"ACtest\"") ==
        std::vector<std::string>{"gateways[0].account_sid: must be a Twilio Account SID: AC and 32 hex digits"});
  CHECK(with(sid, "\"account_sid\": \"SK0123456789abcdef0123456789abcdef\"").size() == 1);  // an API key's SID
  CHECK(with(sid, "\"account_sid\": \"AC0123456789abcdef0123456789abcdeg\"").size() == 1);
  CHECK(with(sid, "\"account_sid\": \"AC0123456789ABCDEF0123456789ABCDEF\"").empty());
  CHECK(with(token, "\"auth_token\": \"tok\"") ==
        std::vector<std::string>{"gateways[0].auth_token: must be a Twilio auth token: 32 hex digits"});
  CHECK(with(token, "\"auth_token\": \"0123456789abcdef0123456789abcdef0\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG.key\"") ==
        std::vector<std::string>{"gateways[1].api_key: must be a SendGrid API key: SG.<key id>.<secret> "
                                 "(letters, digits, - and _)"});
  CHECK(with(key, "\"api_key\": \"sg.a.b\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG..b\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG.a.\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG.a.b c\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG.a.b.c\"").size() == 1);
  CHECK(with(key, "\"api_key\": \"SG.a-_1.B-_2\"").empty());
}

TEST_CASE("ca_file: a readable PEM file, resolved against the config's directory", "[config]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("tocsin-ca-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "ca.pem") << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::ofstream(dir / "not.pem") << "hello\n";
  auto with_ca = [&](const std::string& ca) {
    std::string text = kValid;
    const std::string from = "\"from\": \"alerts@example.org\"";
    return parse_config(text.replace(text.find(from), from.size(), from + ", \"ca_file\": \"" + ca + "\""),
                        dir.string());
  };
  auto ok = with_ca("ca.pem");
  REQUIRE(lines(ok.problems).empty());
  CHECK(ok.config.gateways[1].ca_file == (dir / "ca.pem").string());
  CHECK(ok.config.gateways[0].ca_file.empty());
  CHECK(lines(with_ca((dir / "ca.pem").string()).problems).empty());
  CHECK(lines(with_ca("missing.pem").problems) ==
        std::vector<std::string>{"gateways[1].ca_file: cannot read " + (dir / "missing.pem").string()});
  CHECK(lines(with_ca("not.pem").problems) ==
        std::vector<std::string>{"gateways[1].ca_file: must hold PEM certificates (-----BEGIN CERTIFICATE-----)"});
  fs::remove_all(dir);
}

TEST_CASE("reach: signal and twilio_voice gateways, join keywords, the public_url warning",
          "[config][reach]") {
  std::string text = kValid;
  auto gateways = text.find("\"gateways\": [");
  REQUIRE(gateways != std::string::npos);
  text.insert(gateways + 13, R"(
    {"name": "sig", "type": "signal", "channel": "signal", "base_url": "http://127.0.0.1:8081",
     "from": "+12135550199"},
    {"name": "calls", "type": "twilio_voice", "channel": "voice",
     "account_sid": "AC0123456789abcdef0123456789abcdef",
     "auth_token": "0123456789abcdef0123456789abcdef", "from": "+12135550100"},)");
  auto r = parse_config(text, "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  CHECK(r.config.gateways[0].type == tocsin::app::GatewayType::kSignal);
  CHECK(r.config.gateways[1].rate_per_s == 1);  // one call per second unless raised
  std::string bad = text;
  bad.replace(bad.find("\"channel\": \"voice\""), 18, "\"channel\": \"sms\"");
  CHECK_FALSE(parse_config(bad, "").ok());
  std::string no_url = text;
  const std::string url_key = R"(, "public_url": "https://a.example.org")";
  no_url.replace(no_url.find(url_key), url_key.size(), "");
  auto no_url_result = parse_config(no_url, "");
  auto w = no_url_result.warnings;
  CHECK(std::any_of(w.begin(), w.end(), [](const auto& p) { return p.path == "server.public_url"; }));
  // Calls need it: key presses and call status come back to public_url.
  CHECK(lines(no_url_result.problems) ==
        std::vector<std::string>{"server.public_url: is required by the twilio_voice gateway "
                                 "gateways[1]: Twilio posts key presses (press 1) and call status "
                                 "callbacks to it"});
  // Without an event_webhook_public_key SendGrid's Event Webhook cannot be
  // verified: said once, as a warning, not per refused request.
  const std::string key_warning =
      "gateways[3].event_webhook_public_key: not set: SendGrid's Event Webhook (POST "
      "/v1/receipts/sendgrid: delivery receipts, bounces and spam reports that opt an address "
      "out) cannot be verified and is answered 403";
  CHECK_THAT(lines(parse_config(text, "").warnings),
             !Catch::Matchers::VectorContains(key_warning));
  std::string no_key = text;
  const std::size_t key_at = no_key.find(R"("event_webhook_public_key": ")");
  REQUIRE(key_at != std::string::npos);
  const std::size_t comma = no_key.rfind(',', key_at);
  no_key.erase(comma, no_key.find("\"}", key_at) + 1 - comma);
  REQUIRE(parse_config(no_key, "").ok());
  CHECK_THAT(lines(parse_config(no_key, "").warnings), Catch::Matchers::VectorContains(key_warning));
  // With a key, a body limit below SendGrid's batches (768 KB) is warned of.
  const std::string body_warning =
      "server.max_body_bytes: 65536 is below SendGrid's Event Webhook batches (up to 768 KB): "
      "larger batches are refused with 413; set 1048576";
  auto with_body_limit = [](std::string t) {
    const std::string at = R"("max_body_bytes": 1048576)";
    return t.replace(t.find(at), at.size(), R"("max_body_bytes": 65536)");
  };
  auto small = parse_config(with_body_limit(text), "");
  REQUIRE(small.ok());
  CHECK_THAT(lines(small.warnings), Catch::Matchers::VectorContains(body_warning));
  CHECK_THAT(lines(parse_config(with_body_limit(no_key), "").warnings),
             !Catch::Matchers::VectorContains(body_warning));
  for (const auto& warning : parse_config(text, "").warnings)
    CHECK(warning.path != "server.max_body_bytes");  // 1 MiB is enough

  const std::string group_end = R"("channels": ["sms", "email"]}],)";
  REQUIRE(text.find(group_end) != std::string::npos);
  auto with_join = [&](const std::string& join) {
    std::string t = text;
    t.replace(t.find(group_end), group_end.size(),
              R"("channels": ["sms", "email"], "join": )" + join + "}],");
    return t;
  };
  r = parse_config(with_join(R"({"keywords": ["este", " Eastside "], "language": "es"})"), "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  CHECK(r.config.groups[0].join_keywords == std::vector<std::string>{"ESTE", "EASTSIDE"});
  CHECK(r.config.groups[0].join_language == "es");
  auto refused = parse_config(with_join(R"({"keywords": ["stop"]})"), "");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.problems.front().path == "groups[0].join.keywords[0]");

  // A keyword may carry its own language; plain strings take the group's.
  r = parse_config(
      with_join(
          R"({"keywords": ["este", {"word": "eastside", "language": "en"}], "language": "es"})"),
      "");
  INFO((r.problems.empty() ? "" : r.problems.front().path + ": " + r.problems.front().message));
  REQUIRE(r.ok());
  CHECK(r.config.groups[0].join_keywords == std::vector<std::string>{"ESTE", "EASTSIDE"});
  CHECK(r.config.groups[0].join_keyword_languages ==
        std::map<std::string, std::string>{{"EASTSIDE", "en"}});
  for (const auto& [join, path] : std::vector<std::pair<std::string, std::string>>{
           {R"({"keywords": [{"word": "x", "language": "not a tag!"}]})",
            "groups[0].join.keywords[0].language"},
           {R"({"keywords": [{"language": "en"}]})", "groups[0].join.keywords[0].word"},
           {R"({"keywords": [{"word": "x", "lang": "en"}]})", "groups[0].join.keywords[0].lang"},
           {R"({"keywords": [{"word": "help", "language": "en"}]})",
            "groups[0].join.keywords[0].word"},
           {R"({"keywords": [7]})", "groups[0].join.keywords[0]"},
           {R"({"keywords": "ESTE"})", "groups[0].join.keywords"}}) {
    INFO(join);
    auto refused_join = parse_config(with_join(join), "");
    REQUIRE_FALSE(refused_join.ok());
    CHECK(refused_join.problems.front().path == path);
  }
}

TEST_CASE("areas.tolerance_m: 200 m when left out, and it decides who is refused", "[config][areas]") {
  // "la" as a 1 km circle; points due north of its edge by 150 m and 250 m
  // (1° of latitude is ~111.2 km).
  auto with_areas = [](const std::string& areas) {
    std::string text = kValid;
    text.insert(text.rfind('}'), ", \"areas\": " + areas);
    return parse_config(text, "");
  };
  const std::string circle = R"("circles": [{"name": "la", "center": {"lat": 34.05, "lon": -118.2}, "radius_m": 1000}])";
  const tocsin::Location near{34.05 + 1150.0 / 111195.0, -118.2, {}};
  const tocsin::Location far{34.05 + 1250.0 / 111195.0, -118.2, {}};
  auto refused = [](const Config& c, const tocsin::Location& at) {
    return tocsin::decide_area(c.areas.shapes.get(), "la", at, c.areas.tolerance_m).problem.has_value();
  };
  auto d = with_areas("{" + circle + "}");
  REQUIRE(d.ok());
  REQUIRE(d.config.areas.shapes);
  CHECK(d.config.areas.tolerance_m == 200);
  CHECK_FALSE(refused(d.config, near));
  CHECK(refused(d.config, far));
  auto strict = with_areas("{" + circle + R"(, "tolerance_m": 0})");
  REQUIRE(strict.ok());
  CHECK(refused(strict.config, near));
}
