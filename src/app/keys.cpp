#include "app/keys.h"

#include <cstdio>
#include <filesystem>
#include <optional>

#include "app/config.h"
#include "app/storage.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"

namespace tocsin::app {
namespace {

constexpr int kReencryptBatch = 500;

// Re-encrypts every subscriber of the SQLite store `storage` names under
// `keyring`'s active key, in transactions of kReencryptBatch rows.
int reencrypt_offline(StorageConfig storage, std::shared_ptr<const store::Keyring> keyring) {
  const std::string path = store_name(storage);
  storage.keyring = keyring;
  std::unique_ptr<store::Store> s;
  try {
    s = store::open_store(store_options(storage));
  } catch (const store::StoreLocked&) {
    std::printf(
        "a daemon is running on %s: it re-encrypts in the background once it reads the new key:\n"
        "  systemctl reload tocsin (or kill -HUP) when it reads the key file itself;\n"
        "  systemctl restart tocsin under systemd, where the key file is a credential copied at "
        "start\n",
        path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tocsin keys rotate: %s\n", e.what());
    return 1;
  }
  int64_t total = 0;
  try {
    for (int64_t n = -1; n != 0; total += n) {
      s->begin();
      n = s->reencrypt_subscribers(kReencryptBatch);
      s->commit();
    }
  } catch (const std::exception& e) {
    s->rollback();
    std::fprintf(stderr, "tocsin keys rotate: re-encryption stopped after %lld subscribers: %s\n",
                 static_cast<long long>(total), e.what());
    return 1;
  }
  std::printf("%s: %lld subscribers re-encrypted under key %u\n", path.c_str(),
              static_cast<long long>(total), keyring->active_id());
  return 0;
}

}  // namespace

int keys_generate(const std::string& file) {
  auto keyring = store::Keyring::generate();
  if (auto err = store::write_new_key_file(file, *keyring); !err.empty()) {
    std::fprintf(stderr, "tocsin keys generate: %s\n", err.c_str());
    return 1;
  }
  std::printf("%s: new key file (hash key and key 1). Back it up apart from the database.\n",
              file.c_str());
  return 0;
}

int keys_rotate(const std::string& file, const std::string& config_path) {
  if (file.empty() == config_path.empty()) {
    std::fprintf(stderr, "tocsin keys rotate: give either FILE or --config FILE\n");
    return 2;
  }
  std::string key_file = file;
  std::shared_ptr<const store::Keyring> current;
  std::optional<StorageConfig> storage;
  if (!config_path.empty()) {
    auto loaded = load_config(config_path);
    for (const auto& p : loaded.problems)
      std::fprintf(stderr, "%s: %s: %s\n", config_path.c_str(), p.path.empty() ? "$" : p.path.c_str(),
                   p.message.c_str());
    if (!loaded.ok()) return 2;
    key_file = loaded.config.storage.key_file;
    current = loaded.config.storage.keyring;
    storage = loaded.config.storage;
  } else {
    std::string error;
    current = store::Keyring::load(key_file, error);
    if (!current) {
      std::fprintf(stderr, "tocsin keys rotate: %s\n", error.c_str());
      return 2;
    }
  }
  auto next = current->with_new_key();
  if (auto err = store::replace_key_file(key_file, *next); !err.empty()) {
    std::fprintf(stderr, "tocsin keys rotate: %s\n", err.c_str());
    return 1;
  }
  std::printf("%s: key %u added; it encrypts from now on. Back the key file up again.\n",
              key_file.c_str(), next->active_id());
  if (!storage) return 0;
  if (!storage->postgresql_url.empty()) {
    // Instances still running with the old key file could not read a row
    // re-encrypted under the new key (their sends to it would be
    // cancelled), and nothing here can tell whether any runs: no
    // re-encryption from here. Each instance re-encrypts once it has read
    // the new key.
    std::printf(
        "PostgreSQL: give every instance the new key file (systemctl reload, or restart under "
        "systemd), then they re-encrypt in the background\n");
    return 0;
  }
  if (!std::filesystem::exists(storage->sqlite_path)) {
    std::printf("%s does not exist yet: nothing to re-encrypt\n", storage->sqlite_path.c_str());
    return 0;
  }
  return reencrypt_offline(*storage, next);
}

}  // namespace tocsin::app
