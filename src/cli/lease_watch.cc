// `landlord lease watch`: follows a lease's event stream (SSE) until the lease ends, resuming
// after a broken stream, with a countdown to the reclaim once the lease is noticed.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "cli/client_internal.h"
#include "core/clock.h"
#include "core/time.h"

namespace ll::cli::client {
namespace {

// Prints the time left before a noticed lease is reclaimed, in server-clock seconds, while the
// main thread reads events: on a terminal a status line under the events, rewritten every wall
// second; otherwise a line every 10 s. Every stdout write of `lease watch` goes through it,
// under one mutex.
class Countdown {
 public:
  Countdown(bool tty, std::unique_ptr<Clock> wall)
      : tty_(tty),
        period_(tty ? std::chrono::seconds(1) : std::chrono::seconds(10)),
        wall_(std::move(wall)),
        thread_([this] { Loop(); }) {}

  ~Countdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      EndLineLocked(/*keep=*/true);
    }
    cv_.notify_all();
    thread_.join();
  }

  void PrintLine(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    EndLineLocked(/*keep=*/false);
    fmt::print("{}\n", line);
    std::fflush(stdout);
  }

  // Counts down from `left` of server time as of now; the server clock runs `speed` times the
  // wall clock. While already counting, only re-syncs (the printing rhythm stays).
  void Start(Duration left, double speed) {
    std::lock_guard<std::mutex> lock(mu_);
    bool was_active = active_;
    active_ = true;
    left_ = left;
    speed_ = speed > 0 ? speed : 1.0;
    since_ = wall_->Now();
    if (was_active && !tty_) return;
    ShowLocked();
    if (!was_active) {
      ++generation_;  // a full period from now until the next line
      cv_.notify_all();
    }
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = false;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      uint64_t generation = generation_;
      bool woken = cv_.wait_for(lock, period_, [&] { return quit_ || generation_ != generation; });
      if (quit_) break;
      if (!woken && active_) ShowLocked();  // a full period passed without a restart
    }
  }

  void ShowLocked() {
    Duration elapsed = wall_->Now() - since_;
    int64_t left_ms = left_.ms - std::llround(static_cast<double>(elapsed.ms) * speed_);
    std::string text;
    if (left_ms <= 0) {
      text = "reclaim due now";
      active_ = false;
    } else {
      int64_t left_s = (left_ms + 999) / 1000;
      text = fmt::format("reclaim in {} s", left_s);
      if (speed_ != 1.0)
        text += fmt::format(" of server time ({:.0f} s wall)", std::ceil(left_ms / speed_ / 1000));
    }
    if (tty_) {
      fmt::print("\r  {}\033[K", text);
      line_open_ = true;
    } else {
      fmt::print("  {}\n", text);
    }
    std::fflush(stdout);
  }

  // Ends the countdown line on a terminal: kept above what follows, or erased so that the
  // next line takes its place.
  void EndLineLocked(bool keep) {
    if (!line_open_) return;
    std::fputs(keep ? "\n" : "\r\033[K", stdout);
    std::fflush(stdout);
    line_open_ = false;
  }

  const bool tty_;
  const std::chrono::seconds period_;
  const std::unique_ptr<Clock> wall_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  bool active_ = false;
  bool line_open_ = false;  // a countdown line is on the terminal without its newline
  uint64_t generation_ = 0;
  Duration left_;
  double speed_ = 1.0;
  Time since_;
  std::thread thread_;  // last: started after the members it reads
};

bool IsFinalState(std::string_view state) {
  return state == "released" || state == "reclaimed" || state == "ended";
}

std::string EventLine(const std::string& type, const Json& d) {
  const Json lease = d.is_object() && d.contains("lease") ? d.at("lease") : Json::object();
  std::string line =
      fmt::format("{}  {:<14}  {:<9}", TimeField(d, "at"), type, Field(lease, "state"));
  if (type == "reclaim_notice") {
    line += fmt::format("  reclaim at {} ({})", TimeField(d, "reclaim_at"), Field(d, "reason"));
  } else if (type == "price_changed") {
    line += fmt::format("  price {} USD/GPU-h", Field(lease, "price_per_gpu_hour"));
  } else if (type == "active") {
    auto nodes = lease.is_object() ? lease.find("nodes") : lease.end();
    line += fmt::format("  {} GPUs on {}", Field(lease, "gpus"),
                        nodes != lease.end() ? NodesText(*nodes) : "-");
  } else if (Field(lease, "end_reason") != "-") {
    line += fmt::format("  {}", Field(lease, "end_reason"));
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

}  // namespace

int RunWatch(State& s) {
  const CommonOptions& o = s.common;
  int exit_code = 0;
  std::unique_ptr<HttpClient> client = NewClient(o, &exit_code);
  if (client == nullptr) return exit_code;
  const std::string target = fmt::format("/v1/leases/{}/events", PathSegment(s.id));
  Status failure;
  {  // the countdown's last line ends before the error is printed
    Countdown countdown(!o.json && isatty(STDOUT_FILENO) != 0, NewSystemClock());

    std::string last_id;
    bool final = false;
    uint64_t events = 0;
    auto on_event = [&](const SseEvent& ev) {
      ++events;
      last_id = ev.id;
      Json d = Json::parse(ev.data, nullptr, /*allow_exceptions=*/false);
      std::string state =
          d.is_object() && d.contains("lease") ? Field(d.at("lease"), "state") : "-";
      final = IsFinalState(state) || IsFinalState(ev.event);
      if (o.json) {
        countdown.PrintLine(ev.data);
        return !final;
      }
      if (d.is_discarded()) {
        countdown.PrintLine(fmt::format("{}  {}", ev.event, ev.data));
        return !final;
      }
      try {
        countdown.PrintLine(EventLine(ev.event, d));
        if (state != "noticed") {
          countdown.Stop();
          return !final;
        }
        // Every event carries the server's `now`: re-sync the countdown on each.
        std::string reclaim_at = Field(d.at("lease"), "reclaim_at");
        if (reclaim_at == "-") reclaim_at = Field(d, "reclaim_at");
        auto reclaim = ParseUtc(reclaim_at);
        auto now = ParseUtc(Field(d, "now"));
        if (reclaim.ok() && now.ok()) {
          auto speed = d.find("clock_speed");
          countdown.Start(*reclaim - *now,
                          speed != d.end() && speed->is_number() ? speed->get<double>() : 1.0);
        }
      } catch (const Json::exception&) {
        countdown.PrintLine(fmt::format("{}  {}", ev.event, ev.data));
      }
      return !final;
    };

    for (;;) {
      uint64_t before = events;
      Status st = client->Stream(target, on_event, last_id);
      if (final) return 0;
      // The stream broke or ended early: resume after the last event seen, as long as that makes
      // progress.
      if (events == before) {
        failure = st.ok()
                      ? Status::Io("the event stream ended before the lease reached a final state")
                      : st;
        break;
      }
    }
  }
  return Fail(failure);
}

}  // namespace ll::cli::client
