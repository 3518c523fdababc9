// `tocsin subscribers import`: reads a CSV file of subscribers and upserts
// them in batches through POST /v1/subscribers/import, printing each refused
// line with its reason and a summary. Returns the exit code: 0 every row went
// in, 1 some were refused or a request failed, 2 bad arguments or file.
#pragma once

#include <cstddef>
#include <string>

namespace tocsin::app {

struct ImportOptions {
  std::string url;         // tocsin base URL
  std::string token_file;  // holds an admin token
  std::string csv_path;
  bool dry_run = false;     // the daemon checks and classifies every row, stores nothing
  std::size_t batch = 200;  // rows per request (halved on 413 until a request fits)
};

int import_subscribers(const ImportOptions& options);

}  // namespace tocsin::app
