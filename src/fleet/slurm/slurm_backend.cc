#include "fleet/slurm/slurm_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fleet/slurm/commands.h"

namespace ll::fleet {
namespace {

using nlohmann::json;
using slurm::Call;
using slurm::Run;
using slurm::RunLogged;
using slurm::Trim;

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

// SIGKILL to every step of job $1 but its batch step, each by its id.
constexpr const char* kKillSteps = R"SH(for s in $(squeue -h -s -j "$1" -o %i); do
  case $s in *.batch|*.extern) ;; *) scancel --signal=KILL "$s" ;; esac
done)SH";

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
    for (size_t at = text.find(k); at != std::string::npos; at = text.find(k, at + v.size()))
      text.replace(at, k.size(), v);
  }
  return text;
}

}  // namespace

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
    return Status::Invalid(
        fmt::format("slurm: the partition `{}` has no nodes (sinfo --json); run `landlord slurm "
                    "check`",
                    options_.partition));
  }
  for (const SlurmNode& n : nodes_) {
    if (n.gpus < 1) return Status::Invalid(fmt::format("slurm: node `{}` has no gres/gpu", n.name));
    node_names_.insert(n.name);
  }
  PoolSpec pool{.name = options_.partition, .gpus = 0};
  for (const SlurmNode& n : nodes_) {
    topology_.nodes.push_back(
        {.name = n.name, .pool = 0, .rack = 0, .gpus = n.gpus, .model = "slurm"});
    pool.gpus += n.gpus;
  }
  topology_.pools.push_back(pool);
  // The notice key (kept across restarts: holders started earlier still report) and the
  // holder script, in the state directory.
  if (mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal(
        fmt::format("cannot create `{}`: {}", options_.state_dir, std::strerror(errno)));
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
    if (fd < 0 || write(fd, key_.data(), key_.size()) != static_cast<ssize_t>(key_.size()) ||
        fsync(fd) != 0 || close(fd) != 0 || rename(tmp.c_str(), key_path.c_str()) != 0) {
      return Status::Internal(fmt::format("cannot write `{}`: {}", key_path, std::strerror(errno)));
    }
  }
  if (key_.size() != 64) return Status::Invalid(fmt::format("`{}` is corrupt", key_path));
  script_ = options_.state_dir + "/holder.sh";
  std::ofstream out(script_, std::ios::trunc);
  out << kHolderScript;
  out.close();
  if (!out || chmod(script_.c_str(), 0755) != 0)
    return Status::Internal(fmt::format("cannot write `{}`", script_));
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
  crypto_generichash(mac, sizeof(mac), reinterpret_cast<const unsigned char*>(lease_id.data()),
                     lease_id.size(), reinterpret_cast<const unsigned char*>(key_.data()),
                     key_.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  return hex;
}

bool SlurmBackend::CheckToken(const std::string& id, const std::string& token) const {
  const std::string want = Token(id);
  return token.size() == want.size() && sodium_memcmp(token.data(), want.data(), want.size()) == 0;
}

std::optional<std::string> SlurmBackend::Access(const std::string& node) const {
  return Fill(options_.access, {{"{node}", node}});
}

std::optional<int64_t> SlurmBackend::RunningJob(const std::string& lease_id) const {
  auto it = held_.find(lease_id);
  if (it == held_.end() || it->second.job <= 0 || !it->second.running) return std::nullopt;
  return it->second.job;
}

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

std::optional<Health> SlurmBackend::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Health{.backend = name_,
                .partition = options_.partition,
                .available = available_,
                .message = status_,
                .drained = drained_};
}

Status SlurmBackend::Available() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (available_) return Status::Ok();
  return Status::Unavailable(fmt::format("slurm cannot be reached: {}", status_));
}

Status SlurmBackend::AcceptsOwnerJobs() const {
  return Status::Conflict("on a slurm fleet the owner's jobs are Slurm's: submit them with sbatch");
}

void SlurmBackend::Queue(std::vector<std::string> argv) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Command{.argv = std::move(argv), .env = {}, .start = "", .first = {}, .undo = {}});
  }
  wake_.notify_all();
}

void SlurmBackend::RunStart(const Command& c) {
  if (!c.first.empty()) {
    if (auto made = Call(c.first); !made.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      refused_[c.start] = fmt::format("slurm did not make the reservation: {}", made.status().message());
      return;
    }
  }
  auto out = Call(c.argv, c.env);
  auto job = out.ok() ? JobId(*out) : Result<int64_t>(out.status());
  if (!job.ok() && !c.undo.empty()) RunLogged(c.undo);
  std::lock_guard<std::mutex> lock(mu_);
  if (job.ok()) {
    started_[c.start] = *job;
  } else {
    refused_[c.start] = fmt::format("slurm did not take the holder job: {}", job.status().message());
  }
}

void SlurmBackend::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    TakeDueEnds();
    // Clean-up first (a cancelled holder frees its nodes sooner), each retried until it ran.
    while (!queue_.empty() && !stop_) {
      if (!queue_.front().start.empty()) {
        // A start runs once (a retry could submit the job twice); Poll reports how it went.
        const Command c = queue_.front();
        queue_.pop_front();
        lock.unlock();
        RunStart(c);
        lock.lock();
        continue;
      }
      std::vector<std::string> argv = queue_.front().argv;
      lock.unlock();
      auto o = Run(argv, Duration::Seconds(8));
      lock.lock();
      if (!o.ok()) break;  // slurmctld does not answer: retried after the next read
      queue_.pop_front();
      if (o->rc != 0 && !(argv[0] == "scancel" || (argv[0] == "scontrol" && argv[1] == "delete"))) {
        fmt::print(stderr, "landlord serve: `{} {}` failed: {}\n", argv[0],
                   argv.size() > 1 ? argv[1] : "", Trim(o->err));
      }
    }
    std::vector<std::string> sanitize;
    sanitize.swap(sanitize_nodes_);
    lock.unlock();
    for (const std::string& node : sanitize) {
      auto out =
          Call({"sbatch", "--parsable", "--partition=" + options_.partition,
                "--job-name=ll_sanitize_" + node, "--nodelist=" + node, "--nodes=1", "--exclusive",
                "--output=/dev/null", "--error=/dev/null", "--wrap=" + options_.sanitize});
      auto id = out.ok() ? JobId(*out) : Result<int64_t>(out.status());
      const int64_t job = id.ok() ? *id : 0;
      std::lock_guard<std::mutex> g(mu_);
      if (job > 0) {
        sanitizing_[job] = node;
      } else {
        const std::string why = fmt::format("landlord: sanitize could not start: {}",
                                            out.ok() ? Trim(*out) : out.status().message());
        queue_.push_back(Command{
            .argv = {"scontrol", "update", "nodename=" + node, "state=drain", "reason=" + why},
            .env = {},
            .start = "",
            .first = {},
            .undo = {}});
        drained_[node] = why;
      }
    }
    Read();
    lock.lock();
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.poll.ms);
    for (const Later& l : later_) until = std::min(until, l.at);
    wake_.wait_until(lock, until, [&] {
      return stop_ || !queue_.empty() ||
             std::any_of(later_.begin(), later_.end(), [](const Later& l) { return l.at <= std::chrono::steady_clock::now(); });
    });
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
      const std::string why =
          fmt::format("landlord: sanitize failed ({}, exit status {})", j.state, j.exit_code);
      queue_.push_back(Command{
          .argv = {"scontrol", "update", "nodename=" + s->second, "state=drain", "reason=" + why},
          .env = {},
          .start = "",
          .first = {},
          .undo = {}});
      drained_[s->second] = why;
      fmt::print(stderr, "landlord serve: node {} drained: {}\n", s->second, why);
    }
    sanitizing_.erase(s);
  }
  read_nodes_ = std::move(*nodes);
  read_jobs_ = std::move(*jobs);
  read_at_ = Time::FromMillis(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
  ++read_seq_;
}

std::optional<PollResult> SlurmBackend::Poll(Time now) {
  std::vector<SlurmNode> nodes;
  std::vector<SlurmJob> jobs;
  std::map<std::string, int64_t> started;
  std::map<std::string, std::string> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (read_seq_ == taken_seq_ || !available_) return std::nullopt;
    taken_seq_ = read_seq_;
    nodes = read_nodes_;
    jobs = read_jobs_;
    started.swap(started_);
    refused.swap(refused_);
  }
  PollResult p;
  // Holder jobs the worker submitted since the last poll (ended ones are no longer held). One
  // that Slurm did not take (or whose reservation it did not make) is lost from its start:
  // nothing of it is billed.
  for (const auto& [id, job] : started) {
    if (auto h = held_.find(id); h != held_.end()) h->second.job = job;
  }
  for (const auto& [id, why] : refused) {
    auto h = held_.find(id);
    if (h == held_.end()) continue;
    const Time at = h->second.submitted;
    held_.erase(h);
    fmt::print(stderr, "landlord serve: {}: {}\n", id, why);
    p.lost[id] = {at, why};
  }
  std::map<std::string, Gpus> cap, busy;
  for (const SlurmNode& n : nodes_) cap[n.name] = n.gpus;
  for (const SlurmNode& n : nodes) {
    if (!n.usable && cap.contains(n.name)) busy[n.name] = cap[n.name];
  }
  std::map<std::string, const SlurmJob*> mine;
  for (const SlurmJob& j : jobs) {
    if (j.name.rfind("ll_", 0) == 0 && j.name.rfind("ll_sanitize_", 0) != 0 &&
        j.partition == options_.partition) {
      const std::string lease = j.name.substr(3);  // a lease's or a replica's id
      auto h = held_.find(lease);
      if (h != held_.end() && h->second.job < 0 && !Terminal(j.state))
        h->second.job = j.id;  // adopted
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
      if (held.running || now - held.submitted > options_.start_timeout)
        p.lost[lease] = {now, "the holder job is gone"};
      continue;
    }
    const SlurmJob& j = *it->second;
    // SIGNALING: Slurm is sending the preemption's signal to the running job.
    const bool running = j.state == "RUNNING" || j.state == "SIGNALING";
    if (running) held.running = true;
    if (running && j.preempted.ms > 0) p.preempted[lease] = j.preempted;
    if (Terminal(j.state)) {
      const Time at = j.end.ms > 0 && j.end < now ? j.end : now;
      p.lost[lease] = {at,
                       fmt::format("the holder job {} ended outside landlord ({})", j.id, j.state)};
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

Status SlurmBackend::StartLease(const std::string& lease_id,
                                const std::vector<std::pair<std::string, Gpus>>& nodes,
                                Time term_end, Time now) {
  if (nodes.empty()) return Status::Invalid("a lease without nodes");
  if (options_.notify_url.empty())
    return Status::Invalid("no URL for the holders' notices (`fleet.slurm_notify_url`)");
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
  Command c{.argv = {"sbatch", "--parsable", "--partition=" + options_.partition,
                     "--job-name=" + JobName(lease_id), "--nodelist=" + list,
                     fmt::format("--nodes={}", nodes.size()), fmt::format("--gres=gpu:{}", per_node),
                     "--output=/dev/null", "--error=/dev/null",
                     "--export=ALL,LL_NOTIFY_URL=" + options_.notify_url + ",LL_LEASE=" + lease_id +
                         ",LL_TOKEN=" + Token(lease_id)},
            .env = {},
            .start = lease_id,
            .first = {},
            .undo = {}};
  if (whole) c.argv.push_back("--exclusive");
  const bool reserved = term_end != kTimeMax;
  if (reserved) {
    // The reservation is the term's promise (the owner's jobs are kept off the nodes from when
    // it is made): the worker makes it just before the holder job, off the request path.
    const int64_t minutes = std::max<int64_t>(1, ((term_end - now).ms + 59'999) / 60'000);
    c.first = {"scontrol", "create", "reservation", "ReservationName=" + JobName(lease_id),
               "StartTime=now", fmt::format("Duration={}", minutes), "Nodes=" + list, "Users=root",
               "Flags=IGNORE_JOBS"};
    c.argv.push_back("--reservation=" + JobName(lease_id));
    c.undo = {"scontrol", "delete", "reservation=" + JobName(lease_id)};
  }
  c.argv.push_back(script_);
  // Held from now on (job 0: not submitted yet); the worker submits it, off the request path,
  // and Poll learns its job or that Slurm did not take it (the lease then ends, unbilled).
  held_[lease_id] = Held{.job = 0, .submitted = now, .running = false, .reservation = reserved};
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(c));
  }
  wake_.notify_all();
  return Status::Ok();
}

std::optional<std::string> SlurmBackend::StartReplica(const std::string& model,
                                                      const std::string& node, Gpus gpus, int n,
                                                      Time now) {
  const std::string replica_id = fmt::format("rep_slurm{}", n + 1);
  const int port = options_.model_port + n;
  // Held from now on (job 0: not submitted yet); the worker submits it and Poll learns how.
  held_[replica_id] = Held{.job = 0, .submitted = now, .running = false, .reservation = false};
  if (options_.notify_url.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    refused_[replica_id] =
        "slurm did not take the holder job: no URL for the replicas' registration "
        "(`fleet.slurm_notify_url`)";
    return replica_id;
  }
  std::string addr = node;
  for (const SlurmNode& sn : nodes_) {
    if (sn.name == node) addr = sn.address;
  }
  auto own = options_.model_commands.find(model);
  const std::string command = Fill(
      own != options_.model_commands.end() ? own->second : options_.model_command,
      {{"{model}", model}, {"{addr}", addr}, {"{port}", std::to_string(port)}, {"{node}", node}});
  // The command goes through sbatch's own environment (--export=ALL takes it along): --export
  // itself splits on commas.
  Command c{.argv = {"sbatch", "--parsable", "--partition=" + options_.partition,
                     "--job-name=" + JobName(replica_id), "--nodelist=" + node, "--nodes=1",
                     fmt::format("--gres=gpu:{}", gpus), "--output=/dev/null", "--error=/dev/null",
                     "--export=ALL,LL_NOTIFY_URL=" + options_.notify_url +
                         ",LL_LEASE=" + replica_id + ",LL_TOKEN=" + Token(replica_id) +
                         ",LL_ADDR=" + addr + fmt::format(",LL_PORT={}", port),
                     replica_script_},
            .env = {"LL_MODEL_COMMAND=" + command},
            .start = replica_id,
            .first = {},
            .undo = {}};
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(c));
  }
  wake_.notify_all();
  return replica_id;
}

void SlurmBackend::CancelStrayReplicas() {
  std::vector<int64_t> stray;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SlurmJob& j : read_jobs_) {
      if (j.name.rfind("ll_rep_", 0) == 0 && j.partition == options_.partition &&
          !Terminal(j.state) && !held_.contains(j.name.substr(3))) {
        stray.push_back(j.id);
      }
    }
  }
  for (int64_t id : stray) {
    fmt::print(stderr, "landlord serve: cancelling replica job {} of an earlier run\n", id);
    Queue({"scancel", "--signal=KILL", std::to_string(id)});
  }
}

void SlurmBackend::Attach(const std::vector<std::string>& live_leases, Time now) {
  CancelStrayReplicas();
  for (const std::string& id : live_leases) {
    held_[id] = Held{.job = -1, .submitted = now, .running = true, .reservation = false};
  }
}

void SlurmBackend::EndHolder(const std::string& lease_id, Duration grace) {
  auto it = held_.find(lease_id);
  if (it == held_.end()) return;
  const Held h = it->second;
  held_.erase(it);
  // The holder's nodes, for the sanitize runs, from the newest read.
  std::vector<std::string> nodes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SlurmJob& j : read_jobs_) {
      if ((h.job > 0 && j.id == h.job) || (h.job <= 0 && j.name == JobName(lease_id)))
        nodes = j.nodes;
    }
  }
  // SIGKILL: the step would otherwise trap the TERM and hold on until KillWait. After `grace`
  // (the workload's step was told by SIGTERM and may still checkpoint), with what follows.
  std::vector<std::vector<std::string>> end;
  if (h.job > 0) {
    // Each step by its id first: a job-wide KILL only cancels an `--overlap` step (a workload's),
    // which then has KillWait after a SIGTERM.
    end.push_back({"/bin/sh", "-c", kKillSteps, "landlord-kill", std::to_string(h.job)});
    end.push_back({"scancel", "--signal=KILL", std::to_string(h.job)});
    end.push_back({"scancel", std::to_string(h.job)});
  } else {
    end.push_back({"scancel", "--signal=KILL", "--name=" + JobName(lease_id)});
  }
  // An adopted lease does not know whether it had a reservation: deleting none is harmless.
  if (h.reservation || h.job < 0) end.push_back({"scontrol", "delete", "reservation=" + JobName(lease_id)});
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto at = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(grace.ms, 0));
    later_.push_back(Later{.at = at,
                           .argvs = std::move(end),
                           .sanitize = options_.sanitize.empty() ? std::vector<std::string>{} : nodes,
                           .graced = grace.ms > 0});
  }
  wake_.notify_all();
}

// The holders' ends whose time has come go to the queue and the sanitize list. Under mu_.
void SlurmBackend::TakeDueEnds() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = later_.begin(); it != later_.end();) {
    if (it->at > now) {
      ++it;
      continue;
    }
    if (it->graced) fmt::print(stderr, "landlord serve: ending holder job `{}` after its workload's grace\n", it->argvs[0].back());
    for (auto& argv : it->argvs) queue_.push_back(Command{.argv = std::move(argv), .env = {}, .start = "", .first = {}, .undo = {}});
    sanitize_nodes_.insert(sanitize_nodes_.end(), it->sanitize.begin(), it->sanitize.end());
    it = later_.erase(it);
  }
}

sim::Trace SlurmTrace(const SlurmBackend& slurm, Time now, Duration history) {
  sim::Trace t;
  t.spec = "slurm:" + slurm.options().partition;
  t.description = fmt::format("Slurm partition `{}` ({} nodes)", slurm.options().partition,
                              slurm.nodes().size());
  t.kind = sim::DemandKind::kOccupancy;
  t.begin = now - history;
  t.end = now + Duration::Hours(24 * 365 * 50);
  t.pools = slurm.topology().pools;
  t.nodes = slurm.topology().nodes;
  return t;
}

}  // namespace ll::fleet
