// The console's subscriber actions (role admin only): one subscriber in
// full (the view is audited: it shows personal data), add, edit, erase (with
// a confirmation) and a CSV upload with the same per-line report as
// `tocsin subscribers import`. Validation is the admin API's own
// (subscriber_input, subscriber_import); every action is audited with the
// admin's name in the store job that does it.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "app/api_common.h"
#include "app/console_impl.h"
#include "app/files.h"
#include "app/subscriber_import.h"
#include "app/subscriber_input.h"

namespace tocsin::app {

using namespace console;
using nlohmann::json;

namespace {

constexpr const char* kBase = "/console/admin/subscribers";

std::vector<std::string> form_values(const FormFields& f, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : f)
    if (k == name && !v.empty()) out.push_back(v);
  return out;
}

// The posted form as a POST /v1/subscribers body; with `patch`, empty fields
// become null (removed by the merge patch) and no channel ticked means the
// default (every channel the person has an address for).
json form_doc(const FormFields& f, bool patch) {
  json doc = json::object();
  for (const char* key : {"name", "phone", "email", "language"}) {
    std::string v = trim(std::string(form_value(f, key)));
    if (!v.empty()) doc[key] = v;
    else if (patch) doc[key] = nullptr;
  }
  doc["groups"] = form_values(f, "groups");
  auto channels = form_values(f, "channels");
  if (!channels.empty()) doc["channels"] = channels;
  else if (patch) doc["channels"] = nullptr;
  return doc;
}

FormFields fields_of(const store::Subscriber& s) {
  FormFields f{{"name", s.name}, {"phone", s.phone}, {"email", s.email}, {"language", s.language}};
  for (const auto& g : s.groups) f.emplace_back("groups", g);
  for (Channel c : s.channels) f.emplace_back("channels", std::string(to_string(c)));
  return f;
}

// "groups[1]" → "groups": the form field a problem belongs to.
std::string field_of(const std::string& path) { return path.substr(0, path.find('[')); }

std::string problems_of(const std::vector<FieldProblem>& problems, const std::string& field) {
  std::string out;
  for (const auto& p : problems)
    if (field_of(p.path) == field) out += (out.empty() ? "" : "; ") + p.message;
  return out;
}

// A text input with its label and, when the field has a problem, the
// problem tied to it (aria-describedby) and aria-invalid.
std::string input(const std::string& l, const std::string& name, const std::string& value,
                  const std::vector<FieldProblem>& problems, const std::string& extra) {
  std::string err = problems_of(problems, name), h;
  h += "<label for=\"s-" + name + "\">" + T(l, "sub_" + name) + "</label>";
  if (!err.empty()) h += "<p class=\"field-error\" id=\"err-" + name + "\">" + esc(err) + "</p>";
  h += "<input id=\"s-" + name + "\" name=\"" + name + "\" value=\"" + esc(value) + "\" " + extra;
  if (!err.empty()) h += " aria-invalid=\"true\" aria-describedby=\"err-" + name + "\"";
  h += ">";
  return h;
}

std::string checkboxes(const std::string& l, const std::string& name,
                       const std::vector<std::string>& options, const FormFields& f,
                       const std::vector<FieldProblem>& problems) {
  auto ticked = form_values(f, name);
  std::string err = problems_of(problems, name);
  std::string h = "<fieldset";
  if (!err.empty()) h += " aria-describedby=\"err-" + name + "\"";
  h += "><legend>" + T(l, "sub_" + name) + "</legend>";
  if (!err.empty()) h += "<p class=\"field-error\" id=\"err-" + name + "\">" + esc(err) + "</p>";
  if (name == "channels") h += "<p class=\"hint\">" + T(l, "sub_channels_hint") + "</p>";
  for (const auto& o : options) {
    bool on = std::find(ticked.begin(), ticked.end(), o) != ticked.end();
    std::string id = "s-" + name + "-" + o;
    h += "<div><input type=\"checkbox\" id=\"" + esc(id) + "\" name=\"" + name + "\" value=\"" +
         esc(o) + "\"" + (on ? " checked" : "") + "> <label class=\"inline\" for=\"" + esc(id) +
         "\">" + esc(o) + "</label></div>";
  }
  return h + "</fieldset>";
}

std::string subscriber_form(const std::string& l, const Who& who, const Config& c,
                            const std::string& action, const FormFields& f,
                            const std::vector<FieldProblem>& problems, std::string_view submit_key) {
  std::string h;
  if (!problems.empty()) {
    h += "<div class=\"error\" role=\"alert\"><p>" + T(l, "problems") + "</p><ul>";
    for (const auto& p : problems) h += "<li>" + esc(p.path) + ": " + esc(p.message) + "</li>";
    h += "</ul><p>" + T(l, "sub_nothing_stored") + "</p></div>";
  }
  h += "<form method=\"post\" action=\"" + esc(action) + "\" id=\"subscriber-form\" class=\"stack\">" +
       csrf_field(who);
  h += input(l, "name", std::string(form_value(f, "name")), problems, "maxlength=\"200\" autocomplete=\"off\"");
  h += input(l, "phone", std::string(form_value(f, "phone")), problems,
             "type=\"tel\" maxlength=\"64\" autocomplete=\"off\"");
  h += input(l, "email", std::string(form_value(f, "email")), problems,
             "type=\"email\" maxlength=\"254\" autocomplete=\"off\"");
  std::string language(form_value(f, "language"));
  h += input(l, "language", language.empty() ? "en" : language, problems,
             "list=\"languages\" maxlength=\"35\" autocomplete=\"off\"");
  h += "<datalist id=\"languages\">";
  for (const auto& lg : c.console.languages) h += "<option value=\"" + esc(lg) + "\"></option>";
  h += "</datalist>";
  std::vector<std::string> groups;
  for (const auto& g : c.groups) groups.push_back(g.name);
  h += checkboxes(l, "groups", groups, f, problems);
  std::vector<std::string> channels;
  for (Channel ch : kAllChannels) channels.emplace_back(to_string(ch));
  h += checkboxes(l, "channels", channels, f, problems);
  h += "<button type=\"submit\">" + T(l, submit_key) + "</button></form>";
  return h;
}

std::string admin_nav(const std::string& l) {
  return std::string("<p><a href=\"") + kBase + "\">" + T(l, "admin_subscribers") + "</a> · <a href=\"" +
         kBase + "/new\">" + T(l, "sub_new") + "</a> · <a href=\"" + kBase + "/import\">" +
         T(l, "sub_import") + "</a></p>";
}

http::Response page(int status, const std::string& l, const Who& who, const std::string& title,
                    const std::string& body) {
  Page p;
  p.lang = l;
  p.who = &who;
  p.title = title;
  p.body = "<h1>" + esc(title) + "</h1>" + admin_nav(l) + body;
  return html_response(status, render_page(p));
}

std::string detail_html(const std::string& l, const Who& who, const store::Subscriber& s) {
  std::string id = std::to_string(s.id), h;
  h += "<p class=\"note\">" + T(l, "sub_audited") + "</p>";
  h += "<dl class=\"facts\" id=\"subscriber\"><dt>id</dt><dd>" + id + "</dd><dt>" + T(l, "sub_name") +
       "</dt><dd>" + esc(s.name) + "</dd><dt>" + T(l, "sub_phone") + "</dt><dd>" + esc(s.phone) +
       "</dd><dt>" + T(l, "sub_email") + "</dt><dd>" + esc(s.email) + "</dd><dt>" +
       T(l, "sub_lang") + "</dt><dd id=\"s-lang\">" + esc(s.language) + "</dd><dt>" +
       T(l, "sub_groups") + "</dt><dd>" + esc(comma_list(s.groups)) + "</dd><dt>" + T(l, "sub_channels") +
       "</dt><dd>" + esc(channels_text(s)) + "</dd><dt>" + T(l, "sub_opted_out") + "</dt><dd>" +
       (s.sms_opted_out ? "SMS " : "") + (s.email_opted_out ? "email" : "") + "</dd><dt>" +
       T(l, "sub_added") + "</dt><dd>" + esc(format_rfc3339(s.created_at)) + "</dd></dl>";
  h += "<p><a class=\"button\" id=\"edit\" href=\"" + std::string(kBase) + "/" + id + "/edit\">" +
       T(l, "sub_edit") + "</a></p>";
  h += "<h2>" + T(l, "sub_erase") + "</h2><form method=\"post\" action=\"" + std::string(kBase) + "/" +
       id + "/erase\" id=\"erase-form\" class=\"stack\">" + csrf_field(who) +
       "<div><input type=\"checkbox\" id=\"confirm\" name=\"confirm\" value=\"yes\" required> "
       "<label class=\"inline\" for=\"confirm\">" + T(l, "sub_erase_confirm") + "</label></div>"
       "<button type=\"submit\" class=\"danger\" id=\"erase\">" + T(l, "sub_erase") + "</button></form>";
  return h;
}

std::string import_form(const std::string& l, const Who& who, const std::string& text) {
  std::string h;
  h += "<p class=\"hint\" id=\"csv-hint\">" + T(l, "sub_csv_hint") + "</p>";
  h += "<form method=\"post\" action=\"" + std::string(kBase) + "/import\" id=\"import-form\" "
       "class=\"stack\">" + csrf_field(who) +
       "<label for=\"csv-file\">" + T(l, "sub_csv_file") + "</label>"
       "<input type=\"file\" id=\"csv-file\" accept=\".csv,text/csv\" aria-describedby=\"csv-hint\">"
       "<label for=\"csv\">" + T(l, "sub_csv_text") + "</label>"
       "<textarea id=\"csv\" name=\"csv\" rows=\"8\" required aria-describedby=\"csv-hint\">" +
       esc(text) + "</textarea>"
       "<div><input type=\"checkbox\" id=\"dry_run\" name=\"dry_run\" value=\"yes\"> <label "
       "class=\"inline\" for=\"dry_run\">" + T(l, "sub_dry_run") + "</label></div>"
       "<button type=\"submit\">" + T(l, "sub_upload") + "</button></form>";
  return h;
}

// The CLI's report: each refused line with its field and reason, then the totals.
std::string import_report(const std::string& l, const ImportResult& r, bool dry_run) {
  std::string h = "<section id=\"import-report\" aria-labelledby=\"import-report-h\"><h2 id=\"import-report-h\">" +
                  T(l, "sub_report") + "</h2><p id=\"import-summary\" role=\"status\">" +
                  std::to_string(r.created) + " " + T(l, "sub_created_n") + ", " +
                  std::to_string(r.updated) + " " + T(l, "sub_updated_n") + ", " +
                  std::to_string(r.unchanged) + " " + T(l, "sub_unchanged_n") + ", " +
                  std::to_string(r.refused) + " " + T(l, "sub_refused_n") +
                  (dry_run ? " (" + T(l, "sub_dry_run_done") + ")" : "") + "</p>";
  if (r.refused) {
    h += "<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"" + T(l, "sub_refused_n") +
         "\"><table id=\"import-refused\"><tr><th scope=\"col\">" + T(l, "sub_line") +
         "</th><th scope=\"col\">" + T(l, "sub_field") + "</th><th scope=\"col\">" +
         T(l, "sub_problem") + "</th></tr>";
    for (const auto& row : r.rows)
      for (const auto& p : row.problems)
        h += "<tr><td>" + std::to_string(row.line) + "</td><td>" + esc(p.path) + "</td><td>" +
             esc(p.message) + "</td></tr>";
    h += "</table></div>";
  }
  return h + "</section>";
}

}  // namespace

void Console::Impl::admin_subscriber(const http::Request& req, const std::string& rest, bool post,
                                     const Who& who, const std::string& lang, Respond respond) {
  const std::string& l = lang;
  // The route as audited: ids replaced by {id}.
  std::string route = kBase;
  std::optional<int64_t> id;
  std::string action;  // "", "new", "import", "edit", "erase"
  if (rest == "/new" || rest == "/import") {
    action = rest.substr(1);
    route += rest;
  } else if (rest.starts_with("/")) {
    std::string_view r = std::string_view(rest).substr(1);
    auto slash = r.find('/');
    id = api::parse_id(r.substr(0, slash));
    if (slash != std::string_view::npos) action = std::string(r.substr(slash + 1));
    route += "/{id}" + (action.empty() ? "" : "/" + action);
  } else if (!rest.empty()) {
    return respond(message_page(404, l, &who, "not_found", tr(l, "not_found")));
  }
  if (who.user.role != "admin") {
    audit(who.user.name, req.method, route, id ? std::to_string(*id) : "", 403);
    return respond(message_page(403, l, &who, "forbidden", tr(l, "not_allowed")));
  }
  bool known = (rest.empty() && post) || (action == "new" && !post) || action == "import" ||
               (id && action.empty()) || (id && action == "edit" && !post) ||
               (id && action == "erase" && post);
  if (!known) return respond(message_page(404, l, &who, "not_found", tr(l, "not_found")));

  auto cfg = config();
  UnixMs now = clock.now_ms();
  const std::string name = who.user.name;
  FormFields f = post ? parse_form(req.body) : FormFields{};
  const bool saved = form_value(parse_form(req.query()), "saved") == "1";
  auto unavailable = [respond] { respond(api::problem(api::unavailable())); };

  if (action == "new")
    return respond(page(200, l, who, tr(l, "sub_new"),
                        subscriber_form(l, who, cfg->config, kBase, {}, {}, "sub_add")));

  if (action == "import" && !post)
    return respond(page(200, l, who, tr(l, "sub_import"), import_form(l, who, "")));

  if (action == "import") {
    std::string text(form_value(f, "csv"));
    bool dry_run = form_value(f, "dry_run") == "yes";
    auto csv = std::make_shared<CsvImport>(rows_from_csv(text));
    std::string why;
    if (!csv->error.empty())
      why = tr(l, "sub_line") + " " + std::to_string(csv->error_line) + ": " + csv->error;
    else if (csv->rows.size() + csv->refused.size() > kMaxImportRows)
      why = tr(l, "sub_too_many") + " " + std::to_string(kMaxImportRows);
    if (!why.empty()) {
      audit(name, "POST", route, "", 422);
      return respond(page(422, l, who, tr(l, "sub_import"),
                          "<div class=\"error\" role=\"alert\" id=\"import-error\"><p>" + esc(why) +
                              "</p><p>" + T(l, "sub_nothing_stored") + "</p></div>" +
                              import_form(l, who, text)));
    }
    return store.call<ImportResult>(
        [cfg, csv, dry_run, now, name, route](store::Store& s) {
          ImportBatch batch{csv->rows, dry_run};
          ImportResult r = import_rows(s, cfg->config, batch, now);
          for (auto& bad : csv->refused) {  // in line order with the rest
            r.rows.push_back(bad);
            ++r.refused;
          }
          std::sort(r.rows.begin(), r.rows.end(),
                    [](const auto& a, const auto& b) { return a.line < b.line; });
          s.insert_audit({0, now, name, "POST", route, dry_run ? "dry-run" : "", 200,
                          static_cast<int64_t>(r.rows.size())});
          return r;
        },
        [l, who, dry_run, respond, unavailable](std::optional<ImportResult> r) {
          if (!r) return unavailable();
          spdlog::info("console: CSV import: {} created, {} updated, {} unchanged, {} refused",
                       r->created, r->updated, r->unchanged, r->refused);
          respond(page(200, l, who, tr(l, "sub_import"),
                       import_report(l, *r, dry_run) + import_form(l, who, "")));
        });
  }

  if (rest.empty()) {  // POST: add
    auto parsed = validate_subscriber(form_doc(f, false), cfg->config);
    if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed)) {
      audit(name, "POST", route, "", 422);
      return respond(page(422, l, who, tr(l, "sub_new"),
                          subscriber_form(l, who, cfg->config, kBase, f, *problems, "sub_add")));
    }
    auto sub = std::make_shared<store::Subscriber>(std::get<store::Subscriber>(parsed));
    return store.call<int64_t>(
        [sub, now, name, route](store::Store& s) {
          int64_t new_id = s.insert_subscriber(*sub, now);
          s.insert_audit({0, now, name, "POST", route, std::to_string(new_id), 201, 1});
          return new_id;
        },
        [respond, unavailable](std::optional<int64_t> new_id) {
          if (!new_id) return unavailable();
          spdlog::info("console: subscriber {} created", *new_id);
          respond(redirect(std::string(kBase) + "/" + std::to_string(*new_id) + "?saved=1"));
        });
  }

  // One subscriber: view, edit form, save, erase. Read, check and write in
  // one store job, so a refused edit writes nothing.
  if (action == "erase" && form_value(f, "confirm") != "yes") {
    audit(name, "POST", route, std::to_string(*id), 422);
    return respond(message_page(422, l, &who, "forbidden", tr(l, "sub_must_confirm")));
  }
  struct Outcome {
    int status = 200;
    std::optional<store::Subscriber> sub;
    std::vector<FieldProblem> problems;
  };
  auto doc = std::make_shared<json>(post && action.empty() ? form_doc(f, true) : json());
  std::string method = post ? "POST" : "GET";
  store.call<Outcome>(
      [cfg, id = *id, action, post, doc, now, name, route, method](store::Store& s) {
        Outcome o;
        o.sub = s.subscriber(id);
        if (!o.sub) {
          o.status = 404;
        } else if (action == "erase") {
          o.status = s.delete_subscriber(id) ? 200 : 404;
        } else if (post) {
          auto merged = patch_subscriber(*o.sub, *doc, cfg->config);
          if (auto* problems = std::get_if<std::vector<FieldProblem>>(&merged)) {
            o.status = 422;
            o.problems = std::move(*problems);
          } else {
            auto& m = std::get<store::Subscriber>(merged);
            if (!same_data(m, *o.sub)) s.update_subscriber(m);
            o.sub = m;
          }
        }
        s.insert_audit({0, now, name, method, route, std::to_string(id), o.status, o.sub ? 1 : 0});
        return o;
      },
      [l, who, id = *id, action, post, saved, f, cfg, respond, unavailable](std::optional<Outcome> o) {
        if (!o) return unavailable();
        std::string sid = std::to_string(id);
        if (o->status == 404)
          return respond(message_page(404, l, &who, "not_found", tr(l, "not_found")));
        if (action == "erase") {
          spdlog::info("console: subscriber {} erased", id);
          return respond(page(200, l, who, tr(l, "sub_erase"),
                              "<p class=\"message\" role=\"status\" id=\"erased\">" + T(l, "sub_erased") +
                                  "</p>"));
        }
        std::string title = tr(l, "sub_detail") + " " + sid;
        std::string self_url = std::string(kBase) + "/" + sid;
        if (o->status == 422)
          return respond(page(422, l, who, title,
                              subscriber_form(l, who, cfg->config, self_url, f, o->problems, "sub_save")));
        if (action == "edit")
          return respond(page(200, l, who, title,
                              subscriber_form(l, who, cfg->config, self_url, fields_of(*o->sub), {},
                                              "sub_save")));
        if (post) {
          spdlog::info("console: subscriber {} updated", id);
          return respond(redirect(self_url + "?saved=1"));
        }
        respond(page(200, l, who, title,
                     (saved ? "<p class=\"message\" role=\"status\" id=\"saved\">" + T(l, "sub_saved") + "</p>"
                            : std::string()) +
                         detail_html(l, who, *o->sub)));
      });
}

}  // namespace tocsin::app
