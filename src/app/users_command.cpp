// `tocsin users` (see users_command.h).
#include "app/users_command.h"

#include <chrono>
#include <cstdio>

#include "app/config.h"
#include "app/console_crypto.h"
#include "app/storage.h"
#include "store/open_store.h"
#include "store/store.h"

namespace tocsin::app {

namespace {

UnixMs wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool valid_user_name(const std::string& n) {
  if (n.empty() || n.size() > 16) return false;  // fits the audit log's object id
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          (c >= 'A' && c <= 'Z')))
      return false;
  return true;
}

void audit(store::Store& s, const std::string& action, const std::string& name, UnixMs now) {
  store::AuditEntry e;
  e.at = now;
  e.actor = "cli";
  e.method = "USERS";
  e.route = "tocsin users " + action;
  e.object_id = name;
  e.status = 200;
  s.insert_audit(e);
}

// A fresh enrolment token on `u`; returns the link to print.
std::string new_enrolment(store::ConsoleUser& u, const Config& c, UnixMs now) {
  std::string token = random_token();
  u.enrol_hash = token_hash(token);
  u.enrol_expires = now + kEnrolValidMs;
  return c.server.public_url + "/console/enrol/" + token;
}

}  // namespace

int users_command(const UsersOptions& o) {
  auto loaded = load_config(o.config_path);
  for (const auto& p : loaded.problems)
    std::fprintf(stderr, "%s: %s: %s\n", o.config_path.c_str(),
                 p.path.empty() ? "$" : p.path.c_str(), p.message.c_str());
  if (!loaded.ok()) return 2;
  const Config& c = loaded.config;
  if (o.action != "list" && !valid_user_name(o.name)) {
    std::fprintf(stderr, "tocsin users: NAME must be 1-16 letters, digits, '-' or '_'\n");
    return 2;
  }
  if (o.action == "add") {
    if (o.role != "coordinator" && o.role != "verifier" && o.role != "admin") {
      std::fprintf(stderr, "tocsin users add: --role must be coordinator, verifier or admin\n");
      return 2;
    }
    if (o.role == "coordinator" && o.coordinator.empty()) {
      std::fprintf(stderr, "tocsin users add: a coordinator needs --coordinator NAME\n");
      return 2;
    }
    if (!o.coordinator.empty()) {
      bool known = false;
      for (const auto& co : c.coordinators) known = known || co.name == o.coordinator;
      if (!known) {
        std::fprintf(stderr, "tocsin users add: no coordinator \"%s\" in %s\n",
                     o.coordinator.c_str(), o.config_path.c_str());
        return 2;
      }
    }
  }
  std::unique_ptr<store::Store> s;
  try {
    s = store::open_store(store_options(c.storage, store::StoreOptions::Access::kBesideDaemon));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tocsin users: %s\n", e.what());
    return 1;
  }
  UnixMs now = wall_now();
  try {
    s->begin();
    int rc = 0;
    if (o.action == "list") {
      std::printf("%-16s %-12s %-20s %s\n", "name", "role", "coordinator", "state");
      for (const auto& u : s->console_users()) {
        const char* state = u.disabled              ? "disabled"
                            : !u.pw_hash.empty()    ? "enrolled"
                            : u.enrol_expires > now ? "enrolment pending"
                                                    : "enrolment link expired (users reset)";
        std::printf("%-16s %-12s %-20s %s\n", u.name.c_str(), u.role.c_str(),
                    u.coordinator.empty() ? "-" : u.coordinator.c_str(), state);
      }
    } else if (o.action == "add") {
      store::ConsoleUser u;
      u.name = o.name;
      u.role = o.role;
      u.coordinator = o.coordinator;
      u.created_at = now;
      std::string link = new_enrolment(u, c, now);
      if (s->insert_console_user(u) == 0) {
        std::fprintf(stderr, "tocsin users add: a user called %s exists already\n", o.name.c_str());
        rc = 1;
      } else {
        audit(*s, "add", o.name, now);
        std::printf(
            "user %s (%s) added. One-time enrolment link, valid 24 hours; give it to them "
            "in person or over a channel you trust:\n%s\n",
            o.name.c_str(), o.role.c_str(), link.c_str());
      }
    } else {
      auto u = s->console_user_by_name(o.name);
      if (!u) {
        std::fprintf(stderr, "tocsin users %s: no user called %s\n", o.action.c_str(),
                     o.name.c_str());
        rc = 1;
      } else if (o.action == "disable") {
        u->disabled = true;
        s->update_console_user(*u);
        auto ended = s->delete_user_sessions(u->id);
        audit(*s, "disable", o.name, now);
        std::printf("user %s disabled; %lld session(s) ended\n", o.name.c_str(),
                    static_cast<long long>(ended));
      } else {  // reset
        u->disabled = false;
        u->pw_hash.clear();
        u->totp_secret.clear();
        u->totp_last_step = 0;
        std::string link = new_enrolment(*u, c, now);
        s->update_console_user(*u);
        auto ended = s->delete_user_sessions(u->id);
        audit(*s, "reset", o.name, now);
        std::printf(
            "user %s reset: passphrase and second factor cleared, %lld session(s) ended. "
            "New enrolment link, valid 24 hours:\n%s\n",
            o.name.c_str(), static_cast<long long>(ended), link.c_str());
      }
    }
    s->commit();
    return rc;
  } catch (const std::exception& e) {
    s->rollback();
    std::fprintf(stderr, "tocsin users: %s\n", e.what());
    return 1;
  }
}

}  // namespace tocsin::app
