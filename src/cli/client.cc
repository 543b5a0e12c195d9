// `landlord lease|quote|admin`: thin commands over the HTTP API (docs/api.md). Each one sends
// one request (or reads one event stream), then prints the JSON answer raw (`--json`) or as a
// table / `key: value` lines (client_print.cc). Exit codes: 0 ok, 1 a server or transport
// error, 2 a usage error. `lease watch` is in lease_watch.cc.
#include "cli/client.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/client_internal.h"
#include "cli/client_print.h"
#include "cli/http_client.h"
#include "core/money.h"
#include "core/time.h"

namespace ll::cli {
namespace client {
namespace {

constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";

std::string EnvOr(const char* name, std::string_view fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

// Set for a `--json` command: its errors are JSON on stdout too, so that a script reads one
// format whatever happens.
bool g_json_errors = false;

}  // namespace

int Fail(const Status& st, int code, const std::string& body) {
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

int FailResponse(const HttpResponse& res) { return Fail(StatusFromResponse(res), kExitError, res.body); }

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

namespace {

// "?tenant_id=…" for the owner's key, and other query parameters, from the set ones.
std::string Query(std::initializer_list<std::pair<const char*, std::string>> params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (!v.empty()) q += fmt::format("{}{}={}", q.empty() ? "?" : "&", k, PathSegment(v));
  }
  return q;
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
  if (!s.notice_tier.empty()) {
    if (s.kind != "spot") return Fail(Status::Invalid("`--notice-tier` applies to `--kind spot` only"), kExitUsage);
    body["notice_tier"] = s.notice_tier;
  }
  if (!s.start_at.empty()) {
    if (s.kind != "reserved") return Fail(Status::Invalid("`--start-at` applies to `--kind reserved` only"), kExitUsage);
    auto t = ParseUtc(s.start_at);
    if (!t.ok()) return Fail(Status::Invalid("`--start-at`: " + t.status().message()), kExitUsage);
    body["start_at"] = FormatUtc(*t);
  }
  if (s.pool_opt->count() > 0) body["pool"] = s.pool;
  if (Status st = AddWorkload(s, &body); !st.ok()) return Fail(st, kExitUsage);
  return Call(s.common, "POST", "/v1/leases", body.dump(), PrintObject);
}

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

// `lease create|list|show|release|watch` and `quote`.
void AddLeaseCommands(CLI::App& app, State* s) {
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
  create->add_option("--notice-tier", s->notice_tier,
                     "spot: standard (the full reclaim notice) or flash (a short notice, reclaimed first, cheaper)")
      ->check(CLI::IsMember({"standard", "flash"}));
  s->duration_opt = create->add_option("--duration", s->duration_s, "reserved: the term in seconds")
                        ->check(CLI::Range(int64_t{1}, int64_t{366} * 86400));
  s->pool_opt = create->add_option("--pool", s->pool, "Place the lease in this pool");
  create->add_option("--start-at", s->start_at,
                     "reserved: book the term to start then (UTC, e.g. 2024-01-16T08:00:00Z; server clock)");
  create->add_option("command", s->command, "The workload: a command (argv) run on the lease's GPUs, after `--`");
  // One value per occurrence: a vector option would otherwise read on past `--`.
  create->add_option("--env", s->env, "The workload's environment: NAME=VALUE (repeatable)")->allow_extra_args(false);
  create->add_option("--ssh-key", s->ssh_key_files, "An OpenSSH public key file: log in with `lease ssh` (repeatable)")
      ->allow_extra_args(false);
  Register(s, create, RunCreate);

  CLI::App* list = lease->add_subcommand("list", "List your leases, newest first");
  list->add_option("--limit", s->limit, "At most this many (1..1000); default 100")->check(CLI::Range(1, 1000));
  list->add_option("--after", s->after, "Only leases older than this lease id (the next page)");
  Register(s, list, [](State& st) {
    std::string query;
    if (st.limit > 0) query += fmt::format("&limit={}", st.limit);
    if (!st.after.empty()) query += "&after=" + PathSegment(st.after);
    std::string target = "/v1/leases" + (query.empty() ? "" : "?" + query.substr(1));
    return Call(st.common, "GET", target, "", PrintLeases);
  });

  CLI::App* show = lease->add_subcommand("show", "Show one lease");
  show->add_option("id", s->id, "Lease id")->required();
  Register(s, show, [](State& st) {
    return Call(st.common, "GET", "/v1/leases/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* release = lease->add_subcommand("release", "Give a lease's GPUs back now");
  release->add_option("id", s->id, "Lease id")->required();
  Register(s, release, [](State& st) {
    return Call(st.common, "DELETE", "/v1/leases/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* watch = lease->add_subcommand(
      "watch", "Follow a lease's events until it ends, with a countdown once it is noticed");
  watch->add_option("id", s->id, "Lease id")->required();
  Register(s, watch, RunWatch);

  CLI::App* logs = lease->add_subcommand("logs", "The workload's output (stdout and stderr), newest kept");
  logs->add_option("id", s->id, "Lease id")->required();
  logs->add_flag("-f,--follow", s->follow, "Follow new output until the workload ends");
  Register(s, logs, RunLogs);

  CLI::App* ssh = lease->add_subcommand("ssh", "Log into the workload's environment (exec `ssh`)");
  ssh->add_option("id", s->id, "Lease id")->required();
  ssh->add_option("-i,--identity", s->identity, "The private key to log in with (ssh's -i; default: ssh's own)")
      ->check(CLI::ExistingFile);
  ssh->add_option("command", s->command, "A command to run there instead of a shell, after `--`");
  Register(s, ssh, RunSsh);

  CLI::App* quote = app.add_subcommand("quote", "Current spot price and reserved terms on offer");
  s->quote_gpus_opt =
      quote->add_option("--gpus", s->gpus, "Quote for this many GPUs")->check(CLI::Range(1, 1024));
  Register(s, quote, [](State& st) {
    std::string target = "/v1/quotes";
    if (st.quote_gpus_opt->count() > 0) target += fmt::format("?gpus={}", st.gpus);
    return Call(st.common, "GET", target, "", PrintQuote);
  });
}

// `invoice list|show`, `usage` and `balance`.
void AddBillingCommands(CLI::App& app, State* s) {
  CLI::App* invoice = app.add_subcommand("invoice", "Invoices (monthly, UTC)");
  invoice->require_subcommand(1);
  CLI::App* invoice_list = invoice->add_subcommand("list", "Your invoice periods and totals, newest first");
  invoice_list->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  Register(s, invoice_list, [](State& st) {
    return Call(st.common, "GET", "/v1/invoices" + Query({{"tenant_id", st.tenant}}), "", PrintInvoices);
  });
  CLI::App* invoice_show = invoice->add_subcommand("show", "One invoice's line items and total");
  invoice_show->add_option("period", s->period, "The month, YYYY-MM (UTC)")->required();
  invoice_show->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  invoice_show->add_flag("--csv", s->csv, "Print it as CSV (exact decimal amounts)");
  Register(s, invoice_show, RunInvoiceShow);

  CLI::App* usage = app.add_subcommand("usage", "Billed usage of a month, and what live leases accrue");
  usage->add_option("--period", s->period, "The month, YYYY-MM (default: the current one)");
  usage->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  usage->add_option("--after", s->after, "The next page (from the previous output)");
  Register(s, usage, [](State& st) {
    return Call(st.common, "GET",
                "/v1/usage" + Query({{"period", st.period}, {"tenant_id", st.tenant}, {"after", st.after}}), "",
                PrintUsage);
  });

  CLI::App* balance = app.add_subcommand("balance", "Your prepaid balance for the model API");
  balance->add_option("--tenant", s->tenant, "Owner: the tenant (ten_...)");
  Register(s, balance, [](State& st) {
    return Call(st.common, "GET", "/v1/balance" + Query({{"tenant_id", st.tenant}}), "", PrintObject);
  });
}

// `admin tenant create`, `admin key create|list|revoke` and `admin credit`.
void AddAdminCommands(CLI::App& app, State* s) {
  CLI::App* admin = app.add_subcommand("admin", "Operator commands (need an admin key)");
  admin->require_subcommand(1);
  CLI::App* tenant = admin->add_subcommand("tenant", "Tenants");
  tenant->require_subcommand(1);
  CLI::App* tenant_create = tenant->add_subcommand("create", "Create a tenant");
  tenant_create->add_option("name", s->name, "Tenant name")->required();
  Register(s, tenant_create, [](State& st) {
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
  Register(s, key_create, [](State& st) {
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
  Register(s, key_list, [](State& st) {
    const std::string limit = st.limit > 0 ? std::to_string(st.limit) : "";
    return Call(st.common, "GET", "/admin/keys" + Query({{"tenant_id", st.tenant}, {"limit", limit}, {"after", st.after}}),
                "", PrintKeys);
  });
  CLI::App* key_revoke = key->add_subcommand("revoke", "Revoke an API key: refused from now on (again: no change)");
  key_revoke->add_option("id", s->id, "Key id (key_...)")->required();
  Register(s, key_revoke, [](State& st) {
    return Call(st.common, "DELETE", "/admin/keys/" + PathSegment(st.id), "", PrintObject);
  });

  CLI::App* credit = admin->add_subcommand("credit", "Add to a tenant's prepaid balance (the model API's budget)");
  credit->add_option("--tenant", s->tenant, "Tenant id (ten_...)")->required();
  credit->add_option("--amount", s->amount, "Dollars, e.g. 10.00")->required();
  Register(s, credit, [](State& st) {
    Json body = {{"tenant_id", st.tenant}, {"amount", st.amount}};
    return Call(st.common, "POST", "/admin/credits", body.dump(), PrintObject);
  });
}

}  // namespace
}  // namespace client

std::function<std::optional<int>()> AddClientCommands(CLI::App& app) {
  auto s = std::make_shared<client::State>();
  s->common.url = client::EnvOr("LANDLORD_URL", client::kDefaultUrl);
  s->common.key = client::EnvOr("LANDLORD_API_KEY", "");

  client::AddLeaseCommands(app, s.get());
  client::AddBillingCommands(app, s.get());
  client::AddAdminCommands(app, s.get());

  return [s]() -> std::optional<int> {
    for (auto& [cmd, run] : s->commands) {
      if (!cmd->parsed()) continue;
      client::g_json_errors = s->common.json;
      try {
        return run(*s);
      } catch (const std::exception& e) {  // e.g. fmt failing to write to a closed pipe
        return client::Fail(Status(StatusCode::kInternal, e.what()));
      }
    }
    return std::nullopt;
  };
}

}  // namespace ll::cli
