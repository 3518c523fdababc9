#include "store/keyring.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace tocsin::store {
namespace {

constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(Keyring::kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(Keyring::kKeyBytes >= crypto_generichash_KEYBYTES_MIN &&
              Keyring::kKeyBytes <= crypto_generichash_KEYBYTES_MAX);

void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium cannot be initialised");
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string errno_text() { return std::strerror(errno); }

// Writes all of `text` to `fd` and makes it durable.
bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return ::fsync(fd) == 0;
}

std::string write_exclusive(const std::string& path, const Keyring& keyring) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return path + " exists: refusing to overwrite a key file";
    return "cannot create " + path + ": " + errno_text();
  }
  std::string text = keyring.serialize();
  bool ok = ::fchmod(fd, 0600) == 0 && write_all(fd, text);
  sodium_memzero(text.data(), text.size());
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(path.c_str());
    return "cannot write " + path + ": " + errno_text();
  }
  return "";
}

void sync_dir_of(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// kKeyBytes in guarded pages, locked in RAM (not swapped, not in core
// dumps), read-only once filled, zeroed by sodium_free.
class Keyring::Secret {
 public:
  Secret() : p_(static_cast<unsigned char*>(sodium_malloc(kKeyBytes))) {
    if (!p_) throw std::bad_alloc();
  }
  ~Secret() { sodium_free(p_); }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  unsigned char* writable() { return p_; }
  void seal() { sodium_mprotect_readonly(p_); }
  const unsigned char* data() const { return p_; }

  static std::unique_ptr<Secret> random() {
    auto s = std::make_unique<Secret>();
    crypto_aead_xchacha20poly1305_ietf_keygen(s->writable());
    s->seal();
    return s;
  }
  static std::unique_ptr<Secret> copy(const Secret& other) {
    auto s = std::make_unique<Secret>();
    std::memcpy(s->writable(), other.data(), kKeyBytes);
    s->seal();
    return s;
  }
  // From base64 (standard alphabet, padded); nullptr unless exactly kKeyBytes.
  static std::unique_ptr<Secret> from_base64(std::string_view b64) {
    auto s = std::make_unique<Secret>();
    std::size_t len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(s->writable(), kKeyBytes, b64.data(), b64.size(), nullptr, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len != kKeyBytes || end != b64.data() + b64.size())
      return nullptr;
    s->seal();
    return s;
  }
  std::string base64() const {
    std::string out(sodium_base64_ENCODED_LEN(kKeyBytes, sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), p_, kKeyBytes, sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
  }

 private:
  unsigned char* p_;
};

Keyring::Keyring() { init_sodium(); }
Keyring::~Keyring() = default;

std::shared_ptr<const Keyring> Keyring::parse(std::string_view text, std::string& error) {
  std::shared_ptr<Keyring> k(new Keyring());
  int line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> words;
    for (std::size_t i = 0; i < line.size();) {
      auto start = line.find_first_not_of(" \t\r", i);
      if (start == std::string_view::npos) break;
      auto stop = line.find_first_of(" \t\r", start);
      if (stop == std::string_view::npos) stop = line.size();
      words.push_back(line.substr(start, stop - start));
      i = stop;
    }
    if (words.empty()) continue;
    auto at = "line " + std::to_string(line_no) + ": ";
    if (words[0] == "hash-key" && words.size() == 2) {
      if (k->hash_key_) {
        error = at + "a second hash-key";
        return nullptr;
      }
      k->hash_key_ = Secret::from_base64(words[1]);
      if (!k->hash_key_) {
        error = at + "the hash key must be 32 bytes in base64";
        return nullptr;
      }
    } else if (words[0] == "key" && words.size() == 3) {
      uint32_t id = 0;
      bool digits = !words[1].empty() && words[1].size() <= 9 && words[1][0] != '0' &&
                    words[1].find_first_not_of("0123456789") == std::string_view::npos;
      if (digits) id = static_cast<uint32_t>(std::stoul(std::string(words[1])));
      if (id == 0) {
        error = at + "a key number must be 1, 2, ...";
        return nullptr;
      }
      if (k->keys_.count(id)) {
        error = at + "key " + std::to_string(id) + " appears twice";
        return nullptr;
      }
      auto key = Secret::from_base64(words[2]);
      if (!key) {
        error = at + "key " + std::to_string(id) + " must be 32 bytes in base64";
        return nullptr;
      }
      k->keys_.emplace(id, std::move(key));
      k->active_ = std::max(k->active_, id);
    } else {
      error = at + "expected \"hash-key BASE64\" or \"key N BASE64\"";
      return nullptr;
    }
  }
  if (!k->hash_key_) {
    error = "no hash-key line";
    return nullptr;
  }
  if (k->keys_.empty()) {
    error = "no key line";
    return nullptr;
  }
  return k;
}

std::shared_ptr<const Keyring> Keyring::load(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read " + path + ": " + errno_text();
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path + " is not a regular file";
    return nullptr;
  }
  if (st.st_mode & 0077) {
    ::close(fd);
    error = path + " is readable by others than its owner (chmod 600 it)";
    return nullptr;
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > (1 << 20)) break;  // a key file is small; do not read a wrong file whole
  }
  sodium_memzero(buf, sizeof buf);
  ::close(fd);
  std::string why;
  auto k = parse(text, why);
  sodium_memzero(text.data(), text.size());
  if (!k) error = path + ": " + why;
  return k;
}

std::shared_ptr<const Keyring> Keyring::generate() {
  std::shared_ptr<Keyring> k(new Keyring());
  k->hash_key_ = Secret::random();
  k->keys_.emplace(1, Secret::random());
  k->active_ = 1;
  return k;
}

std::shared_ptr<const Keyring> Keyring::with_new_key() const {
  std::shared_ptr<Keyring> k(new Keyring());
  k->hash_key_ = Secret::copy(*hash_key_);
  for (const auto& [id, key] : keys_) k->keys_.emplace(id, Secret::copy(*key));
  k->active_ = active_ + 1;
  k->keys_.emplace(k->active_, Secret::random());
  return k;
}

std::string Keyring::serialize() const {
  std::ostringstream out;
  out << "# tocsin key file (README \"Privacy\"). Keep it secret and back it up apart\n"
         "# from the database: without it the subscribers stored there cannot be read.\n"
         "# The highest-numbered key encrypts; older keys decrypt rows not yet\n"
         "# re-encrypted. The hash-key never changes.\n";
  out << "hash-key " << hash_key_->base64() << "\n";
  for (const auto& [id, key] : keys_) out << "key " << id << " " << key->base64() << "\n";
  return out.str();
}

std::string Keyring::encrypt(std::string_view plain, std::string_view ad) const {
  const Secret& key = *keys_.at(active_);
  std::string out(kNonceBytes + plain.size() + kTagBytes, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, kNonceBytes);  // 192-bit random nonces: no counter to keep
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(p + kNonceBytes, &len, bytes(plain), plain.size(),
                                             bytes(ad), ad.size(), nullptr, p, key.data());
  return out;
}

std::optional<std::string> Keyring::decrypt(uint32_t key_id, std::string_view blob,
                                            std::string_view ad) const {
  auto it = keys_.find(key_id);
  if (it == keys_.end() || blob.size() < kNonceBytes + kTagBytes) return std::nullopt;
  std::string out(blob.size() - kNonceBytes - kTagBytes, '\0');
  unsigned long long len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(out.data()), &len, nullptr, bytes(blob) + kNonceBytes,
          blob.size() - kNonceBytes, bytes(ad), ad.size(), bytes(blob), it->second->data()) != 0)
    return std::nullopt;
  return out;
}

std::string Keyring::hash(std::string_view value) const {
  std::string out(kHashBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), bytes(value),
                     value.size(), hash_key_->data(), kKeyBytes);
  return out;
}

std::string write_new_key_file(const std::string& path, const Keyring& keyring) {
  auto err = write_exclusive(path, keyring);
  if (err.empty()) sync_dir_of(path);
  return err;
}

std::string replace_key_file(const std::string& path, const Keyring& keyring) {
  std::string tmp = path + ".new";
  ::unlink(tmp.c_str());  // left over from an interrupted rotation
  if (auto err = write_exclusive(tmp, keyring); !err.empty()) return err;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = "cannot replace " + path + ": " + errno_text();
    ::unlink(tmp.c_str());
    return err;
  }
  sync_dir_of(path);
  return "";
}

}  // namespace tocsin::store
