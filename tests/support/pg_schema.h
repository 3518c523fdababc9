// A fresh schema in the test PostgreSQL (tests/support/pg_cluster, started
// by CTest's pg fixture, which sets TOCSIN_TEST_PG to its conninfo), for a
// test that opens PostgreSQL stores: made at construction, dropped with
// everything in it at destruction. Without TOCSIN_TEST_PG the constructor
// throws, so the test fails: PostgreSQL tests are never skipped.
#pragma once

#include <string>

namespace tocsin::test {

class PgSchema {
 public:
  PgSchema();
  ~PgSchema();
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;

  // The server's conninfo with this schema as the search path: a store
  // opened with it sees only this schema's tables.
  const std::string& conninfo() const { return conninfo_; }
  const std::string& name() const { return name_; }
  // Runs `sql` on a connection of its own (as the server's superuser).
  void exec(const std::string& sql) const;

 private:
  std::string base_, name_, conninfo_;
};

}  // namespace tocsin::test
