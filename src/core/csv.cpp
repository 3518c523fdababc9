#include "core/csv.h"

namespace tocsin {

CsvResult parse_csv(std::string_view text) {
  CsvResult result;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::size_t i = 0, line = 1;
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool record_done = false;
    while (!record_done) {
      field.clear();
      if (i < text.size() && text[i] == '"') {
        std::size_t quote_line = line;
        ++i;
        for (;;) {
          if (i >= text.size()) {
            result.error = CsvError{quote_line, "a quoted field is not closed"};
            return result;
          }
          char c = text[i++];
          if (c == '"') {
            if (i < text.size() && text[i] == '"') {
              field += '"';
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            field += c;
          }
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          result.error =
              CsvError{line, "text after a closing quote (write \"\" for a quote inside)"};
          return result;
        }
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"') {
            result.error =
                CsvError{line, "a quote inside an unquoted field (quote the whole field)"};
            return result;
          }
          field += text[i++];
        }
      }
      rec.fields.push_back(field);
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      // End of record: CRLF, LF, a lone CR, or the end of the text.
      if (i < text.size() && text[i] == '\r') ++i;
      if (i < text.size() && text[i] == '\n') ++i;
      ++line;
      record_done = true;
    }
    bool blank = rec.fields.size() == 1 && rec.fields[0].empty();
    if (!blank) result.records.push_back(std::move(rec));
  }
  return result;
}

}  // namespace tocsin
