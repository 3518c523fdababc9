#include "support/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>

#include "support/keys.h"

extern char** environ;

namespace tocsin::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1000 * 1000));
}

ExitStatus decode_status(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

std::string read_file(const std::filesystem::path& path, std::size_t from = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(from));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string tail_lines(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (std::size_t n = 0; n < lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

// "listening on http://HOST:PORT" in one complete line → (host, port).
std::optional<std::pair<std::string, uint16_t>> parse_listening(std::string_view line) {
  constexpr std::string_view kPhrase = "listening on http://";
  auto at = line.find(kPhrase);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kPhrase.size());
  std::size_t end = 0;
  while (end < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[end])) ||
                               std::strchr(".-[]:", rest[end]) != nullptr)) {
    ++end;
  }
  std::string_view hostport = rest.substr(0, end);
  auto colon = hostport.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == hostport.size()) {
    return std::nullopt;
  }
  unsigned long port = 0;
  for (char c : hostport.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  if (port == 0) return std::nullopt;
  return std::make_pair(std::string(hostport.substr(0, colon)), static_cast<uint16_t>(port));
}

}  // namespace

// A spawned child: it is always reaped, by wait(), or by the destructor
// after SIGKILL.
class ChildProcess {
 public:
  struct Spec {
    std::string binary;
    std::vector<std::string> args;  // without argv[0]
    std::filesystem::path cwd;      // empty: inherit
    int stdout_fd = -1;             // -1: /dev/null
    int stderr_fd = -1;             // -1: /dev/null
    std::vector<std::pair<std::string, std::string>> env;
    int listen_fd = -1;  // >= 0: passed as fd 3 with LISTEN_FDS=1, LISTEN_PID (see Daemon::Options)
  };

  // Throws DaemonError when the binary cannot be executed.
  explicit ChildProcess(const Spec& spec_in) {
    Spec spec = spec_in;
    // LISTEN_PID is the child's own pid, known only after fork(): reserve
    // room for it here and write the digits in the child.
    constexpr std::size_t kPidDigits = 20;
    if (spec.listen_fd >= 0) {
      spec.env.emplace_back("LISTEN_FDS", "1");
      spec.env.emplace_back("LISTEN_PID", std::string(kPidDigits, '0'));
    }
    // Everything the child needs is built before fork(): after it, in a
    // multi-threaded parent, only async-signal-safe calls are allowed.
    std::vector<std::string> argv_s{spec.binary};
    argv_s.insert(argv_s.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      bool overridden = false;
      for (const auto& [k, v] : spec.env) {
        if (kv.size() > k.size() && kv.substr(0, k.size()) == k && kv[k.size()] == '=') {
          overridden = true;
        }
      }
      if (!overridden) env_s.emplace_back(kv);
    }
    for (const auto& [k, v] : spec.env) env_s.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* listen_pid = spec.listen_fd >= 0 ? env_s.back().data() + std::strlen("LISTEN_PID=") : nullptr;
    std::string cwd = spec.cwd.string();

    Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
    int exec_pipe[2];
    if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw DaemonError(errno_text("pipe2"));
    Fd exec_r(exec_pipe[0]), exec_w(exec_pipe[1]);
    const int out = spec.stdout_fd >= 0 ? spec.stdout_fd : devnull.get();
    const int err = spec.stderr_fd >= 0 ? spec.stderr_fd : devnull.get();
    const pid_t parent = ::getpid();

    pid_ = ::fork();
    if (pid_ < 0) throw DaemonError(errno_text("fork"));
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::setpgid(0, 0);  // its own group, so that kill_all() reaches its children
      // Start from a clean signal state whatever the test process did.
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD}) ::signal(sig, SIG_DFL);
      ::dup2(devnull.get(), 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      // Let no descriptor of the test process (emulator sockets, other
      // daemons' logs) leak into the child; exec_w is CLOEXEC already.
      if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
      int report_fd = exec_w.get();
      if (spec.listen_fd >= 0) {
        // fd 3 becomes the socket: move the exec-error pipe out of its way.
        if (report_fd == 3) report_fd = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 4);
        if (spec.listen_fd == 3) {
          ::fcntl(3, F_SETFD, 0);
        } else {
          ::dup2(spec.listen_fd, 3);  // the copy is not close-on-exec
        }
        // The pid's digits, right-aligned in the reserved room, then shifted left.
        char digits[kPidDigits];
        std::size_t n = 0;
        for (auto pid = static_cast<unsigned long>(::getpid()); pid > 0 || n == 0; pid /= 10) {
          digits[kPidDigits - 1 - n++] = static_cast<char>('0' + pid % 10);
        }
        for (std::size_t i = 0; i < n; ++i) listen_pid[i] = digits[kPidDigits - n + i];
        listen_pid[n] = '\0';
      }
      int e = 0;
      if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
        e = errno;
      } else {
        ::execve(argv[0], argv.data(), envp.data());
        e = errno;
      }
      ssize_t ignored = ::write(report_fd, &e, sizeof e);
      (void)ignored;
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also here: no race with the first kill_all()
    exec_w.reset();
    // glibc 2.36's <sys/pidfd.h> lacks extern "C", hence the raw syscall.
    pidfd_ =
        Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));  // -1 on old kernels: polled then
    int child_errno = 0;
    ssize_t n;
    do {
      n = ::read(exec_r.get(), &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    if (n == sizeof child_errno) {
      wait(milliseconds(5000));
      throw DaemonError("cannot run " + spec.binary + " (in " + cwd +
                        "): " + std::strerror(child_errno));
    }
  }

  ~ChildProcess() {
    if (!status_) {
      kill_all();
      wait(milliseconds(10000));
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited; -1 if unsupported.
  int pidfd() const { return pidfd_.get(); }
  const std::optional<ExitStatus>& status() const { return status_; }

  void signal(int sig) {
    if (!status_) ::kill(pid_, sig);
  }

  // SIGKILL to the child's whole process group. Only while the child is
  // unreaped: until then its pid (the group id) cannot be reused.
  void kill_all() {
    if (!status_) ::kill(-pid_, SIGKILL);
  }

  // Reaps the child if it has exited; returns its status if it has.
  const std::optional<ExitStatus>& try_reap() {
    if (status_) return status_;
    int ws = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &ws, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) status_ = decode_status(ws);
    return status_;
  }

  const std::optional<ExitStatus>& wait(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!try_reap()) {
      int left = remaining_ms(deadline);
      if (left == 0) break;
      if (pidfd_) {
        pollfd p{pidfd_.get(), POLLIN, 0};
        ::poll(&p, 1, left);
      } else {
        ::poll(nullptr, 0, std::min(left, 10));  // no pidfd: poll the status
      }
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  Fd pidfd_;
  std::optional<ExitStatus> status_;
};

std::string tocsin_binary() {
#ifdef TOCSIN_BINARY
  return TOCSIN_BINARY;
#else
  return "build/tocsin";
#endif
}

// ---- TempDir ----------------------------------------------------------------

TempDir::TempDir(std::string_view prefix) {
  std::string templ = "/tmp/" + std::string(prefix) + "-XXXXXX";
  if (!::mkdtemp(templ.data())) throw DaemonError(errno_text("mkdtemp " + templ));
  path_ = templ;
}

TempDir::~TempDir() {
  if (std::getenv("TOCSIN_KEEP_TEST_DIRS")) {
    std::fprintf(stderr, "kept test directory %s\n", path_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---- ExitStatus, run_cli ------------------------------------------------------

std::string ExitStatus::describe() const {
  if (signal != 0) {
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return "exit status " + std::to_string(code);
}

CliResult run_cli(const std::vector<std::string>& args, milliseconds timeout,
                  const std::filesystem::path& cwd) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw DaemonError(errno_text("pipe2"));
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw DaemonError(errno_text("pipe2"));
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  ChildProcess::Spec spec;
  spec.binary = tocsin_binary();
  spec.args = args;
  spec.cwd = cwd;
  spec.stdout_fd = out_w.get();
  spec.stderr_fd = err_w.get();
  ChildProcess child(spec);
  out_w.reset();
  err_w.reset();

  CliResult result;
  const auto deadline = Clock::now() + timeout;
  Fd* sources[2] = {&out_r, &err_r};
  std::string* sinks[2] = {&result.out, &result.err};
  // Drain both pipes until they close (the child exited or closed them).
  while (out_r || err_r) {
    int left = remaining_ms(deadline);
    if (left == 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (*sources[i]) {
        fds[n] = {sources[i]->get(), POLLIN, 0};
        which[n++] = i;
      }
    }
    if (::poll(fds, n, left) < 0 && errno != EINTR) throw DaemonError(errno_text("poll"));
    for (nfds_t k = 0; k < n; ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = ::read(fds[k].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[which[k]]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        sources[which[k]]->reset();
      }
    }
  }
  if (result.timed_out) child.kill_all();
  child.wait(result.timed_out ? milliseconds(10000)
                              : std::max(milliseconds(1000), milliseconds(remaining_ms(deadline))));
  if (!child.status()) {
    result.timed_out = true;
    child.kill_all();
    child.wait(milliseconds(10000));
  }
  if (child.status()) {
    result.status = *child.status();
    result.exit_code = result.status.exited() ? result.status.code : 128 + result.status.signal;
  }
  return result;
}

// ---- Daemon -------------------------------------------------------------------

Daemon::Daemon(nlohmann::json config) : Daemon(std::move(config), Options{}) {}

Daemon::Daemon(nlohmann::json config, Options options)
    : dir_("tocsin-e2e"), config_(std::move(config)), options_(std::move(options)) {
  if (options_.binary.empty()) options_.binary = tocsin_binary();
  if (options_.args.empty()) options_.args = {"serve", "--config", "config.json"};
  if (!config_.is_object()) config_ = nlohmann::json::object();
  config_["server"]["listen"] = "127.0.0.1:0";
  write_config();
  // A key file per daemon, as an operator makes with `tocsin keys generate`.
  if (auto* storage = config_.contains("storage") ? &config_["storage"] : nullptr;
      storage && storage->is_object() && storage->contains("key_file") &&
      (*storage)["key_file"].is_string()) {
    std::filesystem::path key = (*storage)["key_file"].get<std::string>();
    if (key.is_relative() && !std::filesystem::exists(path(key))) write_key_file(path(key));
  }
}

Daemon::~Daemon() {
  if (child_ && !child_->status()) {
    child_->kill_all();
    child_->wait(milliseconds(10000));
  }
  if (std::uncaught_exceptions() > 0) {
    std::fprintf(stderr, "--- tail of %s/tocsin.log ---\n%s\n---\n", dir_.path().c_str(),
                 log_tail().c_str());
  }
}

void Daemon::write_config() {
  std::ofstream out(path("config.json"), std::ios::binary | std::ios::trunc);
  out << config_.dump(2) << '\n';
  if (!out) throw DaemonError("cannot write " + path("config.json").string());
}

void Daemon::start(milliseconds timeout) {
  if (running())
    throw DaemonError("Daemon::start: already running (pid " + std::to_string(pid()) + ")");
  const auto log_path = path("tocsin.log");
  Fd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd) throw DaemonError(errno_text("open " + log_path.string()));
  // Only lines written after this point belong to this start.
  const auto offset = static_cast<std::size_t>(::lseek(log_fd.get(), 0, SEEK_END));
  Fd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (watch) ::inotify_add_watch(watch.get(), log_path.c_str(), IN_MODIFY);

  ChildProcess::Spec spec;
  spec.binary = options_.binary;
  spec.args = options_.args;
  spec.cwd = dir_.path();
  spec.stdout_fd = log_fd.get();
  spec.stderr_fd = log_fd.get();
  spec.env = options_.env;
  spec.listen_fd = options_.listen_fd;
  port_ = 0;
  host_.clear();
  child_.reset();
  child_ = std::make_unique<ChildProcess>(spec);
  log_fd.reset();

  const auto deadline = Clock::now() + timeout;
  auto fail = [&](const std::string& why) {
    throw DaemonError(options_.binary + " " + why + "; tail of " + log_path.string() + ":\n" +
                      log_tail());
  };
  for (;;) {
    // Exited? Check before reading, so that a line printed just before a
    // crash still counts as a failure to start.
    const bool exited = child_->try_reap().has_value();
    std::string fresh = read_file(log_path, offset);
    std::size_t line_start = 0;
    for (std::size_t nl; (nl = fresh.find('\n', line_start)) != std::string::npos;
         line_start = nl + 1) {
      if (auto hp = parse_listening(std::string_view(fresh).substr(line_start, nl - line_start))) {
        if (exited) break;
        host_ = hp->first;
        port_ = hp->second;
        return;
      }
    }
    if (exited) {
      fail("exited (" + child_->status()->describe() +
           ") before printing \"listening on http://\"");
    }
    int left = remaining_ms(deadline);
    if (left == 0) {
      child_->kill_all();
      child_->wait(milliseconds(10000));
      fail("did not print \"listening on http://HOST:PORT\" within " +
           std::to_string(timeout.count()) + " ms (killed)");
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (child_->pidfd() >= 0) fds[n++] = {child_->pidfd(), POLLIN, 0};
    if (watch) fds[n++] = {watch.get(), POLLIN, 0};
    // Without inotify or pidfd (old kernels), fall back to polling.
    int wait_ms = (watch && child_->pidfd() >= 0) ? left : std::min(left, 20);
    ::poll(fds, n, wait_ms);
    if (watch) {
      char buf[4096];
      while (::read(watch.get(), buf, sizeof buf) > 0) {
      }
    }
  }
}

std::string Daemon::url() const {
  return "http://" + host_ + ":" + std::to_string(port_);
}

void Daemon::kill9() {
  if (!child_ || child_->try_reap()) return;
  child_->kill_all();
  child_->wait(milliseconds(10000));
}

void Daemon::terminate() {
  signal(SIGTERM);
}

void Daemon::signal(int sig) {
  if (child_ && !child_->try_reap()) child_->signal(sig);
}

std::optional<ExitStatus> Daemon::wait_exit(milliseconds timeout) {
  if (!child_) return std::nullopt;
  return child_->wait(timeout);
}

bool Daemon::running() {
  return child_ && !child_->try_reap();
}

pid_t Daemon::pid() const {
  return child_ ? child_->pid() : 0;
}

std::filesystem::path Daemon::path(const std::filesystem::path& relative) const {
  return dir_.path() / relative;
}

std::string Daemon::log() const {
  return read_file(path("tocsin.log"));
}

std::string Daemon::log_tail(std::size_t lines) const {
  return tail_lines(log(), lines);
}

}  // namespace tocsin::test
