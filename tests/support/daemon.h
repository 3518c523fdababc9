// Running the real tocsin binary from end-to-end tests: a temporary working
// directory, the daemon as a child process with its log, and one-shot CLI
// runs. Failures to start are thrown as DaemonError with the log's tail, so
// that Catch2 reports them as the test's failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tocsin::test {

// The path of the binary under test (build/tocsin), from TOCSIN_BINARY.
std::string tocsin_binary();

// A fresh directory /tmp/<prefix>-XXXXXX, removed with its contents on
// destruction unless the environment variable TOCSIN_KEEP_TEST_DIRS is set
// (then its path is printed to stderr).
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "tocsin-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// How a child process ended.
struct ExitStatus {
  int code = -1;   // its exit code when it exited, else -1
  int signal = 0;  // the signal that killed it, else 0

  bool exited() const { return signal == 0; }
  // "exit status 2" or "killed by signal 9 (Killed)".
  std::string describe() const;
};

// What a one-shot run of the binary printed and returned.
struct CliResult {
  ExitStatus status;
  int exit_code = -1;      // status.code, or 128 + signal when killed (as a shell says)
  std::string out;         // everything written to stdout
  std::string err;         // everything written to stderr
  bool timed_out = false;  // killed with SIGKILL after `timeout`
};

// Runs `tocsin ARGS...` in `cwd` (default: the current directory) with
// stdin from /dev/null, capturing stdout and stderr; kills it after
// `timeout`. Throws DaemonError if the binary cannot be executed.
CliResult run_cli(const std::vector<std::string>& args,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10),
                  const std::filesystem::path& cwd = {});

class DaemonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ChildProcess;  // fork/exec/reap details, in daemon.cpp

// The daemon under test, in its own temporary directory:
//   <dir>/config.json  the config given, with server.listen = 127.0.0.1:0
//   <dir>/tocsin.log   its stdout and stderr, appended across restarts
//   <dir>/KEY_FILE     a new key file, when the config names a relative
//                      storage.key_file that does not exist yet
// It runs with <dir> as its working directory, so relative paths in the
// config (storage, secret files) land inside <dir>. Not thread-safe: drive
// it from the test's thread. The child runs in its own process group and
// gets SIGKILL if the thread that started it exits (PR_SET_PDEATHSIG), so a
// crashed test leaves no daemon behind.
class Daemon {
 public:
  struct Options {
    std::string binary;             // default: tocsin_binary()
    std::vector<std::string> args;  // default: {"serve", "--config", "config.json"}
    std::vector<std::pair<std::string, std::string>> env;  // added to the environment
    // When >= 0, a listening socket handed to the child as systemd does
    // (socket activation): as fd 3, with LISTEN_FDS=1 and LISTEN_PID set to
    // the child's pid. The caller keeps its descriptor open, and with it the
    // socket between starts.
    int listen_fd = -1;
  };

  // Creates the directory and writes config.json; does not start anything.
  explicit Daemon(nlohmann::json config);
  Daemon(nlohmann::json config, Options options);
  // Kills (SIGKILL) and reaps the child if it still runs. While an exception
  // unwinds (a failed REQUIRE), prints the log's tail to stderr first.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The config as written; change it, then write_config() (e.g. before SIGHUP).
  nlohmann::json& config() { return config_; }
  void write_config();

  // Spawns the binary and waits until a line containing
  // "listening on http://HOST:PORT" is written to the log after this call.
  // Throws DaemonError, with the log's tail, if the process exits first, the
  // line does not appear within `timeout` (the child is then killed), or it
  // is already running. May be called again after it stopped; a restart
  // gets a new port (the same one with Options::listen_fd).
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // "http://HOST:PORT" from the last start's line, e.g. http://127.0.0.1:40123.
  std::string url() const;
  uint16_t port() const { return port_; }

  // SIGKILL to the child and its process group, then reaps it (a crash).
  // No-op when not running.
  void kill9();
  // SIGTERM (graceful shutdown); does not wait: see wait_exit().
  void terminate();
  // Any signal, e.g. SIGHUP to reload the config.
  void signal(int sig);
  // Waits up to `timeout` for the child to exit and reaps it. Returns how it
  // ended (also when it had ended before), or nullopt if it still runs or
  // was never started.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout);
  // Whether the child is alive (reaps it if it has exited).
  bool running();
  // The current or last child's pid; 0 before the first start().
  pid_t pid() const;

  const std::filesystem::path& dir() const { return dir_.path(); }
  // dir() / relative
  std::filesystem::path path(const std::filesystem::path& relative) const;
  // The whole log text (every start), e.g. to grep for leaked phone numbers.
  std::string log() const;
  // Its last `lines` lines.
  std::string log_tail(std::size_t lines = 40) const;

 private:
  TempDir dir_;
  nlohmann::json config_;
  Options options_;
  std::unique_ptr<ChildProcess> child_;
  std::string host_;
  uint16_t port_ = 0;
};

}  // namespace tocsin::test
