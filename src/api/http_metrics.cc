#include "api/http_metrics.h"

#include <prometheus/text_serializer.h>

#include "api/ops_log.h"
#include "core/check.h"

namespace ll::api {
namespace {

std::string Serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace

HttpMetrics::HttpMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(&prometheus::BuildCounter()
                     .Name("landlord_http_requests_total")
                     .Help("HTTP requests by route and status")
                     .Register(*registry_)),
      durations_(&prometheus::BuildHistogram()
                      .Name("landlord_http_request_duration_seconds")
                      .Help("Time to handle a request")
                      .Register(*registry_)) {}

void HttpMetrics::Observe(const std::string& route, int status, double seconds) {
  if (oplog::AccessLogOn()) oplog::Access(route, status, seconds);  // every request passes here
  auto c = counters_.find({route, status});
  if (c == counters_.end()) {
    c = counters_.emplace(std::pair{route, status}, &requests_->Add({{"route", route}, {"code", std::to_string(status)}}))
            .first;
  }
  c->second->Increment();
  auto h = histograms_.find(route);
  if (h == histograms_.end()) {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                                     0.005,  0.01,    0.05,   0.25,  1.0};
    h = histograms_.emplace(route, &durations_->Add({{"route", route}}, kBuckets)).first;
  }
  h->second->Observe(seconds);
}

std::string HttpMetrics::Text() const { return Serialize(*registry_); }

Scrape::Scrape() : registry_(std::make_shared<prometheus::Registry>()) {}

void Scrape::Counter(const std::string& name, const std::string& help, double value, const prometheus::Labels& labels) {
  LL_CHECK(name.ends_with("_total"));
  auto f = counters_.find(name);
  if (f == counters_.end()) {
    f = counters_.emplace(name, &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_)).first;
  }
  f->second->Add(labels).Increment(value);
}

void Scrape::Gauge(const std::string& name, const std::string& help, double value, const prometheus::Labels& labels) {
  auto f = gauges_.find(name);
  if (f == gauges_.end()) {
    f = gauges_.emplace(name, &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_)).first;
  }
  f->second->Add(labels).Set(value);
}

std::string Scrape::Text() const { return Serialize(*registry_); }

}  // namespace ll::api
