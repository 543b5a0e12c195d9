// The client's side of a lease's workload: the command after `--` of `lease create`, `lease
// logs ID [-f]` and `lease ssh ID` (docs/workloads.md).
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/client_internal.h"

namespace ll::cli::client {

Status AddWorkload(const State& s, Json* body) {
  if (s.command.empty()) {
    if (!s.env.empty() || !s.ssh_key_files.empty()) return Status::Invalid("`--env` and `--ssh-key` need a command after `--`");
    return Status::Ok();
  }
  Json w = {{"command", s.command}};
  if (!s.env.empty()) {
    Json env = Json::object();
    for (const std::string& kv : s.env) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return Status::Invalid(fmt::format("`--env {}`: must be NAME=VALUE", kv));
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    w["env"] = env;
  }
  if (!s.ssh_key_files.empty()) {
    Json keys = Json::array();
    for (const std::string& path : s.ssh_key_files) {
      std::ifstream in(path);
      if (!in) return Status::Invalid(fmt::format("`--ssh-key {}`: cannot read it", path));
      for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line[0] != '#') keys.push_back(line);
      }
    }
    w["ssh_public_keys"] = keys;
  }
  (*body)["workload"] = w;
  return Status::Ok();
}

int RunLogs(State& s) {
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(s.common, &exit_code);
  if (client == nullptr) return exit_code;
  const std::string target = "/v1/leases/" + PathSegment(s.id) + "/logs";
  if (!s.follow) {
    auto res = client->Request("GET", target);
    if (!res.ok()) return Fail(res.status());
    if (res->status >= 400) return FailResponse(*res);
    std::fwrite(res->body.data(), 1, res->body.size(), stdout);
    return 0;
  }
  Status st = client->StreamText(target + "?follow=true", [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  return st.ok() ? 0 : Fail(st);
}

// Execs `ssh` with the lease's access line, its host key pinned in a known_hosts file of its own.
int RunSsh(State& s) {
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(s.common, &exit_code);
  if (client == nullptr) return exit_code;
  auto res = client->Request("GET", "/v1/leases/" + PathSegment(s.id));
  if (!res.ok()) return Fail(res.status());
  if (res->status >= 400) return FailResponse(*res);
  const Json lease = Json::parse(res->body, nullptr, false);
  const Json* ssh = nullptr;
  if (lease.is_object() && lease.contains("workload") && lease["workload"].is_object() && lease["workload"].contains("ssh")) {
    ssh = &lease["workload"]["ssh"];
  }
  if (ssh == nullptr || !(*ssh)["argv"].is_array() || (*ssh)["argv"].empty()) {
    return Fail(Status::NotFound(fmt::format("lease `{}` has no SSH access (a running workload with `--ssh-key`)", s.id)));
  }
  char path[] = "/tmp/landlord-known-hosts-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return Fail(Status::Io("cannot make a known_hosts file in /tmp"));
  const std::string line = (*ssh)["known_hosts"].get<std::string>() + "\n";
  const bool wrote = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!wrote) return Fail(Status::Io(fmt::format("cannot write `{}`", path)));
  std::vector<std::string> args;
  for (const auto& a : (*ssh)["argv"]) args.push_back(a.get<std::string>());
  args.insert(args.begin() + 1, {"-o", std::string("UserKnownHostsFile=") + path, "-o", "StrictHostKeyChecking=yes"});
  if (!s.identity.empty()) args.insert(args.begin() + 1, {"-i", s.identity, "-o", "IdentitiesOnly=yes"});
  args.insert(args.end(), s.command.begin(), s.command.end());  // a remote command, after `--`
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  execvp(argv[0], argv.data());
  return Fail(Status::Io(fmt::format("cannot run `{}`", args[0])));
}

}  // namespace ll::cli::client
