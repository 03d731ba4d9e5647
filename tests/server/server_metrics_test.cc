// ServerMetrics: every metric of kMetricList is registered with its help text and type, the
// per-code and per-worker children exist from the start, and histograms span 1 ms to 30 min.
#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "prometheus/text_serializer.h"

namespace sparsefill::server {
namespace {

std::string Scrape(const ServerMetrics& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, metrics.registry()->Collect());
  return out.str();
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(ServerMetricsTest, EveryDeclaredMetricIsExportedWithHelpAndType) {
  ServerMetrics metrics(/*num_workers=*/2);
  const std::string text = Scrape(metrics);
  for (const MetricSpec& spec : kMetricList) {
    const std::string name = spec.name;
    SCOPED_TRACE(name);
    EXPECT_EQ(name.rfind("sparsefill_", 0), 0u) << "project prefix";
    EXPECT_TRUE(Contains(text, "# HELP " + name + " " + spec.help)) << text;
    const char* type = spec.type == MetricType::kCounter ? "counter"
                       : spec.type == MetricType::kGauge ? "gauge"
                                                         : "histogram";
    EXPECT_TRUE(Contains(text, "# TYPE " + name + " " + type));
    if (spec.type == MetricType::kCounter) {
      EXPECT_EQ(name.substr(name.size() - 6), "_total");
    }
  }
}

TEST(ServerMetricsTest, LabelledChildrenExistFromTheStart) {
  ServerMetrics metrics(/*num_workers=*/2);
  const std::string text = Scrape(metrics);
  for (const char* code : {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
                           "CANCELLED", "UNAVAILABLE", "INTERNAL", "OUT_OF_RANGE"}) {
    EXPECT_TRUE(Contains(text, std::string("sparsefill_requests_total{code=\"") + code + "\"} 0"))
        << code;
  }
  EXPECT_TRUE(Contains(text, "sparsefill_worker_busy{worker=\"0\"} 0"));
  EXPECT_TRUE(Contains(text, "sparsefill_worker_busy{worker=\"1\"} 0"));
}

TEST(ServerMetricsTest, CountsGoToTheRightChild) {
  ServerMetrics metrics(1);
  metrics.requests(absl::StatusCode::kResourceExhausted).Increment();
  metrics.requests(absl::StatusCode::kOk).Increment();
  metrics.requests(absl::StatusCode::kOk).Increment();
  metrics.queue_seconds().Observe(0.0007);
  metrics.queue_seconds().Observe(1700);
  const std::string text = Scrape(metrics);
  EXPECT_TRUE(Contains(text, "sparsefill_requests_total{code=\"OK\"} 2"));
  EXPECT_TRUE(Contains(text, "sparsefill_requests_total{code=\"RESOURCE_EXHAUSTED\"} 1"));
  EXPECT_TRUE(Contains(text, "sparsefill_queue_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_TRUE(Contains(text, "sparsefill_queue_seconds_bucket{le=\"1000\"} 1"));
  EXPECT_TRUE(Contains(text, "sparsefill_queue_seconds_bucket{le=\"1800\"} 2"));
  EXPECT_TRUE(Contains(text, "sparsefill_queue_seconds_count 2"));
}

TEST(ServerMetricsTest, SecondsBucketsSpanOneMillisecondToThirtyMinutes) {
  const std::vector<double> b = SecondsBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.001);
  EXPECT_DOUBLE_EQ(b.back(), 1800);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

}  // namespace
}  // namespace sparsefill::server
