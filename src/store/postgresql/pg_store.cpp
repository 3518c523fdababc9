// PgStore's opening (instance id, migration, key check), its transactions
// (the worker's group commit) and open_postgresql_store().
#include "store/postgresql/listener.h"
#include "store/postgresql/pg_store.h"

#include <sodium.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "store/open_store.h"
#include "store/postgresql/schema.h"

namespace tocsin::store::postgresql {
namespace {

// 64 random bits in hex: unique among the instances of one database.
std::string random_instance_id() {
  unsigned char raw[8];
  randombytes_buf(raw, sizeof raw);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char c : raw) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  return id;
}

}  // namespace

PgStore::PgStore(const std::string& conninfo, const std::string& password,
                 std::shared_ptr<const Keyring> keyring, std::string instance_id, Mode mode)
    : db_(conninfo, password),
      instance_id_(instance_id.empty() ? random_instance_id() : std::move(instance_id)) {
  if (mode == Mode::kReadOnly) {
    read_only_ = true;
    db_.exec("SET default_transaction_read_only = on");
    return;
  }
  migrate(db_);
  set_keyring(std::move(keyring));
  spdlog::info("PostgreSQL store at {}: instance {}", db_.where(), instance_id_);
}

void PgStore::begin() { db_.begin(); }
void PgStore::commit() { db_.commit(); }
void PgStore::rollback() { db_.rollback(); }
void PgStore::savepoint() { db_.savepoint(); }
void PgStore::release_savepoint() { db_.release_savepoint(); }
void PgStore::rollback_to_savepoint() { db_.rollback_to_savepoint(); }
void PgStore::next_savepoint() { db_.next_savepoint(); }
void PgStore::end_job() { db_.sync(); }

}  // namespace tocsin::store::postgresql

namespace tocsin::store {

static std::string read_password_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw StoreError("cannot read the PostgreSQL password file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string pw = ss.str();
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  return pw;
}

std::string postgresql_password(const StoreOptions& o) {
  return o.postgresql_password_file.empty() ? std::string() : read_password_file(o.postgresql_password_file);
}

std::string postgresql_url_problem(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  // libpq's message can quote a piece of the string: not repeated.
  if (error) PQfreemem(error);
  if (!options) return "is not a libpq connection string or postgresql:// URI";
  PQconninfoFree(options);
  return "";
}

std::unique_ptr<DeliveryWatch> watch_deliveries(const StoreOptions& o,
                                                std::function<void()> on_new) {
  if (o.postgresql_url.empty()) return nullptr;
  std::string password =
      postgresql_password(o);
  return std::make_unique<postgresql::Listener>(o.postgresql_url, password, std::move(on_new));
}

std::unique_ptr<Store> open_postgresql_store(const StoreOptions& o) {
  std::string password =
      postgresql_password(o);
  auto mode = o.access == StoreOptions::Access::kReadOnly ? postgresql::PgStore::Mode::kReadOnly
                                                          : postgresql::PgStore::Mode::kReadWrite;
  return std::make_unique<postgresql::PgStore>(o.postgresql_url, password, o.keyring,
                                               o.instance_id, mode);
}

}  // namespace tocsin::store
