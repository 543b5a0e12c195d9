#include "api/ops_log.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace ll::api::oplog {
namespace {

using json = nlohmann::json;

bool g_json = false;
std::atomic<bool> g_access{false};

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// A JSON string of `v` (invalid UTF-8 replaced, never a throw).
std::string Quoted(std::string_view v) {
  return json(std::string(v)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Text values stay bare when they are plain words (ids, numbers, times); else quoted.
bool Bare(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("_.:/@+-{}").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::shared_ptr<spdlog::logger>& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("landlord", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                                                                 spdlog::pattern_time_type::utc));
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::trace);  // a line is in the journal when its event happened
    return l;
  }();
  return logger;
}

// A string field of `j` or "".
std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump(-1, ' ', false, json::error_handler_t::replace);
}

using Field = std::pair<std::string_view, std::string>;

void WriteFields(Level level, std::string_view event, const Field* begin, const Field* end) {
  if (!Enabled(level)) return;
  std::string line;
  if (g_json) {
    line = "\"event\":" + Quoted(event);
    for (const Field* f = begin; f != end; ++f) {
      if (!f->second.empty()) line += "," + Quoted(f->first) + ":" + Quoted(f->second);
    }
  } else {
    line = std::string(event);
    for (const Field* f = begin; f != end; ++f) {
      if (!f->second.empty()) line += fmt::format(" {}={}", f->first, Bare(f->second) ? f->second : Quoted(f->second));
    }
  }
  Logger()->log(ToSpd(level), line);
}

}  // namespace

Status Setup(std::string_view level, std::string_view format) {
  spdlog::level::level_enum lvl;
  if (level == "debug") {
    lvl = spdlog::level::debug;
  } else if (level == "info") {
    lvl = spdlog::level::info;
  } else if (level == "warn") {
    lvl = spdlog::level::warn;
  } else if (level == "error") {
    lvl = spdlog::level::err;
  } else if (level == "off") {
    lvl = spdlog::level::off;
  } else {
    return Status::Invalid(fmt::format("--log-level: `{}` is not one of debug, info, warn, error, off", level));
  }
  if (format != "text" && format != "json") {
    return Status::Invalid(fmt::format("--log-format: `{}` is not one of text, json", format));
  }
  g_json = format == "json";
  auto& l = Logger();
  l->set_level(lvl);
  l->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      g_json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})" : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
      spdlog::pattern_time_type::utc));
  return Status::Ok();
}

bool Enabled(Level level) { return Logger()->should_log(ToSpd(level)); }

void SetAccessLog(bool on) { g_access.store(on, std::memory_order_relaxed); }
bool AccessLogOn() { return g_access.load(std::memory_order_relaxed); }

void Access(const std::string& route, int status, double seconds) {
  if (!AccessLogOn()) return;
  Write(Level::kInfo, "access",
        {{"route", route}, {"status", std::to_string(status)}, {"ms", fmt::format("{:.3f}", seconds * 1e3)}});
}

void Write(Level level, std::string_view event, std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  WriteFields(level, event, fields.begin(), fields.end());
}

void Say(Level level, std::string_view event, const std::string& text) {
  if (!g_json) {
    fmt::print(stderr, "{}\n", text);
    return;
  }
  Write(level, event, {{"message", text}});
}

void LeaseEvent(int64_t seq, const std::string& lease_id, const std::string& tenant_id, const std::string& type,
                const json& data) {
  if (!Enabled(Level::kInfo)) return;
  const json& lease = data.contains("lease") ? data["lease"] : json::object();
  Write(Level::kInfo, "lease." + type,
        {{"lease", lease_id},
         {"tenant", tenant_id},
         {"seq", std::to_string(seq)},
         {"state", Str(lease, "state")},
         {"kind", Str(lease, "kind")},
         {"gpus", Str(lease, "gpus")},
         {"price_per_gpu_hour", Str(lease, "price_per_gpu_hour")},
         {"reason", Str(data, "reason")},
         {"reclaim_at", Str(data, "reclaim_at")},
         {"end_reason", Str(lease, "end_reason")},
         {"message", Str(data, "message")}});
}

void Audit(std::string_view principal, std::string_view method, std::string_view path, int status, const json& reply) {
  if (!Enabled(Level::kInfo)) return;
  std::vector<Field> fields = {{"principal", std::string(principal)},
                               {"method", std::string(method)},
                               {"path", std::string(path)},
                               {"status", std::to_string(status)}};
  // Only ids and plain state from the answer, by name: never `key` (a new key's secret), never
  // what a tenant wrote (names, workloads).
  static constexpr std::array<std::pair<const char*, const char*>, 11> kKept = {{
      {"object", "object"}, {"id", "id"}, {"tenant_id", "tenant"}, {"state", "state"}, {"credited", "credited"},
      {"available", "available"}, {"policy", "policy"}, {"notice_s", "notice_s"},
      {"floor_per_gpu_hour", "floor_per_gpu_hour"}, {"headroom_gpus", "headroom_gpus"},
      {"sellable_pools", "sellable_pools"}}};
  if (reply.is_object()) {
    for (const auto& [key, name] : kKept) fields.emplace_back(name, Str(reply, key));
    if (reply.contains("error") && reply["error"].is_object()) fields.emplace_back("error", Str(reply["error"], "code"));
  }
  WriteFields(status >= 500 ? Level::kError : Level::kInfo, "audit", fields.data(), fields.data() + fields.size());
}

}  // namespace ll::api::oplog
