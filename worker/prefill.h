// What a prefill takes and gives, independent of the backend.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "worker/kv_sink.h"
#include "worker/pattern_config.h"

namespace sparsefill::worker {

struct PrefillOptions {
  // Per-head attention patterns; null runs every head dense.
  const PatternConfig* patterns = nullptr;
  // Receives each layer's KV; null skips the export.
  KvSink* kv_sink = nullptr;
  // Polled before each layer; returning true stops the prefill with Cancelled.
  std::function<bool()> should_stop;
  // Called after each layer with (layers done, total layers).
  std::function<void(int, int)> on_layer_done;
};

// Wall time per stage, summed over layers, in seconds.
struct PrefillStageSeconds {
  double embed = 0;
  double linear = 0;      // norms, projections, RoPE, MLP, residuals
  double estimation = 0;  // sparse pattern estimation and index building
  double attention = 0;   // attention proper (estimation excluded)
  double kv_export = 0;   // handing KV to the sink (includes sink backpressure)
  double lm_head = 0;     // final norm and last-position logits
};

struct PrefillOutput {
  std::vector<float> logits_last;  // [vocab] at the last position
  int32_t first_token = 0;         // greedy: argmax of logits_last, lowest id on ties
  float first_token_logit = 0;
  // Per layer: computed (query head, query, key) triples / those of dense causal attention.
  std::vector<double> attention_density;
  double compute_seconds = 0;
  PrefillStageSeconds stages;
  int64_t peak_device_bytes = 0;  // GPU backends: the prefill's peak device memory, weights included
};

}  // namespace sparsefill::worker
