#include "fleet/slurm/slurm_workload.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "fleet/slurm/commands.h"

namespace ll::fleet {
namespace asio = boost::asio;
using workload::State;

namespace {

// On each node, first: the variables renamed back from their `LLW_` names (each name was
// checked to be an identifier, and a value is only ever expanded inside double quotes), the
// notice file's directory made (and any file a node kept from before removed), and a janitor
// that removes that directory once the last of the lease's tasks on this host has gone. The
// janitor runs out of the step's process tree (its parent exits at once), so the kill at the
// step's end, which walks that tree, does not reach it.
constexpr const char* kPrelude =
    R"SH(for n in $LLW_0NAMES; do eval "export $n=\"\${LLW_$n}\""; unset "LLW_$n"; done; unset LLW_0NAMES
LL_KILL=$LLW_0KILL; unset LLW_0KILL
dir=${LANDLORD_NOTICE_FILE%/*} node=${SLURMD_NODENAME:-node}
mkdir -p "$dir" "$dir.run" 2>/dev/null; rm -f "$LANDLORD_NOTICE_FILE"; : 2>/dev/null >"$dir/.node-$node"
(setsid /bin/sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf "$2/.node-$3" "$2.run/$3"
ls "$2"/.node-* >/dev/null 2>&1 || rm -rf "$2" "$2.run"' landlord-janitor $$ "$dir" "$node" </dev/null >/dev/null 2>&1 &)
)SH";

// Without a container: the argv exec'd as given (Slurm's signals reach its whole tree).
constexpr const char* kExec = "exec \"$@\"";

// With a container template (argv: how many elements come before the tenant's command, how many
// are the command, then the filled-in template): the runtime runs out of the step's process
// tree, under a keeper, so that Slurm's signals at preemption (SIGCONT then SIGTERM to every
// process of the step) reach only this launcher and not podman's signal proxy and its helpers;
// the launcher forwards one SIGTERM to the container (`sig`: the kill template, or the runtime's
// process), retried until the container exists, and exits with the runtime's status. The keeper
// kills the container if this launcher is killed (the step's end: a reclaim, KillWait).
// `{name}` elements of the template (not of the command) become the container's name.
constexpr const char* kContainer = R"SH(a=$1 c=$2; shift 2
LL_NAME="landlord-$LANDLORD_LEASE_ID-$node"; export LL_NAME LL_KILL
i=0; for x do shift; i=$((i + 1)); if [ "$x" = "{name}" ] && { [ $i -le "$a" ] || [ $i -gt $((a + c)) ]; }; then x=$LL_NAME; fi; set -- "$@" "$x"; done
run=$dir.run/$node; rm -rf "$run"; mkdir -p "$run" || exit 125
sig='sig() {
  if [ -n "$LL_KILL" ]; then
    (s=$1; set -f; set -- $LL_KILL; for x do shift; case $x in "{name}") x=$LL_NAME;; "{signal}") x=$s;; esac; set -- "$@" "$x"; done; exec "$@") >/dev/null 2>&1
  else kill -s "$1" "$(cat "$run/pid")" 2>/dev/null; fi
}'
eval "$sig"
keep='run=$1 me=$2; shift 2
"$@" & pid=$!
echo $pid >"$run/pid.tmp"; mv "$run/pid.tmp" "$run/pid"
(while kill -0 "$me" 2>/dev/null; do sleep 0.5; done; sig KILL) </dev/null >/dev/null 2>&1 & w=$!
wait $pid; rc=$?
kill $w 2>/dev/null
echo $rc >"$run/rc.tmp" && mv "$run/rc.tmp" "$run/rc"'
(setsid /bin/sh -c "$sig
$keep" landlord-runtime "$run" $$ "$@" </dev/null &)
term=0; trap 'term=1' TERM
while [ ! -e "$run/rc" ]; do
  if [ $term = 1 ] && [ -s "$run/pid" ] && sig TERM; then term=0; fi
  sleep 0.1 & wait $!
done
rc=$(cat "$run/rc"); rm -rf "$run"; exit "$rc")SH";

// On the server, at a notice: the file on every node where the workload still runs (its
// directory is there), then SIGTERM to the workload's step (term=1) unless Slurm is preempting
// the job (its own SIGTERM already went to every step).
constexpr const char* kNotice =
    R"SH(job=$1 nodes=$2 json=$3 file=$4 term=$5 dir=$6
srun --quiet --jobid="$job" --overlap --job-name=ll_notice --nodes="$nodes" --ntasks-per-node=1 \
  --chdir="$dir" --export=PATH /bin/sh -c '[ ! -d "${2%/*}" ] || { printf "%s\n" "$1" >"$2.$$" && mv -f "$2.$$" "$2"; }' \
  landlord-notice "$json" "$file"
[ "$term" = 1 ] || exit 0
scontrol show job "$job" | grep -q 'PreemptTime=None' || exit 0
exec /bin/sh -c "$7" landlord-signal "$job" TERM)SH";

// On the server: `sig` ($2) to the workload's step of job $1.
constexpr const char* kSignalStep =
    R"SH(for s in $(squeue -h -s -j "$1" -o '%i %j' | awk '$2 == "ll_workload" {print $1}'); do
  scancel --signal="$2" "$s"
done)SH";

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

// The container template filled in for `spec`, for kContainer: how many elements come before
// the command, how many the command has, then the filled-in template.
std::vector<std::string> ContainerArgv(const SlurmWorkloadOptions& o, const std::string& lease_id,
                                       const workload::Spec& spec,
                                       const std::vector<std::string>& env_names) {
  const std::string file = NoticeFile(o, lease_id);
  const std::string dir = file.substr(0, file.rfind('/'));
  std::vector<std::string> out = {"", std::to_string(spec.command.size())};
  for (const std::string& t : o.container) {
    if (t == "{image}") {
      out.push_back(spec.image);
    } else if (t == "{command}") {
      out[0] = std::to_string(out.size() - 2);
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
    if (a != "{name}" && a.find("{name}") != std::string::npos)
      return bad("takes \"{name}\" only as a whole element (e.g. \"--name\", \"{name}\")");
  }
  return Status::Ok();
}

Status CheckContainerKill(const std::vector<std::string>& kill,
                          const std::vector<std::string>& container) {
  auto bad = [](const std::string& why) {
    return Status::Invalid(fmt::format("`fleet.slurm_container_kill` {}", why));
  };
  if (kill.empty()) return Status::Ok();
  if (container.empty()) return bad("needs `fleet.slurm_container`");
  if (std::count(container.begin(), container.end(), "{name}") != 1)
    return bad("needs \"{name}\" in `fleet.slurm_container` (e.g. \"--name\", \"{name}\")");
  if (kill[0].empty() || kill[0][0] == '{')
    return bad("must start with the runtime (e.g. \"podman\")");
  for (const char* need : {"{name}", "{signal}"}) {
    if (std::count(kill.begin(), kill.end(), need) != 1)
      return bad(fmt::format("needs \"{}\" once, as a whole element", need));
  }
  for (const std::string& a : kill) {
    // The launcher splits it on spaces, with globbing off: no element may need quoting.
    const bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./:=@{},+-", c) != nullptr;
    });
    if (!plain) return bad(fmt::format("element \"{}\" may hold only letters, digits and _./:=@{{}},+-", a));
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
  if (container && !o.container_kill.empty()) {
    exported.push_back("LLW_0KILL");
    c.env.push_back("LLW_0KILL=" + Join(o.container_kill, " "));  // CheckContainerKill: no spaces
  }
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
            std::string(kPrelude) + (container ? kContainer : kExec),
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
      grace_timer_(io),
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
  grace_timer_.cancel();
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

// Runs kNotice off the loop.
void SlurmWorkload::SendNotice() {
  if (exited_ || !notice_) return;
  const nlohmann::json json = {{"action", "terminate"}, {"time", FormatUtc(*notice_)}};
  RunOffLoop({"/bin/sh", "-c", kNotice, "landlord-notice", std::to_string(job_),
              std::to_string(std::max<size_t>(1, lease_.nodes.size())), json.dump(),
              NoticeFile(o_, lease_.lease_id), o_.sigterm_on_notice ? "1" : "0", o_.notice_root,
              kSignalStep},
             "the notice could not be sent");
}

// Starts `argv` (a few Slurm commands) without waiting; it is reaped when it exits, even after
// this runner is gone (the handler holds the descriptor).
void SlurmWorkload::RunOffLoop(const std::vector<std::string>& argv, const char* what) {
  auto child = slurm::Start(argv, {}, /*capture=*/false);
  if (!child.ok()) {
    logs_.Append(fmt::format("[landlord: {}: {}]\n", what, child.status().message()));
    return;
  }
  auto sd = std::make_shared<asio::posix::stream_descriptor>(io_, child->pidfd);
  const pid_t pid = child->pid;
  sd->async_wait(asio::posix::stream_descriptor::wait_read, [sd, pid](boost::system::error_code) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  });
}

void SlurmWorkload::Stop(Duration grace) {
  if (finished_) return;
  if (!started_) {
    return Finish(State::kFailed, std::nullopt, "the lease ended before its holder job ran");
  }
  stopping_ = true;
  if (grace.ms > 0) {
    // SIGTERM to the step now, SIGKILL after `grace` (the holder job, and with it the step, is
    // cancelled then too: EndHolder). srun is killed here only if it outlives that by far (an
    // unreachable slurmctld).
    RunOffLoop({"/bin/sh", "-c", kSignalStep, "landlord-signal", std::to_string(job_), "TERM"},
               "the step could not be signalled");
    grace_timer_.expires_after(std::chrono::milliseconds(grace.ms));
    grace_timer_.async_wait(Guard([this](boost::system::error_code ec) {
      if (ec || exited_) return;
      RunOffLoop({"/bin/sh", "-c", kSignalStep, "landlord-signal", std::to_string(job_), "KILL"},
                 "the step could not be killed");
    }));
  } else {
    // The lease's end cancels the holder job (EndHolder) and with it this step; srun, told too,
    // cancels its step itself, and is killed if it hangs on an unreachable slurmctld.
    kill(pid_, SIGTERM);
  }
  kill_timer_.expires_after(std::chrono::milliseconds(grace.ms) + std::chrono::seconds(10));
  kill_timer_.async_wait(Guard([this](boost::system::error_code ec) {
    if (!ec && !exited_) kill(pid_, SIGKILL);
  }));
}

}  // namespace ll::fleet
