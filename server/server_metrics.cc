// Registers kMetricList and binds the cached series (see server_metrics.h).
#include "server/server_metrics.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "prometheus/family.h"
#include "server/status_conversion.h"

namespace sparsefill::server {
namespace {

// The families of kMetricList by name, while binding.
struct Families {
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*> histograms;
  std::map<std::string, MetricBuckets> buckets;
};

// A metric bound in the constructor but missing from kMetricList is a programming error caught
// by the first test that builds ServerMetrics.
template <typename Map>
auto& Lookup(const Map& map, const char* name) {
  auto it = map.find(name);
  if (it == map.end()) {
    std::fprintf(stderr, "server_metrics: %s is not declared in kMetricList with this type\n",
                 name);
    std::abort();
  }
  return *it->second;
}

std::vector<double> BucketsFor(MetricBuckets kind) {
  return kind == MetricBuckets::kRatio ? RatioBuckets() : SecondsBuckets();
}

}  // namespace

std::vector<double> SecondsBuckets() {
  // Written out rather than computed: repeated multiplication gives labels like
  // 0.0025000000000000005.
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,
          2.5,   5,      10,    25,   50,    100,  250, 500,  1000, 1800};  // 1800 s = 30 min
}

std::vector<double> RatioBuckets() {
  return {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0};
}

ServerMetrics::ServerMetrics(int num_workers)
    : registry_(std::make_shared<prometheus::Registry>()) {
  Families f;
  for (const MetricSpec& spec : kMetricList) {
    switch (spec.type) {
      case MetricType::kCounter:
        f.counters[spec.name] =
            &prometheus::BuildCounter().Name(spec.name).Help(spec.help).Register(*registry_);
        break;
      case MetricType::kGauge:
        f.gauges[spec.name] =
            &prometheus::BuildGauge().Name(spec.name).Help(spec.help).Register(*registry_);
        break;
      case MetricType::kHistogram:
        f.histograms[spec.name] =
            &prometheus::BuildHistogram().Name(spec.name).Help(spec.help).Register(*registry_);
        f.buckets[spec.name] = spec.buckets;
        break;
    }
  }
  auto histogram = [&](const char* name) {
    return &Lookup(f.histograms, name).Add({}, BucketsFor(f.buckets[name]));
  };

  auto& requests = Lookup(f.counters, "sparsefill_requests_total");
  for (size_t code = 0; code < requests_.size(); ++code) {
    requests_[code] = &requests.Add({{"code", GrpcCodeName(static_cast<absl::StatusCode>(code))}});
  }
  queue_depth_ = &Lookup(f.gauges, "sparsefill_queue_depth").Add({});
  requests_in_flight_ = &Lookup(f.gauges, "sparsefill_requests_in_flight").Add({});
  requests_waiting_on_client_ = &Lookup(f.gauges, "sparsefill_requests_waiting_on_client").Add({});
  auto& busy = Lookup(f.gauges, "sparsefill_worker_busy");
  for (int w = 0; w < num_workers; ++w)
    worker_busy_.push_back(&busy.Add({{"worker", absl::StrCat(w)}}));
  queue_seconds_ = histogram("sparsefill_queue_seconds");
  prefill_seconds_ = histogram("sparsefill_prefill_seconds");
  time_to_first_kv_seconds_ = histogram("sparsefill_time_to_first_kv_seconds");
  request_duration_seconds_ = histogram("sparsefill_request_duration_seconds");
  prompt_tokens_ = &Lookup(f.counters, "sparsefill_prompt_tokens_total").Add({});
  kv_bytes_sent_ = &Lookup(f.counters, "sparsefill_kv_bytes_sent_total").Add({});
  kv_bytes_raw_ = &Lookup(f.counters, "sparsefill_kv_bytes_raw_total").Add({});
  kv_push_failures_ = &Lookup(f.counters, "sparsefill_kv_push_failures_total").Add({});
  attention_density_ = histogram("sparsefill_attention_density");
}

prometheus::Counter& ServerMetrics::requests(absl::StatusCode code) {
  const size_t i = static_cast<size_t>(code);
  return *requests_[i < requests_.size() ? i : static_cast<size_t>(absl::StatusCode::kUnknown)];
}

}  // namespace sparsefill::server
