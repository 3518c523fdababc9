// `tocsin users add|list|disable|reset`: console accounts, written to the
// store directly (beside a running daemon: WAL lets both write in turn).
#pragma once

#include <string>

namespace tocsin::app {

struct UsersOptions {
  std::string action;  // add | list | disable | reset
  std::string config_path;
  std::string name;
  std::string role;         // add: coordinator | verifier | admin
  std::string coordinator;  // add: the configured coordinator a coordinator acts for
};

// Prints what it did (add and reset: the one-time enrolment link). Returns
// 0, 1 on a store failure or an unknown user, 2 on bad arguments or config.
int users_command(const UsersOptions& opts);

// How long an enrolment link is valid.
inline constexpr long long kEnrolValidMs = 24LL * 3600 * 1000;

}  // namespace tocsin::app
