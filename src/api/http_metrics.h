// Request counters and latency histograms per route and status, as Prometheus text for
// `GET /metrics`. Not thread-safe: the HTTP server's one I/O thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace ll::api {

class HttpMetrics {
 public:
  void Observe(const std::string& route, int status, double seconds);
  std::string Text() const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                      0.005,  0.01,    0.05,   0.25,  1.0};
  struct Series {
    uint64_t count = 0;
    double sum = 0;
    std::array<uint64_t, 10> buckets{};
  };
  std::map<std::pair<std::string, int>, Series> series_;
};

}  // namespace ll::api
