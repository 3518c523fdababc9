#include "support/keys.h"

#include <stdexcept>

#include "store/keyring.h"
#include "support/daemon.h"

namespace tocsin::test {

std::string shared_key_file() {
  static TempDir dir("tocsin-keys");
  static const std::string path = [] {
    auto p = dir.path() / "tocsin.key";
    write_key_file(p);
    return p.string();
  }();
  return path;
}

void write_key_file(const std::filesystem::path& path) {
  auto err = store::write_new_key_file(path.string(), *store::Keyring::generate());
  if (!err.empty()) throw std::runtime_error(err);
}

}  // namespace tocsin::test
