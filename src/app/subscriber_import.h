// Bulk upsert of subscribers (POST /v1/subscribers/import, fed by
// `tocsin subscribers import`, and the console's CSV upload), and the CSV
// file's reading into rows, shared by both. Each row is checked like a POST body; a valid
// row updates the subscriber with the same phone or email, or creates one.
// One batch runs as one store job: all its rows commit together.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "app/config.h"
#include "app/subscriber_input.h"
#include "store/store.h"

namespace tocsin::app {

inline constexpr std::size_t kMaxImportRows = 1000;  // rows in one request

struct ImportBatch {
  struct Row {
    int64_t line = 0;     // the CSV line, for the report
    nlohmann::json data;  // a POST body: name, phone, email, language, groups, channels
  };
  std::vector<Row> rows;
  bool dry_run = false;  // check and classify every row, store nothing
};

// The body {"rows": [{"line", "name", ...}], "dry_run": false}.
std::variant<ImportBatch, MalformedBody, std::vector<FieldProblem>> parse_import(
    std::string_view body);

struct ImportRowResult {
  int64_t line = 0;
  std::string outcome;                 // created | updated | unchanged | refused
  int64_t id = 0;                      // the subscriber (0 for refused rows and dry-run creations)
  std::vector<FieldProblem> problems;  // why it was refused
};

struct ImportResult {
  std::vector<ImportRowResult> rows;
  int64_t created = 0, updated = 0, unchanged = 0, refused = 0;

  nlohmann::json to_json(bool dry_run) const;
};

// A CSV file of subscribers as rows: a header naming the columns (name,
// phone, email, language, groups, channels, in any order; groups and channels
// cells list items separated by ';'), then one subscriber a line. Lines with
// the wrong number of fields are refused here; the rest are checked by
// import_rows. `error` refuses the whole file (bad CSV, bad header).
struct CsvImport {
  std::vector<ImportBatch::Row> rows;
  std::vector<ImportRowResult> refused;  // outcome "refused", line and why
  int64_t error_line = 0;
  std::string error;  // "" when the file could be read
};
CsvImport rows_from_csv(std::string_view text);

// Runs on the store thread, inside the batch's job. A row matching an
// existing subscriber by phone (E.164) or email is merged into it: fields the
// row leaves out keep their value, groups are replaced, and channels, when
// not given, are every channel the subscriber has an address for. A row that
// matches two subscribers, or repeats an earlier row's phone or email in the
// same batch, is refused. A row identical to what is stored is "unchanged".
ImportResult import_rows(store::Store& store, const Config& config, const ImportBatch& batch,
                         UnixMs now);

}  // namespace tocsin::app
