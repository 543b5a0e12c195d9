// The operational log: what a person may be asked about later (leases created, noticed,
// reclaimed, released; tenants, keys, credits, policy changes as an audit trail of admin actions;
// fleet backend errors and recoveries; leader changes), one line per event with its ids, to
// stderr (the journal under systemd) through spdlog. Plain text or JSON lines (`--log-format`).
//
// Never a secret or a prompt: callers pass ids and chosen fields only, never a request body, a
// key or a model's input. Nothing here is on the model API's request path.
//
// Thread-safety: Write may be called from any thread (spdlog's _mt sink); Setup once, first.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ll::api::oplog {

enum class Level { kDebug, kInfo, kWarn, kError };

// `level`: debug, info, warn, error, off; `format`: text or json. Errors name the flag.
Status Setup(std::string_view level, std::string_view format);

bool Enabled(Level level);

// The access log (`--access-log`, off by default): one `access` line per HTTP request with its
// route label (no ids, no query), status and duration, at info. Off, a request pays one load.
void SetAccessLog(bool on);
bool AccessLogOn();
void Access(const std::string& route, int status, double seconds);

// One event: `event` (e.g. "lease.reclaim_notice") with its fields in order. Values are written
// as given (escaped: quoted in text when needed, JSON strings in json).
void Write(Level level, std::string_view event, std::initializer_list<std::pair<std::string_view, std::string>> fields);

// A message a command has always written to stderr as a plain line (`text`, e.g. "landlord
// serve: stopping ..."): as is in text format, so that nothing changes for a reader of the
// terminal; as the event `event` with the text as `message` in json, so that stderr holds only
// JSON lines.
void Say(Level level, std::string_view event, const std::string& text);

// The lease events the control plane publishes after their commit (control/event_log.h): one line
// each, `lease.<type>` with the lease, tenant, seq and the event's reason fields.
void LeaseEvent(int64_t seq, const std::string& lease_id, const std::string& tenant_id, const std::string& type,
                const nlohmann::json& data);

// An admin or tenant action that changed state (the route table, api/routes.cc): who (the
// principal), what (method, route, the ids the answer names), the result. Never the body.
void Audit(std::string_view principal, std::string_view method, std::string_view path, int status,
           const nlohmann::json& reply);

}  // namespace ll::api::oplog
