// What the client commands (client.cc, lease_watch.cc) share: their options, how they report
// errors, and the one-request call. Private to src/cli.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/client_print.h"
#include "cli/http_client.h"
#include "core/status.h"

namespace ll::cli::client {

inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

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
  std::string notice_tier;  // spot: "standard" or "flash" ("": the server's default)
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
  std::vector<std::string> command;        // lease create: the workload's argv (after `--`)
  std::vector<std::string> env;            // lease create --env NAME=VALUE
  std::vector<std::string> ssh_key_files;  // lease create --ssh-key FILE
  bool follow = false;                     // lease logs -f
  std::string identity;                    // lease ssh -i FILE
  CLI::Option* max_price_opt = nullptr;
  CLI::Option* duration_opt = nullptr;
  CLI::Option* pool_opt = nullptr;
  CLI::Option* quote_gpus_opt = nullptr;
  // Not capturing the State: it owns these.
  std::vector<std::pair<CLI::App*, std::function<int(State&)>>> commands;
};

// Prints an error: a line on stderr, or with `--json` an OpenAI-style error object on stdout
// (`body`, the server's own error object, when it sent one). Returns `code` (the exit status).
int Fail(const Status& st, int code = kExitError, const std::string& body = "");

// The error of an HTTP answer of 400 or more.
int FailResponse(const HttpResponse& res);

// Percent-encodes one path segment (an id typed by a person).
std::string PathSegment(std::string_view s);

// The client for `o`, or exit code 2 with the reason printed.
std::unique_ptr<HttpClient> NewClient(const CommonOptions& o, int* exit_code);

// Sends one request and prints the answer: raw with `--json`, else through `print`.
int Call(const CommonOptions& o, std::string_view method, const std::string& target,
         const std::string& body, const std::function<void(const Json&)>& print);

// `lease watch ID` (lease_watch.cc).
int RunWatch(State& s);

// The workload (lease_workload.cc): `lease create … -- COMMAND` into the body, `lease logs ID
// [-f]`, `lease ssh ID [-- COMMAND]`.
Status AddWorkload(const State& s, Json* body);
int RunLogs(State& s);
int RunSsh(State& s);

}  // namespace ll::cli::client
