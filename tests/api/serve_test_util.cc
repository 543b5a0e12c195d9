#include "api/serve_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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
)",
                                     dir, WriteTraceCsv(dir), policy, extra);
  return path;
}

ServeProcess::~ServeProcess() {
  if (pid_ > 0) Kill9();
}

void ServeProcess::Start(const std::string& config) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_ = fork();
  ASSERT_GE(pid_, 0);
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    setenv("LANDLORD_ADMIN_KEY", kAdminKey, 1);
    execl(LL_LANDLORD_BIN, LL_LANDLORD_BIN, "serve", "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  out_fd_ = fds[0];
  // The first line: "landlord serve: listening on http://127.0.0.1:PORT".
  std::string line;
  for (;;) {
    pollfd p{out_fd_, POLLIN, 0};
    ASSERT_GT(poll(&p, 1, 30'000), 0) << "landlord serve printed nothing in 30 s";
    char c;
    ASSERT_EQ(read(out_fd_, &c, 1), 1) << "landlord serve exited before listening";
    if (c == '\n') break;
    line += c;
  }
  size_t at = line.find("http://");
  ASSERT_NE(at, std::string::npos) << line;
  url_ = line.substr(at);
  address_ = url_.substr(7);
  // The rest of the output is not needed; keep the pipe drained so the server never blocks.
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
}

int ServeProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  close(out_fd_);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ServeProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  close(out_fd_);
}

cli::HttpClient ServeProcess::Client(const std::string& key) const {
  auto url = cli::ParseUrl(url_);
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

}  // namespace ll::testing
