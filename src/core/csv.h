// RFC 4180 CSV as spreadsheets write it: fields separated by commas, quoted
// with '"' when they hold commas, quotes ("" inside) or line breaks; records
// end in LF or CRLF; a UTF-8 byte order mark at the start is skipped. Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tocsin {

struct CsvRecord {
  std::size_t line = 0;  // 1-based line of the file where the record starts
  std::vector<std::string> fields;
};

struct CsvError {
  std::size_t line = 0;
  std::string message;
};

struct CsvResult {
  std::vector<CsvRecord> records;  // blank lines are skipped
  std::optional<CsvError> error;   // set when the text is not valid CSV (records then stop there)
};

CsvResult parse_csv(std::string_view text);

}  // namespace tocsin
