// How the client commands print the API's answers (client_print.h).
#include "cli/client_print.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/time.h"

namespace ll::cli::client {
namespace {

std::string Text(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// Server times are RFC 3339 UTC; normalized through ParseUtc/FormatUtc (drops fractions), shown
// as sent when they do not parse.
std::string TimeText(const Json& v) {
  if (!v.is_string()) return Text(v);
  auto t = ParseUtc(v.get<std::string>());
  return t.ok() ? FormatUtc(*t) : v.get<std::string>();
}

bool IsTimeKey(std::string_view key) {
  return key.ends_with("_at") || key == "term_end" || key == "now" || key == "at";
}

std::string TermText(int64_t seconds) {
  if (seconds > 0 && seconds % 86400 == 0) return fmt::format("{}d", seconds / 86400);
  if (seconds > 0 && seconds % 3600 == 0) return fmt::format("{}h", seconds / 3600);
  if (seconds > 0 && seconds % 60 == 0) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}s", seconds);
}

// Columns separated by two spaces; `right[i]` right-aligns column i; the last column is not
// padded.
void PrintTable(const std::vector<std::string>& header, const std::vector<bool>& right,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      if (i > 0) line += "  ";
      bool last = i + 1 == row.size();
      if (right[i]) {
        line += fmt::format("{:>{}}", row[i], width[i]);
      } else {
        line += last ? row[i] : fmt::format("{:<{}}", row[i], width[i]);
      }
    }
    fmt::print("{}\n", line);
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

}  // namespace

std::string Field(const Json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  return it == obj.end() ? "-" : Text(*it);
}

std::string TimeField(const Json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  return it == obj.end() ? "-" : TimeText(*it);
}

std::string NodesText(const Json& nodes) {
  if (!nodes.is_array()) return Text(nodes);
  if (nodes.empty()) return "-";
  std::string out;
  for (const Json& n : nodes) {
    if (!out.empty()) out += ", ";
    out +=
        n.is_object() ? fmt::format("{} ({} GPUs)", Field(n, "node"), Field(n, "gpus")) : Text(n);
  }
  return out;
}

namespace {

std::string ValueText(std::string_view key, const Json& v) {
  if (key == "nodes") return NodesText(v);
  if (IsTimeKey(key)) return TimeText(v);
  if (v.is_array()) {
    std::string out;
    for (const Json& e : v) {
      if (!out.empty()) out += ", ";
      out += e.is_structured() ? e.dump() : Text(e);
    }
    return out.empty() ? "-" : out;
  }
  return Text(v);
}

}  // namespace

void PrintObject(const Json& obj) {
  if (!obj.is_object()) {
    fmt::print("{}\n", obj.dump());
    return;
  }
  size_t width = 0;
  for (const auto& [k, v] : obj.items()) {
    if (k != "object") width = std::max(width, k.size() + 1);
  }
  for (const auto& [k, v] : obj.items()) {
    if (k == "object") continue;
    fmt::print("{:<{}} {}\n", k + ":", width, ValueText(k, v));
  }
}

void PrintLeases(const Json& list) {
  const Json& data = list.at("data");
  if (data.empty()) {
    fmt::print("no leases\n");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& l : data) {
    rows.push_back({Field(l, "id"), Field(l, "kind"), Field(l, "state"), Field(l, "gpus"),
                    Field(l, "pool"), Field(l, "price_per_gpu_hour"),
                    Field(l, "max_price_per_gpu_hour"), TimeField(l, "created_at"),
                    TimeField(l, "reclaim_at")});
  }
  PrintTable({"ID", "KIND", "STATE", "GPUS", "POOL", "PRICE/GPU-H", "MAX", "CREATED", "RECLAIM AT"},
             {false, false, false, true, false, true, true, false, false}, rows);
  if (list.value("has_more", false)) fmt::print("more: --after {}\n", Field(data.back(), "id"));
}

void PrintQuote(const Json& q) {
  const Json& spot = q.at("spot");
  fmt::print("spot: {} USD/GPU-h, {} GPUs available\n", Field(spot, "price_per_gpu_hour"),
             Field(spot, "available_gpus"));
  // The shorter-notice tiers (the standard one is the line above).
  if (auto tiers = q.find("spot_tiers"); tiers != q.end() && tiers->is_array()) {
    for (const Json& t : *tiers) {
      if (Field(t, "notice_tier") == "standard") continue;
      fmt::print("spot {} ({} s notice): {} USD/GPU-h, {} GPUs available\n", Field(t, "notice_tier"),
                 Field(t, "notice_s"), Field(t, "price_per_gpu_hour"), Field(t, "available_gpus"));
    }
  }
  auto reserved = q.find("reserved");
  if (reserved == q.end() || !reserved->is_array() || reserved->empty()) {
    fmt::print("reserved: none offered now\n");
    return;
  }
  fmt::print("reserved:\n");
  std::vector<std::vector<std::string>> rows;
  for (const Json& r : *reserved) {
    auto d = r.find("duration_s");
    std::string term = d != r.end() && d->is_number_integer() ? TermText(d->get<int64_t>())
                                                              : Field(r, "duration_s");
    rows.push_back({term, Field(r, "price_per_gpu_hour"), Field(r, "max_gpus")});
  }
  PrintTable({"TERM", "PRICE/GPU-H", "MAX GPUS"}, {false, true, true}, rows);
}

void PrintNewKey(const Json& k) {
  fmt::print("Created API key {} for tenant {}:\n\n    {}\n\n", Field(k, "id"),
             Field(k, "tenant_id"), Field(k, "key"));
  if (Field(k, "name") != "-") fmt::print("Name: {}\n", Field(k, "name"));
  if (Field(k, "expires_at") != "-") fmt::print("Expires at: {} (server clock)\n", TimeField(k, "expires_at"));
  fmt::print(
      "This is the only time the key is shown: store it now (the server keeps only a hash).\n"
      "Use it with `--key` or `export LANDLORD_API_KEY=...`.\n");
}

void PrintKeys(const Json& list) {
  const Json& data = list.at("data");
  if (data.empty()) {
    fmt::print("no keys\n");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& k : data) {
    rows.push_back({Field(k, "id"), k.value("admin", false) ? "(admin)" : Field(k, "tenant_id"), Field(k, "prefix"),
                    Field(k, "state"), TimeField(k, "created_at"), TimeField(k, "expires_at"),
                    TimeField(k, "revoked_at"), Field(k, "name")});
  }
  PrintTable({"ID", "TENANT", "PREFIX", "STATE", "CREATED", "EXPIRES", "REVOKED", "NAME"},
             {false, false, false, false, false, false, false, false}, rows);
  if (list.value("has_more", false)) fmt::print("more: --after {}\n", Field(data.back(), "id"));
}
void PrintInvoices(const Json& list) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& i : list.at("data")) rows.push_back({Field(i, "period"), Field(i, "status"), Field(i, "total")});
  if (rows.empty()) {
    fmt::print("no invoices\n");
    return;
  }
  PrintTable({"PERIOD", "STATUS", "TOTAL USD"}, {false, false, true}, rows);
}

void PrintInvoice(const Json& inv) {
  fmt::print("invoice {} for {} ({})\n", Field(inv, "period"), Field(inv, "tenant_id"), Field(inv, "status"));
  std::vector<std::vector<std::string>> rows;
  for (const Json& li : inv.at("items")) {
    const bool tokens = li.contains("model");
    rows.push_back({tokens ? Field(li, "model") : Field(li, "lease_id"), Field(li, "kind"),
                    tokens ? Field(li, "price_per_mtok") + "/Mtok" : Field(li, "price_per_gpu_hour") + "/GPU-h",
                    tokens ? Field(li, "tokens") + " tok"
                           : fmt::format("{:.3f} GPU-h", static_cast<double>(li.at("gpu_ms").get<int64_t>()) / 3.6e6),
                    Field(li, "amount")});
  }
  rows.push_back({"total", "", "", "", Field(inv, "total")});
  PrintTable({"ITEM", "KIND", "PRICE", "QUANTITY", "AMOUNT USD"}, {false, false, true, true, true}, rows);
}

void PrintUsage(const Json& u) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& e : u.at("data")) {
    const bool tokens = e.contains("model");
    rows.push_back({TimeField(e, "start"), TimeField(e, "end"), tokens ? Field(e, "model") : Field(e, "lease_id"),
                    Field(e, "kind"), Field(e, "quantity"), Field(e, "amount")});
  }
  if (!rows.empty()) {
    PrintTable({"START", "END", "ITEM", "KIND", "GPU-MS/TOKENS", "AMOUNT USD"}, {false, false, false, false, true, true},
               rows);
  }
  fmt::print("period {}: billed {} USD; in progress {} USD{}\n", Field(u, "period"), Field(u, "total"),
             Field(u, "in_progress"), u.value("has_more", false) ? fmt::format(" (more: --after {})", Field(u, "next")) : "");
}
}  // namespace ll::cli::client
