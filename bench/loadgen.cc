// landlord_loadgen: an open-loop (fixed-rate) HTTP/1.1 load generator for the gateway benchmark
// (bench/gateway_rate_bench.sh; Debian packages neither wrk2 nor a `hey` that reports the time
// to the first byte).
//
// Request i is due at start + i / rate whatever happened to the ones before (open loop): it goes
// out on an idle keep-alive connection, a new one (up to --connections), or waits for one; its
// latencies count from when it was due, so a stall is charged to every request it delays (no
// coordinated omission). Per request: the time to the first byte of the answer and to its last
// byte (Content-Length or the chunked terminator). Alongside, with --fsync-dir, a thread of its
// own writes 4 KiB and fdatasync()s a file there every 10 ms: the disk's own sync latency in
// the same run, the floor of an answer that waits for its usage to be durable.
//
// Prints one JSON object: achieved rate, errors, and p50/p90/p99/p99.9/max of both latencies
// (and of the fsyncs), in milliseconds.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1", port, path = "/";
  std::string body;
  std::vector<std::string> headers;
  double rate = 1000, seconds = 10, warmup = 2;
  int connections = 64;
  std::string fsync_dir;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  std::vector<double> v;
  double At(double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
    return v[i];
  }
  std::string Json() {
    return fmt::format(R"({{"n": {}, "p50": {:.3f}, "p90": {:.3f}, "p99": {:.3f}, "p999": {:.3f}, "max": {:.3f}}})",
                       v.size(), At(0.5), At(0.9), At(0.99), At(0.999), v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()));
  }
};

class Load;

// One keep-alive connection; one request at a time.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(net::io_context& ioc, Load& load) : sock_(ioc), load_(load) {}
  void Connect(const tcp::endpoint& ep, Clock::time_point due);
  void Send(Clock::time_point due);
  bool busy = false;

 private:
  void Read();
  // Whether buf_ holds the whole answer (head parsed on the way).
  bool Complete();
  void Done(bool ok);

  tcp::socket sock_;
  Load& load_;
  std::string buf_;
  std::array<char, 16384> chunk_{};
  Clock::time_point due_, first_;
  size_t head_end_ = 0, content_length_ = 0, scan_ = 0;
  bool chunked_ = false, got_first_ = false;
  int status_ = 0;
};

class Load {
 public:
  Load(net::io_context& ioc, Options o, tcp::endpoint ep) : ioc_(ioc), o_(std::move(o)), ep_(ep), timer_(ioc) {
    request_ = fmt::format("POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\n", o_.path, o_.host, o_.port,
                           o_.body.size());
    for (const auto& h : o_.headers) request_ += h + "\r\n";
    request_ += "\r\n" + o_.body;
  }
  void Start() {
    start_ = next_ = Clock::now();
    end_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.warmup + o_.seconds));
    measure_from_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.warmup));
    Tick();
  }
  const std::string& request() const { return request_; }
  void Finished(Conn* c, Clock::time_point due, Clock::time_point first, Clock::time_point last, bool ok, int status) {
    --outstanding_;
    if (due >= measure_from_) {
      if (ok && status >= 200 && status < 300) {
        ttfb_.v.push_back(Ms(first - due));
        ttlb_.v.push_back(Ms(last - due));
      } else {
        ++errors_;
      }
    }
    if (!ok) {
      std::erase_if(conns_, [c](const auto& p) { return p.get() == c; });
    } else {
      c->busy = false;
    }
    Dispatch();
    MaybeStop();
  }
  std::string Report(double fsync_p50, double fsync_p99, double fsync_max, size_t fsyncs) {
    const double measured = o_.seconds;
    return fmt::format(
        R"({{"rate_target": {}, "rate_achieved": {:.1f}, "seconds": {}, "connections_max": {}, "connections_used": {}, )"
        R"("errors": {}, "ttfb_ms": {}, "ttlb_ms": {}, "fsync_ms": {{"n": {}, "p50": {:.3f}, "p99": {:.3f}, "max": {:.3f}}}}})",
        o_.rate, static_cast<double>(ttlb_.v.size() + errors_) / measured, o_.seconds, o_.connections, peak_conns_,
        errors_, ttfb_.Json(), ttlb_.Json(), fsyncs, fsync_p50, fsync_p99, fsync_max);
  }

 private:
  void Tick() {
    const auto now = Clock::now();
    while (next_ <= now && next_ < end_) {
      due_.push_back(next_);
      ++sent_;
      next_ = start_ + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(static_cast<double>(sent_) / o_.rate));
    }
    Dispatch();
    if (next_ >= end_) {
      ticking_ = false;
      MaybeStop();
      return;
    }
    timer_.expires_at(next_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Tick();
    });
  }
  void Dispatch() {
    while (!due_.empty()) {
      Conn* idle = nullptr;
      for (auto& c : conns_) {
        if (!c->busy) {
          idle = c.get();
          break;
        }
      }
      if (idle == nullptr && static_cast<int>(conns_.size()) >= o_.connections) return;  // waits (and is charged)
      const auto due = due_.front();
      due_.pop_front();
      ++outstanding_;
      if (idle != nullptr) {
        idle->Send(due);
        continue;
      }
      auto c = std::make_shared<Conn>(ioc_, *this);
      conns_.push_back(c);
      peak_conns_ = std::max(peak_conns_, conns_.size());
      c->Connect(ep_, due);
    }
  }
  void MaybeStop() {
    if (!ticking_ && due_.empty() && outstanding_ == 0) {
      ioc_.stop();
    }
  }

  net::io_context& ioc_;
  Options o_;
  tcp::endpoint ep_;
  net::steady_timer timer_;
  std::string request_;
  Clock::time_point start_, end_, measure_from_, next_;
  uint64_t sent_ = 0;
  int64_t outstanding_ = 0, errors_ = 0;
  bool ticking_ = true;
  std::deque<Clock::time_point> due_;
  std::vector<std::shared_ptr<Conn>> conns_;
  size_t peak_conns_ = 0;
  Stats ttfb_, ttlb_;
};

void Conn::Connect(const tcp::endpoint& ep, Clock::time_point due) {
  busy = true;
  sock_.async_connect(ep, [self = shared_from_this(), due](const boost::system::error_code& ec) {
    if (ec) {
      self->due_ = due;
      self->Done(false);
      return;
    }
    self->sock_.set_option(tcp::no_delay(true));
    self->Send(due);
  });
}

void Conn::Send(Clock::time_point due) {
  busy = true;
  due_ = due;
  buf_.clear();
  head_end_ = content_length_ = scan_ = 0;
  chunked_ = got_first_ = false;
  status_ = 0;
  net::async_write(sock_, net::buffer(load_.request()), [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
    if (ec) return self->Done(false);
    self->Read();
  });
}

void Conn::Read() {
  sock_.async_read_some(net::buffer(chunk_), [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
    if (ec) return self->Done(false);
    if (!self->got_first_) {
      self->got_first_ = true;
      self->first_ = Clock::now();
    }
    self->buf_.append(self->chunk_.data(), n);
    if (self->Complete()) return self->Done(true);
    self->Read();
  });
}

bool Conn::Complete() {
  if (head_end_ == 0) {
    const size_t e = buf_.find("\r\n\r\n");
    if (e == std::string::npos) return false;
    head_end_ = e + 4;
    status_ = std::atoi(buf_.c_str() + 9);
    std::string head = buf_.substr(0, head_end_);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char ch) { return std::tolower(ch); });
    chunked_ = head.find("transfer-encoding: chunked") != std::string::npos;
    if (const size_t cl = head.find("content-length:"); cl != std::string::npos) {
      content_length_ = std::strtoull(head.c_str() + cl + 15, nullptr, 10);
    }
    scan_ = head_end_;
  }
  if (!chunked_) return buf_.size() >= head_end_ + content_length_;
  // Chunks: size line, data, CRLF; the last has size 0.
  for (;;) {
    const size_t eol = buf_.find("\r\n", scan_);
    if (eol == std::string::npos) return false;
    const size_t size = std::strtoull(buf_.c_str() + scan_, nullptr, 16);
    if (size == 0) return buf_.size() >= eol + 4;  // "0\r\n\r\n" (no trailers)
    if (buf_.size() < eol + 2 + size + 2) return false;
    scan_ = eol + 2 + size + 2;
  }
}

void Conn::Done(bool ok) {
  const auto now = Clock::now();
  if (!got_first_) first_ = now;
  if (!ok) {
    boost::system::error_code ignored;
    sock_.close(ignored);
  }
  load_.Finished(this, due_, first_, now, ok, status_);
}

// The disk's own sync latency: 4 KiB written and fdatasync()ed every 10 ms until `stop`.
void FsyncProbe(const std::string& dir, const std::atomic<bool>& stop, std::vector<double>* out) {
  const std::string path = dir + "/loadgen_fsync_probe";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return;
  std::string block(4096, 'x');
  for (int64_t i = 0; !stop; ++i) {
    const auto t0 = Clock::now();
    if (pwrite(fd, block.data(), block.size(), (i % 256) * 4096) < 0) break;
    if (fdatasync(fd) != 0) break;
    out->push_back(Ms(Clock::now() - t0));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(fd);
  unlink(path.c_str());
}

int Usage() {
  std::fprintf(stderr,
               "usage: landlord_loadgen --url http://HOST:PORT/PATH --rate R [--seconds S] [--warmup S]\n"
               "         [--connections C] [--body TEXT] [--header 'K: V']... [--fsync-dir DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string url;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) return Usage();
    const std::string v = argv[++i];
    if (a == "--url") url = v;
    else if (a == "--rate") o.rate = std::atof(v.c_str());
    else if (a == "--seconds") o.seconds = std::atof(v.c_str());
    else if (a == "--warmup") o.warmup = std::atof(v.c_str());
    else if (a == "--connections") o.connections = std::atoi(v.c_str());
    else if (a == "--body") o.body = v;
    else if (a == "--header") o.headers.push_back(v);
    else if (a == "--fsync-dir") o.fsync_dir = v;
    else return Usage();
  }
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme) || o.rate <= 0 || o.seconds <= 0 || o.connections < 1) return Usage();
  std::string rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  o.path = slash == std::string::npos ? "/" : rest.substr(slash);
  rest = rest.substr(0, slash);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return Usage();
  o.host = rest.substr(0, colon);
  o.port = rest.substr(colon + 1);
  net::io_context ioc(1);
  tcp::endpoint ep(net::ip::make_address(o.host), static_cast<unsigned short>(std::atoi(o.port.c_str())));
  std::atomic<bool> stop{false};
  std::vector<double> fsyncs;
  std::thread probe;
  if (!o.fsync_dir.empty()) probe = std::thread(FsyncProbe, o.fsync_dir, std::cref(stop), &fsyncs);
  Load load(ioc, o, ep);
  load.Start();
  ioc.run();
  stop = true;
  if (probe.joinable()) probe.join();
  Stats f{fsyncs};
  const double p50 = f.At(0.5), p99 = f.At(0.99);
  const double mx = fsyncs.empty() ? 0 : *std::max_element(fsyncs.begin(), fsyncs.end());
  std::printf("%s\n", load.Report(p50, p99, mx, fsyncs.size()).c_str());
  return 0;
}
