#include "fleet/slurm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

extern char** environ;

namespace ll::fleet {
namespace {

using nlohmann::json;

struct Output {
  int rc = -1;
  std::string out, err;
};

// Runs argv (found on PATH) with a time limit; stdin is /dev/null; `env` ("K=V") is added to
// (or replaces in) the server's environment.
Result<Output> Run(const std::vector<std::string>& argv, Duration timeout = Duration::Seconds(15),
                   const std::vector<std::string>& env = {}) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::Internal(fmt::format("pipe: {}", std::strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Internal(fmt::format("pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    bool replaced = false;
    for (const std::string& x : env) replaced = replaced || kv.substr(0, kv.find('=') + 1) == x.substr(0, x.find('=') + 1);
    if (!replaced) envp.push_back(*e);
  }
  for (const std::string& x : env) envp.push_back(const_cast<char*>(x.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return Status::Unavailable(fmt::format("cannot run `{}`: {}", argv[0], std::strerror(rc)));
  }
  Output o;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout.ms);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  char buf[65536];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? o.out : o.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return Status::Unavailable(fmt::format("`{}` did not answer within {} s", argv[0], timeout.ms / 1000));
  o.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

// Best effort (cleanup, draining): a failure is logged, not returned.
void RunLogged(const std::vector<std::string>& argv) {
  auto o = Run(argv);
  if (!o.ok() || o->rc != 0) {
    std::string what;
    for (const std::string& a : argv) what += (what.empty() ? "" : " ") + a;
    fmt::print(stderr, "landlord serve: `{}` failed: {}\n", what,
               o.ok() ? (o->err.empty() ? o->out : o->err) : o.status().message());
  }
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// `cmd args...` whose non-zero exit is an error carrying its stderr.
Result<std::string> Call(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
  LL_ASSIGN_OR_RETURN(Output o, Run(argv, Duration::Seconds(15), env));
  if (o.rc != 0) {
    std::string what;
    for (const std::string& a : argv) what += (what.empty() ? "" : " ") + a;
    return Status::Unavailable(fmt::format("`{}` failed (exit {}): {}", what, o.rc, Trim(o.err.empty() ? o.out : o.err)));
  }
  return o.out;
}

// GPUs in a gres string: "gpu:8", "gpu:h100:8", "gpu:8(S:0-1)", "gres:gpu:8"; 0 if none.
Gpus GpusOf(const std::string& gres) {
  Gpus total = 0;
  std::stringstream ss(gres);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.rfind("gres:", 0) == 0) item = item.substr(5);
    if (item.rfind("gres/", 0) == 0) item = item.substr(5);
    if (item.rfind("gpu", 0) != 0) continue;
    item = item.substr(0, item.find('('));
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos) {
      total += 1;
      continue;
    }
    Gpus n = 0;
    const std::string count = item.substr(colon + 1);
    auto [p, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec == std::errc() && p == count.data() + count.size()) total += n;
  }
  return total;
}

// The job id `sbatch --parsable` printed ("123" or "123;cluster").
Result<int64_t> JobId(const std::string& out) {
  const std::string text = Trim(out);
  const std::string id = text.substr(0, text.find(';'));
  int64_t job = 0;
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), job);
  if (ec != std::errc() || p != id.data() + id.size() || job <= 0) {
    return Status::Internal(fmt::format("sbatch answered `{}`", text));
  }
  return job;
}

bool Terminal(const std::string& state) {
  return state != "PENDING" && state != "RUNNING" && state != "COMPLETING" && state != "CONFIGURING" &&
         state != "SUSPENDED" && state != "REQUEUED" && state != "RESIZING";
}

std::string JobName(const std::string& lease_id) { return "ll_" + lease_id; }

constexpr const char* kHolderScript = R"SH(#!/bin/bash
# landlord holder job: holds a lease's nodes for the tenant. Its work is one srun step per node,
# because Slurm signals steps (not the batch shell) when it preempts the job: on SIGTERM the
# step posts the reclaim notice to landlord and keeps running until the grace ends. A step that
# ends while the job goes on (slurmctld restarted without it) is started again.
STEP=$(cat <<'STEP_END'
notify() {
  curl -fsS -m 5 -o /dev/null -X POST "$LL_NOTIFY_URL/slurm/notice" -H 'content-type: application/json' \
    --data "{\"lease\":\"$LL_LEASE\",\"token\":\"$LL_TOKEN\",\"node\":\"$SLURMD_NODENAME\"}" || true
}
trap notify TERM
# The sleep keeps no pipe of the step's: one left behind by a kill must not hold the step's
# output open (slurmstepd then waits 60 s for it, and the nodes stay COMPLETING).
while :; do
  sleep 3600 </dev/null >/dev/null 2>&1 &
  wait $!
  kill $! 2>/dev/null
done
STEP_END
)
while :; do
  srun --ntasks-per-node=1 bash -c "$STEP"
  sleep 2
done
)SH";

constexpr const char* kReplicaScript = R"SH(#!/bin/bash
# landlord model replica job: runs the model server on its node, registers its URL with landlord
# once it answers, and on Slurm's preemption SIGTERM reports the notice (landlord drains it) and
# keeps serving what is in flight until the grace ends.
STEP=$(cat <<'STEP_END'
post() {
  curl -fsS -m 5 -o /dev/null -X POST "$LL_NOTIFY_URL/slurm/$1" -H 'content-type: application/json' --data "$2" || true
}
trap 'post notice "{\"lease\":\"$LL_LEASE\",\"token\":\"$LL_TOKEN\",\"node\":\"$SLURMD_NODENAME\"}"' TERM
bash -c "$LL_MODEL_COMMAND" &
server=$!
for _ in $(seq 1200); do
  curl -fsS -m 2 -o /dev/null "http://$LL_ADDR:$LL_PORT/v1/models" && break
  kill -0 $server 2>/dev/null || exit 1
  sleep 0.5
done
post replica "{\"replica\":\"$LL_LEASE\",\"token\":\"$LL_TOKEN\",\"url\":\"http://$LL_ADDR:$LL_PORT\"}"
while kill -0 $server 2>/dev/null; do sleep 3600 </dev/null >/dev/null 2>&1 & wait $!; done
STEP_END
)
exec srun --ntasks=1 bash -c "$STEP"
)SH";

std::string Fill(std::string text, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [k, v] : vars) {
    for (size_t at = text.find(k); at != std::string::npos; at = text.find(k, at + v.size())) text.replace(at, k.size(), v);
  }
  return text;
}

}  // namespace

Result<std::vector<std::string>> ExpandHostlist(const std::string& list) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < list.size()) {
    // One item: prefix[ranges]suffix? up to a top-level comma.
    size_t end = i;
    int depth = 0;
    while (end < list.size() && (depth > 0 || list[end] != ',')) {
      if (list[end] == '[') ++depth;
      if (list[end] == ']') --depth;
      if (depth < 0) return Status::Invalid(fmt::format("hostlist `{}`: unbalanced `]`", list));
      ++end;
    }
    if (depth != 0) return Status::Invalid(fmt::format("hostlist `{}`: unbalanced `[`", list));
    const std::string item = list.substr(i, end - i);
    const size_t open = item.find('[');
    if (open == std::string::npos) {
      if (!item.empty()) out.push_back(item);
    } else {
      const size_t close = item.find(']', open);
      const std::string prefix = item.substr(0, open), suffix = item.substr(close + 1);
      std::stringstream ranges(item.substr(open + 1, close - open - 1));
      std::string r;
      while (std::getline(ranges, r, ',')) {
        const size_t dash = r.find('-');
        const std::string a = r.substr(0, dash), b = dash == std::string::npos ? a : r.substr(dash + 1);
        int64_t lo = 0, hi = 0;
        auto pa = std::from_chars(a.data(), a.data() + a.size(), lo);
        auto pb = std::from_chars(b.data(), b.data() + b.size(), hi);
        if (a.empty() || pa.ec != std::errc() || pb.ec != std::errc() || pa.ptr != a.data() + a.size() ||
            pb.ptr != b.data() + b.size() || hi < lo || hi - lo > 100'000) {
          return Status::Invalid(fmt::format("hostlist `{}`: bad range `{}`", list, r));
        }
        for (int64_t v = lo; v <= hi; ++v) out.push_back(fmt::format("{}{:0{}}{}", prefix, v, a.size(), suffix));
      }
    }
    i = end + 1;
  }
  return out;
}

namespace {

// The `errors` a client's JSON reports (slurmctld unreachable: exit 0, an error, no data).
Status ClientErrors(const json& j, const char* what) {
  if (!j.contains("errors") || !j["errors"].is_array() || j["errors"].empty()) return Status::Ok();
  const json& e = j["errors"][0];
  std::string msg = e.contains("description") && e["description"].is_string() ? e["description"].get<std::string>() + ": " : "";
  msg += e.contains("error") && e["error"].is_string() ? e["error"].get<std::string>() : e.dump();
  return Status::Unavailable(fmt::format("{}: {}", what, msg));
}

}  // namespace

Result<std::vector<SlurmNode>> ParseSinfoJson(const std::string& text, const std::string& partition) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("nodes") || !j["nodes"].is_array()) {
    return Status::Invalid("sinfo --json: not the expected JSON (no `nodes` array)");
  }
  LL_RETURN_IF_ERROR(ClientErrors(j, "sinfo --json"));
  std::vector<SlurmNode> out;
  for (const json& n : j["nodes"]) {
    if (!n.contains("name") || !n["name"].is_string()) return Status::Invalid("sinfo --json: a node without a name");
    bool in = false;
    if (n.contains("partitions") && n["partitions"].is_array()) {
      for (const json& p : n["partitions"]) in = in || (p.is_string() && p.get<std::string>() == partition);
    }
    if (!in) continue;
    SlurmNode node;
    node.name = n["name"].get<std::string>();
    node.gpus = n.contains("gres") && n["gres"].is_string() ? GpusOf(n["gres"].get<std::string>()) : 0;
    node.state = n.contains("state") && n["state"].is_string() ? n["state"].get<std::string>() : "unknown";
    node.address = n.contains("address") && n["address"].is_string() ? n["address"].get<std::string>() : node.name;
    std::string s = node.state;
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    node.usable = s != "down" && s != "unknown" && s != "error" && s != "future";
    if (n.contains("state_flags") && n["state_flags"].is_array()) {
      for (const json& f : n["state_flags"]) {
        const std::string flag = f.is_string() ? f.get<std::string>() : "";
        if (flag == "DRAIN" || flag == "FAIL" || flag == "NOT_RESPONDING" || flag == "MAINTENANCE" ||
            flag == "POWERED_DOWN" || flag == "REBOOT_REQUESTED") {
          node.usable = false;
        }
      }
    }
    out.push_back(std::move(node));
  }
  return out;
}

Result<std::vector<SlurmJob>> ParseSqueueJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("jobs") || !j["jobs"].is_array()) {
    return Status::Invalid("squeue --json: not the expected JSON (no `jobs` array)");
  }
  LL_RETURN_IF_ERROR(ClientErrors(j, "squeue --json (slurmctld)"));
  std::vector<SlurmJob> out;
  auto str = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
  };
  auto num = [](const json& o, const char* k) -> int64_t {
    return o.contains(k) && o[k].is_number_integer() ? o[k].get<int64_t>() : 0;
  };
  for (const json& x : j["jobs"]) {
    SlurmJob job;
    job.id = num(x, "job_id");
    job.name = str(x, "name");
    job.state = str(x, "job_state");
    job.partition = str(x, "partition");
    LL_ASSIGN_OR_RETURN(job.nodes, ExpandHostlist(str(x, "nodes")));
    job.gpus_per_node = GpusOf(str(x, "tres_per_node"));
    if (Terminal(job.state) && num(x, "end_time") > 0) job.end = Time::FromSeconds(num(x, "end_time"));
    if (num(x, "preempt_time") > 0) job.preempted = Time::FromSeconds(num(x, "preempt_time"));
    job.exit_code = static_cast<int>(num(x, "exit_code"));
    out.push_back(std::move(job));
  }
  return out;
}

Result<std::unique_ptr<SlurmBackend>> SlurmBackend::Open(SlurmOptions options) {
  std::unique_ptr<SlurmBackend> b(new SlurmBackend(std::move(options)));
  LL_RETURN_IF_ERROR(b->Init());
  return b;
}

Status SlurmBackend::Init() {
  if (sodium_init() < 0) return Status::Internal("libsodium init failed");
  LL_ASSIGN_OR_RETURN(std::string text, Call({"sinfo", "--json"}));
  LL_ASSIGN_OR_RETURN(nodes_, ParseSinfoJson(text, options_.partition));
  if (nodes_.empty()) {
    return Status::Invalid(fmt::format("slurm: the partition `{}` has no nodes (sinfo --json); run `landlord slurm "
                                       "check`",
                                       options_.partition));
  }
  for (const SlurmNode& n : nodes_) {
    if (n.gpus < 1) return Status::Invalid(fmt::format("slurm: node `{}` has no gres/gpu", n.name));
    node_names_.insert(n.name);
  }
  // The notice key (kept across restarts: holders started earlier still report) and the
  // holder script, in the state directory.
  if (mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal(fmt::format("cannot create `{}`: {}", options_.state_dir, std::strerror(errno)));
  }
  const std::string key_path = options_.state_dir + "/notice.key";
  std::ifstream in(key_path, std::ios::binary);
  if (in) {
    std::getline(in, key_);
  } else {
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    char hex[65];
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    key_ = hex;
    const std::string tmp = key_path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, key_.data(), key_.size()) != static_cast<ssize_t>(key_.size()) || fsync(fd) != 0 ||
        close(fd) != 0 || rename(tmp.c_str(), key_path.c_str()) != 0) {
      return Status::Internal(fmt::format("cannot write `{}`: {}", key_path, std::strerror(errno)));
    }
  }
  if (key_.size() != 64) return Status::Invalid(fmt::format("`{}` is corrupt", key_path));
  script_ = options_.state_dir + "/holder.sh";
  std::ofstream out(script_, std::ios::trunc);
  out << kHolderScript;
  out.close();
  if (!out || chmod(script_.c_str(), 0755) != 0) return Status::Internal(fmt::format("cannot write `{}`", script_));
  replica_script_ = options_.state_dir + "/replica.sh";
  std::ofstream rs(replica_script_, std::ios::trunc);
  rs << kReplicaScript;
  rs.close();
  if (!rs || chmod(replica_script_.c_str(), 0755) != 0) {
    return Status::Internal(fmt::format("cannot write `{}`", replica_script_));
  }
  Read();  // the first read before the server takes requests
  worker_ = std::thread([this] { Work(); });
  return Status::Ok();
}

std::string SlurmBackend::Token(const std::string& lease_id) const {
  unsigned char mac[32];
  crypto_generichash(mac, sizeof(mac), reinterpret_cast<const unsigned char*>(lease_id.data()), lease_id.size(),
                     reinterpret_cast<const unsigned char*>(key_.data()), key_.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  return hex;
}

bool SlurmBackend::CheckToken(const std::string& lease_id, const std::string& token) const {
  const std::string want = Token(lease_id);
  return token.size() == want.size() && sodium_memcmp(token.data(), want.data(), want.size()) == 0;
}

std::string SlurmBackend::Access(const std::string& node) const { return Fill(options_.access, {{"{node}", node}}); }

SlurmBackend::~SlurmBackend() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool SlurmBackend::available() const {
  std::lock_guard<std::mutex> lock(mu_);
  return available_;
}

std::string SlurmBackend::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

std::map<std::string, std::string> SlurmBackend::drained() const {
  std::lock_guard<std::mutex> lock(mu_);
  return drained_;
}

void SlurmBackend::Queue(std::vector<std::string> argv) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(argv));
  }
  wake_.notify_all();
}

void SlurmBackend::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Clean-up first (a cancelled holder frees its nodes sooner), each retried until it ran.
    while (!queue_.empty() && !stop_) {
      std::vector<std::string> argv = queue_.front();
      lock.unlock();
      auto o = Run(argv, Duration::Seconds(8));
      lock.lock();
      if (!o.ok()) break;  // slurmctld does not answer: retried after the next read
      queue_.pop_front();
      if (o->rc != 0 && !(argv[0] == "scancel" || (argv[0] == "scontrol" && argv[1] == "delete"))) {
        fmt::print(stderr, "landlord serve: `{} {}` failed: {}\n", argv[0], argv.size() > 1 ? argv[1] : "",
                   Trim(o->err));
      }
    }
    std::vector<std::string> sanitize;
    sanitize.swap(sanitize_nodes_);
    lock.unlock();
    for (const std::string& node : sanitize) {
      auto out = Call({"sbatch", "--parsable", "--partition=" + options_.partition, "--job-name=ll_sanitize_" + node,
                       "--nodelist=" + node, "--nodes=1", "--exclusive", "--output=/dev/null", "--error=/dev/null",
                       "--wrap=" + options_.sanitize});
      auto id = out.ok() ? JobId(*out) : Result<int64_t>(out.status());
      const int64_t job = id.ok() ? *id : 0;
      std::lock_guard<std::mutex> g(mu_);
      if (job > 0) {
        sanitizing_[job] = node;
      } else {
        const std::string why = fmt::format("landlord: sanitize could not start: {}",
                                            out.ok() ? Trim(*out) : out.status().message());
        queue_.push_back({"scontrol", "update", "nodename=" + node, "state=drain", "reason=" + why});
        drained_[node] = why;
      }
    }
    Read();
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(options_.poll.ms), [&] { return stop_ || !queue_.empty(); });
  }
}

// One read of the cluster, on the worker thread.
void SlurmBackend::Read() {
  auto fail = [&](const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (available_) fmt::print(stderr, "landlord serve: slurm unavailable: {}\n", st.message());
    available_ = false;
    status_ = st.message();
  };
  auto sinfo = Call({"sinfo", "--json"});
  if (!sinfo.ok()) return fail(sinfo.status());
  auto nodes = ParseSinfoJson(*sinfo, options_.partition);
  if (!nodes.ok()) return fail(nodes.status());
  auto squeue = Call({"squeue", "--json"});
  if (!squeue.ok()) return fail(squeue.status());
  auto jobs = ParseSqueueJson(*squeue);
  if (!jobs.ok()) return fail(jobs.status());
  std::lock_guard<std::mutex> lock(mu_);
  if (!available_) fmt::print(stderr, "landlord serve: slurm available again\n");
  available_ = true;
  status_ = "ok";
  // Sanitize runs that ended: a failure drains the node.
  for (const SlurmJob& j : *jobs) {
    auto s = sanitizing_.find(j.id);
    if (s == sanitizing_.end() || !Terminal(j.state)) continue;
    if (j.state != "COMPLETED" || j.exit_code != 0) {
      const std::string why = fmt::format("landlord: sanitize failed ({}, exit status {})", j.state, j.exit_code);
      queue_.push_back({"scontrol", "update", "nodename=" + s->second, "state=drain", "reason=" + why});
      drained_[s->second] = why;
      fmt::print(stderr, "landlord serve: node {} drained: {}\n", s->second, why);
    }
    sanitizing_.erase(s);
  }
  read_nodes_ = std::move(*nodes);
  read_jobs_ = std::move(*jobs);
  read_at_ = Time::FromMillis(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  ++read_seq_;
}

std::optional<SlurmPoll> SlurmBackend::Poll(Time now) {
  std::vector<SlurmNode> nodes;
  std::vector<SlurmJob> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (read_seq_ == taken_seq_ || !available_) return std::nullopt;
    taken_seq_ = read_seq_;
    nodes = read_nodes_;
    jobs = read_jobs_;
  }
  SlurmPoll p;
  std::map<std::string, Gpus> cap, busy;
  for (const SlurmNode& n : nodes_) cap[n.name] = n.gpus;
  for (const SlurmNode& n : nodes) {
    if (!n.usable && cap.contains(n.name)) busy[n.name] = cap[n.name];
  }
  std::map<std::string, const SlurmJob*> mine;
  for (const SlurmJob& j : jobs) {
    if (j.name.rfind("ll_", 0) == 0 && j.name.rfind("ll_sanitize_", 0) != 0 && j.partition == options_.partition) {
      const std::string lease = j.name.substr(3);  // a lease's or a replica's id
      auto h = held_.find(lease);
      if (h != held_.end() && h->second.job < 0 && !Terminal(j.state)) h->second.job = j.id;  // adopted
      if (h != held_.end() && h->second.job == j.id) mine[lease] = &j;
      continue;
    }
    if (Terminal(j.state) || j.state == "PENDING") continue;
    // Someone else's job (the owner's, or a sanitize run): its GPUs are not for sale.
    for (const std::string& node : j.nodes) {
      if (!cap.contains(node)) continue;
      busy[node] = std::min(cap[node], busy[node] + std::max<Gpus>(0, j.gpus_per_node));
    }
  }
  for (auto& [lease, held] : held_) {
    auto it = mine.find(lease);
    if (it == mine.end()) {
      // Gone from squeue without Landlord: ended long enough ago, or never seen.
      if (held.running || now - held.submitted > options_.start_timeout) p.lost[lease] = {now, "the holder job is gone"};
      continue;
    }
    const SlurmJob& j = *it->second;
    if (j.state == "RUNNING") held.running = true;
    if (j.state == "RUNNING" && j.preempted.ms > 0) p.preempted[lease] = j.preempted;
    if (Terminal(j.state)) {
      const Time at = j.end.ms > 0 && j.end < now ? j.end : now;
      p.lost[lease] = {at, fmt::format("the holder job {} ended outside landlord ({})", j.id, j.state)};
    } else if (j.state == "PENDING" && now - held.submitted > options_.start_timeout) {
      p.lost[lease] = {now, fmt::format("slurm did not start the holder job {} within {} s", j.id,
                                        options_.start_timeout.ms / 1000)};
    }
  }
  for (const auto& [node, gpus] : busy) {
    if (gpus > 0) p.owner.emplace_back(node, gpus);
  }
  return p;
}

Status SlurmBackend::StartLease(const std::string& lease_id, const std::vector<std::pair<std::string, Gpus>>& nodes,
                                Time term_end, Time now) {
  if (nodes.empty()) return Status::Invalid("a lease without nodes");
  if (options_.notify_url.empty()) return Status::Invalid("no URL for the holders' notices (`fleet.slurm_notify_url`)");
  std::string list;
  Gpus per_node = 0;
  bool whole = true;
  for (const auto& [name, gpus] : nodes) {
    list += (list.empty() ? "" : ",") + name;
    per_node = std::max(per_node, gpus);
    for (const SlurmNode& n : nodes_) {
      if (n.name == name && gpus < n.gpus) whole = false;
    }
  }
  std::vector<std::string> argv = {"sbatch", "--parsable", "--partition=" + options_.partition,
                                   "--job-name=" + JobName(lease_id), "--nodelist=" + list,
                                   fmt::format("--nodes={}", nodes.size()), fmt::format("--gres=gpu:{}", per_node),
                                   "--output=/dev/null", "--error=/dev/null",
                                   "--export=ALL,LL_NOTIFY_URL=" + options_.notify_url + ",LL_LEASE=" + lease_id +
                                       ",LL_TOKEN=" + Token(lease_id)};
  if (whole) argv.push_back("--exclusive");
  const bool reserved = term_end != kTimeMax;
  if (reserved) {
    const int64_t minutes = std::max<int64_t>(1, ((term_end - now).ms + 59'999) / 60'000);
    LL_RETURN_IF_ERROR(Call({"scontrol", "create", "reservation", "ReservationName=" + JobName(lease_id),
                             "StartTime=now", fmt::format("Duration={}", minutes), "Nodes=" + list, "Users=root",
                             "Flags=IGNORE_JOBS"})
                           .status());
    argv.push_back("--reservation=" + JobName(lease_id));
  }
  argv.push_back(script_);
  auto out = Call(argv);
  if (!out.ok()) {
    if (reserved) RunLogged({"scontrol", "delete", "reservation=" + JobName(lease_id)});
    return out.status();
  }
  LL_ASSIGN_OR_RETURN(const int64_t job, JobId(*out));
  held_[lease_id] = Held{.job = job, .submitted = now, .running = false, .reservation = reserved};
  return Status::Ok();
}

Status SlurmBackend::StartReplica(const std::string& replica_id, const std::string& model, const std::string& node,
                                  Gpus gpus, int port, Time now) {
  if (options_.notify_url.empty()) return Status::Invalid("no URL for the replicas' registration (`fleet.slurm_notify_url`)");
  std::string addr = node;
  for (const SlurmNode& n : nodes_) {
    if (n.name == node) addr = n.address;
  }
  const std::string command = Fill(options_.model_command, {{"{model}", model}, {"{addr}", addr},
                                                             {"{port}", std::to_string(port)}, {"{node}", node}});
  // The command goes through sbatch's own environment (--export=ALL takes it along): --export
  // itself splits on commas.
  auto out = Call({"sbatch", "--parsable", "--partition=" + options_.partition, "--job-name=" + JobName(replica_id),
                   "--nodelist=" + node, "--nodes=1", fmt::format("--gres=gpu:{}", gpus), "--output=/dev/null",
                   "--error=/dev/null",
                   "--export=ALL,LL_NOTIFY_URL=" + options_.notify_url + ",LL_LEASE=" + replica_id + ",LL_TOKEN=" +
                       Token(replica_id) + ",LL_ADDR=" + addr + fmt::format(",LL_PORT={}", port),
                   replica_script_},
                  {"LL_MODEL_COMMAND=" + command});
  LL_RETURN_IF_ERROR(out.status());
  LL_ASSIGN_OR_RETURN(const int64_t job, JobId(*out));
  held_[replica_id] = Held{.job = job, .submitted = now, .running = false, .reservation = false};
  return Status::Ok();
}

void SlurmBackend::CancelStrayReplicas() {
  std::vector<int64_t> stray;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SlurmJob& j : read_jobs_) {
      if (j.name.rfind("ll_rep_", 0) == 0 && j.partition == options_.partition && !Terminal(j.state) &&
          !held_.contains(j.name.substr(3))) {
        stray.push_back(j.id);
      }
    }
  }
  for (int64_t id : stray) {
    fmt::print(stderr, "landlord serve: cancelling replica job {} of an earlier run\n", id);
    Queue({"scancel", "--signal=KILL", std::to_string(id)});
  }
}

void SlurmBackend::Adopt(const std::string& lease_id, Time now) {
  held_[lease_id] = Held{.job = -1, .submitted = now, .running = true, .reservation = false};
}

void SlurmBackend::EndLease(const std::string& lease_id) {
  auto it = held_.find(lease_id);
  if (it == held_.end()) return;
  const Held h = it->second;
  held_.erase(it);
  // The holder's nodes, for the sanitize runs, from the newest read.
  std::vector<std::string> nodes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SlurmJob& j : read_jobs_) {
      if ((h.job > 0 && j.id == h.job) || (h.job < 0 && j.name == JobName(lease_id))) nodes = j.nodes;
    }
  }
  // SIGKILL: the step would otherwise trap the TERM and hold on until KillWait.
  if (h.job > 0) {
    Queue({"scancel", "--signal=KILL", std::to_string(h.job)});
    Queue({"scancel", std::to_string(h.job)});
  } else {
    Queue({"scancel", "--signal=KILL", "--name=" + JobName(lease_id)});
  }
  // An adopted lease does not know whether it had a reservation: deleting none is harmless.
  if (h.reservation || h.job < 0) Queue({"scontrol", "delete", "reservation=" + JobName(lease_id)});
  if (options_.sanitize.empty() || nodes.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& n : nodes) sanitize_nodes_.push_back(n);
  }
  wake_.notify_all();
}

std::vector<std::string> CheckSlurmConfig(const std::string& config, const std::string& partitions,
                                          const std::string& landlord, Duration notice) {
  std::vector<std::string> problems;
  auto value = [&](const std::string& key) -> std::string {
    std::stringstream ss(config);
    std::string line;
    while (std::getline(ss, line)) {
      const size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string k = Trim(line.substr(0, eq));
      while (!k.empty() && k.back() == ' ') k.pop_back();
      if (k == key) {
        std::string v = line.substr(eq + 1);
        v.erase(0, v.find_first_not_of(' '));
        return Trim(v);
      }
    }
    return "";
  };
  if (value("PreemptType") != "preempt/partition_prio") {
    problems.push_back(fmt::format("slurm.conf: PreemptType is `{}`: set `PreemptType=preempt/partition_prio` (the "
                                   "owner's partitions preempt the `{}` partition)",
                                   value("PreemptType"), landlord));
  }
  if (value("PreemptMode").find("CANCEL") == std::string::npos) {
    problems.push_back(fmt::format("slurm.conf: PreemptMode is `{}`: set `PreemptMode=CANCEL` (a preempted lease "
                                   "ends after its grace time; it is not suspended or requeued)",
                                   value("PreemptMode")));
  }
  if (value("SelectType") != "select/cons_tres") {
    problems.push_back(fmt::format("slurm.conf: SelectType is `{}`: set `SelectType=select/cons_tres` (GPUs are "
                                   "allocated as gres/gpu)",
                                   value("SelectType")));
  }
  // Partitions: `scontrol show partition --oneliner`, one per line.
  struct Part {
    std::string name, nodes;
    int tier = 0;
    int64_t grace = 0;
    std::string mode;
  };
  std::vector<Part> parts;
  std::stringstream ss(partitions);
  std::string line;
  while (std::getline(ss, line)) {
    Part p;
    std::stringstream fields(line);
    std::string f;
    while (fields >> f) {
      const size_t eq = f.find('=');
      if (eq == std::string::npos) continue;
      const std::string k = f.substr(0, eq), v = f.substr(eq + 1);
      if (k == "PartitionName") p.name = v;
      if (k == "Nodes") p.nodes = v;
      if (k == "PriorityTier") p.tier = std::atoi(v.c_str());
      if (k == "GraceTime") p.grace = std::atoll(v.c_str());
      if (k == "PreemptMode") p.mode = v;
    }
    if (!p.name.empty()) parts.push_back(p);
  }
  const Part* ll = nullptr;
  for (const Part& p : parts) {
    if (p.name == landlord) ll = &p;
  }
  if (ll == nullptr) {
    problems.push_back(fmt::format("slurm.conf: no partition `{}`: add `PartitionName={} Nodes=<the nodes to sell> "
                                   "PriorityTier=1 GraceTime={} PreemptMode=CANCEL MaxTime=INFINITE State=UP`",
                                   landlord, landlord, notice.ms / 1000));
    return problems;
  }
  if (ll->grace != notice.ms / 1000) {
    problems.push_back(fmt::format("slurm.conf: partition `{}` has GraceTime={}: set `GraceTime={}` (the reclaim "
                                   "notice, `policy.notice_s`)",
                                   landlord, ll->grace, notice.ms / 1000));
  }
  if (!ll->mode.empty() && ll->mode.find("CANCEL") == std::string::npos) {
    problems.push_back(fmt::format("slurm.conf: partition `{}` has PreemptMode={}: set `PreemptMode=CANCEL`", landlord,
                                   ll->mode));
  }
  for (const Part& p : parts) {
    if (&p == ll) continue;
    if (p.tier <= ll->tier) {
      problems.push_back(fmt::format("slurm.conf: the owner's partition `{}` has PriorityTier={}, not above `{}`'s "
                                     "{}: set `PriorityTier={}` on `{}` (or lower `{}`'s) so that its jobs preempt "
                                     "leases",
                                     p.name, p.tier, landlord, ll->tier, ll->tier + 1, p.name, landlord));
    }
  }
  return problems;
}

Result<std::vector<std::string>> CheckSlurm(const std::string& landlord_partition, Duration notice) {
  LL_ASSIGN_OR_RETURN(std::string config, Call({"scontrol", "show", "config"}));
  LL_ASSIGN_OR_RETURN(std::string parts, Call({"scontrol", "show", "partition", "--oneliner"}));
  return CheckSlurmConfig(config, parts, landlord_partition, notice);
}

}  // namespace ll::fleet
