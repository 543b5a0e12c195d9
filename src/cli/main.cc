// `landlord`: main() and subcommands only.
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "alloc/policy.h"
#include "api/config.h"
#include "api/ops_log.h"
#include "core/build_info.h"
#include "cli/client.h"
#include "cli/serve.h"
#include "fleet/slurm/slurm_check.h"
#include "gateway/prefix_sim.h"
#include "sim/experiment.h"
#include "sim/report.h"
#include "sim/trace.h"

namespace {

int RunRouting(const std::string& spec, ll::gateway::PrefixSimOptions o) {
  auto t = ll::sim::ReadLlmTrace(spec);
  if (!t.ok()) {
    fmt::print(stderr, "landlord routing: {}\n", t.status().message());
    return 2;
  }
  std::vector<ll::gateway::BlockRequest> trace;
  for (auto& r : t->requests) {
    if (r.blocks.empty()) {
      fmt::print(stderr, "landlord routing: `{}` has no KV block ids (`hash_ids`): use a Mooncake trace\n", spec);
      return 2;
    }
    trace.push_back({r.offset, r.input_tokens, r.output_tokens, std::move(r.blocks)});
  }
  fmt::print("{} requests from {}; {} replicas, {} blocks of prefix cache each\n\n", trace.size(), spec, o.replicas,
             o.cache_blocks);
  fmt::print("| routing | prefix-cache hit rate | busiest replica's share of requests |\n|---|---:|---:|\n");
  auto row = [&](const std::string& name, const ll::gateway::PrefixSimOptions& opt) {
    auto r = ll::gateway::SimulatePrefixRouting(trace, opt);
    fmt::print("| {} | {:.3f} | {:.3f} |\n", name, r.hit_rate, r.max_load_share);
  };
  ll::gateway::PrefixSimOptions least = o;
  least.router.affinity = false;
  row("least outstanding tokens", least);
  row(fmt::format("prefix affinity ({} blocks, slack {} tokens)", o.affinity_blocks, o.router.slack_tokens), o);
  ll::gateway::PrefixSimOptions bound = o;
  bound.replicas = 1;
  bound.cache_blocks = int64_t{1} << 40;
  row("bound: one replica, unlimited cache", bound);
  return 0;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// Reads the [prices] and [inference] tables of a TOML config (see docs/config.example.toml).
ll::Status LoadConfig(const std::string& path, ll::sim::SimOptions* o) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return ll::Status::Invalid(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  LL_RETURN_IF_ERROR(ll::api::LoadPrices(path, &o->prices));  // the same [prices] as `serve`
  auto integer = [&](const char* table, const char* key, int64_t lo, int64_t hi, auto* out) -> ll::Status {
    auto node = t[table][key];
    if (!node) return ll::Status::Ok();
    auto v = node.template value<int64_t>();
    if (!v || *v < lo || *v > hi) {
      return ll::Status::Invalid(fmt::format("{}: `{}.{}` must be an integer in [{}, {}]", path, table, key, lo, hi));
    }
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(*v);
    return ll::Status::Ok();
  };
  LL_RETURN_IF_ERROR(integer("inference", "tokens_per_s_per_gpu", 1, 10'000'000, &o->inference.tokens_per_s_per_gpu));
  if (auto s = t["inference"]["rate_scale"].value<double>()) {
    if (!(*s > 0)) return ll::Status::Invalid(path + ": `inference.rate_scale` must be > 0");
    o->inference.rate_scale = *s;
  }
  return ll::Status::Ok();
}

// `landlord sim`'s options, with the defaults `--help` shows.
struct SimArgs {
  std::string trace = "helios:data/helios_earth_2020_05";
  std::string policies = "baseline,spot-all,lend-limit:0.5,landlord,oracle";
  int64_t notice_s = 120;
  std::string external = "saturating";
  std::string inference;
  std::string json, svg, html, config;
  uint64_t seed = 1;
  double load_scale = 0.7;
  int nodes = 0, gpus_per_node = 8;
  bool check = false;
  int64_t reserved_h = 4;
  int64_t cooldown_min = 60;  // with the flash tier it bounds only the standard one (docs/sim.md)
  int64_t flash_notice_s = 30;
  int64_t min_runtime_s = 0;
  double delay_budget = 0.05;
  double flash_max_delay = ll::alloc::kDefaultFlashMaxDelay;
  double reserved_quantile = 1.0;
};

int RunSim(const SimArgs& a) {
  ll::sim::ExperimentOptions eo;
  eo.policies = Split(a.policies);
  eo.progress = isatty(STDERR_FILENO) != 0;
  ll::sim::SimOptions& so = eo.sim;
  so.notice = ll::Duration::Seconds(a.notice_s);
  so.seed = a.seed;
  so.external = a.external;
  so.inference.spec = a.inference;
  so.check_invariants = a.check;
  so.cooldown = ll::Duration::Minutes(a.cooldown_min);
  so.flash_notice = ll::Duration::Seconds(a.flash_notice_s);
  so.min_runtime = ll::Duration::Seconds(a.min_runtime_s);
  so.delay_budget = a.delay_budget;
  so.flash_max_delay = a.flash_max_delay;
  so.reserved_quantile = a.reserved_quantile;
  so.reserved_term = ll::Duration::Hours(a.reserved_h);
  if (!a.config.empty()) {
    ll::Status st = LoadConfig(a.config, &so);
    if (!st.ok()) {
      fmt::print(stderr, "landlord sim: {}\n", st.message());
      return 2;
    }
  }
  // Fail fast on a bad policy name, before reading a large trace.
  for (const std::string& name : eo.policies) {
    ll::Status st = ll::alloc::ValidatePolicyName(name);
    if (!st.ok()) {
      fmt::print(stderr, "landlord sim: {}\n", st.message());
      return 2;
    }
  }
  ll::sim::ReadOptions ro;
  ro.seed = a.seed;
  ro.load_scale = a.load_scale;
  ro.fleet.nodes = a.nodes;
  ro.fleet.gpus_per_node = a.gpus_per_node;
  auto trace = ll::sim::ReadTrace(a.trace, ro);
  if (!trace.ok()) {
    fmt::print(stderr, "landlord sim: {}\n", trace.status().message());
    return 2;
  }
  auto report = ll::sim::RunExperiment(*trace, eo);
  if (!report.ok()) {
    fmt::print(stderr, "landlord sim: {}\n", report.status().message());
    return 2;
  }
  std::fputs(ll::sim::FormatTable(*report).c_str(), stdout);
  const std::string title = fmt::format("landlord on {}: GPUs by class", trace->spec);
  const std::pair<const std::string*, std::function<ll::Status()>> outputs[] = {
      {&a.json, [&] { return ll::sim::WriteJson(a.json, *report); }},
      {&a.svg, [&] { return ll::sim::WriteSvg(a.svg, report->landlord_series, title); }},
      {&a.html, [&] { return ll::sim::WriteHtml(a.html, *report, fmt::format("landlord sim on {}", trace->spec)); }},
  };
  for (const auto& [path, write] : outputs) {
    if (path->empty()) continue;
    ll::Status st = write();
    if (!st.ok()) {
      fmt::print(stderr, "landlord sim: {}\n", st.message());
      return 1;
    }
  }
  return 0;
}

int RunSlurmCheck(const std::string& config_path, const std::string& partition, int64_t notice_s) {
  ll::api::ServeConfig config;
  if (!config_path.empty()) {
    ll::Status st = ll::api::LoadServeConfig(config_path, &config);
    if (!st.ok()) {
      fmt::print(stderr, "landlord slurm check: {}\n", st.message());
      return 2;
    }
  }
  if (!partition.empty()) config.slurm.partition = partition;
  if (notice_s > 0) config.notice = ll::Duration::Seconds(notice_s);
  auto problems = ll::fleet::CheckSlurm(config.slurm.partition, config.notice);
  if (!problems.ok()) {
    fmt::print(stderr, "landlord slurm check: {}\n", problems.status().message());
    return 2;
  }
  if (problems->empty()) {
    fmt::print("ok: partition `{}` is preempted by every other partition (partition_prio, CANCEL) after a GraceTime of "
               "{} s, the reclaim notice\n",
               config.slurm.partition, config.notice.ms / 1000);
    return 0;
  }
  for (const std::string& p : *problems) fmt::print("change: {}\n", p);
  fmt::print("{} change{} needed; then `scontrol reconfigure`\n", problems->size(), problems->size() == 1 ? "" : "s");
  return 1;
}

// Registers `sim` on `app`, its options stored in `*a`.
CLI::App* AddSimCommand(CLI::App& app, SimArgs* a) {
  CLI::App* sim = app.add_subcommand("sim", "Replay a trace and compare selling policies side by side");
  sim->add_option("--trace", a->trace,
                   "Owner demand: helios:DIR (per-VC occupancy), openb:DIR (Alibaba 2023 pods, re-sampled), "
                   "sacct:FILE (Slurm sacct --parsable2), csv:FILE (submit_s,gpus,duration_s[,priority])")
      ->capture_default_str();
  sim->add_option("--policies", a->policies,
                  "Comma-separated: baseline, spot-all, lend-limit:F, landlord, oracle")
      ->capture_default_str();
  sim->add_option("--notice", a->notice_s, "Reclaim notice in seconds")->check(CLI::Range(1, 86400))->capture_default_str();
  sim->add_option("--external", a->external,
                  "Tenant demand: `saturating` (every GPU offered is taken at the floor price) or a job trace "
                  "(csv:, sacct:, openb:) re-read as spot requests with seeded max prices")
      ->capture_default_str();
  sim->add_option("--inference", a->inference,
                  "Model-API demand: azure:PATH (Azure LLM 2023 CSV file or dir) or mooncake:FILE; "
                  "replicas serve `inference.tokens_per_s_per_gpu` from --config");
  sim->add_option("--json", a->json, "Write the metrics as JSON to FILE");
  sim->add_option("--svg", a->svg, "Write a stacked chart of the fleet by class (landlord policy) to FILE");
  sim->add_option("--html", a->html,
                  "Write one self-contained HTML report to FILE: the policy table and the dashboard's charts "
                  "(landlord policy)");
  sim->add_option("--seed", a->seed, "Seed for every random choice")->capture_default_str();
  sim->add_option("--load-scale", a->load_scale, "openb: target owner utilization of the fleet")
      ->check(CLI::Range(0.01, 5.0))
      ->capture_default_str();
  sim->add_option("--nodes", a->nodes, "sacct/csv: fleet size in nodes (0: fit the trace's peak)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sim->add_option("--gpus-per-node", a->gpus_per_node, "sacct/csv: GPUs per node")->check(CLI::Range(1, 64))->capture_default_str();
  sim->add_option("--config", a->config, "TOML file with [prices] and [inference] (see docs/config.example.toml)");
  sim->add_option("--cooldown", a->cooldown_min, "landlord: minutes a GPU the owner gave back stays unsold")
      ->check(CLI::Range(0, 24 * 60))
      ->capture_default_str();
  sim->add_option("--flash-notice", a->flash_notice_s,
                  "seconds of notice of the flash spot tier, sold on what the cooldown holds back and reclaimed first "
                  "(0: no flash tier)")
      ->check(CLI::Range(0, 24 * 3600))
      ->capture_default_str();
  sim->add_option("--min-runtime", a->min_runtime_s,
                  "seconds a spot lease runs before a notice, unless the owner would otherwise wait longer (0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{7} * 24 * 3600))
      ->capture_default_str();
  sim->add_option("--delay-budget", a->delay_budget, "landlord: target delayed fraction of owner GPU-time per pool")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sim->add_option("--flash-max-delay", a->flash_max_delay,
                  "landlord: sell flash in a pool and hour of the week only where the owner's expected delay per "
                  "flash GPU-hour (learned hazard of rises x flash notice) is at most this (0: everywhere)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sim->add_option("--reserved-quantile", a->reserved_quantile,
                  "landlord: size reserved terms to this quantile of the forecast demand (1: also above the owner's "
                  "peak so far)")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  sim->add_option("--reserved-term", a->reserved_h,
                  "landlord: hours of the reserved terms offered to tenants when the forecast allows (0: none)")
      ->check(CLI::Range(0, 24 * 7))
      ->capture_default_str();
  sim->add_flag("--check-invariants", a->check, "Check every allocator rule after every event (slow)");
  return sim;
}

// `landlord routing`'s options.
struct RoutingArgs {
  std::string trace = "mooncake:data/mooncake_fast25/conversation_trace.jsonl";
  ll::gateway::PrefixSimOptions options;
};

CLI::App* AddRoutingCommand(CLI::App& app, RoutingArgs* a) {
  auto* rt = app.add_subcommand("routing",
                                "Replay an LLM trace with KV block ids (Mooncake) against N replicas' prefix caches: "
                                "the gateway's prefix-affinity routing vs plain least-loaded");
  rt->add_option("--trace", a->trace, "mooncake:FILE (needs `hash_ids`)")->capture_default_str();
  rt->add_option("--replicas", a->options.replicas, "Model replicas")->check(CLI::Range(1, 1024))->capture_default_str();
  rt->add_option("--cache-blocks", a->options.cache_blocks, "Prefix-cache capacity per replica, in 512-token blocks")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  rt->add_option("--affinity-blocks", a->options.affinity_blocks, "Leading blocks hashed for affinity")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  rt->add_option("--slack-tokens", a->options.router.slack_tokens, "Affinity's load bound past the least-loaded replica")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  return rt;
}

// `landlord slurm check`'s options.
struct SlurmCheckArgs {
  std::string config, partition;
  int64_t notice_s = 0;
};

// Registers `slurm check`; returns the `check` subcommand.
CLI::App* AddSlurmCommand(CLI::App& app, SlurmCheckArgs* a) {
  auto* slurm = app.add_subcommand("slurm", "The slurm fleet backend")->require_subcommand(1);
  auto* slurm_check = slurm->add_subcommand(
      "check", "Check that the Slurm cluster (SLURM_CONF) is set up for `[fleet] backend = \"slurm\"` and print "
               "exactly what to change");
  slurm_check->add_option("--config", a->config, "landlord serve's TOML (the partition and the notice)");
  slurm_check->add_option("--partition", a->partition, "The landlord partition (default: the config's, or landlord)");
  slurm_check->add_option("--notice-s", a->notice_s, "The reclaim notice in seconds (default: the config's)")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  return slurm_check;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "landlord: sell the idle hours of a GPU fleet without getting in the owner's way.\n"
      "`landlord sim` replays a cluster trace and compares selling policies; `landlord serve` runs the\n"
      "control plane; `lease`, `quote` and `admin` talk to it."};
  app.require_subcommand(1);
  // The operational log (api/ops_log.h), to stderr: before or after the subcommand.
  app.fallthrough();
  std::string log_level = "info", log_format = "text";
  app.add_option("--log-level", log_level, "Log events at or above: debug, info, warn, error, off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "Log lines as `text` or `json` (JSON lines), on stderr")
      ->capture_default_str();
  bool access_log = false;
  app.add_flag("--access-log", access_log, "Log every HTTP request (route, status, duration) at info");
  app.set_version_flag("--version", fmt::format("landlord {} (commit {})", ll::BuildVersion(), ll::BuildCommit()));

  SimArgs sim_args;
  CLI::App* sim = AddSimCommand(app, &sim_args);
  RoutingArgs routing;
  CLI::App* rt = AddRoutingCommand(app, &routing);
  SlurmCheckArgs slurm;
  CLI::App* slurm_check = AddSlurmCommand(app, &slurm);
  auto serve = ll::cli::AddServeCommand(app);
  auto client = ll::cli::AddClientCommands(app);

  CLI11_PARSE(app, argc, argv);
  if (ll::Status st = ll::api::oplog::Setup(log_level, log_format); !st.ok()) {
    fmt::print(stderr, "landlord: {}\n", st.message());
    return 2;
  }
  ll::api::oplog::SetAccessLog(access_log);
  if (slurm_check->parsed()) return RunSlurmCheck(slurm.config, slurm.partition, slurm.notice_s);
  if (auto rc = serve()) return *rc;
  if (auto rc = client()) return *rc;
  if (rt->parsed()) return RunRouting(routing.trace, routing.options);
  if (sim->parsed()) return RunSim(sim_args);
  return 0;
}
