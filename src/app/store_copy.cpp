// `tocsin store copy` (see store_copy.h): the two configs read and checked,
// then store/copy.h does the work.
#include "app/store_copy.h"

#include <cstdio>
#include <optional>

#include "app/config.h"
#include "app/storage.h"
#include "store/copy.h"

namespace tocsin::app {
namespace {

std::optional<Config> read(const std::string& path) {
  auto loaded = load_config(path);
  for (const auto& p : loaded.problems)
    std::fprintf(stderr, "%s: %s: %s\n", path.c_str(), p.path.empty() ? "$" : p.path.c_str(),
                 p.message.c_str());
  if (!loaded.ok()) return std::nullopt;
  return std::move(loaded.config);
}

}  // namespace

int store_copy(const std::string& from_config, const std::string& to_config) {
  auto from = read(from_config);
  auto to = read(to_config);
  if (!from || !to) return 2;
  if (!from->storage.postgresql_url.empty()) {
    std::fprintf(stderr, "tocsin store copy: --from must name a SQLite store (storage.sqlite)\n");
    return 2;
  }
  if (to->storage.postgresql_url.empty()) {
    std::fprintf(stderr, "tocsin store copy: --to must name a PostgreSQL store (storage.postgresql)\n");
    return 2;
  }
  try {
    auto copied = store::copy_sqlite_to_postgresql(from->storage.sqlite_path, store_options(to->storage));
    int64_t total = 0;
    for (const auto& t : copied) {
      std::printf("%-20s %lld\n", t.table.c_str(), static_cast<long long>(t.rows));
      total += t.rows;
    }
    std::printf("copied %lld rows from %s to PostgreSQL; start the instances on %s\n",
                static_cast<long long>(total), from->storage.sqlite_path.c_str(), to_config.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tocsin store copy: %s (nothing was written)\n", e.what());
    return 1;
  }
}

}  // namespace tocsin::app
