#include "api/serve_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ll::testing {

std::string TempDir() {
  std::string t = "/tmp/landlord_it_XXXXXX";
  char* d = mkdtemp(t.data());
  EXPECT_NE(d, nullptr);
  return t;
}

std::string WriteTraceCsv(const std::string& dir) {
  std::string path = dir + "/owner.csv";
  std::ofstream(path) << "submit_s,gpus,duration_s\n0,8,3024000\n";
  return path;
}

std::string TestConfig(const std::string& dir, const std::string& policy, const std::string& extra) {
  std::string path = dir + "/landlord.toml";
  std::ofstream(path) << fmt::format(R"([server]
listen = "127.0.0.1:0"
data_dir = "{0}/data"
request_timeout_s = 1
tick_ms = 20
[clock]
speed = 20
[fleet]
trace = "csv:{1}"
nodes = 4
gpus_per_node = 8
history_h = 360
[policy]
name = "{2}"
notice_s = 20
reserved_min_history_h = 24
{3}
{4}
)",
                                     dir, WriteTraceCsv(dir), policy, extra,
                                     // The lease tests count the fleet's GPUs: no model replicas on it
                                     // unless a test configures the gateway.
                                     extra.find("[gateway]") == std::string::npos ? "[gateway]\nsim_models = []" : "");
  return path;
}

ServeProcess::~ServeProcess() {
  if (running()) Kill9();
}

void ServeProcess::Start(const std::string& config) {
  auto c = SpawnServe(LL_LANDLORD_BIN, config, kAdminKey);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  child_ = *c;
}

int ServeProcess::Stop() { return StopServe(child_, SIGTERM); }

void ServeProcess::Kill9() { StopServe(child_, SIGKILL); }

cli::HttpClient ServeProcess::Client(const std::string& key) const {
  auto url = cli::ParseUrl(child_.url);
  EXPECT_TRUE(url.ok());
  return cli::HttpClient(*url, key);
}

nlohmann::json Json(const cli::HttpResponse& r) {
  return nlohmann::json::parse(r.body, nullptr, false);
}

std::string NewTenantKey(const ServeProcess& s, const std::string& name, std::string* tenant_id) {
  auto admin = s.Client(kAdminKey);
  auto t = admin.Request("POST", "/admin/tenants", nlohmann::json{{"name", name}}.dump());
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(t->status, 201) << t->body;
  std::string id = Json(*t)["id"];
  if (tenant_id != nullptr) *tenant_id = id;
  auto k = admin.Request("POST", "/admin/keys", nlohmann::json{{"tenant_id", id}}.dump());
  EXPECT_TRUE(k.ok());
  EXPECT_EQ(k->status, 201) << k->body;
  return Json(*k)["key"];
}

std::vector<nlohmann::json> WatchLease(const ServeProcess& s, const std::string& key, const std::string& id) {
  std::vector<nlohmann::json> events;
  Status st = s.Client(key).Stream("/v1/leases/" + id + "/events", [&](const cli::SseEvent& e) {
    nlohmann::json d = nlohmann::json::parse(e.data, nullptr, false);
    d["_event"] = e.event;
    events.push_back(d);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return events;
}

std::pair<std::string, int> Shell(const std::string& line) {
  FILE* p = popen((line + " 2>&1").c_str(), "r");
  if (p == nullptr) return {"popen failed", -1};
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

}  // namespace ll::testing
