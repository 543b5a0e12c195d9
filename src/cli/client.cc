// `landlord lease|quote|admin`: thin commands over the HTTP API (docs/api.md). Each one sends
// one request (or reads one event stream), then prints the JSON answer raw (`--json`) or as a
// table / `key: value` lines. Exit codes: 0 ok, 1 a server or transport error, 2 a usage error.
#include "cli/client.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "core/clock.h"
#include "core/money.h"
#include "core/time.h"

namespace ll::cli {
namespace {

// Keeps the server's key order, so `key: value` output follows the API's field order.
using Json = nlohmann::ordered_json;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";

struct CommonOptions {
  std::string url;
  std::string key;
  bool json = false;
};

// Every option of every client command. Only one command is parsed per run, so they share.
struct State {
  CommonOptions common;
  int gpus = 0;
  std::string kind = "spot";
  std::string max_price;
  int64_t duration_s = 0;
  std::string pool;
  std::string id;
  std::string name;
  std::string tenant;
  std::string amount;  // admin credit
  int64_t rpm = 0, tpm = 0;  // admin key create
  std::string expires_at;    // admin key create
  int64_t expires_in_s = 0;  // admin key create
  std::string start_at;
  std::string period;
  bool csv = false;
  int limit = 0;  // 0: the server's default (100)
  std::string after;
  CLI::Option* max_price_opt = nullptr;
  CLI::Option* duration_opt = nullptr;
  CLI::Option* pool_opt = nullptr;
  CLI::Option* quote_gpus_opt = nullptr;
  // Not capturing the State: it owns these.
  std::vector<std::pair<CLI::App*, std::function<int(State&)>>> commands;
};

std::string EnvOr(const char* name, std::string_view fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

// Set for a `--json` command: its errors are JSON on stdout too, so that a script reads one
// format whatever happens.
bool g_json_errors = false;

// Prints an error: a line on stderr, or with `--json` an OpenAI-style error object on stdout
// (`body`, the server's own error object, when it sent one). Returns `code` (the exit status).
int Fail(const Status& st, int code = kExitError, const std::string& body = "") {
  if (!g_json_errors) {
    std::fflush(stdout);
    fmt::print(stderr, "landlord: {}\n", st.message());
    return code;
  }
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error")) {
    j = {{"error", {{"message", st.message()}, {"type", "cli_error"}, {"code", StatusCodeName(st.code())}}}};
  }
  fmt::print("{}\n", j.dump());
  std::fflush(stdout);
  return code;
}

// The error of an HTTP answer of 400 or more.
int FailResponse(const HttpResponse& res) { return Fail(StatusFromResponse(res), kExitError, res.body); }

// Percent-encodes one path segment (an id typed by a person).
std::string PathSegment(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

// --- formatting --------------------------------------------------------------------------------

std::string Text(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// A JSON field of an object as text, "-" when absent or null.
std::string Field(const Json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  return it == obj.end() ? "-" : Text(*it);
}

// Server times are RFC 3339 UTC; normalized through ParseUtc/FormatUtc (drops fractions), shown
// as sent when they do not parse.
std::string TimeText(const Json& v) {
  if (!v.is_string()) return Text(v);
  auto t = ParseUtc(v.get<std::string>());
  return t.ok() ? FormatUtc(*t) : v.get<std::string>();
}

std::string TimeField(const Json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  return it == obj.end() ? "-" : TimeText(*it);
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

// `key: value` lines, values aligned; the `object` tag is left out.
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

// `admin key list`: no secrets in it, only each key's first characters.
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

// --- requests ----------------------------------------------------------------------------------

// The client for `o`, or exit code 2 with the reason printed.
std::unique_ptr<HttpClient> NewClient(const CommonOptions& o, int* exit_code) {
  auto url = ParseUrl(o.url);
  if (!url.ok()) {
    *exit_code = Fail(url.status(), kExitUsage);
    return nullptr;
  }
  if (o.key.empty()) {
    *exit_code =
        Fail(Status::Invalid("no API key: pass `--key KEY` or set LANDLORD_API_KEY"), kExitUsage);
    return nullptr;
  }
  return std::make_unique<HttpClient>(std::move(*url), o.key);
}

// Sends one request and prints the answer: raw with `--json`, else through `print`.
int Call(const CommonOptions& o, std::string_view method, const std::string& target,
         const std::string& body, const std::function<void(const Json&)>& print) {
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(o, &exit_code);
  if (client == nullptr) return exit_code;
  auto res = client->Request(method, target, body);
  if (!res.ok()) return Fail(res.status());
  if (res->status >= 400) return FailResponse(*res);
  if (o.json) {
    fmt::print("{}", res->body);
    if (res->body.empty() || res->body.back() != '\n') fmt::print("\n");
    return 0;
  }
  Json j = Json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Fail(Status::Io(fmt::format("{} {}: the server's answer is not JSON", method, target)));
  }
  try {
    print(j);
  } catch (const Json::exception& e) {
    return Fail(Status::Io(
        fmt::format("{} {}: unexpected answer from the server: {}", method, target, e.what())));
  }
  return 0;
}

// ---- billing -----------------------------------------------------------------------------------

// "?tenant_id=…" for the owner's key, and other query parameters, from the set ones.
std::string Query(std::initializer_list<std::pair<const char*, std::string>> params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (!v.empty()) q += fmt::format("{}{}={}", q.empty() ? "?" : "&", k, PathSegment(v));
  }
  return q;
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

int RunInvoiceShow(State& st) {
  const std::string query = Query({{"tenant_id", st.tenant}, {"format", st.csv ? "csv" : ""}});
  const std::string target = "/v1/invoices/" + PathSegment(st.period) + query;
  if (!st.csv) return Call(st.common, "GET", target, "", PrintInvoice);
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(st.common, &exit_code);
  if (client == nullptr) return exit_code;
  auto res = client->Request("GET", target);
  if (!res.ok()) return Fail(res.status());
  if (res->status >= 400) return FailResponse(*res);
  fmt::print("{}", res->body);
  return 0;
}

int RunCreate(State& s) {
  Json body = Json::object();
  body["kind"] = s.kind;
  body["gpus"] = s.gpus;
  bool has_max = s.max_price_opt->count() > 0;
  bool has_duration = s.duration_opt->count() > 0;
  if (s.kind == "spot") {
    if (has_duration)
      return Fail(Status::Invalid("`--duration` applies to `--kind reserved` only"), kExitUsage);
    if (has_max) {
      auto m = ParseMoney(s.max_price);
      if (!m.ok())
        return Fail(Status::Invalid("`--max-price`: " + m.status().message()), kExitUsage);
      if (m->micros <= 0) return Fail(Status::Invalid("`--max-price` must be above 0"), kExitUsage);
      body["max_price_per_gpu_hour"] = FormatMoney(*m);
    }
  } else {
    if (has_max)
      return Fail(Status::Invalid("`--max-price` applies to `--kind spot` only"), kExitUsage);
    if (!has_duration)
      return Fail(Status::Invalid("`--kind reserved` needs `--duration SECONDS`"), kExitUsage);
    body["duration_s"] = s.duration_s;
  }
  if (!s.start_at.empty()) {
    if (s.kind != "reserved") return Fail(Status::Invalid("`--start-at` applies to `--kind reserved` only"), kExitUsage);
    auto t = ParseUtc(s.start_at);
    if (!t.ok()) return Fail(Status::Invalid("`--start-at`: " + t.status().message()), kExitUsage);
    body["start_at"] = FormatUtc(*t);
  }
  if (s.pool_opt->count() > 0) body["pool"] = s.pool;
  return Call(s.common, "POST", "/v1/leases", body.dump(), PrintObject);
}

// --- lease watch -------------------------------------------------------------------------------

// Prints the time left before a noticed lease is reclaimed, in server-clock seconds, while the
// main thread reads events: on a terminal a status line under the events, rewritten every wall
// second; otherwise a line every 10 s. Every stdout write of `lease watch` goes through it,
// under one mutex.
class Countdown {
 public:
  Countdown(bool tty, std::unique_ptr<Clock> wall)
      : tty_(tty),
        period_(tty ? std::chrono::seconds(1) : std::chrono::seconds(10)),
        wall_(std::move(wall)),
        thread_([this] { Loop(); }) {}

  ~Countdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      EndLineLocked(/*keep=*/true);
    }
    cv_.notify_all();
    thread_.join();
  }

  void PrintLine(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    EndLineLocked(/*keep=*/false);
    fmt::print("{}\n", line);
    std::fflush(stdout);
  }

  // Counts down from `left` of server time as of now; the server clock runs `speed` times the
  // wall clock. While already counting, only re-syncs (the printing rhythm stays).
  void Start(Duration left, double speed) {
    std::lock_guard<std::mutex> lock(mu_);
    bool was_active = active_;
    active_ = true;
    left_ = left;
    speed_ = speed > 0 ? speed : 1.0;
    since_ = wall_->Now();
    if (was_active && !tty_) return;
    ShowLocked();
    if (!was_active) {
      ++generation_;  // a full period from now until the next line
      cv_.notify_all();
    }
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = false;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      uint64_t generation = generation_;
      bool woken = cv_.wait_for(lock, period_, [&] { return quit_ || generation_ != generation; });
      if (quit_) break;
      if (!woken && active_) ShowLocked();  // a full period passed without a restart
    }
  }

  void ShowLocked() {
    Duration elapsed = wall_->Now() - since_;
    int64_t left_ms = left_.ms - std::llround(static_cast<double>(elapsed.ms) * speed_);
    std::string text;
    if (left_ms <= 0) {
      text = "reclaim due now";
      active_ = false;
    } else {
      int64_t left_s = (left_ms + 999) / 1000;
      text = fmt::format("reclaim in {} s", left_s);
      if (speed_ != 1.0)
        text += fmt::format(" of server time ({:.0f} s wall)", std::ceil(left_ms / speed_ / 1000));
    }
    if (tty_) {
      fmt::print("\r  {}\033[K", text);
      line_open_ = true;
    } else {
      fmt::print("  {}\n", text);
    }
    std::fflush(stdout);
  }

  // Ends the countdown line on a terminal: kept above what follows, or erased so that the
  // next line takes its place.
  void EndLineLocked(bool keep) {
    if (!line_open_) return;
    std::fputs(keep ? "\n" : "\r\033[K", stdout);
    std::fflush(stdout);
    line_open_ = false;
  }

  const bool tty_;
  const std::chrono::seconds period_;
  const std::unique_ptr<Clock> wall_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  bool active_ = false;
  bool line_open_ = false;  // a countdown line is on the terminal without its newline
  uint64_t generation_ = 0;
  Duration left_;
  double speed_ = 1.0;
  Time since_;
  std::thread thread_;  // last: started after the members it reads
};

bool IsFinalState(std::string_view state) {
  return state == "released" || state == "reclaimed" || state == "ended";
}

std::string EventLine(const std::string& type, const Json& d) {
  const Json lease = d.is_object() && d.contains("lease") ? d.at("lease") : Json::object();
  std::string line =
      fmt::format("{}  {:<14}  {:<9}", TimeField(d, "at"), type, Field(lease, "state"));
  if (type == "reclaim_notice") {
    line += fmt::format("  reclaim at {} ({})", TimeField(d, "reclaim_at"), Field(d, "reason"));
  } else if (type == "price_changed") {
    line += fmt::format("  price {} USD/GPU-h", Field(lease, "price_per_gpu_hour"));
  } else if (type == "active") {
    auto nodes = lease.is_object() ? lease.find("nodes") : lease.end();
    line += fmt::format("  {} GPUs on {}", Field(lease, "gpus"),
                        nodes != lease.end() ? NodesText(*nodes) : "-");
  } else if (Field(lease, "end_reason") != "-") {
    line += fmt::format("  {}", Field(lease, "end_reason"));
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

int RunWatch(State& s) {
  const CommonOptions& o = s.common;
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(o, &exit_code);
  if (client == nullptr) return exit_code;
  const std::string target = fmt::format("/v1/leases/{}/events", PathSegment(s.id));
  Status failure;
  {  // the countdown's last line ends before the error is printed
    Countdown countdown(!o.json && isatty(STDOUT_FILENO) != 0, NewSystemClock());

    std::string last_id;
    bool final = false;
    uint64_t events = 0;
    auto on_event = [&](const SseEvent& ev) {
      ++events;
      last_id = ev.id;
      Json d = Json::parse(ev.data, nullptr, /*allow_exceptions=*/false);
      std::string state =
          d.is_object() && d.contains("lease") ? Field(d.at("lease"), "state") : "-";
      final = IsFinalState(state) || IsFinalState(ev.event);
      if (o.json) {
        countdown.PrintLine(ev.data);
        return !final;
      }
      if (d.is_discarded()) {
        countdown.PrintLine(fmt::format("{}  {}", ev.event, ev.data));
        return !final;
      }
      try {
        countdown.PrintLine(EventLine(ev.event, d));
        if (state != "noticed") {
          countdown.Stop();
          return !final;
        }
        // Every event carries the server's `now`: re-sync the countdown on each.
        std::string reclaim_at = Field(d.at("lease"), "reclaim_at");
        if (reclaim_at == "-") reclaim_at = Field(d, "reclaim_at");
        auto reclaim = ParseUtc(reclaim_at);
        auto now = ParseUtc(Field(d, "now"));
        if (reclaim.ok() && now.ok()) {
          auto speed = d.find("clock_speed");
          countdown.Start(*reclaim - *now,
                          speed != d.end() && speed->is_number() ? speed->get<double>() : 1.0);
        }
      } catch (const Json::exception&) {
        countdown.PrintLine(fmt::format("{}  {}", ev.event, ev.data));
      }
      return !final;
    };

    for (;;) {
      uint64_t before = events;
      Status st = client->Stream(target, on_event, last_id);
      if (final) return 0;
      // The stream broke or ended early: resume after the last event seen, as long as that makes
      // progress.
      if (events == before) {
        failure = st.ok()
                      ? Status::Io("the event stream ended before the lease reached a final state")
                      : st;
        break;
      }
    }
  }
  return Fail(failure);
}

// --- registration ------------------------------------------------------------------------------

void AddCommon(CLI::App* cmd, State* s) {
  cmd->add_option("--url", s->common.url,
                  "Server URL (default: $LANDLORD_URL, else http://127.0.0.1:8080)")
      ->capture_default_str();
  cmd->add_option("--key", s->common.key, "API key (default: $LANDLORD_API_KEY)");
  cmd->add_flag("--json", s->common.json, "Print the server's JSON answer as is");
}

void Register(State* s, CLI::App* cmd, std::function<int(State&)> run) {
  AddCommon(cmd, s);
  s->commands.emplace_back(cmd, std::move(run));
}

}  // namespace

std::function<std::optional<int>()> AddClientCommands(CLI::App& app) {
  auto s = std::make_shared<State>();
  s->common.url = EnvOr("LANDLORD_URL", kDefaultUrl);
  s->common.key = EnvOr("LANDLORD_API_KEY", "");

  CLI::App* lease =
      app.add_subcommand("lease", "Rent GPUs: create, list, show, release and watch leases");
  lease->require_subcommand(1);

  CLI::App* create = lease->add_subcommand(
      "create", "Rent GPUs now: a spot lease (reclaimable) or a reserved term");
  create
      ->add_option("--gpus", s->gpus,
                   "GPUs to rent; more than a node's are rounded up to whole nodes")
      ->required()
      ->check(CLI::Range(1, 1024));
  create->add_option("--kind", s->kind, "spot (reclaimable at notice) or reserved (a fixed term)")
      ->check(CLI::IsMember({"spot", "reserved"}))
      ->capture_default_str();
  s->max_price_opt =
      create->add_option("--max-price", s->max_price, "spot: the most to pay per GPU-hour, in USD");
  s->duration_opt = create->add_option("--duration", s->duration_s, "reserved: the term in seconds")
                        ->check(CLI::Range(int64_t{1}, int64_t{366} * 86400));
  s->pool_opt = create->add_option("--pool", s->pool, "Place the lease in this pool");
  create->add_option("--start-at", s->start_at,
                     "reserved: book the term to start then (UTC, e.g. 2024-01-16T08:00:00Z; server clock)");
  Register(s.get(), create, RunCreate);

  CLI::App* list = lease->add_subcommand("list", "List your leases, newest first");
  list->add_option("--limit", s->limit, "At most this many (1..1000); default 100")->check(CLI::Range(1, 1000));
  list->add_option("--after", s->after, "Only leases older than this lease id (the next page)");
  Register(s.get(), list, [](State& st) {
    std::string query;
    if (st.limit > 0) query += fmt::format("&limit={}", st.limit);
    if (!st.after.empty()) query += "&after=" + PathSegment(st.after);
    std::string target = "/v1/leases" + (query.empty() ? "" : "?" + query.substr(1));
    return Call(st.common, "GET", target, "", PrintLeases);
  });

  CLI::App* show = lease->add_subcommand("show", "Show one lease");
  show->add_option("id", s->id, "Lease id")->required();
  Register(s.get(), show, [](State& st) {
    return Call(st.common, "GET", "/v1/leases/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* release = lease->add_subcommand("release", "Give a lease's GPUs back now");
  release->add_option("id", s->id, "Lease id")->required();
  Register(s.get(), release, [](State& st) {
    return Call(st.common, "DELETE", "/v1/leases/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* watch = lease->add_subcommand(
      "watch", "Follow a lease's events until it ends, with a countdown once it is noticed");
  watch->add_option("id", s->id, "Lease id")->required();
  Register(s.get(), watch, RunWatch);

  CLI::App* quote = app.add_subcommand("quote", "Current spot price and reserved terms on offer");
  s->quote_gpus_opt =
      quote->add_option("--gpus", s->gpus, "Quote for this many GPUs")->check(CLI::Range(1, 1024));
  Register(s.get(), quote, [](State& st) {
    std::string target = "/v1/quotes";
    if (st.quote_gpus_opt->count() > 0) target += fmt::format("?gpus={}", st.gpus);
    return Call(st.common, "GET", target, "", PrintQuote);
  });

  CLI::App* invoice = app.add_subcommand("invoice", "Invoices (monthly, UTC)");
  invoice->require_subcommand(1);
  CLI::App* invoice_list = invoice->add_subcommand("list", "Your invoice periods and totals, newest first");
  invoice_list->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  Register(s.get(), invoice_list, [](State& st) {
    return Call(st.common, "GET", "/v1/invoices" + Query({{"tenant_id", st.tenant}}), "", PrintInvoices);
  });
  CLI::App* invoice_show = invoice->add_subcommand("show", "One invoice's line items and total");
  invoice_show->add_option("period", s->period, "The month, YYYY-MM (UTC)")->required();
  invoice_show->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  invoice_show->add_flag("--csv", s->csv, "Print it as CSV (exact decimal amounts)");
  Register(s.get(), invoice_show, RunInvoiceShow);

  CLI::App* usage = app.add_subcommand("usage", "Billed usage of a month, and what live leases accrue");
  usage->add_option("--period", s->period, "The month, YYYY-MM (default: the current one)");
  usage->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  usage->add_option("--after", s->after, "The next page (from the previous output)");
  Register(s.get(), usage, [](State& st) {
    return Call(st.common, "GET",
                "/v1/usage" + Query({{"period", st.period}, {"tenant_id", st.tenant}, {"after", st.after}}), "",
                PrintUsage);
  });

  CLI::App* balance = app.add_subcommand("balance", "Your prepaid balance for the model API");
  balance->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  Register(s.get(), balance, [](State& st) {
    return Call(st.common, "GET", "/v1/balance" + Query({{"tenant_id", st.tenant}}), "", PrintObject);
  });

  CLI::App* admin = app.add_subcommand("admin", "Operator commands (need an admin key)");
  admin->require_subcommand(1);
  CLI::App* tenant = admin->add_subcommand("tenant", "Tenants");
  tenant->require_subcommand(1);
  CLI::App* tenant_create = tenant->add_subcommand("create", "Create a tenant");
  tenant_create->add_option("name", s->name, "Tenant name")->required();
  Register(s.get(), tenant_create, [](State& st) {
    Json body = {{"name", st.name}};
    return Call(st.common, "POST", "/admin/tenants", body.dump(), PrintObject);
  });
  CLI::App* key = admin->add_subcommand("key", "API keys");
  key->require_subcommand(1);
  CLI::App* key_create =
      key->add_subcommand("create", "Create an API key for a tenant (shown once)");
  key_create->add_option("--tenant", s->tenant, "Tenant id (ten_...)")->required();
  key_create->add_option("--rpm", s->rpm, "Model API requests per minute for this key (default: the server's)")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  key_create->add_option("--tpm", s->tpm, "Model API tokens per minute for this key (default: the server's)")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000'000}));
  key_create->add_option("--name", s->name, "A label for the key (shown by `key list`)");
  auto* expires_at =
      key_create->add_option("--expires-at", s->expires_at, "Stop working then (UTC, e.g. 2024-01-16T08:00:00Z; server clock)");
  key_create->add_option("--expires-in", s->expires_in_s, "Stop working this many seconds from now (server clock)")
      ->check(CLI::PositiveNumber)
      ->excludes(expires_at);
  Register(s.get(), key_create, [](State& st) {
    Json body = {{"tenant_id", st.tenant}};
    if (st.rpm > 0) body["rpm"] = st.rpm;
    if (st.tpm > 0) body["tpm"] = st.tpm;
    if (!st.name.empty()) body["name"] = st.name;
    if (!st.expires_at.empty()) body["expires_at"] = st.expires_at;
    if (st.expires_in_s > 0) body["expires_in_s"] = st.expires_in_s;
    return Call(st.common, "POST", "/admin/keys", body.dump(), PrintNewKey);
  });
  CLI::App* key_list = key->add_subcommand("list", "List API keys, oldest first (no secrets: only their first characters)");
  key_list->add_option("--tenant", s->tenant, "Only this tenant's keys (ten_...)");
  key_list->add_option("--limit", s->limit, "At most this many (1..1000); default 100")->check(CLI::Range(1, 1000));
  key_list->add_option("--after", s->after, "Only keys after this key id (the next page)");
  Register(s.get(), key_list, [](State& st) {
    const std::string limit = st.limit > 0 ? std::to_string(st.limit) : "";
    return Call(st.common, "GET", "/admin/keys" + Query({{"tenant_id", st.tenant}, {"limit", limit}, {"after", st.after}}),
                "", PrintKeys);
  });
  CLI::App* key_revoke = key->add_subcommand("revoke", "Revoke an API key: refused from now on (again: no change)");
  key_revoke->add_option("id", s->id, "Key id (key_...)")->required();
  Register(s.get(), key_revoke, [](State& st) {
    return Call(st.common, "DELETE", "/admin/keys/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* credit = admin->add_subcommand("credit", "Add to a tenant's prepaid balance (the model API's budget)");
  credit->add_option("--tenant", s->tenant, "Tenant id (ten_...)")->required();
  credit->add_option("--amount", s->amount, "Dollars, e.g. 10.00")->required();
  Register(s.get(), credit, [](State& st) {
    Json body = {{"tenant_id", st.tenant}, {"amount", st.amount}};
    return Call(st.common, "POST", "/admin/credits", body.dump(), PrintObject);
  });

  return [s]() -> std::optional<int> {
    for (auto& [cmd, run] : s->commands) {
      if (!cmd->parsed()) continue;
      g_json_errors = s->common.json;
      try {
        return run(*s);
      } catch (const std::exception& e) {  // e.g. fmt failing to write to a closed pipe
        return Fail(Status(StatusCode::kInternal, e.what()));
      }
    }
    return std::nullopt;
  };
}

}  // namespace ll::cli
