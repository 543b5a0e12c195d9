#include "api/http_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>

#include <fmt/format.h>
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

std::string SumMetricsTexts(const std::vector<std::string>& texts) {
  struct Family {
    std::vector<std::string> comments;
    std::vector<std::string> series;  // in the order first seen
    std::map<std::string, double> value;
  };
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  for (const std::string& text : texts) {
    std::string current;
    size_t at = 0;
    while (at < text.size()) {
      size_t eol = text.find('\n', at);
      if (eol == std::string::npos) eol = text.size();
      const std::string line = text.substr(at, eol - at);
      at = eol + 1;
      if (line.empty()) continue;
      if (line.starts_with("# ")) {  // "# HELP name ..." / "# TYPE name ...": a family starts
        const size_t name_at = line.find(' ', 2);
        const std::string name = line.substr(name_at + 1, line.find(' ', name_at + 1) - name_at - 1);
        if (!families.contains(name)) order.push_back(name);
        Family& f = families[name];
        current = name;
        if (std::find(f.comments.begin(), f.comments.end(), line) == f.comments.end()) f.comments.push_back(line);
        continue;
      }
      const size_t space = line.rfind(' ');
      if (space == std::string::npos) continue;
      const std::string series = line.substr(0, space);
      if (current.empty()) {  // a sample with no family comment: its own family
        current = series.substr(0, series.find('{'));
        if (!families.contains(current)) order.push_back(current);
      }
      Family& f = families[current];
      auto [it, fresh] = f.value.try_emplace(series, 0.0);
      if (fresh) f.series.push_back(series);
      it->second += std::strtod(line.c_str() + space + 1, nullptr);
    }
  }
  std::string out;
  for (const std::string& name : order) {
    const Family& f = families[name];
    for (const std::string& c : f.comments) out += c + "\n";
    for (const std::string& series : f.series) {
      const double v = f.value.at(series);
      // Counts as integers (fmt's shortest form of 1000000.0 is 1e+06).
      if (v == std::floor(v) && std::fabs(v) < 9e15) {
        out += fmt::format("{} {}\n", series, static_cast<int64_t>(v));
      } else {
        out += fmt::format("{} {}\n", series, v);
      }
    }
  }
  return out;
}

}  // namespace ll::api
