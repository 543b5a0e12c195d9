// A real `landlord serve` process for integration tests: its own temp dir, config, SQLite
// file and a port picked by the kernel (`--listen 127.0.0.1:0`, the first line of output).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/serve_child.h"
#include "cli/http_client.h"

namespace ll::testing {

inline constexpr const char* kAdminKey = "ll_test_admin_key_0123456789abcdef";

// A 32-GPU fleet (4 nodes of 8, one pool) whose owner runs one 8-GPU job for 35 days; the
// server starts 15 days in, so the forecast knows the owner's demand (8 GPUs).
std::string WriteTraceCsv(const std::string& dir);
// A config for `policy` with a 20 s notice at 20x (1 s of wall time) and a 1 s request timeout.
std::string TestConfig(const std::string& dir, const std::string& policy, const std::string& extra = "");

class ServeProcess {
 public:
  ServeProcess() = default;
  ~ServeProcess();
  // Starts `landlord serve --config config` and waits for its first line.
  void Start(const std::string& config);
  // SIGTERM; returns the exit status (expects a clean exit).
  int Stop();
  void Kill9();
  bool running() const { return child_.pid > 0; }
  pid_t pid() const { return child_.pid; }
  const std::string& url() const { return child_.url; }
  std::string address() const { return child_.url.substr(7); }

  cli::HttpClient Client(const std::string& key) const;

 private:
  ServeChild child_;
};

// Decoded JSON of a response (null when not JSON).
nlohmann::json Json(const cli::HttpResponse& r);

// Creates a tenant and a key for it; returns the key.
std::string NewTenantKey(const ServeProcess& s, const std::string& name, std::string* tenant_id = nullptr);

std::string TempDir();

// Runs a shell line (the test's own commands: the CLI, ssh-keygen, ssh, never a tenant's); its
// output (stdout and stderr) and exit status.
std::pair<std::string, int> Shell(const std::string& line);

// Whether something accepts TCP connections on 127.0.0.1:port.
bool Accepts(int port);

// Every event of a lease's stream until it ends (the lease reaches a final state); each event's
// data with its type as `_event`.
std::vector<nlohmann::json> WatchLease(const ServeProcess& s, const std::string& key, const std::string& id);

}  // namespace ll::testing
