#include "app/subscriber_import.h"

#include <algorithm>
#include <map>

#include "app/files.h"
#include "core/csv.h"

namespace tocsin::app {

using nlohmann::json;

std::variant<ImportBatch, MalformedBody, std::vector<FieldProblem>> parse_import(
    std::string_view body) {
  auto parsed = parse_patch(body);  // a JSON object, or why not
  if (auto* bad = std::get_if<MalformedBody>(&parsed)) return *bad;
  const json& doc = std::get<json>(parsed);
  std::vector<FieldProblem> problems;
  JsonReader r(doc, "", problems);
  r.reject_unknown({"rows", "dry_run"});
  ImportBatch batch;
  batch.dry_run = r.boolean("dry_run", Need::kOptional).value_or(false);
  const json* rows = r.get("rows");
  if (!rows || !rows->is_array()) {
    r.problem("rows", "must be an array of subscribers");
  } else if (rows->size() > kMaxImportRows) {
    r.problem("rows",
              "holds more than " + std::to_string(kMaxImportRows) + " rows; send smaller batches");
  } else {
    for (std::size_t i = 0; i < rows->size(); ++i) {
      const json& row = (*rows)[i];
      if (!row.is_object()) {
        problems.push_back({index_path("rows", i), "must be an object"});
        continue;
      }
      ImportBatch::Row out{static_cast<int64_t>(i + 1), row};
      if (auto it = row.find("line"); it != row.end()) {
        if (!it->is_number_integer() || it->get<int64_t>() < 1) {
          problems.push_back({index_path("rows", i) + ".line", "must be a positive integer"});
          continue;
        }
        out.line = it->get<int64_t>();
        out.data.erase("line");
      }
      batch.rows.push_back(std::move(out));
    }
  }
  if (!problems.empty()) return problems;
  return batch;
}

namespace {

constexpr const char* kColumns[] = {"name", "phone", "email", "language", "groups", "channels"};
constexpr char kListSeparator = ';';  // inside groups and channels cells: "eastside;lawyers"

std::string lower_trimmed(std::string s) {
  s = trim(std::move(s));
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

json split_list(const std::string& cell) {
  json out = json::array();
  std::size_t start = 0;
  while (start <= cell.size()) {
    auto end = cell.find(kListSeparator, start);
    if (end == std::string::npos) end = cell.size();
    if (auto item = trim(cell.substr(start, end - start)); !item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace

CsvImport rows_from_csv(std::string_view text) {
  CsvImport out;
  auto fail = [&](std::size_t line, std::string why) {
    out.error_line = static_cast<int64_t>(line);
    out.error = std::move(why);
    out.rows.clear();
    out.refused.clear();
    return out;
  };
  auto csv = parse_csv(text);
  if (csv.error) return fail(csv.error->line, csv.error->message);
  if (csv.records.empty()) return fail(1, "no header row");
  // The header names the columns, in any order; unknown names are refused
  // (a typo must not silently drop a column).
  const auto& header = csv.records.front();
  std::vector<std::string> columns;
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    auto name = lower_trimmed(header.fields[i]);
    if (std::find(std::begin(kColumns), std::end(kColumns), name) == std::end(kColumns))
      return fail(header.line, "unknown column \"" + header.fields[i] +
                                   "\" (columns: name, phone, email, language, groups, channels)");
    if (std::find(columns.begin(), columns.end(), name) != columns.end())
      return fail(header.line, "column " + name + " twice");
    columns.push_back(name);
  }
  auto has = [&](const char* c) {
    return std::find(columns.begin(), columns.end(), c) != columns.end();
  };
  if (!has("groups") || (!has("phone") && !has("email")))
    return fail(header.line, "the header needs a groups column and a phone or email column");
  for (std::size_t r = 1; r < csv.records.size(); ++r) {
    const auto& rec = csv.records[r];
    auto line = static_cast<int64_t>(rec.line);
    if (rec.fields.size() != columns.size()) {
      out.refused.push_back({line, "refused", 0,
                             {{"", "has " + std::to_string(rec.fields.size()) +
                                       " fields, the header " + std::to_string(columns.size())}}});
      continue;
    }
    json row = json::object();
    for (std::size_t i = 0; i < columns.size(); ++i) {
      std::string cell = trim(rec.fields[i]);
      if (cell.empty()) continue;
      if (columns[i] == "groups" || columns[i] == "channels")
        row[columns[i]] = split_list(cell);
      else
        row[columns[i]] = cell;
    }
    if (!row.contains("groups")) row["groups"] = json::array();  // validation says it is required
    out.rows.push_back({line, std::move(row)});
  }
  return out;
}

namespace {

std::vector<int64_t> united(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

std::string id_list(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

}  // namespace

ImportResult import_rows(store::Store& store, const Config& config, const ImportBatch& batch,
                         UnixMs now) {
  ImportResult result;
  std::map<std::string, int64_t> seen_phone, seen_email;  // → line, within this batch
  for (const auto& row : batch.rows) {
    ImportRowResult out{row.line, "refused", 0, {}};
    auto refuse = [&](std::vector<FieldProblem> problems) {
      out.problems = std::move(problems);
      ++result.refused;
      result.rows.push_back(std::move(out));
    };
    auto parsed = validate_subscriber(row.data, config);
    if (auto* problems = std::get_if<std::vector<FieldProblem>>(&parsed)) {
      refuse(std::move(*problems));
      continue;
    }
    auto& s = std::get<store::Subscriber>(parsed);
    if (!s.phone.empty() && seen_phone.count(s.phone)) {
      refuse({{"phone", "same number as line " + std::to_string(seen_phone[s.phone])}});
      continue;
    }
    if (!s.email.empty() && seen_email.count(s.email)) {
      refuse({{"email", "same address as line " + std::to_string(seen_email[s.email])}});
      continue;
    }
    if (!s.phone.empty()) seen_phone[s.phone] = row.line;
    if (!s.email.empty()) seen_email[s.email] = row.line;

    auto by_phone = s.phone.empty() ? std::vector<int64_t>{} : store.subscribers_by_phone(s.phone);
    auto by_email = s.email.empty() ? std::vector<int64_t>{} : store.subscribers_by_email(s.email);
    auto matches = united(by_phone, by_email);
    if (matches.size() > 1) {
      refuse({{by_phone.size() > 1 || by_email.empty() ? "phone" : "email",
               "matches several subscribers (ids " + id_list(matches) +
                   "); edit them by id with PATCH"}});
      continue;
    }
    if (matches.empty()) {
      out.outcome = "created";
      if (!batch.dry_run) out.id = store.insert_subscriber(s, now);
      ++result.created;
      result.rows.push_back(std::move(out));
      continue;
    }
    auto existing = store.subscriber(matches.front());
    if (!existing) throw store::StoreError("subscriber vanished during import");
    json patch = row.data;
    if (!patch.contains("channels")) patch["channels"] = nullptr;  // the default: every address
    auto merged = patch_subscriber(*existing, patch, config);
    if (auto* problems = std::get_if<std::vector<FieldProblem>>(&merged)) {
      refuse(std::move(*problems));
      continue;
    }
    auto& m = std::get<store::Subscriber>(merged);
    out.id = existing->id;
    if (same_data(m, *existing)) {
      out.outcome = "unchanged";
      ++result.unchanged;
    } else {
      out.outcome = "updated";
      if (!batch.dry_run) store.update_subscriber(m);
      ++result.updated;
    }
    result.rows.push_back(std::move(out));
  }
  return result;
}

json ImportResult::to_json(bool dry_run) const {
  json list = json::array();
  for (const auto& r : rows) {
    json j{{"line", r.line}, {"outcome", r.outcome}};
    if (r.id) j["id"] = r.id;
    if (!r.problems.empty()) {
      json errors = json::array();
      for (const auto& p : r.problems) errors.push_back({{"field", p.path}, {"detail", p.message}});
      j["errors"] = errors;
    }
    list.push_back(std::move(j));
  }
  return json{{"dry_run", dry_run},     {"created", created}, {"updated", updated},
              {"unchanged", unchanged}, {"refused", refused}, {"rows", list}};
}

}  // namespace tocsin::app
