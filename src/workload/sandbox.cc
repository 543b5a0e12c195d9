#include "workload/sandbox.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "workload/launch.h"

namespace ll::workload {
namespace asio = boost::asio;
using internal::Cgroups;
using internal::Child;
using internal::Dirs;

const char* StateName(State state) {
  switch (state) {
    case State::kPending:
      return "pending";
    case State::kRunning:
      return "running";
    case State::kExited:
      return "exited";
    case State::kKilled:
      return "killed";
    case State::kFailed:
      return "failed";
  }
  return "unknown";
}

nlohmann::json WorkloadStatus::ToJson() const {
  nlohmann::json j = {{"state", StateName(state)}};
  j["exit_code"] = exit_code ? nlohmann::json(*exit_code) : nlohmann::json();
  j["started_at"] = started_at ? nlohmann::json(FormatUtc(*started_at)) : nlohmann::json();
  j["ended_at"] = ended_at ? nlohmann::json(FormatUtc(*ended_at)) : nlohmann::json();
  if (!error.empty()) j["error"] = error;
  return j;
}

namespace {

bool ValidName(const std::string& n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

}  // namespace

class Sandbox::Impl {
 public:
  Impl(asio::io_context& io, const Clock& clock, SandboxOptions o, LeaseContext lease, Spec spec,
       Listener listener)
      : clock_(clock),
        o_(std::move(o)),
        lease_(std::move(lease)),
        spec_(std::move(spec)),
        listener_(std::move(listener)),
        pid_sd_(io),
        out_sd_(io),
        status_sd_(io),
        kill_timer_(io),
        retry_timer_(io),
        drain_timer_(io),
        logs_(std::max<size_t>(o_.log_bytes, 1)) {}
  ~Impl();

  void Start();
  void Notice(Time reclaim_at, Time kill_at);
  void Stop(Duration grace);

 private:
  Status Launch();
  void Fail(const Status& why);
  void ReadOutput();
  void ReadStatus();
  void OnStatusLine(const std::string& line);
  void WaitExit();
  void MaybeFinish();
  void RemoveCgroupsLater(int tries);
  void DrainThenFinish();
  void Signal(int sig);
  void Kill();
  void ArmKill();
  // Wraps a handler so it does nothing once the Impl is gone (its operations are cancelled in
  // the destructor, but a cancelled handler still runs later).
  template <typename F>
  auto Guard(F f) {
    return [w = std::weak_ptr<int>(alive_), f = std::move(f)](auto&&... args) mutable {
      if (!w.expired()) f(std::forward<decltype(args)>(args)...);
    };
  }

  const Clock& clock_;
  SandboxOptions o_;
  LeaseContext lease_;
  Spec spec_;
  Listener listener_;
  Cgroups cg_;
  Child child_;
  pid_t init_pid_ = -1;  // the sandbox's pid 1 (bwrap's init) as the host sees it
  int init_pidfd_ = -1;
  asio::posix::stream_descriptor pid_sd_, out_sd_, status_sd_;
  asio::steady_timer kill_timer_, retry_timer_, drain_timer_;
  std::optional<Time> kill_at_;
  bool term_pending_ = false, killed_ = false, exited_ = false, eof_ = false, finished_ = false;
  int raw_status_ = 0;
  std::array<char, 16384> out_buf_{};
  std::array<char, 1024> status_buf_{};
  std::string status_text_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

 public:  // read by Sandbox's accessors
  WorkloadStatus status_;
  LogRing logs_;
  std::optional<SshAccess> ssh_;
  std::string limits_via_;
  Dirs dirs_;
};

Status Sandbox::Impl::Launch() {
  if (!ValidName(lease_.name))
    return Status::Invalid(fmt::format("bad sandbox name `{}`", lease_.name));
  if (o_.runtime_root.empty()) return Status::Invalid("no runtime root");
  LL_ASSIGN_OR_RETURN(dirs_, internal::MakeDirs(o_, lease_, spec_));
  limits_via_ = cg_.Make(o_, lease_.name) ? "cgroup-v1" : "rlimit";
  int port = 0;
  if (!spec_.ssh_public_keys.empty()) {
    LL_ASSIGN_OR_RETURN(port, internal::FreeLoopbackPort());
    LL_ASSIGN_OR_RETURN(std::string host_key, internal::HostPublicKey(o_, dirs_));
    ssh_ = SshAccess{port,
                     kSandboxUser,
                     host_key,
                     {"ssh", "-p", std::to_string(port), std::string(kSandboxUser) + "@127.0.0.1"}};
  }
  const auto argv = internal::BwrapArgv(o_, dirs_, spec_, port);
  LL_ASSIGN_OR_RETURN(child_, internal::Spawn(o_, cg_, argv, internal::SandboxEnv(lease_, spec_)));
  pid_sd_.assign(child_.pidfd);
  out_sd_.assign(child_.output_fd);
  status_sd_.assign(child_.status_fd);
  return Status::Ok();
}

void Sandbox::Impl::Start() {
  if (status_.state != State::kPending) return;
  if (Status st = Launch(); !st.ok()) return Fail(st);
  status_.state = State::kRunning;
  status_.started_at = clock_.Now();
  ReadOutput();
  ReadStatus();
  WaitExit();
  if (listener_) listener_(status_);
}

void Sandbox::Impl::Fail(const Status& why) {
  status_.state = State::kFailed;
  status_.error = why.message();
  status_.ended_at = clock_.Now();
  cg_.Remove();
  if (!dirs_.top.empty()) (void)internal::Wipe(dirs_.top);
  logs_.Close();
  if (listener_) listener_(status_);
}

void Sandbox::Impl::ReadOutput() {
  out_sd_.async_read_some(asio::buffer(out_buf_),
                          Guard([this](boost::system::error_code ec, size_t n) {
                            if (n > 0) logs_.Append(std::string_view(out_buf_.data(), n));
                            if (ec) {
                              eof_ = true;
                              return MaybeFinish();
                            }
                            ReadOutput();
                          }));
}

// bwrap's status: one JSON document per line; the first names the sandbox's pid 1. Read to
// the end, or bwrap dies of SIGPIPE writing its exit code.
void Sandbox::Impl::ReadStatus() {
  status_sd_.async_read_some(
      asio::buffer(status_buf_), Guard([this](boost::system::error_code ec, size_t n) {
        status_text_.append(status_buf_.data(), n);
        for (size_t nl; (nl = status_text_.find('\n')) != std::string::npos;) {
          OnStatusLine(status_text_.substr(0, nl));
          status_text_.erase(0, nl + 1);
        }
        if (!ec && status_text_.size() < 65536) ReadStatus();
      }));
}

void Sandbox::Impl::OnStatusLine(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("child-pid") || !j["child-pid"].is_number_integer()) return;
  init_pid_ = j["child-pid"].get<pid_t>();
  init_pidfd_ = internal::PidfdOpen(init_pid_);
  if (term_pending_) Signal(SIGTERM);
  if (killed_) Kill();
}

void Sandbox::Impl::WaitExit() {
  pid_sd_.async_wait(asio::posix::stream_descriptor::wait_read,
                     Guard([this](boost::system::error_code ec) {
                       if (ec == asio::error::operation_aborted) return;
                       int st = 0;
                       const pid_t r = waitpid(child_.pid, &st, WNOHANG);
                       if (r == 0) return WaitExit();  // not yet (spurious wakeup)
                       exited_ = true;
                       raw_status_ = st;
                       if (init_pidfd_ >= 0) close(init_pidfd_);
                       init_pidfd_ = -1;
                       if (!eof_) DrainThenFinish();
                       MaybeFinish();
                     }));
}

// The end, once bwrap has exited and its output is drained: the status, the cgroups gone,
// the work dir wiped (the sanitize step), then the listener.
void Sandbox::Impl::MaybeFinish() {
  if (!exited_ || !eof_ || finished_) return;
  finished_ = true;
  kill_timer_.cancel();
  drain_timer_.cancel();
  status_sd_.close();
  out_sd_.close();
  pid_sd_.close();
  const bool oom = cg_.OomKilled();
  if (!cg_.Remove()) RemoveCgroupsLater(50);
  if (Status st = internal::Wipe(dirs_.top); !st.ok())
    logs_.Append(fmt::format("[landlord: {}]\n", st.message()));
  logs_.Close();
  const int st = raw_status_;
  status_.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  status_.ended_at = clock_.Now();
  status_.state = killed_ || oom ? State::kKilled : State::kExited;
  if (oom) status_.error = "memory limit";
  ssh_.reset();
  if (listener_) listener_(status_);
}

// Every writer of the output pipe is in the sandbox and dies with it, but a descriptor passed to
// a process outside (over a socket) would hold the pipe open: the end does not wait for it.
void Sandbox::Impl::DrainThenFinish() {
  drain_timer_.expires_after(std::chrono::seconds(2));
  drain_timer_.async_wait(Guard([this](boost::system::error_code ec) {
    if (ec || eof_) return;
    eof_ = true;
    MaybeFinish();
  }));
}

void Sandbox::Impl::RemoveCgroupsLater(int tries) {
  if (tries == 0) return;
  retry_timer_.expires_after(std::chrono::milliseconds(100));
  retry_timer_.async_wait(Guard([this, tries](boost::system::error_code ec) {
    if (!ec && !cg_.Remove()) RemoveCgroupsLater(tries - 1);
  }));
}

// To every process of the workload: its process group (all of the sandbox's processes start in
// its pid 1's session and group, bwrap --new-session), and any that left it (setsid, a login's
// session) found by their pid namespace. Pid 1 itself, bwrap's reaper, ignores SIGTERM.
void Sandbox::Impl::Signal(int sig) {
  if (init_pid_ <= 0) {
    term_pending_ = term_pending_ || sig == SIGTERM;
    return;
  }
  term_pending_ = false;
  // Only while pid 1 lives: then its group number cannot belong to anyone else.
  if (init_pidfd_ < 0 || internal::PidfdSignal(init_pidfd_, 0) != 0) return;
  kill(-init_pid_, sig);
  internal::SignalNamespace(init_pid_, sig);
}

// SIGKILL to the sandbox's pid 1 ends its pid namespace, every process in it.
void Sandbox::Impl::Kill() {
  if (exited_) return;
  killed_ = true;
  if (init_pidfd_ >= 0) internal::PidfdSignal(init_pidfd_, SIGKILL);
  if (child_.pidfd >= 0) internal::PidfdSignal(child_.pidfd, SIGKILL);
}

void Sandbox::Impl::ArmKill() {
  const Duration left = *kill_at_ - clock_.Now();
  // In steps: the lease's clock may run faster than the host's (a sped-up `serve`), and a step
  // re-reads it; a kill is at most one step late, never early.
  kill_timer_.expires_after(std::chrono::milliseconds(std::clamp<int64_t>(left.ms, 0, 100)));
  kill_timer_.async_wait(Guard([this](boost::system::error_code ec) {
    if (ec) return;
    // The timer's clock is not the lease's: never kill before the lease's clock says so.
    if (clock_.Now() < *kill_at_) return ArmKill();
    Kill();
  }));
}

void Sandbox::Impl::Notice(Time reclaim_at, Time kill_at) {
  if (status_.state != State::kRunning || exited_) return;
  kill_at = std::max(kill_at, reclaim_at);
  kill_at_ = kill_at_ ? std::min(*kill_at_, kill_at) : kill_at;
  const nlohmann::json notice = {{"action", "terminate"}, {"time", FormatUtc(reclaim_at)}};
  if (Status st = internal::WriteFileAtomic(dirs_.run / "notice.json", notice.dump() + "\n");
      !st.ok())
    logs_.Append(fmt::format("[landlord: {}]\n", st.message()));
  if (o_.sigterm_on_notice) Signal(SIGTERM);
  ArmKill();
}

void Sandbox::Impl::Stop(Duration grace) {
  if (status_.state != State::kRunning || exited_) return;
  if (grace.ms <= 0) return Kill();
  Signal(SIGTERM);
  const Time at = clock_.Now() + grace;
  kill_at_ = kill_at_ ? std::min(*kill_at_, at) : at;
  ArmKill();
}

Sandbox::Impl::~Impl() {
  alive_.reset();
  if (child_.pid > 0 && !exited_) {
    Kill();
    while (waitpid(child_.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (init_pidfd_ >= 0) close(init_pidfd_);
  for (int i = 0; i < 100 && !cg_.Remove(); ++i) usleep(10'000);  // the pids die at once
  if (!dirs_.top.empty() && !finished_) (void)internal::Wipe(dirs_.top);
}

Status SweepLeftovers(const SandboxOptions& options) {
  return internal::SweepLeftoversImpl(options);
}

Sandbox::Sandbox(asio::io_context& io, const Clock& clock, SandboxOptions options,
                 LeaseContext lease, Spec spec, Listener listener)
    : impl_(std::make_unique<Impl>(io, clock, std::move(options), std::move(lease), std::move(spec),
                                   std::move(listener))) {}
Sandbox::~Sandbox() = default;
void Sandbox::Start() { impl_->Start(); }
void Sandbox::Notice(Time reclaim_at, Time kill_at) { impl_->Notice(reclaim_at, kill_at); }
void Sandbox::Stop(Duration grace) { impl_->Stop(grace); }
const WorkloadStatus& Sandbox::status() const { return impl_->status_; }
LogRing& Sandbox::logs() { return impl_->logs_; }
const std::optional<SshAccess>& Sandbox::ssh() const { return impl_->ssh_; }
const std::string& Sandbox::limits_via() const { return impl_->limits_via_; }
std::filesystem::path Sandbox::work_dir() const { return impl_->dirs_.home; }

}  // namespace ll::workload
