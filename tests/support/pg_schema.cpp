// PgSchema: a throwaway schema per test in the test PostgreSQL (pg_schema.h).
#include "support/pg_schema.h"

#include <libpq-fe.h>
#include <sodium.h>

#include <cstdlib>
#include <stdexcept>

namespace tocsin::test {
namespace {

void run(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("test PostgreSQL unreachable: " + msg);
  }
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql + ": " + msg);
}

}  // namespace

PgSchema::PgSchema() {
  const char* base = std::getenv("TOCSIN_TEST_PG");
  if (!base || !*base)
    throw std::runtime_error(
        "TOCSIN_TEST_PG is not set: run the PostgreSQL tests through ctest, whose pg fixture "
        "starts a server (tests/support/pg_cluster) and sets it");
  base_ = base;
  unsigned char raw[6];
  randombytes_buf(raw, sizeof raw);
  name_ = "t_";
  for (unsigned char ch : raw) {
    name_.push_back("0123456789abcdef"[ch >> 4]);
    name_.push_back("0123456789abcdef"[ch & 15]);
  }
  run(base_, "CREATE SCHEMA " + name_);
  conninfo_ = base_ + " options='-c search_path=" + name_ + "'";
}

void PgSchema::exec(const std::string& sql) const { run(base_, sql); }

PgSchema::~PgSchema() {
  try {
    run(base_, "DROP SCHEMA " + name_ + " CASCADE");
  } catch (const std::exception&) {  // the cluster goes with the fixture anyway
  }
}

}  // namespace tocsin::test
