// Internals shared by the console's translation units: console.cpp
// (routing, security checks, sessions, login, enrolment), console_html.cpp
// (layout, texts in English and Spanish, QR code), console_reports.cpp (the
// report form, preview, drafts), console_board.cpp (board, incidents),
// console_admin.cpp and console_subscribers.cpp (admin screens) and
// console_assets.cpp (CSS and the ES module). Internal to src/app.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <condition_variable>
#include <vector>

#include "app/console.h"
#include "core/form.h"
#include "core/html.h"
#include "core/report.h"
#include "store/store.h"

namespace tocsin::app::console {

// The person behind a request with a valid session.
struct Who {
  store::ConsoleUser user;
  store::ConsoleSession session;
  std::vector<std::string> areas;  // empty with all_areas
  bool all_areas = false;          // admin, or a verifier of no coordinator
  bool can_report() const { return !user.coordinator.empty() && user.role != "verifier"; }
  bool covers(std::string_view area) const;
};

// What every page needs to render.
struct Page {
  std::string lang = "en";  // "en" or "es"
  const Who* who = nullptr;  // null before login
  std::string title;
  std::string body;  // HTML, already escaped where it holds text
  bool drill = false;  // mark the whole page as a drill
};

// Texts of the interface, by key; English when a key has no Spanish.
std::string tr(std::string_view lang, std::string_view key);
inline std::string esc(std::string_view s) { return html_escape(s); }
// tr() escaped, for HTML.
inline std::string T(std::string_view lang, std::string_view key) { return esc(tr(lang, key)); }

// The document around page.body: header, navigation, language switch, logout.
std::string render_page(const Page& page);
http::Response html_response(int status, std::string body);
// The console's headers, on every answer.
void add_security_headers(http::Response& r);
http::Response redirect(std::string_view location);
// A short page with a message (errors, confirmations).
http::Response message_page(int status, const std::string& lang, const Who* who,
                            std::string_view title_key, const std::string& text);

// A subscriber's groups and channels as the admin screens list them:
// "eastside, lawyers", "sms, email" (plain text: escape it for HTML).
std::string comma_list(const std::vector<std::string>& items);
std::string channels_text(const store::Subscriber& s);

// The QR code of `text` as an inline SVG (black modules on white), "" when
// libqrencode cannot encode it.
std::string qr_svg(const std::string& text);

// Static assets compiled into the binary.
std::string_view asset_css();
std::string_view asset_js();

// A hidden CSRF field for forms.
inline std::string csrf_field(const Who& who) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + esc(who.session.csrf) + "\">";
}

// A one-thread queue for passphrase hashing (argon2id is deliberately slow):
// never on the io thread, never on the store thread. At most kMaxQueued
// waiting; beyond that submit() refuses (the login answers 503).
class Hasher {
 public:
  static constexpr std::size_t kMaxQueued = 8;
  explicit Hasher(boost::asio::io_context* io);
  ~Hasher();
  bool submit(std::function<bool()> work, std::function<void(bool)> done);

 private:
  boost::asio::io_context* io_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<bool()>, std::function<void(bool)>>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tocsin::app::console

namespace tocsin::app {

struct Console::Impl : std::enable_shared_from_this<Console::Impl> {
  using Who = console::Who;
  using Respond = Console::Respond;

  ConfigSource config;
  const Clock& clock;
  store::StoreWorker& store;
  std::function<void()> deliveries_planned;
  std::shared_ptr<std::mt19937_64> rng;
  std::function<void(const IngestResult&)> ingested;
  console::Hasher hasher;
  // Signs the login and enrolment forms' pre-session tokens (console.cpp);
  // drawn at start-up, never stored.
  std::string pre_key;

  Impl(ConfigSource c, const Clock& cl, store::StoreWorker& s, std::function<void()> dp,
       boost::asio::io_context* io, std::shared_ptr<std::mt19937_64> r,
       std::function<void(const IngestResult&)> in);

  // console.cpp
  void handle(http::Request req, Respond respond);
  void with_session(const http::Request& req, const std::string& lang,
                    std::function<void(std::optional<Who>)> then);
  // `pre`: the pre-session CSRF token the form carries (console.cpp).
  void login_page(const std::string& lang, const std::string& pre, Respond respond,
                  const std::string& error = {}, int status = 200);
  void login(const http::Request& req, const std::string& lang, const std::string& pre,
             Respond respond);
  void enrol_page(const std::string& token, const std::string& lang, const std::string& pre,
                  Respond respond);
  void enrol(const http::Request& req, const std::string& lang, Respond respond);
  void logout(const Who& who, bool everywhere, const std::string& lang, Respond respond);
  // Records one console action; `respond` goes out once it is stored.
  void audit(const std::string& actor, std::string_view method, std::string route,
             std::string object_id, int status, int64_t count = 0);

  // console_reports.cpp
  void report_form(const http::Request& req, const Who& who, const std::string& lang,
                   Respond respond);
  void preview(const http::Request& req, const Who& who, const std::string& lang, Respond respond);
  void submit_report(const http::Request& req, const Who& who, const std::string& lang,
                     Respond respond);
  void draft_page(int64_t id, const Who& who, const std::string& lang, Respond respond);
  void decide_draft(int64_t id, bool approve, const Who& who, const std::string& lang,
                    Respond respond);

  // console_board.cpp
  void board(const Who& who, const std::string& lang, Respond respond);
  void board_json(const Who& who, Respond respond);
  void incident_page(const std::string& code, const Who& who, const std::string& lang,
                     Respond respond);
  void retry(const std::string& code, const Who& who, const std::string& lang, Respond respond);

  // console_admin.cpp: "subscribers" (masked), "users", "audit"; admins only.
  // The audit log is paged oldest first from ?after=ID, 200 a page.
  void admin_page(const std::string& what, int64_t after, const Who& who, const std::string& lang,
                  Respond respond);
  // console_subscribers.cpp: one subscriber in full (audited), add, edit,
  // erase, CSV upload; admins only. `rest` is the path after
  // /console/admin/subscribers ("", "/new", "/import", "/{id}", "/{id}/edit",
  // "/{id}/erase").
  void admin_subscriber(const http::Request& req, const std::string& rest, bool post,
                        const Who& who, const std::string& lang, Respond respond);
};

}  // namespace tocsin::app
