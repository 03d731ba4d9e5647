// The server's Prometheus metrics. Every metric is declared once, with its help text, in
// kMetricList (names `sparsefill_*`, base units, `_total` for counters; see shared/DESIGN.md);
// ServerMetrics registers that list and hands out the series, with labelled children created
// once at startup and cached (no label lookups on the request path).
#pragma once

#include <array>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace sparsefill::server {

enum class MetricType { kCounter, kGauge, kHistogram };
enum class MetricBuckets { kNone, kSeconds, kRatio };

struct MetricSpec {
  const char* name;
  MetricType type;
  const char* label;  // the one label of the family, or nullptr
  MetricBuckets buckets;
  const char* help;
};

// The list. Adding a metric: add it here, then bind it in ServerMetrics' constructor.
inline constexpr MetricSpec kMetricList[] = {
    {"sparsefill_requests_total", MetricType::kCounter, "code", MetricBuckets::kNone,
     "Prefill calls by the final gRPC status code (DEADLINE_EXCEEDED when the client's deadline "
     "expired, CANCELLED when the client cancelled)."},
    {"sparsefill_queue_depth", MetricType::kGauge, nullptr, MetricBuckets::kNone,
     "Admitted Prefill requests waiting for a worker."},
    {"sparsefill_requests_in_flight", MetricType::kGauge, nullptr, MetricBuckets::kNone,
     "Admitted Prefill requests not finished yet (queued, running or streaming)."},
    {"sparsefill_requests_waiting_on_client", MetricType::kGauge, nullptr, MetricBuckets::kNone,
     "Prefills paused because their client reads KV more slowly than it is produced (stream "
     "backpressure)."},
    {"sparsefill_worker_busy", MetricType::kGauge, "worker", MetricBuckets::kNone,
     "Prefills running on each worker (one worker per GPU; one for the CPU backend)."},
    {"sparsefill_queue_seconds", MetricType::kHistogram, nullptr, MetricBuckets::kSeconds,
     "Time admitted requests waited in the queue for a worker."},
    {"sparsefill_prefill_seconds", MetricType::kHistogram, nullptr, MetricBuckets::kSeconds,
     "Prefill time on the worker: all layers and the logits, including waits on a slow client."},
    {"sparsefill_time_to_first_kv_seconds", MetricType::kHistogram, nullptr,
     MetricBuckets::kSeconds,
     "From receiving a request to handing its first KvChunk to the stream."},
    {"sparsefill_request_duration_seconds", MetricType::kHistogram, nullptr,
     MetricBuckets::kSeconds, "From receiving a Prefill request to sending its final status."},
    {"sparsefill_prompt_tokens_total", MetricType::kCounter, nullptr, MetricBuckets::kNone,
     "Prompt tokens of prefills that completed."},
    {"sparsefill_kv_bytes_sent_total", MetricType::kCounter, nullptr, MetricBuckets::kNone,
     "KvChunk payload bytes written to clients or acknowledged by push receivers (encoded, as on "
     "the wire)."},
    {"sparsefill_kv_bytes_raw_total", MetricType::kCounter, nullptr, MetricBuckets::kNone,
     "The streamed KV's size as the runtime held it before encoding (float32 on the CPU backend); "
     "against kv_bytes_sent_total it gives the codec's compression."},
    {"sparsefill_kv_push_failures_total", MetricType::kCounter, nullptr, MetricBuckets::kNone,
     "Push-mode prefills whose KV delivery failed: the receiver stayed unreachable for the retry "
     "budget (UNAVAILABLE) or refused a chunk."},
    {"sparsefill_attention_density", MetricType::kHistogram, nullptr, MetricBuckets::kRatio,
     "Per-layer attention density of completed prefills: (query head, query, key) triples "
     "computed over those of dense causal attention; 1 means dense."},
};

// Histogram buckets for durations: 1 ms to 30 min in 1-2.5-5 steps.
std::vector<double> SecondsBuckets();
// Histogram buckets for ratios in [0, 1].
std::vector<double> RatioBuckets();

class ServerMetrics {
 public:
  explicit ServerMetrics(int num_workers);

  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // What the exporter serves (and tests serialise).
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  prometheus::Counter& requests(absl::StatusCode code);
  prometheus::Gauge& queue_depth() { return *queue_depth_; }
  prometheus::Gauge& requests_in_flight() { return *requests_in_flight_; }
  prometheus::Gauge& requests_waiting_on_client() { return *requests_waiting_on_client_; }
  prometheus::Gauge& worker_busy(int worker) { return *worker_busy_[static_cast<size_t>(worker)]; }
  prometheus::Histogram& queue_seconds() { return *queue_seconds_; }
  prometheus::Histogram& prefill_seconds() { return *prefill_seconds_; }
  prometheus::Histogram& time_to_first_kv_seconds() { return *time_to_first_kv_seconds_; }
  prometheus::Histogram& request_duration_seconds() { return *request_duration_seconds_; }
  prometheus::Counter& prompt_tokens() { return *prompt_tokens_; }
  prometheus::Counter& kv_bytes_sent() { return *kv_bytes_sent_; }
  prometheus::Counter& kv_bytes_raw() { return *kv_bytes_raw_; }
  prometheus::Counter& kv_push_failures() { return *kv_push_failures_; }
  prometheus::Histogram& attention_density() { return *attention_density_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  // One child per canonical code 0..16, created up front so every code shows (as 0) in scrapes.
  std::array<prometheus::Counter*, 17> requests_{};
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Gauge* requests_in_flight_ = nullptr;
  prometheus::Gauge* requests_waiting_on_client_ = nullptr;
  std::vector<prometheus::Gauge*> worker_busy_;
  prometheus::Histogram* queue_seconds_ = nullptr;
  prometheus::Histogram* prefill_seconds_ = nullptr;
  prometheus::Histogram* time_to_first_kv_seconds_ = nullptr;
  prometheus::Histogram* request_duration_seconds_ = nullptr;
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* kv_bytes_sent_ = nullptr;
  prometheus::Counter* kv_bytes_raw_ = nullptr;
  prometheus::Counter* kv_push_failures_ = nullptr;
  prometheus::Histogram* attention_density_ = nullptr;
};

}  // namespace sparsefill::server
