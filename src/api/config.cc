#include "api/config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "gateway/engine_replicas.h"
#include "gateway/http_util.h"
#include "store/store.h"

namespace ll::api {
namespace {

// Typed access to `table.key` with the file and key in every error.
class Reader {
 public:
  // `prefix` names the tables of `t` in messages when `t` is itself nested ("prices.models.").
  Reader(const toml::table& t, std::string path, std::string prefix = "")
      : t_(t), path_(std::move(path)), prefix_(std::move(prefix)) {}

  Status Known(const char* table, std::initializer_list<const char*> keys) {
    const toml::table* tbl = t_[table].as_table();
    if (tbl == nullptr) {
      if (t_.contains(table)) return Error(table, "", "must be a table");
      return Status::Ok();
    }
    for (auto& [k, v] : *tbl) {
      bool ok = false;
      for (const char* key : keys) ok = ok || k.str() == key;
      if (!ok) {
        return Status::Invalid(fmt::format("{}:{}: unknown key `{}{}.{}`", path_, v.source().begin.line, prefix_,
                                           table, k.str()));
      }
    }
    return Status::Ok();
  }

  const toml::table& root() const { return t_; }

  Status Str(const char* table, const char* key, std::string* out) {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    auto v = node.value<std::string>();
    if (!v) return Error(table, key, "must be a string");
    *out = *v;
    return Status::Ok();
  }

  template <typename T>
  Status Int(const char* table, const char* key, int64_t lo, int64_t hi, T* out) {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    auto v = node.value<int64_t>();
    if (!v || *v < lo || *v > hi) return Error(table, key, fmt::format("must be an integer in [{}, {}]", lo, hi));
    *out = static_cast<T>(*v);
    return Status::Ok();
  }

  Status Real(const char* table, const char* key, double lo, double hi, double* out) {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    auto v = node.value<double>();
    if (!v || !(*v >= lo && *v <= hi)) return Error(table, key, fmt::format("must be a number in [{}, {}]", lo, hi));
    *out = *v;
    return Status::Ok();
  }

  Status Seconds(const char* table, const char* key, int64_t lo, int64_t hi, Duration* out) {
    int64_t s = out->ms / 1000;
    LL_RETURN_IF_ERROR(Int(table, key, lo, hi, &s));
    *out = Duration::Seconds(s);
    return Status::Ok();
  }

  Status Dollars(const char* table, const char* key, Money* out) {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    std::string text;
    if (auto s = node.value<std::string>()) {
      text = *s;
    } else if (auto i = node.value_exact<int64_t>()) {
      text = std::to_string(*i);
    } else if (auto d = node.value<double>()) {
      auto m = MoneyFromDouble(*d);  // 0.1234567 is refused, never rounded
      if (!m.ok()) return Error(table, key, m.status().message());
      text = FormatMoney(*m);
    } else {
      return Error(table, key, "must be a dollar amount");
    }
    auto m = ParseMoney(text);
    if (!m.ok()) return Error(table, key, m.status().message());
    if (m->micros < 0 || *m > kMaxAmount) {
      return Error(table, key, fmt::format("must be a dollar amount in [0, {}]", FormatMoney(kMaxAmount)));
    }
    *out = *m;
    return Status::Ok();
  }

  Status StrList(const char* table, const char* key, std::vector<std::string>* out) {
    auto node = t_[table][key];
    if (!node) return Status::Ok();
    const toml::array* a = node.as_array();
    if (a == nullptr) return Error(table, key, "must be an array of strings");
    out->clear();
    for (auto& e : *a) {
      auto s = e.value<std::string>();
      if (!s) return Error(table, key, "must be an array of strings");
      out->push_back(*s);
    }
    return Status::Ok();
  }

  Status Error(const char* table, const char* key, std::string_view what) {
    auto node = t_[table][key].node();
    int line = node != nullptr ? static_cast<int>(node->source().begin.line) : 0;
    return Status::Invalid(fmt::format("{}:{}: `{}{}.{}` {}", path_, line, prefix_, table, key, what));
  }

 private:
  const toml::table& t_;
  std::string path_;
  std::string prefix_;
};

Result<toml::table> ParseFile(const std::string& path) {
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    std::fclose(f);
  } else {
    return Status::Invalid(fmt::format("cannot read config `{}`: {}", path, std::strerror(errno)));
  }
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status::Invalid(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
}

// [prices.models."name"]: token prices of one served model.
Status ReadModelPrices(const toml::table& root, const std::string& path, market::PriceBook* pb) {
  auto node = root["prices"]["models"];
  if (!node) return Status::Ok();
  const toml::table* models = node.as_table();
  if (models == nullptr) {
    return Status::Invalid(fmt::format("{}:{}: `prices.models` must be a table of models", path,
                                       node.node()->source().begin.line));
  }
  Reader r(*models, path, "prices.models.");
  for (auto& [name, v] : *models) {
    const std::string model(name.str());
    if (!v.is_table()) {
      return Status::Invalid(fmt::format("{}:{}: `prices.models.{}` must be a table", path, v.source().begin.line, model));
    }
    LL_RETURN_IF_ERROR(r.Known(model.c_str(), {"input_per_mtok", "output_per_mtok"}));
    market::PriceBook::TokenPrices tp{pb->input_per_mtok, pb->output_per_mtok};
    LL_RETURN_IF_ERROR(r.Dollars(model.c_str(), "input_per_mtok", &tp.input_per_mtok));
    LL_RETURN_IF_ERROR(r.Dollars(model.c_str(), "output_per_mtok", &tp.output_per_mtok));
    pb->models[model] = tp;
  }
  return Status::Ok();
}

// reserved_terms = [{hours = 4, discount_pct = 20}, ...]: the terms on offer.
Status ReadReservedTerms(const toml::table& root, const std::string& path, market::PriceBook* pb) {
  auto node = root["prices"]["reserved_terms"];
  if (!node) return Status::Ok();
  const toml::array* a = node.as_array();
  auto fail = [&](const toml::node* n, std::string_view what) {
    return Status::Invalid(fmt::format("{}:{}: `prices.reserved_terms` {}", path, n->source().begin.line, what));
  };
  if (a == nullptr || a->empty()) return fail(node.node(), "must be a non-empty array of {hours, discount_pct}");
  std::vector<market::ReservedTerm> terms;
  for (const toml::node& e : *a) {
    const toml::table* t = e.as_table();
    if (t == nullptr) return fail(&e, "entries must be {hours = H, discount_pct = P}");
    for (auto& [k, v] : *t) {
      if (k.str() != "hours" && k.str() != "discount_pct") return fail(&v, fmt::format("unknown key `{}`", k.str()));
    }
    auto hours = (*t)["hours"].value<int64_t>();
    auto pct = (*t)["discount_pct"].value<double>();
    if (!hours || *hours < 1 || *hours > 24 * 366) return fail(&e, "`hours` must be an integer in [1, 8784]");
    if (!pct || !(*pct >= 0 && *pct < 100)) return fail(&e, "`discount_pct` must be a number in [0, 100)");
    if (!terms.empty() && Duration::Hours(*hours) <= terms.back().term) return fail(&e, "terms must grow");
    terms.push_back({Duration::Hours(*hours), static_cast<int>(std::lround(*pct * 10))});
  }
  pb->reserved_terms = std::move(terms);
  return Status::Ok();
}

Status ReadPrices(Reader& r, const std::string& path, market::PriceBook* pb) {
  LL_RETURN_IF_ERROR(r.Known("prices", {"gpu_model", "list_per_gpu_hour", "electricity_per_kwh", "wear_per_gpu_hour",
                                        "busy_watts", "idle_watts", "input_per_mtok", "output_per_mtok", "models",
                                        "reserved_terms", "flash_discount_pct"}));
  LL_RETURN_IF_ERROR(r.Str("prices", "gpu_model", &pb->gpu_model));
  LL_RETURN_IF_ERROR(r.Dollars("prices", "list_per_gpu_hour", &pb->list_per_gpu_hour));
  LL_RETURN_IF_ERROR(r.Dollars("prices", "electricity_per_kwh", &pb->electricity_per_kwh));
  LL_RETURN_IF_ERROR(r.Dollars("prices", "wear_per_gpu_hour", &pb->wear_per_gpu_hour));
  LL_RETURN_IF_ERROR(r.Dollars("prices", "input_per_mtok", &pb->input_per_mtok));
  LL_RETURN_IF_ERROR(r.Dollars("prices", "output_per_mtok", &pb->output_per_mtok));
  LL_RETURN_IF_ERROR(r.Int("prices", "busy_watts", 1, 5000, &pb->busy_watts));
  LL_RETURN_IF_ERROR(r.Int("prices", "idle_watts", 0, 5000, &pb->idle_watts));
  if (pb->idle_watts >= pb->busy_watts) return Status::Invalid(path + ": `prices.idle_watts` must be below `busy_watts`");
  double flash_pct = pb->flash_discount_permille / 10.0;
  LL_RETURN_IF_ERROR(r.Real("prices", "flash_discount_pct", 0, 99.9, &flash_pct));
  pb->flash_discount_permille = static_cast<int>(std::lround(flash_pct * 10));
  LL_RETURN_IF_ERROR(ReadModelPrices(r.root(), path, pb));
  return ReadReservedTerms(r.root(), path, pb);
}

// An array of tables such as [[gateway.upstreams]]: each entry's keys checked and read by `read`.
template <typename Fn>
Status ReadTableArray(const toml::table& root, const std::string& path, const char* table, const char* key,
                      std::initializer_list<const char*> keys, Fn read) {
  auto node = root[table][key];
  if (!node) return Status::Ok();
  const toml::array* a = node.as_array();
  auto fail = [&](const toml::node* n, std::string_view what) {
    return Status::Invalid(fmt::format("{}:{}: `{}.{}` {}", path, n->source().begin.line, table, key, what));
  };
  if (a == nullptr) return fail(node.node(), "must be an array of tables ([[...]])");
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::table* t = (*a)[i].as_table();
    if (t == nullptr) return fail(&(*a)[i], "entries must be tables");
    for (auto& [k, v] : *t) {
      bool ok = false;
      for (const char* name : keys) ok = ok || k.str() == name;
      if (!ok) return fail(&v, fmt::format("[{}]: unknown key `{}`", i, k.str()));
    }
    auto bad = [&](const char* field, std::string_view what) {
      const toml::node* n = t->get(field);
      return fail(n != nullptr ? n : &(*a)[i], fmt::format("[{}].{} {}", i, field, what));
    };
    LL_RETURN_IF_ERROR(read(*t, bad));
  }
  return Status::Ok();
}

// `replicas` and `gpus_per_replica` of a [[gateway.sim_models]] or [[gateway.engines]] entry.
template <typename Bad>
Status ReadReplicaCounts(const toml::table& t, Bad bad, gateway::SimModelConfig* m) {
  auto model = t["model"].value<std::string>();
  if (!model || model->empty()) return bad("model", "must be a model name");
  m->model = *model;
  if (auto n = t["replicas"]; n) {
    auto v = n.value<int64_t>();
    if (!v || *v < 1 || *v > 64) return bad("replicas", "must be an integer in [1, 64]");
    m->replicas = static_cast<int>(*v);
  }
  if (auto n = t["gpus_per_replica"]; n) {
    auto v = n.value<int64_t>();
    if (!v || *v < 0 || *v > 4096) return bad("gpus_per_replica", "must be an integer in [0, 4096]");
    m->gpus_per_replica = static_cast<int>(*v);
  }
  return Status::Ok();
}

// [[gateway.sim_models]]: simulated replicas.
Status ReadSimModels(const toml::table& root, const std::string& path, gateway::GatewayOptions* g) {
  return ReadTableArray(root, path, "gateway", "sim_models",
                        {"model", "replicas", "gpus_per_replica", "tokens_per_s", "first_token_ms"},
                        [&](const toml::table& t, auto bad) {
                          gateway::SimModelConfig m;
                          LL_RETURN_IF_ERROR(ReadReplicaCounts(t, bad, &m));
                          if (auto n = t["tokens_per_s"]; n) {
                            auto v = n.value<double>();
                            if (!v || !(*v >= 0 && *v <= 1e6)) return bad("tokens_per_s", "must be a number in [0, 1e6]");
                            m.tokens_per_s = *v;
                          }
                          if (auto n = t["first_token_ms"]; n) {
                            auto v = n.value<int64_t>();
                            if (!v || *v < 0 || *v > 600'000) return bad("first_token_ms", "must be an integer in [0, 600000]");
                            m.first_token = Duration::Millis(*v);
                          }
                          g->sim_models.push_back(m);
                          return Status::Ok();
                        });
}

// [[gateway.engines]]: a model whose replicas are real engine processes (llama.cpp's
// `llama-server`), placed on the fleet like simulated ones. The server and the model file must
// be there when the config is read: a replica that cannot start is found at startup, not at
// the first placement.
Status ReadEngines(const toml::table& root, const std::string& path, gateway::GatewayOptions* g) {
  return ReadTableArray(
      root, path, "gateway", "engines",
      {"model", "replicas", "gpus_per_replica", "engine", "server", "model_path", "args", "threads", "log_dir"},
      [&](const toml::table& t, auto bad) {
        gateway::SimModelConfig m;
        LL_RETURN_IF_ERROR(ReadReplicaCounts(t, bad, &m));
        for (const gateway::SimModelConfig& other : g->sim_models) {
          if (other.model == m.model) return bad("model", fmt::format("`{}` is served twice", m.model));
        }
        gateway::EngineConfig e;
        for (auto [key, out] : {std::pair{"engine", &e.engine}, std::pair{"server", &e.server},
                                std::pair{"model_path", &e.model_path}, std::pair{"log_dir", &e.log_dir}}) {
          if (auto n = t[key]; n) {
            auto v = n.template value<std::string>();
            if (!v) return bad(key, "must be a string");
            *out = *v;
          }
        }
        if (e.engine != "llama.cpp") return bad("engine", fmt::format("unknown engine `{}` (known: `llama.cpp`)", e.engine));
        if (e.server.empty()) return bad("server", "must name the server binary (`llama-server`)");
        if (e.model_path.empty()) return bad("model_path", "must name the model file (GGUF)");
        if (auto n = t["args"]; n) {
          const toml::array* a = n.as_array();
          if (a == nullptr) return bad("args", "must be an array of strings");
          for (auto& arg : *a) {
            auto v = arg.value<std::string>();
            if (!v) return bad("args", "must be an array of strings");
            e.args.push_back(*v);
          }
        }
        if (auto n = t["threads"]; n) {
          auto v = n.value<int64_t>();
          if (!v || *v < 1 || *v > 1024) return bad("threads", "must be an integer in [1, 1024]");
          e.threads = static_cast<int>(*v);
        }
        // The files are checked now (ValidateEngineConfig names `server` or `model_path`).
        if (Status st = gateway::ValidateEngineConfig(e); !st.ok()) {
          const bool server = st.message().find("`server`") != std::string::npos;
          return bad(server ? "server" : "model_path", st.message());
        }
        g->sim_models.push_back(m);
        g->engines[m.model] = std::move(e);
        return Status::Ok();
      });
}

Status ReadGateway(Reader& r, const std::string& path, ServeConfig* c) {
  LL_RETURN_IF_ERROR(r.Known("gateway", {"enabled", "rpm", "tpm", "max_output_tokens", "prefix_bytes", "affinity",
                                         "max_attempts", "connect_timeout_ms", "first_byte_timeout_s",
                                         "idle_timeout_s", "meter_flush_ms", "upstreams", "sim_models", "engines", "slices",
                                         "slice_ttl_ms", "slice_horizon_ms", "slice_idle_ms", "threads"}));
  const toml::table& root = r.root();
  for (auto [key, out] : {std::pair{"enabled", &c->gateway_enabled}, std::pair{"affinity", &c->gateway.router.affinity},
                           std::pair{"slices", &c->gateway.slices.enabled}}) {
    auto e = root["gateway"][key];
    if (!e) continue;
    auto v = e.is_boolean() ? e.value<bool>() : std::nullopt;  // value<bool>() also takes 0/1
    if (!v) return Status::Invalid(fmt::format("{}:{}: `gateway.{}` must be true or false", path, e.node()->source().begin.line, key));
    *out = *v;
  }
  gateway::GatewayOptions& g = c->gateway;
  LL_RETURN_IF_ERROR(r.Int("gateway", "rpm", 0, 100'000'000, &g.rpm));
  LL_RETURN_IF_ERROR(r.Int("gateway", "tpm", 0, 10'000'000'000, &g.tpm));
  LL_RETURN_IF_ERROR(r.Int("gateway", "max_output_tokens", 1, 1'000'000, &g.max_output_tokens));
  LL_RETURN_IF_ERROR(r.Int("gateway", "prefix_bytes", 0, 1 << 20, &g.prefix_bytes));
  LL_RETURN_IF_ERROR(r.Int("gateway", "max_attempts", 1, 16, &g.max_attempts));
  int64_t ms = g.connect_timeout.ms;
  LL_RETURN_IF_ERROR(r.Int("gateway", "connect_timeout_ms", 1, 600'000, &ms));
  g.connect_timeout = Duration::Millis(ms);
  LL_RETURN_IF_ERROR(r.Seconds("gateway", "first_byte_timeout_s", 1, 3600, &g.first_byte_timeout));
  LL_RETURN_IF_ERROR(r.Seconds("gateway", "idle_timeout_s", 1, 3600, &g.idle_timeout));
  ms = c->meter_flush.ms;
  LL_RETURN_IF_ERROR(r.Int("gateway", "meter_flush_ms", 0, 10'000, &ms));
  c->meter_flush = Duration::Millis(ms);
  LL_RETURN_IF_ERROR(r.Int("gateway", "threads", 0, 1024, &c->gateway_threads));
  for (auto [key, out] : {std::pair{"slice_ttl_ms", &g.slices.ttl}, std::pair{"slice_horizon_ms", &g.slices.horizon},
                          std::pair{"slice_idle_ms", &g.slices.idle}}) {
    ms = out->ms;
    LL_RETURN_IF_ERROR(r.Int("gateway", key, 100, 3'600'000, &ms));
    *out = Duration::Millis(ms);
  }
  const bool replaced = root["gateway"]["upstreams"] || root["gateway"]["sim_models"] || root["gateway"]["engines"];
  if (replaced) {
    g.upstreams.clear();
    g.sim_models.clear();
    g.engines.clear();
  }
  LL_RETURN_IF_ERROR(ReadTableArray(root, path, "gateway", "upstreams", {"model", "url"}, [&](const toml::table& t, auto bad) {
    gateway::UpstreamConfig u;
    auto model = t["model"].value<std::string>();
    auto url = t["url"].value<std::string>();
    if (!model || model->empty()) return bad("model", "must be a model name");
    if (!url) return bad("url", "must be a URL: http://HOST:PORT");
    std::string host, port;
    if (Status st = gateway::ParseHttpUrl(*url, &host, &port); !st.ok()) return bad("url", st.message());
    g.upstreams.push_back({*model, *url});
    return Status::Ok();
  }));
  LL_RETURN_IF_ERROR(ReadSimModels(root, path, &g));
  LL_RETURN_IF_ERROR(ReadEngines(root, path, &g));
  // A [[gateway.engines]] model's replicas on the Slurm fleet run its engine's server: the
  // command is derived here, not written twice (`fleet.slurm_model_command` is for the others).
  c->slurm.model_commands.clear();
  for (const auto& [model, e] : g.engines) {
    c->slurm.model_commands[model] = gateway::EngineShellCommand(e, "{addr}", "{port}");
  }
  return Status::Ok();
}

Status ReadWorkloads(Reader& r, const std::string& path, WorkloadConfig* w) {
  LL_RETURN_IF_ERROR(r.Known("workloads", {"enabled", "runtime_root", "memory_mb", "max_processes", "log_bytes",
                                           "sigterm_on_notice", "stop_grace_s", "keep_ended"}));
  for (auto [key, out] : {std::pair{"enabled", &w->enabled}, std::pair{"sigterm_on_notice", &w->sigterm_on_notice}}) {
    auto e = r.root()["workloads"][key];
    if (!e) continue;
    auto v = e.is_boolean() ? e.value<bool>() : std::nullopt;
    if (!v) return Status::Invalid(fmt::format("{}:{}: `workloads.{}` must be true or false", path, e.node()->source().begin.line, key));
    *out = *v;
  }
  LL_RETURN_IF_ERROR(r.Str("workloads", "runtime_root", &w->runtime_root));
  LL_RETURN_IF_ERROR(r.Int("workloads", "memory_mb", 0, 1 << 30, &w->memory_mb));
  LL_RETURN_IF_ERROR(r.Int("workloads", "max_processes", 0, 1 << 22, &w->max_processes));
  LL_RETURN_IF_ERROR(r.Int("workloads", "log_bytes", 1024, 1LL << 30, &w->log_bytes));
  LL_RETURN_IF_ERROR(r.Seconds("workloads", "stop_grace_s", 0, 3600, &w->stop_grace));
  return r.Int("workloads", "keep_ended", 0, 100'000, &w->keep_ended);
}

}  // namespace

Status LoadPrices(const std::string& path, market::PriceBook* prices) {
  LL_ASSIGN_OR_RETURN(toml::table t, ParseFile(path));
  Reader r(t, path);
  return ReadPrices(r, path, prices);
}

Status LoadServeConfig(const std::string& path, ServeConfig* c) {
  LL_ASSIGN_OR_RETURN(toml::table t, ParseFile(path));
  for (auto& [k, v] : t) {
    static const char* kTables[] = {"server", "clock", "fleet", "policy", "prices", "gateway", "workloads"};
    bool ok = false;
    for (const char* name : kTables) ok = ok || k.str() == name;
    if (!ok) return Status::Invalid(fmt::format("{}:{}: unknown table `{}`", path, v.source().begin.line, k.str()));
  }
  Reader r(t, path);
  LL_RETURN_IF_ERROR(r.Known("server", {"listen", "data_dir", "store", "max_connections", "max_body_bytes",
                                        "request_timeout_s", "tick_ms"}));
  LL_RETURN_IF_ERROR(r.Str("server", "listen", &c->listen));
  LL_RETURN_IF_ERROR(r.Str("server", "data_dir", &c->data_dir));
  LL_RETURN_IF_ERROR(r.Str("server", "store", &c->store));
  if (!c->store.empty() && !store::IsPostgresUrl(c->store)) {
    return r.Error("server", "store", "must be a postgresql:// URL (SQLite is the default: leave it out and set "
                   "`server.data_dir`)");
  }
  LL_RETURN_IF_ERROR(r.Int("server", "max_connections", 1, 1'000'000, &c->max_connections));
  LL_RETURN_IF_ERROR(r.Int("server", "max_body_bytes", 1024, 64 << 20, &c->max_body_bytes));
  LL_RETURN_IF_ERROR(r.Seconds("server", "request_timeout_s", 1, 3600, &c->request_timeout));
  int64_t tick_ms = c->tick.ms;
  LL_RETURN_IF_ERROR(r.Int("server", "tick_ms", 1, 60'000, &tick_ms));
  c->tick = Duration::Millis(tick_ms);

  LL_RETURN_IF_ERROR(r.Known("clock", {"speed"}));
  LL_RETURN_IF_ERROR(r.Real("clock", "speed", 0.001, 1e7, &c->speed));

  LL_RETURN_IF_ERROR(r.Known("fleet", {"backend", "trace", "nodes", "gpus_per_node", "history_h", "slurm_partition",
                                       "slurm_notify_url", "slurm_access", "slurm_sanitize", "slurm_poll_ms",
                                       "slurm_start_timeout_s", "slurm_model_command", "slurm_model_port",
                                       "slurm_container", "slurm_container_kill"}));
  LL_RETURN_IF_ERROR(r.Str("fleet", "backend", &c->backend));
  if (c->backend != "sim" && c->backend != "slurm") {
    return Status::Invalid(fmt::format("{}: `fleet.backend` must be \"sim\" or \"slurm\", got \"{}\"", path, c->backend));
  }
  LL_RETURN_IF_ERROR(r.Str("fleet", "slurm_partition", &c->slurm.partition));
  LL_RETURN_IF_ERROR(r.Str("fleet", "slurm_notify_url", &c->slurm.notify_url));
  LL_RETURN_IF_ERROR(r.Str("fleet", "slurm_access", &c->slurm.access));
  LL_RETURN_IF_ERROR(r.Str("fleet", "slurm_sanitize", &c->slurm.sanitize));
  LL_RETURN_IF_ERROR(r.Str("fleet", "slurm_model_command", &c->slurm.model_command));
  LL_RETURN_IF_ERROR(r.Int("fleet", "slurm_model_port", 1024, 65000, &c->slurm.model_port));
  LL_RETURN_IF_ERROR(r.StrList("fleet", "slurm_container", &c->slurm.container));
  LL_RETURN_IF_ERROR(r.StrList("fleet", "slurm_container_kill", &c->slurm.container_kill));
  int64_t poll_ms = c->slurm.poll.ms;
  LL_RETURN_IF_ERROR(r.Int("fleet", "slurm_poll_ms", 100, 600'000, &poll_ms));
  c->slurm.poll = Duration::Millis(poll_ms);
  LL_RETURN_IF_ERROR(r.Seconds("fleet", "slurm_start_timeout_s", 1, 86400, &c->slurm.start_timeout));
  LL_RETURN_IF_ERROR(r.Str("fleet", "trace", &c->trace));
  LL_RETURN_IF_ERROR(r.Int("fleet", "nodes", 0, 1'000'000, &c->nodes));
  LL_RETURN_IF_ERROR(r.Int("fleet", "gpus_per_node", 1, 64, &c->gpus_per_node));
  int64_t history_h = c->history.ms / 3'600'000;
  LL_RETURN_IF_ERROR(r.Int("fleet", "history_h", 0, 24 * 365, &history_h));
  c->history = Duration::Hours(history_h);

  LL_RETURN_IF_ERROR(r.Known("policy", {"name", "notice_s", "flash_notice_s", "min_runtime_s", "cooldown_min", "delay_budget", "warmup_h",
                                        "reserved_min_history_h", "headroom_gpus", "sellable_pools",
                                        "sample_every_s"}));
  LL_RETURN_IF_ERROR(r.Str("policy", "name", &c->policy));
  LL_RETURN_IF_ERROR(r.Seconds("policy", "notice_s", 1, 86400, &c->notice));
  LL_RETURN_IF_ERROR(r.Seconds("policy", "flash_notice_s", 0, 86400, &c->flash_notice));
  LL_RETURN_IF_ERROR(r.Seconds("policy", "min_runtime_s", 0, 7 * 86400, &c->min_runtime));
  int64_t m = c->cooldown.ms / 60'000;
  LL_RETURN_IF_ERROR(r.Int("policy", "cooldown_min", 0, 24 * 60, &m));
  c->cooldown = Duration::Minutes(m);
  LL_RETURN_IF_ERROR(r.Real("policy", "delay_budget", 0, 1, &c->delay_budget));
  int64_t h = c->warmup.ms / 3'600'000;
  LL_RETURN_IF_ERROR(r.Int("policy", "warmup_h", 0, 24 * 30, &h));
  c->warmup = Duration::Hours(h);
  h = c->reserved_min_history.ms / 3'600'000;
  LL_RETURN_IF_ERROR(r.Int("policy", "reserved_min_history_h", 0, 24 * 365, &h));
  c->reserved_min_history = Duration::Hours(h);
  LL_RETURN_IF_ERROR(r.Int("policy", "headroom_gpus", 0, 1'000'000, &c->headroom_gpus));
  LL_RETURN_IF_ERROR(r.StrList("policy", "sellable_pools", &c->sellable_pools));
  LL_RETURN_IF_ERROR(r.Seconds("policy", "sample_every_s", 1, 86400, &c->sample_every));

  LL_RETURN_IF_ERROR(ReadPrices(r, path, &c->prices));
  LL_RETURN_IF_ERROR(ReadWorkloads(r, path, &c->workloads));
  return ReadGateway(r, path, c);
}

}  // namespace ll::api
