#include "api/http_metrics.h"

#include <fmt/format.h>

namespace ll::api {

void HttpMetrics::Observe(const std::string& route, int status, double seconds) {
  Series& s = series_[{route, status}];
  ++s.count;
  s.sum += seconds;
  for (size_t i = 0; i < kBuckets.size(); ++i) s.buckets[i] += seconds <= kBuckets[i];
}

std::string HttpMetrics::Text() const {
  std::string out =
      "# HELP landlord_http_requests_total HTTP requests by route and status\n"
      "# TYPE landlord_http_requests_total counter\n";
  for (auto& [k, s] : series_) {
    out += fmt::format("landlord_http_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", k.first, k.second, s.count);
  }
  out +=
      "# HELP landlord_http_request_duration_seconds time to handle a request\n"
      "# TYPE landlord_http_request_duration_seconds histogram\n";
  std::map<std::string, Series> by_route;
  for (auto& [k, s] : series_) {
    Series& r = by_route[k.first];
    r.count += s.count;
    r.sum += s.sum;
    for (size_t i = 0; i < kBuckets.size(); ++i) r.buckets[i] += s.buckets[i];
  }
  for (auto& [route, s] : by_route) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      out += fmt::format("landlord_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route,
                         kBuckets[i], s.buckets[i]);
    }
    out += fmt::format("landlord_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, s.count);
    out += fmt::format("landlord_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, s.sum);
    out += fmt::format("landlord_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, s.count);
  }
  return out;
}

}  // namespace ll::api
