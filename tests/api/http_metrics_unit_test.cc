// SumMetricsTexts: a gateway's event loops scraped as one.
#include "api/http_metrics.h"

#include <gtest/gtest.h>

namespace ll::api {
namespace {

TEST(SumMetricsTexts, SameSeriesAddUpFamiliesStayWholeAndKeepTheirCommentsOnce) {
  const std::string a =
      "# HELP req_total requests\n# TYPE req_total counter\n"
      "req_total{code=\"200\"} 3\nreq_total{code=\"429\"} 1\n"
      "# HELP in_flight in flight\n# TYPE in_flight gauge\nin_flight 2\n";
  const std::string b =
      "# HELP req_total requests\n# TYPE req_total counter\n"
      "req_total{code=\"200\"} 4\nreq_total{code=\"503\"} 2\n"
      "# HELP in_flight in flight\n# TYPE in_flight gauge\nin_flight 1.5\n"
      "# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"
      "lat_seconds_bucket{le=\"+Inf\"} 7\nlat_seconds_sum 0.25\nlat_seconds_count 7\n";
  EXPECT_EQ(SumMetricsTexts({a, b}),
            "# HELP req_total requests\n# TYPE req_total counter\n"
            "req_total{code=\"200\"} 7\nreq_total{code=\"429\"} 1\nreq_total{code=\"503\"} 2\n"
            "# HELP in_flight in flight\n# TYPE in_flight gauge\nin_flight 3.5\n"
            "# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"+Inf\"} 7\nlat_seconds_sum 0.25\nlat_seconds_count 7\n");
}

TEST(SumMetricsTexts, OneTextComesBackAsItWas) {
  const std::string a = "# HELP x_total x\n# TYPE x_total counter\nx_total{a=\"b c\"} 12345678901\n";
  EXPECT_EQ(SumMetricsTexts({a}), a);
  EXPECT_EQ(SumMetricsTexts({}), "");
}

}  // namespace
}  // namespace ll::api
