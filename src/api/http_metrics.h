// `GET /metrics` in the Prometheus text format, written by prometheus-cpp (Debian's
// prometheus-cpp-dev) rather than by hand: counters end in `_total`, every family has its
// `# HELP` and `# TYPE`, units are in the names (seconds, usd), and the serializer escapes labels.
//
// HttpMetrics: request counters and latency histograms per route and status. Not thread-safe
// (the HTTP server's one I/O thread owns it); prometheus-cpp's metrics themselves are.
// Scrape: one scrape's families of figures computed at scrape time (the control plane's totals),
// each set once.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ll::api {

class HttpMetrics {
 public:
  HttpMetrics();
  void Observe(const std::string& route, int status, double seconds);
  std::string Text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* durations_;
  // The series already made: a request's path costs two map lookups, not a label hash.
  std::map<std::pair<std::string, int>, prometheus::Counter*> counters_;
  std::map<std::string, prometheus::Histogram*> histograms_;
};

class Scrape {
 public:
  Scrape();
  // Adds a series to the family `name` (made on first use with `help`); `value` must be >= 0
  // for a counter, whose name must end in `_total`.
  void Counter(const std::string& name, const std::string& help, double value, const prometheus::Labels& labels = {});
  void Gauge(const std::string& name, const std::string& help, double value, const prometheus::Labels& labels = {});
  std::string Text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges_;
};

// Several scrapes of alike processes or loops (a gateway's event loops) as one: every sample
// of the same series (name and labels) summed, families in the order first seen, each with
// its `# HELP` and `# TYPE` once. Counters, histograms' buckets, sums and counts, and gauges
// of amounts (in flight, outstanding tokens) all add up.
std::string SumMetricsTexts(const std::vector<std::string>& texts);

}  // namespace ll::api
