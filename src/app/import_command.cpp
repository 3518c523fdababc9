#include "app/import_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/files.h"
#include "app/subscriber_import.h"
#include "delivery/http_client.h"

namespace tocsin::app {
namespace {

using nlohmann::json;

// Sends batches over one connection, one at a time.
class Client {
 public:
  Client(std::string url, std::string token) : url_(std::move(url)), token_(std::move(token)) {
    while (url_.ends_with('/')) url_.pop_back();
  }

  delivery::OutboundResponse post(const std::string& body) {
    delivery::OutboundRequest req;
    req.url = url_ + "/v1/subscribers/import";
    req.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token_}};
    req.body = body;
    req.timeout = std::chrono::seconds(60);
    delivery::OutboundResponse response;
    client_.send(std::move(req), [&](delivery::OutboundResponse r) { response = std::move(r); });
    io_.restart();
    io_.run();
    return response;
  }

 private:
  std::string url_, token_;
  boost::asio::io_context io_;
  delivery::BeastHttpClient client_{io_};
};

class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), tty_(isatty(STDERR_FILENO) == 1) {}

  void update(std::size_t done) {
    if (tty_) {
      constexpr int kWidth = 30;
      int filled = total_ ? static_cast<int>(kWidth * done / total_) : kWidth;
      std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu rows", filled, "##############################",
                   kWidth - filled, "", done, total_);
      if (done == total_) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (done == total_ || done * 10 / std::max<std::size_t>(total_, 1) > last_tenth_) {
      last_tenth_ = done * 10 / std::max<std::size_t>(total_, 1);
      std::fprintf(stderr, "%zu/%zu rows\n", done, total_);
    }
  }

 private:
  std::size_t total_;
  bool tty_;
  std::size_t last_tenth_ = 0;
};

struct Totals {
  int64_t created = 0, updated = 0, unchanged = 0, refused = 0;
};

}  // namespace

int import_subscribers(const ImportOptions& o) {
  auto fail = [&](const std::string& what, int code) {
    std::fprintf(stderr, "tocsin subscribers import: %s\n", what.c_str());
    return code;
  };
  auto token = read_file(o.token_file);
  if (!token || trim(*token).empty()) return fail("cannot read a token from " + o.token_file, 2);
  auto text = read_file(o.csv_path);
  if (!text) return fail("cannot read " + o.csv_path, 2);
  auto csv = rows_from_csv(*text);
  if (!csv.error.empty())
    return fail(o.csv_path + ":" + std::to_string(csv.error_line) + ": " + csv.error, 2);

  Totals totals;
  auto report = [&](int64_t line, const std::string& field, const std::string& detail) {
    std::printf("%s:%lld: %s%s%s\n", o.csv_path.c_str(), static_cast<long long>(line),
                field.c_str(), field.empty() ? "" : ": ", detail.c_str());
  };
  for (const auto& r : csv.refused) {
    for (const auto& p : r.problems) report(r.line, p.path, p.message);
    ++totals.refused;
  }
  std::vector<json> rows;
  for (auto& r : csv.rows) {
    json row = std::move(r.data);
    row["line"] = r.line;
    rows.push_back(std::move(row));
  }

  Client client(o.url, trim(*token));
  Progress progress(rows.size());
  std::size_t done = 0, batch = std::max<std::size_t>(1, o.batch);
  while (done < rows.size()) {
    std::size_t n = std::min(batch, rows.size() - done);
    json body{
        {"dry_run", o.dry_run},
        {"rows", json(std::vector<json>(rows.begin() + static_cast<std::ptrdiff_t>(done),
                                        rows.begin() + static_cast<std::ptrdiff_t>(done + n)))}};
    delivery::OutboundResponse r;
    for (int attempt = 0;; ++attempt) {
      r = client.post(body.dump());
      bool transient = r.status == 0 || r.status == 503 || r.status == 429;
      if (!transient || attempt == 4) break;
      std::this_thread::sleep_for(std::chrono::seconds(1 << attempt));
    }
    if (r.status == 413 && n > 1) {  // the daemon's max_body_bytes: smaller batches
      batch = std::max<std::size_t>(1, n / 2);
      continue;
    }
    if (r.status != 200) {
      std::string why = r.status == 0 ? r.error : std::to_string(r.status) + " " + r.body;
      fail(o.url + ": " + why + " (" + std::to_string(done) + " of " + std::to_string(rows.size()) +
               " rows sent; running the import again is safe)",
           1);
      return 1;
    }
    auto answer = json::parse(r.body, nullptr, false);
    if (!answer.is_object() || !answer.contains("rows"))
      return fail("unexpected answer: " + r.body, 1);
    for (const auto& row : answer["rows"]) {
      if (row.value("outcome", "") != "refused") continue;
      for (const auto& e : row.value("errors", json::array()))
        report(row.value("line", int64_t{0}), e.value("field", ""), e.value("detail", ""));
    }
    totals.created += answer.value("created", int64_t{0});
    totals.updated += answer.value("updated", int64_t{0});
    totals.unchanged += answer.value("unchanged", int64_t{0});
    totals.refused += answer.value("refused", int64_t{0});
    done += n;
    progress.update(done);
  }
  std::printf("%s: %lld created, %lld updated, %lld unchanged, %lld refused%s\n",
              o.csv_path.c_str(), static_cast<long long>(totals.created),
              static_cast<long long>(totals.updated), static_cast<long long>(totals.unchanged),
              static_cast<long long>(totals.refused),
              o.dry_run ? " (dry run: nothing was stored)" : "");
  return totals.refused == 0 ? 0 : 1;
}

}  // namespace tocsin::app
