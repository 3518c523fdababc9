// The console's front door: routing, the security checks every request
// passes (Origin / Sec-Fetch-Site, CSRF token, session), sessions, login
// with passphrase + TOTP and its throttle, enrolment, logout.
#include "app/console.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "app/api_common.h"
#include "app/console_crypto.h"
#include "app/console_impl.h"
#include "core/signature.h"
#include "core/sms.h"
#include "core/totp.h"

namespace tocsin::app {

using namespace console;

namespace console {

bool Who::covers(std::string_view area) const { return all_areas || any_area_covers(areas, area); }

Hasher::Hasher(boost::asio::io_context* io) : io_(io) {
  if (io_) thread_ = std::thread([this] {
      for (;;) {
        std::pair<std::function<bool()>, std::function<void(bool)>> item;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
          if (queue_.empty()) return;
          item = std::move(queue_.front());
          queue_.pop_front();
        }
        bool ok = item.first();
        boost::asio::post(*io_, [done = std::move(item.second), ok] { done(ok); });
      }
    });
}

Hasher::~Hasher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Hasher::submit(std::function<bool()> work, std::function<void(bool)> done) {
  if (!io_) {
    done(work());
    return true;
  }
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) return false;
    queue_.emplace_back(std::move(work), std::move(done));
  }
  cv_.notify_one();
  return true;
}

}  // namespace console

namespace {

constexpr int64_t kTouchEveryMs = 15'000;  // a session's last_seen is written at most this often
constexpr int64_t kUserDelayCapS = 60;     // the longest a name waits between failed logins
constexpr int64_t kAddrDelayCapS = 30;     // and an address (behind a proxy: everyone)

std::string_view cookie_value(const http::Request& req, std::string_view name) {
  std::string_view all = req.header("cookie");
  while (!all.empty()) {
    auto semi = all.find(';');
    std::string_view part = all.substr(0, semi);
    while (part.starts_with(' ')) part.remove_prefix(1);
    if (part.size() > name.size() && part.starts_with(name) && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    if (semi == std::string_view::npos) break;
    all.remove_prefix(semi + 1);
  }
  return {};
}

bool https(const Config& c) { return c.server.public_url.starts_with("https://"); }

std::string session_cookie_name(const Config& c) {
  return https(c) ? "__Host-tocsin_session" : "tocsin_session";
}

std::string session_cookie(const Config& c, const std::string& value, bool clear = false) {
  std::string v = session_cookie_name(c) + "=" + value + "; Path=/; HttpOnly; SameSite=Strict";
  if (https(c)) v += "; Secure";
  if (clear) v += "; Max-Age=0";
  return v;
}

// The pre-session CSRF token of the login and enrolment forms (a signed
// double submit): "NONCE.MAC", MAC = hex HMAC-SHA256(key, NONCE) under a key
// drawn at start-up. The GET of the form sets it as a cookie and puts it in
// a hidden field; the POST must carry both, equal, with a MAC this process
// made. A site that cannot read our pages cannot learn a pair; one that
// plants a cookie of its own (a sibling host over http) cannot sign it.
// After a restart the old pairs fail: the person reloads the form.
std::string pre_cookie_name(const Config& c) {
  return https(c) ? "__Host-tocsin_pre" : "tocsin_pre";
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::string sign_pre(std::string_view key, std::string_view nonce) {
  return std::string(nonce) + "." + hex(hmac_sha256(key, nonce));
}

bool pre_valid(std::string_view key, std::string_view token) {
  auto dot = token.find('.');
  return dot == 32 && token.size() == 32 + 1 + 64 &&
         constant_time_equal(token, sign_pre(key, token.substr(0, dot)));
}

std::string pre_field(const std::string& pre) {
  return "<input type=\"hidden\" name=\"pre\" value=\"" + esc(pre) + "\">";
}

// scheme://host[:port] of a URL.
std::string origin_of(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  auto slash = url.find('/', scheme + 3);
  return std::string(url.substr(0, slash));
}

// A state-changing request must come from our own pages. Under
// Referrer-Policy: no-referrer a browser sends "Origin: null" on form POSTs;
// then Sec-Fetch-Site (sent by every current browser) must vouch.
bool same_origin(const http::Request& req, const Config& c) {
  auto site = req.header("sec-fetch-site");
  if (!site.empty() && site != "same-origin") return false;
  auto origin = req.header("origin");
  if (origin.empty() || origin == "null") return site == "same-origin";
  if (origin == origin_of(c.server.public_url)) return true;
  auto host = req.header("host");
  return !host.empty() && origin == (https(c) ? "https://" : "http://") + std::string(host);
}

std::string client_address(const http::Request& req) {
  auto colon = req.remote.rfind(':');
  return colon == std::string::npos ? req.remote : req.remote.substr(0, colon);
}

std::string choose_lang(const http::Request& req) {
  auto c = cookie_value(req, "tocsin_lang");
  if (c == "en" || c == "es") return std::string(c);
  std::string_view al = req.header("accept-language");
  while (!al.empty()) {
    while (al.starts_with(' ') || al.starts_with(',')) al.remove_prefix(1);
    if (al.starts_with("es")) return "es";
    if (al.starts_with("en")) return "en";
    auto comma = al.find(',');
    if (comma == std::string_view::npos) break;
    al.remove_prefix(comma);
  }
  return "en";
}

int64_t delay_s(int64_t failures, int64_t cap) {
  if (failures < 3) return 0;
  int64_t shift = std::min<int64_t>(failures - 3, 10);
  return std::min<int64_t>(int64_t{1} << shift, cap);
}

const std::string& dummy_hash() {
  static const std::string h = hash_passphrase("not a passphrase anyone has");
  return h;
}

}  // namespace

Console::Impl::Impl(ConfigSource c, const Clock& cl, store::StoreWorker& s,
                    std::function<void()> dp, boost::asio::io_context* io,
                    std::shared_ptr<std::mt19937_64> r,
                    std::function<void(const IngestResult&)> in)
    : config(std::move(c)),
      clock(cl),
      store(s),
      deliveries_planned(std::move(dp)),
      rng(std::move(r)),
      ingested(std::move(in)),
      hasher(io),
      pre_key(random_bytes(32)) {}

Console::Console(ConfigSource config, const Clock& clock, store::StoreWorker& store,
                 std::function<void()> deliveries_planned, boost::asio::io_context* io,
                 std::shared_ptr<std::mt19937_64> rng,
                 std::function<void(const IngestResult&)> ingested)
    : impl_(std::make_shared<Impl>(std::move(config), clock, store, std::move(deliveries_planned),
                                   io, std::move(rng), std::move(ingested))) {}

Console::~Console() = default;

void Console::handle(http::Request req, Respond respond) {
  impl_->handle(std::move(req), std::move(respond));
}

void Console::Impl::audit(const std::string& actor, std::string_view method, std::string route,
                          std::string object_id, int status, int64_t count) {
  store::AuditEntry e;
  e.at = clock.now_ms();
  e.actor = actor;
  e.method = std::string(method.substr(0, 10));
  e.route = std::move(route);
  e.object_id = api::audit_object(object_id);
  e.status = status;
  e.count = count;
  store.submit([e](store::Store& s) { s.insert_audit(e); },
               [e](bool ok) {
                 if (!ok) spdlog::error("console: audit entry for {} {} not stored", e.method, e.route);
               });
}

void Console::Impl::handle(http::Request req, Respond raw_respond) {
  auto cfg = config();
  Respond respond = [raw_respond = std::move(raw_respond)](http::Response r) {
    add_security_headers(r);
    raw_respond(std::move(r));
  };
  if (!cfg->config.console.enabled)
    return respond(api::problem(api::not_found("no such resource")));
  std::string path(req.path());
  const std::string lang = choose_lang(req);
  const bool post = req.method == "POST";
  if (!post && req.method != "GET" && req.method != "HEAD")
    return respond(api::problem(api::method_not_allowed()));

  if (path == "/console/assets/app.css" || path == "/console/assets/app.js") {
    http::Response r;
    bool css = path.ends_with(".css");
    r.set("Content-Type", css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8");
    r.body = std::string(css ? asset_css() : asset_js());
    return respond(std::move(r));
  }
  if (path == "/console/lang") {
    // A GET that only sets the interface language's cookie: no server state
    // changes, so it needs no CSRF token, and it stays a plain link that
    // works on the login page (before any session or token) and from the
    // keyboard. So that another site cannot switch a person's language
    // either, the cookie is set only for a navigation from our own pages or
    // one the person typed (Sec-Fetch-Site same-origin or none; absent: a
    // client that is no browser, such as curl).
    auto site = req.header("sec-fetch-site");
    std::string l(form_value(parse_form(req.query()), "l"));
    if (l != "es") l = "en";
    auto r = redirect("/console/");
    // Anyone can send a cross-site one: ignored without a log line.
    if (site.empty() || site == "same-origin" || site == "none")
      r.set("Set-Cookie", "tocsin_lang=" + l + "; Path=/; SameSite=Strict; Max-Age=31536000");
    return respond(std::move(r));
  }
  if (post) {
    // Before anything is read or written: a request from another site is
    // refused. Anyone can send these: no log line of its own (the 403 is
    // counted and summarised, Api::Hooks::refused).
    if (!same_origin(req, cfg->config)) {
      return respond(message_page(403, lang, nullptr, "forbidden", tr(lang, "cross_site")));
    }
    auto ct = req.header("content-type");
    if (!ct.starts_with("application/x-www-form-urlencoded"))
      return respond(message_page(415, lang, nullptr, "forbidden", "application/x-www-form-urlencoded"));
  }
  const bool pre_session = path == "/console/login" || (path == "/console/enrol" && post) ||
                           (path.starts_with("/console/enrol/") && !post);
  if (pre_session) {
    std::string pre(cookie_value(req, pre_cookie_name(cfg->config)).substr(0, 128));
    if (!pre_valid(pre_key, pre)) pre.clear();
    if (post) {
      // Before anything is read or written, as the session's token below.
      FormFields f = parse_form(req.body);
      std::string_view offered = form_value(f, "pre");
      // Anyone can send these: no log line of its own (the 403 is counted
      // and summarised, Api::Hooks::refused).
      if (pre.empty() || !constant_time_equal(offered, pre)) {
        return respond(message_page(403, lang, nullptr, "forbidden", tr(lang, "cross_site")));
      }
    } else if (pre.empty()) {
      pre = sign_pre(pre_key, random_token(16));
      std::string cookie = pre_cookie_name(cfg->config) + "=" + pre +
                           "; Path=/; HttpOnly; SameSite=Strict" +
                           (https(cfg->config) ? "; Secure" : "");
      respond = [respond = std::move(respond), cookie](http::Response r) {
        r.set("Set-Cookie", cookie);
        respond(std::move(r));
      };
    }
    if (path == "/console/login") {
      if (post) return login(req, lang, pre, std::move(respond));
      return login_page(lang, pre, std::move(respond));
    }
    if (post) return enrol(req, lang, std::move(respond));
    return enrol_page(path.substr(15), lang, pre, std::move(respond));
  }

  auto self = shared_from_this();
  auto request = std::make_shared<http::Request>(std::move(req));
  with_session(*request, lang, [self, request, lang, path, post, respond](std::optional<Who> who) {
    const http::Request& rq = *request;
    if (!who) {
      if (path.ends_with(".json") || path.ends_with("/preview")) {
        auto r = http::json_response(401, R"({"error":"session expired","login":"/console/login"})");
        return respond(std::move(r));
      }
      if (post) return respond(message_page(401, lang, nullptr, "login", tr(lang, "session_expired")));
      return respond(redirect("/console/login"));
    }
    if (post) {
      FormFields f = parse_form(rq.body);
      std::string_view offered = form_value(f, "csrf");
      if (offered.empty()) offered = rq.header("x-csrf-token");
      if (!constant_time_equal(offered, who->session.csrf)) {
        spdlog::warn("console: {} {} without a valid CSRF token", rq.method, path);
        self->audit(who->user.name, rq.method, path.substr(0, 40), "", 403);
        return respond(message_page(403, lang, &*who, "forbidden", tr(lang, "cross_site")));
      }
    }
    if (path == "/console" || path == "/console/") return self->board(*who, lang, respond);
    if (path == "/console/board.json") return self->board_json(*who, respond);
    if (path == "/console/logout" && post) return self->logout(*who, false, lang, respond);
    if (path == "/console/logout-all" && post) return self->logout(*who, true, lang, respond);
    if (path == "/console/reports/new" && !post) return self->report_form(rq, *who, lang, respond);
    if (path == "/console/reports" && post) return self->submit_report(rq, *who, lang, respond);
    if (path == "/console/reports/preview" && post) return self->preview(rq, *who, lang, respond);
    if (path.starts_with("/console/drafts/")) {
      std::string_view rest = std::string_view(path).substr(16);
      auto slash = rest.find('/');
      auto id = api::parse_id(rest.substr(0, slash));
      if (id && slash == std::string_view::npos && !post)
        return self->draft_page(*id, *who, lang, respond);
      if (id && post && (rest.substr(slash + 1) == "approve" || rest.substr(slash + 1) == "reject"))
        return self->decide_draft(*id, rest.substr(slash + 1) == "approve", *who, lang, respond);
    }
    if (path.starts_with("/console/admin/subscribers/") ||
        (path == "/console/admin/subscribers" && post))
      return self->admin_subscriber(rq, path.substr(26), post, *who, lang, respond);
    if (path.starts_with("/console/admin/") && !post)
      return self->admin_page(path.substr(15),
                              api::parse_id(form_value(parse_form(rq.query()), "after")).value_or(0),
                              *who, lang, respond);
    if (path.starts_with("/console/incidents/")) {
      std::string rest = path.substr(19);
      for (auto& ch : rest) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (post && rest.ends_with("/RETRY"))
        return self->retry(rest.substr(0, rest.size() - 6), *who, lang, respond);
      if (!post && rest.find('/') == std::string::npos)
        return self->incident_page(rest, *who, lang, respond);
    }
    respond(message_page(404, lang, &*who, "not_found", tr(lang, "not_found")));
  });
}

void Console::Impl::with_session(const http::Request& req, const std::string&,
                                 std::function<void(std::optional<Who>)> then) {
  auto cfg = config();
  std::string token(cookie_value(req, session_cookie_name(cfg->config)));
  if (token.size() != 64) return then(std::nullopt);
  struct Found {
    store::ConsoleSession session;
    store::ConsoleUser user;
  };
  UnixMs now = clock.now_ms();
  const auto& k = cfg->config.console;
  int64_t idle = k.idle_timeout_s * 1000, absolute = k.absolute_timeout_s * 1000;
  store.call<std::optional<Found>>(
      [hash = token_hash(token), now, idle, absolute](store::Store& s) -> std::optional<Found> {
        auto se = s.session(hash);
        if (!se) return std::nullopt;
        if (now - se->last_seen > idle || now - se->created_at > absolute) {
          s.delete_session(hash);
          return std::nullopt;
        }
        auto u = s.console_user(se->user_id);
        if (!u || u->disabled || u->pw_hash.empty()) return std::nullopt;
        if (now - se->last_seen > kTouchEveryMs) s.touch_session(hash, now);
        return Found{*se, *u};
      },
      [cfg, then = std::move(then)](std::optional<std::optional<Found>> r) {
        if (!r || !*r) return then(std::nullopt);
        Who who;
        who.session = (*r)->session;
        who.user = (*r)->user;
        if (who.user.role == "admin" || (who.user.role == "verifier" && who.user.coordinator.empty())) {
          who.all_areas = true;
        } else {
          for (const auto& c : cfg->config.coordinators)
            if (c.name == who.user.coordinator) who.areas = c.areas;
        }
        then(std::move(who));
      });
}

void Console::Impl::login_page(const std::string& lang, const std::string& pre, Respond respond,
                               const std::string& error, int status) {
  Page p;
  p.lang = lang;
  p.title = tr(lang, "login");
  std::string& b = p.body;
  b += "<h1>" + T(lang, "login") + "</h1>";
  if (!error.empty()) b += "<p class=\"error\" role=\"alert\">" + esc(error) + "</p>";
  b += "<form method=\"post\" action=\"/console/login\" class=\"stack\">" + pre_field(pre) +
       "<label for=\"name\">" + T(lang, "name") + "</label>"
       "<input id=\"name\" name=\"name\" autocomplete=\"username\" required maxlength=\"16\">"
       "<label for=\"passphrase\">" + T(lang, "passphrase") + "</label>"
       "<input id=\"passphrase\" name=\"passphrase\" type=\"password\" autocomplete=\"current-password\" required>"
       "<label for=\"code\">" + T(lang, "code") + "</label>"
       "<input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
       "pattern=\"[0-9]{6}\" maxlength=\"6\" required>"
       "<button type=\"submit\">" + T(lang, "login") + "</button></form>";
  respond(html_response(status, render_page(p)));
}

void Console::Impl::login(const http::Request& req, const std::string& lang, const std::string& pre,
                          Respond respond) {
  FormFields f = parse_form(req.body);
  std::string name(form_value(f, "name").substr(0, 16));
  std::string pass(form_value(f, "passphrase").substr(0, 1024));
  std::string code(form_value(f, "code").substr(0, 12));
  std::string addr = client_address(req);
  UnixMs now = clock.now_ms();
  struct Before {
    std::optional<store::ConsoleUser> user;
    UnixMs wait_until = 0;
    int64_t user_failures = 0, addr_failures = 0;
  };
  auto self = shared_from_this();
  store.call<Before>(
      [name, addr](store::Store& s) {
        Before b;
        b.user = s.console_user_by_name(name);
        auto [uf, un] = s.throttle("user:" + name);
        auto [af, an] = s.throttle("addr:" + addr);
        b.user_failures = uf;
        b.addr_failures = af;
        b.wait_until = std::max(un, an);
        return b;
      },
      [self, name, pass, code, addr, now, lang, pre, respond](std::optional<Before> b) {
        if (!b) return respond(api::problem(api::unavailable()));
        if (now < b->wait_until) {
          // A login flood meets this at full speed: no line of its own (the
          // 429 is counted and summarised, Api::Hooks::refused).
          int64_t wait = (b->wait_until - now + 999) / 1000;
          return self->login_page(
              lang, pre, respond,
              tr(lang, "throttled") + std::string(" ") + std::to_string(wait) + " s", 429);
        }
        auto user = std::make_shared<std::optional<store::ConsoleUser>>(b->user);
        bool active = *user && !(*user)->disabled && !(*user)->pw_hash.empty();
        std::string stored = active ? (*user)->pw_hash : dummy_hash();
        auto finish = [self, user, active, name, code, addr, now, lang, pre, respond,
                       b = *b](bool pass_ok) {
          std::optional<int64_t> step;
          if (pass_ok && active)
            if (auto key = base32_decode((*user)->totp_secret))
              step = totp_match(*key, code, now / 1000);
          auto cfg = self->config();
          std::string token = random_token(), csrf = random_token(16);
          self->store.call<bool>(
              [user, step, name, addr, now, token, csrf, b](store::Store& s) {
                bool ok = step && s.use_totp_step((*user)->id, *step);
                if (ok) {
                  s.insert_session({token_hash(token), (*user)->id, csrf, now, now});
                  s.clear_throttle("user:" + name);
                  s.clear_throttle("addr:" + addr);
                } else {
                  int64_t uf = b.user_failures + 1, af = b.addr_failures + 1;
                  // Names that are no account get no row of their own (the
                  // table must not grow with every guessed name): the
                  // address's delay covers them.
                  if (*user)
                    s.set_throttle("user:" + name, uf, now + delay_s(uf, kUserDelayCapS) * 1000, now);
                  s.set_throttle("addr:" + addr, af, now + delay_s(af, kAddrDelayCapS) * 1000, now);
                }
                store::AuditEntry e{0, now, *user ? (*user)->name : "(unknown)", "POST",
                                    "/console/login", "", ok ? 200 : 401, 0};
                s.insert_audit(e);
                return ok;
              },
              [self, cfg, token, lang, pre, respond](std::optional<bool> ok) {
                if (!ok) return respond(api::problem(api::unavailable()));
                if (!*ok)
                  return self->login_page(lang, pre, respond, tr(lang, "login_failed"), 401);
                auto r = redirect("/console/");
                r.set("Set-Cookie", session_cookie(cfg->config, token));
                respond(std::move(r));
              });
        };
        if (!self->hasher.submit([stored, pass] { return verify_passphrase(stored, pass); },
                                 std::move(finish)))
          respond(message_page(503, lang, nullptr, "login", tr(lang, "busy")));
      });
}

void Console::Impl::enrol_page(const std::string& token, const std::string& lang,
                               const std::string& pre, Respond respond) {
  UnixMs now = clock.now_ms();
  auto self = shared_from_this();
  store.call<std::optional<store::ConsoleUser>>(
      [hash = token_hash(token)](store::Store& s) { return s.console_user_by_enrol(hash); },
      [self, token, now, lang, pre, respond](std::optional<std::optional<store::ConsoleUser>> u) {
        if (!u) return respond(api::problem(api::unavailable()));
        if (!*u || (*u)->disabled || (*u)->enrol_expires < now)
          return respond(message_page(404, lang, nullptr, "enrol", tr(lang, "enrol_invalid")));
        std::string secret = base32_encode(random_bytes(20));
        std::string uri = totp_uri("tocsin", (*u)->name, secret);
        Page p;
        p.lang = lang;
        p.title = tr(lang, "enrol");
        std::string& b = p.body;
        b += "<h1>" + T(lang, "enrol") + ": " + esc((*u)->name) + "</h1>";
        b += "<p>" + T(lang, "enrol_intro") + "</p>";
        b += "<figure class=\"qr\">" + qr_svg(uri) + "<figcaption>" + T(lang, "totp_secret") +
             " <code id=\"totp-secret\">" + esc(secret) + "</code></figcaption></figure>";
        b += "<form method=\"post\" action=\"/console/enrol\" class=\"stack\">" + pre_field(pre) +
             "<input type=\"hidden\" name=\"token\" value=\"" + esc(token) + "\">"
             "<input type=\"hidden\" name=\"secret\" value=\"" + esc(secret) + "\">"
             "<label for=\"passphrase\">" + T(lang, "passphrase_new") + "</label>"
             "<input id=\"passphrase\" name=\"passphrase\" type=\"password\" minlength=\"12\" "
             "autocomplete=\"new-password\" required>"
             "<label for=\"passphrase2\">" + T(lang, "passphrase_again") + "</label>"
             "<input id=\"passphrase2\" name=\"passphrase2\" type=\"password\" minlength=\"12\" "
             "autocomplete=\"new-password\" required>"
             "<label for=\"code\">" + T(lang, "code") + "</label>"
             "<input id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{6}\" "
             "maxlength=\"6\" autocomplete=\"one-time-code\" required>"
             "<button type=\"submit\">" + T(lang, "enrol_submit") + "</button></form>";
        respond(html_response(200, render_page(p)));
      });
}

void Console::Impl::enrol(const http::Request& req, const std::string& lang, Respond respond) {
  FormFields f = parse_form(req.body);
  std::string token(form_value(f, "token").substr(0, 128));
  std::string secret(form_value(f, "secret").substr(0, 64));
  std::string pass(form_value(f, "passphrase").substr(0, 1024));
  std::string pass2(form_value(f, "passphrase2").substr(0, 1024));
  std::string code(form_value(f, "code").substr(0, 12));
  UnixMs now = clock.now_ms();
  auto key = base32_decode(secret);
  if (code_point_count(pass) < kMinPassphrase || pass != pass2)
    return respond(message_page(422, lang, nullptr, "enrol", tr(lang, "passphrase_rule")));
  std::optional<int64_t> step;
  if (key && key->size() == 20) step = totp_match(*key, code, now / 1000);
  if (!step) return respond(message_page(422, lang, nullptr, "enrol", tr(lang, "code_wrong")));
  auto self = shared_from_this();
  auto hash = std::make_shared<std::string>();
  bool queued = hasher.submit(
      [hash, pass] {
        *hash = hash_passphrase(pass);
        return !hash->empty();
      },
      [self, hash, token, secret, step, now, lang, respond](bool ok) {
        if (!ok) return respond(message_page(503, lang, nullptr, "enrol", tr(lang, "busy")));
        self->store.call<std::string>(
            [hash, token, secret, step, now](store::Store& s) -> std::string {
              auto u = s.console_user_by_enrol(token_hash(token));
              if (!u || u->disabled || u->enrol_expires < now) return {};
              u->pw_hash = *hash;
              u->totp_secret = secret;
              u->totp_last_step = *step;  // the code just used is spent
              u->enrol_hash.clear();
              u->enrol_expires = 0;
              s.update_console_user(*u);
              s.insert_audit({0, now, u->name, "POST", "/console/enrol", u->name, 200, 0});
              return u->name;
            },
            [lang, respond](std::optional<std::string> name) {
              if (!name) return respond(api::problem(api::unavailable()));
              if (name->empty())
                return respond(message_page(404, lang, nullptr, "enrol", tr(lang, "enrol_invalid")));
              spdlog::info("console: a user enrolled");
              respond(message_page(200, lang, nullptr, "enrol", tr(lang, "enrolled")));
            });
      });
  if (!queued) respond(message_page(503, lang, nullptr, "enrol", tr(lang, "busy")));
}

void Console::Impl::logout(const Who& who, bool everywhere, const std::string& lang,
                           Respond respond) {
  auto cfg = config();
  UnixMs now = clock.now_ms();
  store.call<int64_t>(
      [who, everywhere, now](store::Store& s) -> int64_t {
        int64_t n = 1;
        if (everywhere) n = s.delete_user_sessions(who.user.id);
        else s.delete_session(who.session.token_hash);
        s.insert_audit({0, now, who.user.name, "POST",
                        everywhere ? "/console/logout-all" : "/console/logout", "", 200, n});
        return n;
      },
      [cfg, lang, respond](std::optional<int64_t> n) {
        if (!n) return respond(api::problem(api::unavailable()));
        auto r = message_page(200, lang, nullptr, "logout", tr(lang, "logged_out"));
        r.set("Set-Cookie", session_cookie(cfg->config, "", /*clear=*/true));
        respond(std::move(r));
      });
}

}  // namespace tocsin::app
