// Subscribers' data at rest: the keyring's encryption and hashes, the SQLite
// store's encrypted rows (what a copy of the file reveals), key rotation,
// erasure and retention. Real files in a temporary directory; no clock.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <chrono>
#include <random>

#include "app/ingest.h"
#include "store/keyring.h"
#include "store/open_store.h"
#include "store/store.h"
#include "support/daemon.h"
#include "support/keys.h"
#include "support/store_tx.h"

using namespace tocsin;
using store::Keyring;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The database file and its WAL, as a thief's copy would have them.
std::string raw_files(const std::filesystem::path& db) {
  return slurp(db) + slurp(db.string() + "-wal");
}

// Runs `sql` on its own connection (beside the store) and returns the
// first column of every row as bytes.
std::vector<std::string> raw_query(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* c = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(c, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s, 0));
    out.emplace_back(p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, 0))) : "");
  }
  CHECK(rc == SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(c);
  return out;
}

store::Subscriber person(int i) {
  store::Subscriber s;
  char phone[16];
  std::snprintf(phone, sizeof phone, "+1213555%04d", 100 + i);
  s.phone = phone;
  s.email = "Person" + std::to_string(i) + "@Example.org";
  s.name = "Gloria Privatename" + std::to_string(i);
  s.language = "es";
  s.groups = {"east"};
  s.channels = {Channel::kSms, Channel::kEmail};
  return s;
}

// Every form a person's data could be searched for in a raw file.
std::vector<std::string> needles(const store::Subscriber& s) {
  std::string digits;
  for (char c : s.phone)
    if (c >= '0' && c <= '9') digits += c;
  return {s.phone, digits, digits.substr(1) /* national */, s.email, s.name, "Privatename"};
}

struct FileStore {
  test::TempDir dir{"tocsin-privacy"};
  std::filesystem::path db = dir.path() / "tocsin.db";
  std::shared_ptr<const Keyring> keys = Keyring::generate();
  std::unique_ptr<store::Store> store = store::open_sqlite_store(db.string(), keys);

  template <typename F>
  auto tx(F f) {
    return test::in_tx(*store, f);
  }
  int64_t add(const store::Subscriber& s) {
    return tx([&](store::Store& st) { return st.insert_subscriber(s, 1000); });
  }
};

}  // namespace

TEST_CASE("keyring: a round trip, and every alteration is detected", "[privacy][keyring]") {
  auto k = Keyring::generate();
  auto blob = k->encrypt("+12135550142", "tocsin.subscribers.phone.7");
  CHECK(blob.find("+12135550142") == std::string::npos);
  CHECK(k->decrypt(1, blob, "tocsin.subscribers.phone.7") == "+12135550142");
  // Same plaintext, fresh nonce: ciphertexts differ, so equal numbers do not show.
  CHECK(k->encrypt("+12135550142", "tocsin.subscribers.phone.7") != blob);

  CHECK_FALSE(k->decrypt(1, blob, "tocsin.subscribers.phone.8"));  // another row
  CHECK_FALSE(k->decrypt(1, blob, "tocsin.subscribers.email.7"));  // another column
  CHECK_FALSE(k->decrypt(2, blob, "tocsin.subscribers.phone.7"));  // unknown key id
  CHECK_FALSE(k->decrypt(1, blob.substr(0, blob.size() - 1), "tocsin.subscribers.phone.7"));
  CHECK_FALSE(k->decrypt(1, "", "tocsin.subscribers.phone.7"));
  for (std::size_t i = 0; i < blob.size(); ++i) {  // nonce, ciphertext and tag
    auto flipped = blob;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    INFO("byte " << i);
    CHECK_FALSE(k->decrypt(1, flipped, "tocsin.subscribers.phone.7"));
  }
  // Another keyring's key 1 is another key.
  CHECK_FALSE(Keyring::generate()->decrypt(1, blob, "tocsin.subscribers.phone.7"));
}

TEST_CASE("keyring: hashes are keyed, files round-trip, rotation keeps old keys", "[privacy][keyring]") {
  auto k = Keyring::generate();
  CHECK(k->hash("phone:+12135550142") == k->hash("phone:+12135550142"));
  CHECK(k->hash("phone:+12135550142").size() == Keyring::kHashBytes);
  CHECK(k->hash("phone:+12135550142") != Keyring::generate()->hash("phone:+12135550142"));

  auto rotated = k->with_new_key();
  CHECK(rotated->active_id() == 2);
  auto old_blob = k->encrypt("x@example.org", "ad");
  CHECK(rotated->decrypt(1, old_blob, "ad") == "x@example.org");
  CHECK(rotated->hash("a") == k->hash("a"));

  std::string error;
  auto text = rotated->serialize();
  auto parsed = Keyring::parse(text, error);
  REQUIRE(parsed);
  CHECK(parsed->active_id() == 2);
  CHECK(parsed->decrypt(1, old_blob, "ad") == "x@example.org");
  CHECK(parsed->hash("a") == k->hash("a"));

  CHECK_FALSE(Keyring::parse("key 1 AAAA\n", error));
  CHECK(error == "line 1: key 1 must be 32 bytes in base64");
  CHECK_FALSE(Keyring::parse("# nothing\n", error));
  CHECK(error == "no hash-key line");
  auto line = text.substr(text.find("key 1 "));
  line = line.substr(0, line.find('\n') + 1);
  CHECK_FALSE(Keyring::parse(text + line, error));
  CHECK(error.find("key 1 appears twice") != std::string::npos);
  CHECK_FALSE(Keyring::parse("hash-key " + std::string(43, 'A') + "=\nkey 0 x\n", error));
  CHECK(error == "line 2: a key number must be 1, 2, ...");
}

TEST_CASE("key files: generate refuses to overwrite and is private, rotate replaces", "[privacy][keyring]") {
  test::TempDir dir;
  auto path = (dir.path() / "tocsin.key").string();
  auto k = Keyring::generate();
  REQUIRE(store::write_new_key_file(path, *k).empty());
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK(store::write_new_key_file(path, *Keyring::generate()).find("refusing to overwrite") !=
        std::string::npos);
  std::string error;
  auto loaded = Keyring::load(path, error);
  REQUIRE(loaded);
  CHECK(loaded->hash("a") == k->hash("a"));  // still the first file
  REQUIRE(store::replace_key_file(path, *loaded->with_new_key()).empty());
  auto again = Keyring::load(path, error);
  REQUIRE(again);
  CHECK(again->active_id() == 2);
  CHECK_FALSE(std::filesystem::exists(path + ".new"));
}

TEST_CASE("store: a copy of the database and WAL reveals no number, address or name", "[privacy][store]") {
  FileStore f;
  std::vector<store::Subscriber> people;
  for (int i = 0; i < 50; ++i) people.push_back(person(i));
  for (const auto& p : people) f.add(p);
  // Before and after the WAL is checkpointed into the database.
  for (int round = 0; round < 2; ++round) {
    auto raw = raw_files(f.db);
    REQUIRE(raw.size() > 4096);
    REQUIRE(raw.find("SQLite format 3") != std::string::npos);  // the grep reads the real file
    for (const auto& p : people)
      for (const auto& n : needles(p)) {
        INFO("round " << round << ": " << n);
        CHECK(raw.find(n) == std::string::npos);
      }
    f.store.reset();  // closing checkpoints
  }
}

TEST_CASE("store: a ciphertext moved to another row, or altered, does not decrypt", "[privacy][store]") {
  FileStore f;
  int64_t a = f.add(person(1)), b = f.add(person(2));
  raw_query(f.db, "UPDATE subscribers SET phone = (SELECT phone FROM subscribers WHERE id = " +
                      std::to_string(a) + ") WHERE id = " + std::to_string(b));
  CHECK_THROWS_AS(f.store->subscriber(b), store::StoreError);
  CHECK(f.store->subscriber(a)->phone == person(1).phone);
  raw_query(f.db, "UPDATE subscribers SET key_id = 7 WHERE id = " + std::to_string(a));
  CHECK_THROWS_AS(f.store->subscriber(a), store::StoreError);
  // Reopening with a key file that lacks key 7 is refused at once, not at the first send.
  f.store.reset();
  CHECK_THROWS_WITH(store::open_sqlite_store(f.db.string(), f.keys),
                    Catch::Contains("encrypted under key 7, which the key file lacks"));
}

TEST_CASE("store: a key file with another hash key or other keys is refused", "[privacy][store]") {
  FileStore f;
  f.add(person(1));
  f.store.reset();
  CHECK_THROWS_WITH(store::open_sqlite_store(f.db.string(), Keyring::generate()),
                    Catch::Contains("hash-key is not the one"));
  // Same hash key, another key 1: the probe decryption refuses it.
  std::string text = f.keys->serialize(), error;
  auto other = Keyring::generate()->serialize();
  auto key1 = [](const std::string& t) {
    auto at = t.find("\nkey 1 ");
    return t.substr(at, t.find('\n', at + 1) - at);
  };
  text.replace(text.find(key1(text)), key1(text).size(), key1(other));
  auto forged = Keyring::parse(text, error);
  REQUIRE(forged);
  CHECK_THROWS_WITH(store::open_sqlite_store(f.db.string(), forged), Catch::Contains("does not decrypt"));
  CHECK_NOTHROW(store::open_sqlite_store(f.db.string(), f.keys));
}

TEST_CASE("store: rotation re-encrypts in batches, everyone stays reachable", "[privacy][store]") {
  FileStore f;
  std::vector<int64_t> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(f.add(person(i)));
  auto rotated = f.keys->with_new_key();
  f.tx([&](store::Store& s) { s.set_keyring(rotated); });
  // New rows use the new key at once; old ones move over batch by batch.
  ids.push_back(f.add(person(25)));
  std::vector<int64_t> batches;
  for (int64_t n = -1; n != 0;)
    batches.push_back(n = f.tx([](store::Store& s) { return s.reencrypt_subscribers(10); }));
  CHECK(batches == std::vector<int64_t>{10, 10, 5, 0});
  CHECK(raw_query(f.db, "SELECT DISTINCT key_id FROM subscribers") == std::vector<std::string>{"2"});
  for (int i = 0; i <= 25; ++i) {
    INFO(i);
    CHECK(f.store->subscriber(ids[i])->phone == person(i).phone);
    CHECK(f.store->subscribers_by_phone(person(i).phone) == std::vector<int64_t>{ids[i]});
  }
  // Key 1 can now leave the key file.
  std::string text = rotated->serialize(), error;
  auto at = text.find("\nkey 1 ");
  text.erase(at, text.find('\n', at + 1) - at);
  auto only2 = Keyring::parse(text, error);
  REQUIRE(only2);
  f.store.reset();
  auto reopened = store::open_sqlite_store(f.db.string(), only2);
  CHECK(reopened->subscriber(ids[0])->email == person(0).email);
  // But the keyring that lacks key 2 is refused on reload, and the store keeps working.
  reopened->begin();
  CHECK_THROWS_WITH(reopened->set_keyring(f.keys), Catch::Contains("key 2, which the key file lacks"));
  reopened->rollback();
  CHECK(reopened->subscriber(ids[3])->name == person(3).name);
}

TEST_CASE("store: erasure leaves neither hash nor ciphertext in the database or WAL", "[privacy][store]") {
  FileStore f;
  int64_t gone = f.add(person(1)), kept = f.add(person(2));
  auto col = [&](const std::string& c, int64_t id) {
    auto v = raw_query(f.db, "SELECT " + c + " FROM subscribers WHERE id = " + std::to_string(id));
    REQUIRE(v.size() == 1);
    REQUIRE(v[0].size() >= 16);
    return v[0];
  };
  std::vector<std::string> traces;
  for (const char* c : {"phone_hash", "email_hash", "phone", "email", "name"}) traces.push_back(col(c, gone));
  auto kept_phone = col("phone", kept);
  for (const auto& t : traces) REQUIRE(raw_files(f.db).find(t) != std::string::npos);

  CHECK(f.tx([&](store::Store& s) { return s.delete_subscriber(gone); }));
  auto raw = raw_files(f.db);
  for (std::size_t i = 0; i < traces.size(); ++i) {
    INFO("trace " << i);
    CHECK(raw.find(traces[i]) == std::string::npos);
  }
  CHECK(raw.find(kept_phone) != std::string::npos);  // the other subscriber is still there
  CHECK(f.store->subscribers_by_phone(person(1).phone).empty());
  CHECK(f.store->subscriber(kept)->phone == person(2).phone);
}

namespace {

app::Config retention_config() {
  auto r = app::parse_config(R"({
    "storage": {"key_file": ")" + test::shared_key_file() + R"("},
    "coordinators": [{"name": "c1", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "areas": ["la"]}],
    "gateways": [{"name": "f", "type": "file", "channel": "sms", "path": "/dev/null"}],
    "groups": [{"name": "east", "match": {"areas": ["la"]}, "channels": ["sms"]}]
  })", "");
  REQUIRE(r.ok());
  return r.config;
}

// A severe alert in la/east-la, which retention_config()'s group matches.
Report alert(const std::string& headline) {
  Report rep;
  rep.msg_type = MsgType::kAlert;
  rep.event = "enforcement_activity";
  rep.severity = Severity::kSevere;
  rep.area = "la/east-la";
  rep.headline = {{"en", headline}};
  return rep;
}

}  // namespace

TEST_CASE("retention: old deliveries, texts and bodies go, incidents keep their counts", "[privacy][store]") {
  FileStore f;
  auto config = retention_config();
  auto templates = with_defaults(config.templates);
  std::mt19937_64 rng{1};
  for (int i = 0; i < 5; ++i) f.add(person(i));
  Report rep = alert("Vehicles at Retentionstreet");
  auto ingest = [&](const std::string& id, UnixMs now) {
    return f.tx([&](store::Store& s) {
      return app::ingest_report(s, config, templates,
                                {"c1", id, rep, "{\"report\":\"" + id + "-Retentionstreet\"}", now}, rng);
    });
  };
  auto old = ingest("w1", 1000);
  REQUIRE(old.recipients == 5);
  // Four sent, one still pending (it keeps its row and its text).
  auto claim = f.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 4, 1000, 2000); });
  REQUIRE(claim.claimed.size() == 4);
  std::vector<store::DeliveryUpdate> ups;
  for (const auto& d : claim.claimed) ups.push_back({d.id, DeliveryState::kSent, 0, "f", "", "", false});
  f.tx([&](store::Store& s) { s.record_results(ups, 1500); });
  f.tx([&](store::Store& s) { s.insert_ack({old.incident_id, 1, "responding", 1600}); });
  auto before_counts = f.store->incident_delivery_counts(old.incident_id);
  auto before_gw = f.store->incident_gateway_counts(old.incident_id);

  auto recent = ingest("w2", 100'000'000);  // a later incident: untouched
  REQUIRE(recent.recipients == 5);
  std::vector<int64_t> batches;
  for (int64_t n = 3; n == 3;) batches.push_back(n = f.tx([](store::Store& s) { return s.purge_deliveries(50'000'000, 3); }));
  CHECK(batches == std::vector<int64_t>{3, 1});

  auto count = [&](const std::string& sql) { return raw_query(f.db, sql).at(0); };
  CHECK(count("SELECT count(*) FROM deliveries WHERE incident_id = '" + old.incident_id + "'") == "1");
  CHECK(count("SELECT count(*) FROM deliveries WHERE incident_id = '" + recent.incident_id + "'") == "5");
  // The pending delivery still has its text; the report's body is gone.
  CHECK(count("SELECT count(*) FROM messages WHERE report_id = " + std::to_string(old.report_id)) == "1");
  CHECK(count("SELECT body FROM reports WHERE id = " + std::to_string(old.report_id)) == "");
  CHECK(count("SELECT subscriber_id FROM acknowledgements") == "0");
  CHECK(f.store->incident_delivery_counts(old.incident_id).size() == before_counts.size());
  for (std::size_t i = 0; i < before_counts.size(); ++i) {
    CHECK(f.store->incident_delivery_counts(old.incident_id)[i].count == before_counts[i].count);
    CHECK(f.store->incident_delivery_counts(old.incident_id)[i].state == before_counts[i].state);
  }
  CHECK(f.store->incident_gateway_counts(old.incident_id).size() == before_gw.size());
  CHECK(f.store->incident_acks(old.incident_id).size() == 1);
  CHECK(f.store->incident_reports(old.incident_id).size() == 1);

  // Once the last one has ended, it goes too, with the text; counts still add up.
  auto last = f.tx([](store::Store& s) { return s.claim_due(Channel::kSms, 10, 1000, 2000); });
  REQUIRE(last.claimed.size() == 1);
  f.tx([&](store::Store& s) {
    s.record_results({{last.claimed[0].id, DeliveryState::kFailed, 0, "f", "", "21211", false}}, 1700);
  });
  CHECK(f.tx([](store::Store& s) { return s.purge_deliveries(50'000'000, 100); }) == 1);
  CHECK(count("SELECT count(*) FROM messages WHERE report_id = " + std::to_string(old.report_id)) == "0");
  int64_t total = 0;
  for (const auto& c : f.store->incident_delivery_counts(old.incident_id)) total += c.count;
  CHECK(total == 5);
  f.store.reset();
  auto raw = raw_files(f.db);
  // The old report's body is nowhere in the file; the recent one's remains.
  CHECK(raw.find("w1-Retentionstreet") == std::string::npos);
  CHECK(raw.find("w2-Retentionstreet") != std::string::npos);
}

// Not a test: a measurement for the README's "Privacy" (cost of decrypting
// at claim time), run by hand with
//   build/tocsin_tests "measure: claim_due*"
// (speed is measured, never asserted).
TEST_CASE("measure: claim_due of 10,000 SMS with encrypted numbers", "[.measure]") {
  auto keys = Keyring::generate();
  auto blob = keys->encrypt("+12135550142", "tocsin.subscribers.phone.1");
  constexpr int kOps = 200'000;
  auto t0 = std::chrono::steady_clock::now();
  std::size_t sink = 0;
  for (int i = 0; i < kOps; ++i) sink += keys->decrypt(1, blob, "tocsin.subscribers.phone.1")->size();
  auto per_decrypt = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0) / kOps;
  REQUIRE(sink == 12u * kOps);

  auto store = store::open_sqlite_store(":memory:", keys);
  auto config = retention_config();
  auto templates = with_defaults(config.templates);
  std::mt19937_64 rng{1};
  store->begin();
  for (int i = 0; i < 10'000; ++i) {
    auto p = person(i % 9000);
    p.email.clear();
    p.channels = {Channel::kSms};
    store->insert_subscriber(p, 0);
  }
  app::ingest_report(*store, config, templates, {"c1", "w", alert("Headline"), "{}", 1000}, rng);
  store->commit();
  t0 = std::chrono::steady_clock::now();
  std::size_t claimed = 0;
  for (int batch = 0; batch < 100; ++batch) {
    store->begin();
    claimed += store->claim_due(Channel::kSms, 100, 1000, 999'999).claimed.size();
    store->commit();
  }
  auto per_claim = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0) / claimed;
  REQUIRE(claimed == 10'000);
  WARN("decrypt: " << per_decrypt.count() << " us; claim_due (100 per call, :memory:): "
                   << per_claim.count() << " us per delivery");
}
