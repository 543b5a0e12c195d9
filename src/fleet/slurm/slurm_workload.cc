#include "fleet/slurm/slurm_workload.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "fleet/slurm/commands.h"

namespace ll::fleet {
namespace asio = boost::asio;
using workload::State;

namespace {

// On each node: the variables renamed back from their `LLW_` names (each name was checked to
// be an identifier, and a value is only ever expanded inside double quotes), the notice file's
// directory made (and any file a node kept from before removed), then the argv exec'd as given.
constexpr const char* kLauncher =
    R"(for n in $LLW_0NAMES; do eval "export $n=\"\${LLW_$n}\""; unset "LLW_$n"; done; unset LLW_0NAMES
mkdir -p "${LANDLORD_NOTICE_FILE%/*}" 2>/dev/null; rm -f "$LANDLORD_NOTICE_FILE"
exec "$@")";

// On the server, at a notice: the file on every node, then SIGTERM to the workload's step
// (term=1) unless Slurm is preempting the job (its own SIGTERM already went to every step).
constexpr const char* kNotice =
    R"(job=$1 nodes=$2 json=$3 file=$4 term=$5 dir=$6
srun --quiet --jobid="$job" --overlap --job-name=ll_notice --nodes="$nodes" --ntasks-per-node=1 \
  --chdir="$dir" --export=PATH /bin/sh -c 'mkdir -p "${2%/*}" && printf "%s\n" "$1" >"$2.tmp" && mv -f "$2.tmp" "$2"' \
  landlord-notice "$json" "$file"
[ "$term" = 1 ] || exit 0
scontrol show job "$job" | grep -q 'PreemptTime=None' || exit 0
for s in $(squeue -h -s -j "$job" -o '%i %j' | awk '$2 == "ll_workload" {print $1}'); do
  scancel --signal=TERM "$s"
done)";

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool Identifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string Replace(std::string text, const std::string& key, const std::string& value) {
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
    text.replace(at, key.size(), value);
  return text;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The container template filled in for `spec`: its argv, which the launcher execs.
std::vector<std::string> ContainerArgv(const SlurmWorkloadOptions& o, const std::string& lease_id,
                                       const workload::Spec& spec,
                                       const std::vector<std::string>& env_names) {
  const std::string file = NoticeFile(o, lease_id);
  const std::string dir = file.substr(0, file.rfind('/'));
  std::vector<std::string> out;
  for (const std::string& t : o.container) {
    if (t == "{image}") {
      out.push_back(spec.image);
    } else if (t == "{command}") {
      out.insert(out.end(), spec.command.begin(), spec.command.end());
    } else if (t == "{env}") {
      for (const std::string& n : env_names) {
        out.push_back("--env");
        out.push_back(n);
      }
    } else {
      out.push_back(Replace(Replace(t, "{lease}", lease_id), "{notice_dir}", dir));
    }
  }
  return out;
}

}  // namespace

Status CheckContainerTemplate(const std::vector<std::string>& argv) {
  auto bad = [](const std::string& why) {
    return Status::Invalid(fmt::format("`fleet.slurm_container` {}", why));
  };
  if (argv.empty()) return Status::Ok();
  if (argv[0].empty() || argv[0][0] == '{')
    return bad("must start with the runtime (e.g. \"podman\")");
  if (std::count(argv.begin(), argv.end(), "{image}") != 1)
    return bad("needs \"{image}\" once, as a whole element");
  if (std::count(argv.begin(), argv.end(), "{command}") != 1)
    return bad("needs \"{command}\" once, as a whole element");
  for (const std::string& a : argv) {
    if (a.empty()) return bad("has an empty element");
  }
  return Status::Ok();
}

Status AcceptsOnSlurm(const SlurmWorkloadOptions& o, const workload::Spec& spec,
                      workload::SpecError* why) {
  auto refuse = [&](const char* param, std::string message) {
    if (why != nullptr) *why = workload::SpecError{.reason = "invalid_value", .param = param};
    return Status::Invalid(std::move(message));
  };
  if (!spec.ssh_public_keys.empty()) {
    return refuse("workload.ssh_public_keys",
                  "`workload.ssh_public_keys`: the slurm fleet gives no per-lease SSH login (the "
                  "lease's `access` says how to reach its nodes)");
  }
  if (!spec.image.empty() && o.container.empty()) {
    return refuse("workload.image",
                  "`workload.image`: this slurm fleet runs no containers (the owner sets "
                  "`fleet.slurm_container`); leave `image` out to run the command on the nodes");
  }
  return Status::Ok();
}

std::string NoticeFile(const SlurmWorkloadOptions& o, const std::string& lease_id) {
  return fmt::format("{}/landlord-{}/notice.json", o.notice_root, lease_id);
}

StepCommand WorkloadStep(const SlurmWorkloadOptions& o, int64_t job,
                         const workload::LeaseContext& lease, const workload::Spec& spec) {
  std::vector<std::pair<std::string, std::string>> vars = {
      {"LANDLORD_LEASE_ID", lease.lease_id},
      {"LANDLORD_NODES", Join(lease.nodes, ",")},
      {"LANDLORD_NOTICE_FILE", NoticeFile(o, lease.lease_id)}};
  if (!lease.metadata_url.empty()) vars.emplace_back("LANDLORD_METADATA_URL", lease.metadata_url);
  const bool container = !spec.image.empty() && !o.container.empty();
  const bool has_path = std::any_of(spec.env.begin(), spec.env.end(),
                                    [](const auto& kv) { return kv.first == "PATH"; });
  // The runtime's own PATH on the node; a container keeps its image's unless the tenant set one.
  vars.emplace_back("PATH", kDefaultPath);
  for (const auto& kv : spec.env) {
    if (kv.first == "PATH") vars.back().second = kv.second;
    if (kv.first != "PATH" && Identifier(kv.first)) vars.push_back(kv);
  }
  StepCommand c;
  std::vector<std::string> names, exported = {"LLW_0NAMES"}, container_env;
  for (const auto& [name, value] : vars) {
    names.push_back(name);
    exported.push_back("LLW_" + name);
    c.env.push_back("LLW_" + name + "=" + value);
    if (name != "PATH" || has_path) container_env.push_back(name);
  }
  container_env.push_back("CUDA_VISIBLE_DEVICES");  // Slurm's, per node
  container_env.push_back("SLURMD_NODENAME");
  c.env.push_back("LLW_0NAMES=" + Join(names, " "));
  c.argv = {"srun",
            "--quiet",
            fmt::format("--jobid={}", job),
            "--overlap",
            "--job-name=ll_workload",
            fmt::format("--nodes={}", std::max<size_t>(1, lease.nodes.size())),
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=0",
            "--chdir=" + o.notice_root,
            "--export=" + Join(exported, ","),
            "/bin/sh",
            "-c",
            kLauncher,
            "landlord-workload"};
  const std::vector<std::string> argv =
      container ? ContainerArgv(o, lease.lease_id, spec, container_env) : spec.command;
  c.argv.insert(c.argv.end(), argv.begin(), argv.end());
  return c;
}

SlurmWorkload::SlurmWorkload(asio::io_context& io, const Clock& clock, SlurmWorkloadOptions options,
                             workload::LeaseContext lease, workload::Spec spec, JobOf job_of,
                             Listener listener)
    : io_(io),
      clock_(clock),
      o_(std::move(options)),
      lease_(std::move(lease)),
      spec_(std::move(spec)),
      job_of_(std::move(job_of)),
      listener_(std::move(listener)),
      logs_(std::max<size_t>(o_.log_bytes, 1)),
      poll_timer_(io),
      kill_timer_(io),
      pid_sd_(io),
      out_sd_(io) {}

SlurmWorkload::~SlurmWorkload() {
  alive_.reset();
  if (pid_ <= 0 || exited_) return;
  kill(pid_, SIGTERM);  // srun cancels its step
  int st = 0;
  for (int i = 0; i < 300 && waitpid(pid_, &st, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (kill(pid_, 0) == 0 && waitpid(pid_, &st, WNOHANG) == 0) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void SlurmWorkload::Start() {
  if (status_.state != State::kPending || started_ || finished_) return;
  WaitForJob();
}

// The step can only join a running job: until the holder runs, look again every `poll`.
void SlurmWorkload::WaitForJob() {
  if (stopping_ || finished_) return;
  if (std::optional<int64_t> job = job_of_ ? job_of_() : std::nullopt) return Launch(*job);
  poll_timer_.expires_after(std::chrono::milliseconds(o_.poll.ms));
  poll_timer_.async_wait(Guard([this](boost::system::error_code ec) {
    if (!ec) WaitForJob();
  }));
}

void SlurmWorkload::Launch(int64_t job) {
  job_ = job;
  const StepCommand c = WorkloadStep(o_, job, lease_, spec_);
  auto child = slurm::Start(c.argv, c.env, /*capture=*/true);
  if (!child.ok())
    return Finish(State::kFailed, std::nullopt, std::string(child.status().message()));
  started_ = true;
  pid_ = child->pid;
  pid_sd_.assign(child->pidfd);
  out_sd_.assign(child->output_fd);
  status_.state = State::kRunning;
  status_.started_at = clock_.Now();
  ReadOutput();
  WaitExit();
  if (listener_) listener_(status_);
  if (notice_) SendNotice();
}

void SlurmWorkload::ReadOutput() {
  out_sd_.async_read_some(asio::buffer(buf_), Guard([this](boost::system::error_code ec, size_t n) {
                            if (n > 0) logs_.Append(std::string_view(buf_.data(), n));
                            if (ec) {
                              eof_ = true;
                              return MaybeFinish();
                            }
                            ReadOutput();
                          }));
}

void SlurmWorkload::WaitExit() {
  pid_sd_.async_wait(asio::posix::stream_descriptor::wait_read,
                     Guard([this](boost::system::error_code ec) {
                       if (ec == asio::error::operation_aborted) return;
                       int st = 0;
                       if (waitpid(pid_, &st, WNOHANG) == 0) return WaitExit();
                       exited_ = true;
                       raw_status_ = st;
                       MaybeFinish();
                     }));
}

void SlurmWorkload::MaybeFinish() {
  if (!exited_ || !eof_ || finished_) return;
  kill_timer_.cancel();
  pid_sd_.close();
  out_sd_.close();
  const int st = raw_status_;
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  Finish(stopping_ ? State::kKilled : State::kExited, code, "");
}

void SlurmWorkload::Finish(State state, std::optional<int> code, std::string error) {
  if (finished_) return;
  finished_ = true;
  poll_timer_.cancel();
  status_.state = state;
  status_.exit_code = code;
  status_.ended_at = clock_.Now();
  status_.error = std::move(error);
  logs_.Close();
  if (listener_) listener_(status_);
}

void SlurmWorkload::Notice(Time reclaim_at, Time /*kill_at*/) {
  if (finished_) return;
  notice_ = notice_ ? std::min(*notice_, reclaim_at) : reclaim_at;
  if (started_) SendNotice();
}

// Runs kNotice off the loop; reaped when it exits.
void SlurmWorkload::SendNotice() {
  if (exited_ || !notice_) return;
  const nlohmann::json json = {{"action", "terminate"}, {"time", FormatUtc(*notice_)}};
  auto child = slurm::Start(
      {"/bin/sh", "-c", kNotice, "landlord-notice", std::to_string(job_),
       std::to_string(std::max<size_t>(1, lease_.nodes.size())), json.dump(),
       NoticeFile(o_, lease_.lease_id), o_.sigterm_on_notice ? "1" : "0", o_.notice_root},
      {}, /*capture=*/false);
  if (!child.ok()) {
    logs_.Append(
        fmt::format("[landlord: the notice could not be sent: {}]\n", child.status().message()));
    return;
  }
  auto sd = std::make_shared<asio::posix::stream_descriptor>(io_, child->pidfd);
  const pid_t pid = child->pid;
  // Reaped even after this runner is gone (the handler holds the descriptor).
  sd->async_wait(asio::posix::stream_descriptor::wait_read, [sd, pid](boost::system::error_code) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  });
}

void SlurmWorkload::Stop(Duration /*grace*/) {
  if (finished_) return;
  if (!started_) {
    return Finish(State::kFailed, std::nullopt, "the lease ended before its holder job ran");
  }
  // The lease's end cancels the holder job (EndHolder) and with it this step; srun, told too,
  // cancels its step itself, and is killed if it hangs on an unreachable slurmctld.
  stopping_ = true;
  kill(pid_, SIGTERM);
  kill_timer_.expires_after(std::chrono::seconds(10));
  kill_timer_.async_wait(Guard([this](boost::system::error_code ec) {
    if (!ec && !exited_) kill(pid_, SIGKILL);
  }));
}

}  // namespace ll::fleet
