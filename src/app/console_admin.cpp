// The console's admin screens (role admin only): subscribers as a masked
// list (numbers, addresses and names masked, as GET /v1/subscribers gives
// them; the list is audited), console users and their state, and the audit
// log. Each subscriber links to its full view; adding, editing, erasing and
// the CSV upload are in console_subscribers.cpp.
#include <spdlog/spdlog.h>

#include "app/api_common.h"
#include "app/console_impl.h"
#include "core/masking.h"

namespace tocsin::app {

using namespace console;

namespace {

constexpr int kAuditPage = 200;

struct AdminData {
  std::vector<store::Subscriber> subscribers;
  std::vector<store::ConsoleUser> users;
  std::vector<store::AuditEntry> audit;
};

}  // namespace

void Console::Impl::admin_page(const std::string& what, int64_t after, const Who& who,
                               const std::string& lang, Respond respond) {
  if (who.user.role != "admin")
    return respond(message_page(403, lang, &who, "forbidden", tr(lang, "not_allowed")));
  if (what != "subscribers" && what != "users" && what != "audit")
    return respond(message_page(404, lang, &who, "not_found", tr(lang, "not_found")));
  UnixMs now = clock.now_ms();
  store.call<AdminData>(
      [what, after, who, now](store::Store& s) {
        AdminData a;
        if (what == "subscribers") a.subscribers = s.list_subscribers("", 0, 500);
        if (what == "users") a.users = s.console_users();
        if (what == "audit") a.audit = s.audit_after(after, kAuditPage);
        s.insert_audit({0, now, who.user.name, "GET", "/console/admin/" + what, "", 200,
                        static_cast<int64_t>(a.subscribers.size() + a.users.size())});
        return a;
      },
      [what, who, lang, respond](std::optional<AdminData> a) {
        if (!a) return respond(api::problem(api::unavailable()));
        const std::string& l = lang;
        Page p;
        p.lang = l;
        p.who = &who;
        p.title = tr(l, "admin_" + what);
        std::string& h = p.body;
        h += "<h1>" + T(l, "admin_" + what) + "</h1><p><a href=\"/console/admin/subscribers\">" +
             T(l, "admin_subscribers") + "</a> · <a href=\"/console/admin/users\">" +
             T(l, "admin_users") + "</a> · <a href=\"/console/admin/audit\">" + T(l, "admin_audit") +
             "</a></p>";
        if (what == "subscribers")
          h += "<p class=\"actions\"><a class=\"button\" id=\"add-subscriber\" "
               "href=\"/console/admin/subscribers/new\">" + T(l, "sub_new") + "</a> <a class=\"button\" "
               "id=\"import-subscribers\" href=\"/console/admin/subscribers/import\">" +
               T(l, "sub_import") + "</a></p>";
        h += "<div class=\"scroll\" tabindex=\"0\"><table id=\"admin-" + esc(what) + "\">";
        if (what == "subscribers") {
          h += "<caption>" + T(l, "masked") + "</caption><tr><th scope=\"col\">id</th><th scope=\"col\">" +
               T(l, "name") + "</th><th scope=\"col\">phone</th><th scope=\"col\">email</th><th "
               "scope=\"col\">lang</th><th scope=\"col\">groups</th><th scope=\"col\">" +
               T(l, "channel") + "</th></tr>";
          for (const auto& s : a->subscribers)
            h += "<tr><td><a href=\"/console/admin/subscribers/" + std::to_string(s.id) + "\">" +
                 std::to_string(s.id) + "</a></td><td>" + esc(mask_name(s.name)) + "</td><td>" +
                 esc(s.phone.empty() ? "" : mask_phone(s.phone)) + "</td><td>" +
                 esc(s.email.empty() ? "" : mask_email(s.email)) + "</td><td>" + esc(s.language) +
                 "</td><td>" + esc(comma_list(s.groups)) + "</td><td>" + esc(channels_text(s)) +
                 (s.sms_opted_out ? " (SMS STOP)" : "") + "</td></tr>";
        } else if (what == "users") {
          h += "<tr><th scope=\"col\">" + T(l, "name") + "</th><th scope=\"col\">role</th><th "
               "scope=\"col\">coordinator</th><th scope=\"col\">state</th></tr>";
          for (const auto& u : a->users)
            h += "<tr><td>" + esc(u.name) + "</td><td>" + esc(u.role) + "</td><td>" +
                 esc(u.coordinator) + "</td><td>" +
                 (u.disabled ? "disabled" : u.pw_hash.empty() ? "enrolment pending" : "enrolled") +
                 "</td></tr>";
        } else {
          h += "<tr><th scope=\"col\">at</th><th scope=\"col\">actor</th><th scope=\"col\">method</th>"
               "<th scope=\"col\">route</th><th scope=\"col\">object</th><th scope=\"col\">status</th>"
               "<th scope=\"col\">count</th></tr>";
          for (auto it = a->audit.begin(); it != a->audit.end(); ++it)
            h += "<tr><td>" + esc(format_rfc3339(it->at)) + "</td><td>" + esc(it->actor) + "</td><td>" +
                 esc(it->method) + "</td><td>" + esc(it->route) + "</td><td>" + esc(it->object_id) +
                 "</td><td>" + std::to_string(it->status) + "</td><td>" + std::to_string(it->count) +
                 "</td></tr>";
        }
        h += "</table></div>";
        if (what == "audit" && a->audit.size() == static_cast<std::size_t>(kAuditPage))
          h += "<p><a href=\"/console/admin/audit?after=" + std::to_string(a->audit.back().id) +
               "\">→ " + std::to_string(a->audit.back().id) + "</a></p>";
        respond(html_response(200, render_page(p)));
      });
}

}  // namespace tocsin::app
