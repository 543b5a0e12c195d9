// The lease API under load, on loopback, against a real `landlord serve` (SQLite store, sim
// fleet of 12,500 nodes × 8 GPUs):
//
//   1. wrk (Debian) for GET /healthz (the HTTP floor of the same server: Beast, no auth, no
//      store), GET /v1/leases/{id}, GET /v1/leases?limit=20, POST /v1/leases (durable: one
//      fsync'd SQLite commit each) and the mix 10% create / 60% get / 30% list. Throughput and
//      p99, and each as a ratio to the floor measured in the same run.
//   2. SSE fan-out: W watchers follow one lease's events; the lease is released and each
//      watcher's delay from the DELETE to its `released` event is taken. p50/p99/max over all
//      rounds, against the DELETE's own round trip (one client) in the same run.
//   3. Durable usage ingestion: token usage batches over loopback (POST /admin/usage, as a
//      gateway reports it) against raw batched inserts of the same rows into a bare SQLite
//      file in WAL mode with synchronous=FULL, side by side.
//
// Usage: landlord_api_bench [--seconds 8] [--connections 32] [--watchers 1000] [--rounds 5]
//        [--json FILE]. Results and how to read them: docs/benchmarks.md.
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "api/serve_child.h"
#include "cli/http_client.h"

namespace ll {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kAdminKey = "ll_bench_admin_key_0123456789abcdef";

struct Options {
  std::string landlord = LL_LANDLORD_BIN;
  int seconds = 8;
  int connections = 32;
  int watchers = 1000;
  int rounds = 5;
  std::string json_out;
};

[[noreturn]] void Die(const std::string& msg) {
  fmt::print(stderr, "landlord_api_bench: {}\n", msg);
  std::exit(1);
}

std::string Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// ---------------------------------------------------------------- wrk

struct WrkResult {
  std::string name;
  double rps = 0;
  double p50_ms = 0, p99_ms = 0;
  int64_t requests = 0, non2xx = 0, socket_errors = 0;
};

double ToMs(double v, const std::string& unit) {
  if (unit == "us") return v / 1000;
  if (unit == "s") return v * 1000;
  if (unit == "m") return v * 60'000;
  return v;  // ms
}

WrkResult RunWrk(const Options& o, const std::string& name, const std::string& url, const std::string& script,
                 const std::string& args) {
  // One wrk thread: on a 2-core machine the server's one I/O thread gets the other core.
  std::string cmd = fmt::format("wrk -t1 -c{} -d{}s --latency -s {} {} -- {} 2>&1", o.connections, o.seconds,
                                script, url, args);
  fmt::print(stderr, "  wrk: {} ({} s)\n", name, o.seconds);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) Die("cannot run wrk (Debian package `wrk`)");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0) Die(fmt::format("wrk failed:\n{}", out));
  WrkResult r;
  r.name = name;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) r.rps = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(\s50%\s+([0-9.]+)(us|ms|s|m)\b)"))) r.p50_ms = ToMs(std::stod(m[1]), m[2]);
  if (std::regex_search(out, m, std::regex(R"(\s99%\s+([0-9.]+)(us|ms|s|m)\b)"))) r.p99_ms = ToMs(std::stod(m[1]), m[2]);
  if (std::regex_search(out, m, std::regex(R"((\d+) requests in)"))) r.requests = std::stoll(m[1]);
  if (std::regex_search(out, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))"))) r.non2xx = std::stoll(m[1]);
  if (std::regex_search(out, m, std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))"))) {
    r.socket_errors = std::stoll(m[1]) + std::stoll(m[2]) + std::stoll(m[3]) + std::stoll(m[4]);
  }
  if (r.rps == 0) Die(fmt::format("could not read wrk's output:\n{}", out));
  return r;
}

// The wrk script: `request()` picks the next request by the mix in args (percent create,
// get, list; the rest is GET /healthz); gets hit the pre-created leases at random.
constexpr const char* kWrkLua = R"lua(
local hdr, n, create, get, list
function init(args)
  hdr = {["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json"}
  n = tonumber(args[2]); create = tonumber(args[3]); get = tonumber(args[4]); list = tonumber(args[5])
  math.randomseed(7)
end
local i = 0
function request()
  i = i + 1
  local r = i % 100
  if r < create then
    return wrk.format("POST", "/v1/leases", hdr, '{"gpus": 1, "max_price_per_gpu_hour": "100.00"}')
  elseif r < create + get then
    return wrk.format("GET", string.format("/v1/leases/lease_%06d", math.random(n)), hdr)
  elseif r < create + get + list then
    return wrk.format("GET", "/v1/leases?limit=20", hdr)
  end
  return wrk.format("GET", "/healthz", {})
end
)lua";

// ---------------------------------------------------------------- SSE fan-out

// W connections following one lease's events on one Asio thread; each notes when its
// `released` event arrives.
class Watchers {
 public:
  Watchers(const tcp::endpoint& ep, const std::string& request, int n) : request_(request) {
    for (int i = 0; i < n; ++i) {
      auto w = std::make_shared<Watcher>(ioc_);
      watchers_.push_back(w);
      w->sock.async_connect(ep, [this, w](boost::system::error_code ec) {
        if (ec) return Fail(ec);
        net::async_write(w->sock, net::buffer(request_), [this, w](boost::system::error_code e, size_t) {
          if (e) return Fail(e);
          Read(w);
        });
      });
    }
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Watchers() {
    net::post(ioc_, [this] {
      for (auto& w : watchers_) {
        boost::system::error_code ignored;
        w->sock.close(ignored);
      }
    });
    thread_.join();
  }
  int active() const { return active_.load(); }
  int done() const { return done_.load(); }
  int failed() const { return failed_.load(); }
  // Delivery delays from t0, ms, of those that got the event.
  std::vector<double> Delays(Clock::time_point t0) const {
    std::vector<double> out;
    for (auto& w : watchers_) {
      if (w->released) out.push_back(std::chrono::duration<double, std::milli>(w->at - t0).count());
    }
    return out;
  }

 private:
  struct Watcher {
    explicit Watcher(net::io_context& ioc) : sock(ioc) {}
    tcp::socket sock;
    std::string text;
    char buf[4096];
    bool active = false, released = false;
    Clock::time_point at;
  };
  void Fail(boost::system::error_code) { ++failed_; }
  void Read(const std::shared_ptr<Watcher>& w) {
    w->sock.async_read_some(net::buffer(w->buf), [this, w](boost::system::error_code ec, size_t n) {
      if (ec) return;  // closed at the end (the server ends the stream after `released`)
      w->text.append(w->buf, n);
      if (!w->active && w->text.find("event: active") != std::string::npos) {
        w->active = true;
        ++active_;
      }
      if (!w->released && w->text.find("event: released") != std::string::npos) {
        w->at = Clock::now();
        w->released = true;
        ++done_;
        return;
      }
      Read(w);
    });
  }

  net::io_context ioc_;
  std::string request_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::atomic<int> active_{0}, done_{0}, failed_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------- usage ingestion

constexpr int kIngestBatch = 500;

struct IngestResult {
  double events_per_s = 0;
};

json UsageBatch(const std::string& tenant_id, int64_t* next) {
  json events = json::array();
  for (int i = 0; i < kIngestBatch; ++i, ++*next) {
    events.push_back({{"key", fmt::format("req_{}/0", *next)}, {"tenant_id", tenant_id}, {"model", "llama-3-8b"},
                      {"input_tokens", 100 + *next % 900}, {"output_tokens", 10 + *next % 300}});
  }
  return json{{"events", events}};
}

IngestResult IngestOverHttp(const cli::Url& url, const std::string& tenant_id, int seconds) {
  fmt::print(stderr, "  ingestion over HTTP ({} s)\n", seconds);
  std::atomic<int64_t> acked{0};
  std::vector<std::thread> senders;
  auto t0 = Clock::now();
  const auto end = t0 + std::chrono::seconds(seconds);
  for (int s = 0; s < 2; ++s) {
    senders.emplace_back([&, s] {
      cli::HttpClient c(url, kAdminKey);
      int64_t next = static_cast<int64_t>(s) << 40;
      while (Clock::now() < end) {
        // The body is built before the clock matters as much as it would in a gateway.
        std::string body = UsageBatch(tenant_id, &next).dump();
        auto r = c.Request("POST", "/admin/usage", body);
        if (!r.ok() || r->status != 200) Die(r.ok() ? r->body : r.status().ToString());
        acked += kIngestBatch;
      }
    });
  }
  for (auto& t : senders) t.join();
  return {static_cast<double>(acked.load()) / std::chrono::duration<double>(Clock::now() - t0).count()};
}

void SqliteOk(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) Die(fmt::format("sqlite {}: {}", what, sqlite3_errmsg(db)));
}

IngestResult IngestRawSqlite(const std::string& path, int seconds) {
  fmt::print(stderr, "  raw SQLite inserts ({} s)\n", seconds);
  sqlite3* db = nullptr;
  SqliteOk(sqlite3_open(path.c_str(), &db), db, "open");
  SqliteOk(sqlite3_exec(db,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        "CREATE TABLE usage_events (key TEXT PRIMARY KEY NOT NULL, tenant_id TEXT NOT NULL, "
                        "source TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL, period TEXT NOT NULL, "
                        "start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, quantity INTEGER NOT NULL, "
                        "unit TEXT NOT NULL, unit_price_micros INTEGER NOT NULL, amount_micros INTEGER NOT NULL) STRICT;"
                        "CREATE INDEX usage_by_tenant_period ON usage_events(tenant_id, period, start_ms);",
                        nullptr, nullptr, nullptr),
           db, "schema");
  sqlite3_stmt* ins = nullptr;
  SqliteOk(sqlite3_prepare_v2(db,
                              "INSERT INTO usage_events VALUES(?1, 'ten_bench', 'tokens', 'llama-3-8b', ?2, "
                              "'2024-01', ?3, ?3, ?4, 'tokens', 200000, ?5) ON CONFLICT(key) DO NOTHING",
                              -1, &ins, nullptr),
           db, "prepare");
  int64_t next = 0, events = 0;
  auto t0 = Clock::now();
  const auto end = t0 + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    SqliteOk(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
    for (int i = 0; i < kIngestBatch; ++i, ++next) {
      for (const char* unit : {"in", "out"}) {
        std::string key = fmt::format("req_{}/0/{}", next, unit);
        sqlite3_bind_text(ins, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, unit, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, 1'705'363'200'000 + next);
        sqlite3_bind_int64(ins, 4, 100 + next % 900);
        sqlite3_bind_int64(ins, 5, (100 + next % 900) / 5);
        SqliteOk(sqlite3_step(ins), db, "insert");
        sqlite3_reset(ins);
      }
    }
    SqliteOk(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    events += kIngestBatch;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return {static_cast<double>(events) / s};
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

bool WaitFor(const std::function<bool()>& cond, int seconds) {
  auto end = Clock::now() + std::chrono::seconds(seconds);
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

json Call(cli::HttpClient& c, const std::string& method, const std::string& target, const json& body, int want) {
  auto r = c.Request(method, target, body.is_null() ? "" : body.dump());
  if (!r.ok()) Die(r.status().ToString());
  if (r->status != want) Die(fmt::format("{} {}: HTTP {} {}", method, target, r->status, r->body));
  return json::parse(r->body);
}

int Run(const Options& o) {
  // 1,000 watchers and wrk's connections need descriptors on both sides of loopback.
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(o.watchers + o.connections + 256)) {
    Die(fmt::format("RLIMIT_NOFILE is {}; {} watchers need more (ulimit -n)", lim.rlim_cur, o.watchers));
  }

  std::string dir = "/tmp/landlord_api_bench_XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) Die("mkdtemp failed");
  std::string trace = Write(dir + "/owner.csv", "submit_s,gpus,duration_s\n0,8,3024000\n");
  std::string config = Write(dir + "/landlord.toml", fmt::format(R"([server]
listen = "127.0.0.1:0"
data_dir = "{0}/data"
max_connections = {2}
request_timeout_s = 60
[clock]
speed = 60
[fleet]
trace = "csv:{1}"
nodes = 12500
gpus_per_node = 8
history_h = 360
[policy]
name = "landlord"
reserved_min_history_h = 24
)",
                                                                       dir, trace, o.watchers + o.connections + 64));
  std::string lua = Write(dir + "/mix.lua", kWrkLua);
  fmt::print(stderr, "landlord_api_bench: starting {} serve (12,500 nodes × 8 GPUs) in {}\n", o.landlord, dir);
  auto child = testing::SpawnServe(o.landlord, config, kAdminKey);
  if (!child.ok()) Die(child.status().ToString());
  auto url = cli::ParseUrl(child->url);
  if (!url.ok()) Die(url.status().ToString());

  cli::HttpClient admin(*url, kAdminKey);
  json tenant = Call(admin, "POST", "/admin/tenants", {{"name", "bench"}}, 201);
  std::string key = Call(admin, "POST", "/admin/keys", {{"tenant_id", tenant["id"]}}, 201)["key"];
  cli::HttpClient tenant_client(*url, key);
  const int kLeases = 1000;
  fmt::print(stderr, "  creating {} leases\n", kLeases);
  for (int i = 0; i < kLeases; ++i) {
    Call(tenant_client, "POST", "/v1/leases", {{"gpus", 1}, {"max_price_per_gpu_hour", "100.00"}}, 201);
  }

  std::vector<WrkResult> wrk;
  auto mix = [&](const std::string& name, int create, int get, int list) {
    wrk.push_back(RunWrk(o, name, child->url, lua, fmt::format("{} {} {} {} {}", key, kLeases, create, get, list)));
  };
  mix("GET /healthz (floor)", 0, 0, 0);
  mix("GET /v1/leases/{id}", 0, 100, 0);
  mix("GET /v1/leases?limit=20", 0, 0, 100);
  mix("POST /v1/leases", 100, 0, 0);
  mix("mix 10/60/30", 10, 60, 30);

  // SSE fan-out.
  tcp::endpoint ep(net::ip::make_address(url->host), static_cast<uint16_t>(std::stoi(url->port)));
  std::vector<double> delays, deletes;
  int missed = 0;
  for (int round = 0; round < o.rounds; ++round) {
    json lease = Call(tenant_client, "POST", "/v1/leases", {{"gpus", 1}, {"max_price_per_gpu_hour", "100.00"}}, 201);
    std::string id = lease["id"];
    std::string req = fmt::format(
        "GET /v1/leases/{}/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        id, url->host, key);
    fmt::print(stderr, "  SSE round {}/{}: {} watchers on {}\n", round + 1, o.rounds, o.watchers, id);
    Watchers w(ep, req, o.watchers);
    if (!WaitFor([&] { return w.active() + w.failed() >= o.watchers; }, 60) || w.failed() > 0) {
      Die(fmt::format("only {} of {} watchers connected ({} failed)", w.active(), o.watchers, w.failed()));
    }
    auto t0 = Clock::now();
    Call(tenant_client, "DELETE", "/v1/leases/" + id, nullptr, 200);
    deletes.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    WaitFor([&] { return w.done() >= o.watchers; }, 30);
    missed += o.watchers - w.done();
    auto d = w.Delays(t0);
    delays.insert(delays.end(), d.begin(), d.end());
  }
  // Durable usage ingestion: batches of token usage over loopback (the gateway's path), then
  // raw batched inserts of the same rows into a bare SQLite file (WAL, synchronous=FULL).
  IngestResult ours = IngestOverHttp(*url, tenant["id"], o.seconds);
  IngestResult raw = IngestRawSqlite(dir + "/raw.db", o.seconds);

  testing::StopServe(*child, SIGTERM);
  std::string rm = "rm -rf '" + dir + "'";
  if (std::system(rm.c_str()) != 0) fmt::print(stderr, "could not remove {}\n", dir);

  // Report.
  const double floor = wrk[0].rps;
  fmt::print("\nlease API over loopback (wrk -t1 -c{} -d{}s; one server I/O thread)\n", o.connections, o.seconds);
  fmt::print("{:<26} {:>10} {:>9} {:>9} {:>9} {:>8}\n", "request", "req/s", "vs floor", "p50 ms", "p99 ms", "non-2xx");
  for (const auto& r : wrk) {
    fmt::print("{:<26} {:>10.0f} {:>9.3f} {:>9.2f} {:>9.2f} {:>8}\n", r.name, r.rps, r.rps / floor, r.p50_ms, r.p99_ms,
               r.non2xx + r.socket_errors);
  }
  fmt::print("\nSSE fan-out: {} watchers × {} rounds, delay from DELETE to each watcher's `released`\n", o.watchers,
             o.rounds);
  fmt::print("  delivery p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms; missed {}\n", Quantile(delays, 0.5),
             Quantile(delays, 0.99), Quantile(delays, 1.0), missed);
  fmt::print("  baseline: the DELETE's own round trip p50 {:.2f} ms; delivery p99 / that = {:.1f}\n",
             Quantile(deletes, 0.5), Quantile(delays, 0.99) / std::max(1e-9, Quantile(deletes, 0.5)));
  fmt::print("\ndurable usage ingestion, batches of {} events (2 rows each), {} s each\n", kIngestBatch, o.seconds);
  fmt::print("  POST /admin/usage over loopback (2 clients): {:>10.0f} events/s\n", ours.events_per_s);
  fmt::print("  raw SQLite batched inserts (WAL, FULL sync):  {:>10.0f} events/s\n", raw.events_per_s);
  fmt::print("  ratio: {:.2f} of raw (target >= 0.50)\n", ours.events_per_s / raw.events_per_s);
  if (!o.json_out.empty()) {
    json j;
    for (const auto& r : wrk) {
      j["wrk"].push_back({{"name", r.name}, {"rps", r.rps}, {"vs_floor", r.rps / floor}, {"p50_ms", r.p50_ms},
                          {"p99_ms", r.p99_ms}, {"requests", r.requests}, {"errors", r.non2xx + r.socket_errors}});
    }
    j["ingest"] = {{"batch", kIngestBatch}, {"ours_events_per_s", ours.events_per_s},
                   {"raw_events_per_s", raw.events_per_s}, {"ratio", ours.events_per_s / raw.events_per_s}};
    j["sse"] = {{"watchers", o.watchers}, {"rounds", o.rounds}, {"p50_ms", Quantile(delays, 0.5)},
                {"p99_ms", Quantile(delays, 0.99)}, {"max_ms", Quantile(delays, 1.0)}, {"missed", missed},
                {"delete_p50_ms", Quantile(deletes, 0.5)}};
    std::ofstream(o.json_out) << j.dump(2) << "\n";
  }
  return missed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ll

int main(int argc, char** argv) {
  ll::Options o;
  CLI::App app("The lease API under load on loopback: wrk mix and SSE fan-out (docs/benchmarks.md)");
  app.add_option("--landlord", o.landlord, "The landlord binary");
  app.add_option("--seconds", o.seconds, "Seconds per wrk run")->check(CLI::Range(1, 600));
  app.add_option("--connections", o.connections, "wrk connections")->check(CLI::Range(1, 10000));
  app.add_option("--watchers", o.watchers, "SSE watchers per round")->check(CLI::Range(1, 100000));
  app.add_option("--rounds", o.rounds, "SSE rounds")->check(CLI::Range(1, 1000));
  app.add_option("--json", o.json_out, "Also write the figures as JSON here");
  CLI11_PARSE(app, argc, argv);
  return ll::Run(o);
}
