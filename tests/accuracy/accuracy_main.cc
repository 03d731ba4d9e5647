// sparsefill-accuracy: what the sparse attention patterns keep of a real model's dense behaviour,
// on the CPU backend (issue 7's accuracy harness; tests/accuracy/run_accuracy.sh runs it).
//
// For each text prompt (cut to --tokens tokens of the model's tokenizer):
//   1. a dense prefill through RecallProbeBackend scores every config on each layer's real Q and
//      K: attention recall (dense softmax mass kept) of the last --last_queries queries, per
//      layer and head, and the density each head's key set implies;
//   2. a sparse prefill per config: last-token logits against dense (relative L2 error, top-1
//      agreement, top-5 overlap) and the attention density the run measured.
// Then a passkey probe: a 5-digit key hidden at several depths of filler text; the prompt ends
// with "The pass key is " and the greedy continuation must be the key (SmolLM2's tokenizer
// splits digits: one token each). One prefill runs dense or with each config; greedy decode
// steps after it attend densely to the KV it produced, each appending its token's KV (a decode
// loop, as a decode node runs it).
//
// With --codecs, the decode side also runs on compressed KV: the prefill's KV goes through each
// codec's CPU encoder and decoder (chunked as the server chunks it) and the same decode step runs
// on the decoded KV: next-token top-1 agreement and logits error against the exact KV, after the
// prompts' prefills and at every decode step of the passkey probe (a codec keeps the key when each
// of its decode steps picks the exact KV's token: the prefills in between see the same ids).
//
// Prints a Markdown report; --json writes one JSON row per (prompt, config) with the per-layer
// recall, and one per (prompt, config, codec).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/accuracy/kv_codec_roundtrip.h"
#include "tests/accuracy/pattern_search.h"
#include "tests/accuracy/recall_probe_backend.h"
#include "tests/worker/kv_collector.h"
#include "worker/cpu_backend.h"
#include "worker/decode_loop.h"
#include "worker/decode_step.h"
#include "worker/json.h"
#include "worker/model.h"
#include "worker/model_config.h"

namespace {

std::string DefaultModel() {
  const char* cache = std::getenv("SPARSEFILL_MODEL_CACHE");
  const char* home = std::getenv("HOME");
  const std::string dir = cache != nullptr  ? std::string(cache)
                          : home != nullptr ? std::string(home) + "/.cache/sparsefill/models"
                                            : ".";
  return "gguf:" + dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace

ABSL_FLAG(std::string, model, DefaultModel(), "model with a tokenizer (gguf:FILE)");
ABSL_FLAG(std::string, prompts,
          "/usr/share/common-licenses/GPL-3,/usr/share/common-licenses/Apache-2.0,"
          "/usr/share/common-licenses/Artistic",
          "comma-separated UTF-8 text files, one prompt each (default: texts every Debian has)");
ABSL_FLAG(int64_t, tokens, 2048, "prompt length: each text is cut to its first N tokens");
ABSL_FLAG(int64_t, last_queries, 64, "recall averages over this many last queries of a prompt");
ABSL_FLAG(std::string, configs, "a_shape:64:448,vertical_slash:64:448,block_sparse:8",
          "comma-separated configs: a_shape:N_INIT:N_LOCAL, vertical_slash:V:S, "
          "block_sparse:TOP_K (every head alike), or a pattern-config JSON file");
ABSL_FLAG(std::string, passkey_depths, "0.1,0.5,0.9",
          "passkey probe: depths (fraction of the filler before the key); empty skips it");
ABSL_FLAG(std::string, passkey_tokens, "",
          "passkey probe: comma-separated prompt lengths in tokens (empty: --tokens); every depth "
          "runs at every length");
ABSL_FLAG(bool, passkey_dense, true,
          "passkey probe: also run it with a dense prefill (false: the configs only)");
ABSL_FLAG(int, passkey_digits, 5,
          "passkey probe: how many of the key's 5 digits to decode (the prefill gives the first, a "
          "decode step each further one)");
ABSL_FLAG(std::string, codecs, "raw_bf16,lossless,fp8_e4m3,int8,int4",
          "KV codecs to run the decode side on (raw_bf16, raw_fp32, lossless, fp8_e4m3, int8, "
          "int4[:G]): after each prefill (dense and every config) and at the passkey's decode "
          "steps; empty skips");
ABSL_FLAG(int64_t, codec_chunk_bytes, int64_t{1} << 20,
          "payload bound of one KV chunk (the server's default max_chunk_bytes)");
ABSL_FLAG(std::string, json, "", "also write one JSON row per (prompt, config) here");
ABSL_FLAG(std::string, search_out, "",
          "run the per-head pattern search first and write the searched config here; it is then "
          "evaluated as config 'searched'");
ABSL_FLAG(std::string, search_prompts,
          "/usr/share/common-licenses/MPL-2.0,/usr/share/common-licenses/GFDL-1.3",
          "calibration prompts of the search (other texts than --prompts)");
ABSL_FLAG(std::string, search_candidates,
          "a_shape:64:448,a_shape:128:384,a_shape:64:960,vertical_slash:32:480,"
          "vertical_slash:64:448,vertical_slash:128:384,vertical_slash:256:256,"
          "vertical_slash:384:384,vertical_slash:512:512,vertical_slash:16:1008,"
          "vertical_slash:64:960,block_sparse:8,block_sparse:16",
          "the patterns each head chooses from (built-in specs as in --configs)");
ABSL_FLAG(std::string, search_budget_kind, "cost",
          "what the search's per-head budget bounds: 'cost' (the GPU kernel's modeled time, "
          "tests/accuracy/kernel_cost_model.h: 1.0 = every causal 64x64 tile as an A-shape tile) "
          "or 'density' (the share of causal pairs computed)");
ABSL_FLAG(double, search_budget, 0.45,
          "the per-head budget (in --search_budget_kind's units) a chosen pattern must fit; the "
          "default suits density (the shipped SmolLM2 config was searched with --search_match, "
          "which found a cost budget of 3.31 at 2K)");
ABSL_FLAG(std::string, search_match, "",
          "a config (as in --configs) whose mean modeled kernel cost on the calibration prompts "
          "sets the budget instead: the largest whose searched config costs no more; both budget "
          "kinds are then searched and reported at that cost");

namespace sparsefill::accuracy {
namespace {

using worker::HeadPattern;
using worker::PatternConfig;

struct NamedConfig {
  std::string name;
  PatternConfig config;
};

absl::StatusOr<NamedConfig> ParseConfig(const std::string& spec, const worker::ModelConfig& c) {
  const std::vector<std::string> parts = absl::StrSplit(spec, ':');
  std::vector<int64_t> n;
  for (size_t i = 1; i < parts.size(); ++i) {
    int64_t v;
    if (!absl::SimpleAtoi(parts[i], &v) || v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("config '", spec, "': '", parts[i], "' is not a positive number"));
    }
    n.push_back(v);
  }
  auto uniform = [&](const HeadPattern& p) {
    return NamedConfig{spec, PatternConfig::Uniform(c.num_layers, c.num_heads, p)};
  };
  if (parts[0] == "a_shape" && n.size() == 2) return uniform(HeadPattern::AShape(n[0], n[1]));
  if (parts[0] == "vertical_slash" && n.size() == 2) {
    return uniform(HeadPattern::VerticalSlash(n[0], n[1]));
  }
  if (parts[0] == "block_sparse" && n.size() == 1) return uniform(HeadPattern::BlockSparse(n[0]));
  absl::StatusOr<PatternConfig> file = PatternConfig::FromFile(spec, c.num_layers, c.num_heads);
  if (!file.ok()) return file.status();
  return NamedConfig{spec.substr(spec.find_last_of('/') + 1), *std::move(file)};
}

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

std::vector<int32_t> TopK(const std::vector<float>& logits, int k) {
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  idx.resize(k);
  return idx;
}

double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

struct Row {
  std::string prompt, config;
  int64_t tokens = 0;
  double recall_mean = 0, recall_min_head = 0, recall_worst_layer = 0, probe_density = 0;
  double probe_cost = 0;  // modeled GPU kernel cost (kernel_cost_model.h)
  std::vector<double> recall_per_layer;
  double logits_rel_err = 0, run_density = 0;
  bool top1 = false;
  int top5_overlap = 0;
};

// One passkey trial: a (length, depth, config) and what the greedy continuation gave.
struct PasskeyRow {
  int64_t length = 0, tokens = 0;
  double depth = 0;
  std::string config, want, got;
};

// The decode side on compressed KV: one codec's result for a (prompt or passkey depth, config).
struct CodecRow {
  std::string prompt, config, codec;
  bool passkey = false;
  bool agree = false;    // the next token (prompts), every decode step's token (passkey) as exact
  bool correct = false;  // passkey: the key's digits
  double logits_rel_err = 0;  // against the exact KV's logits; passkey: the largest over the steps
  RoundTripStats kv;
};

std::vector<worker::PastKvLayer> PastOf(const LayerKvSet& kv) {
  std::vector<worker::PastKvLayer> past;
  for (size_t l = 0; l < kv.k.size(); ++l) past.push_back({kv.k[l].data(), kv.v[l].data()});
  return past;
}

struct CodecSteps {
  worker::DecodeStepOutput exact;
  std::vector<int32_t> next_token;  // per codec
  std::vector<double> logits_rel_err;
  std::vector<RoundTripStats> kv;
};

// The decode step of `token` at position past_tokens over the exact KV, and over the exact KV
// with its first `codec_tokens` tokens (the prompt's) round-tripped through each codec.
absl::StatusOr<CodecSteps> DecodeStepWithCodecs(const worker::Model& model, const LayerKvSet& exact,
                                                int64_t past_tokens, int32_t token,
                                                const std::vector<CodecChoice>& codecs,
                                                int64_t codec_tokens) {
  const worker::ModelConfig& c = model.config();
  CodecSteps out;
  absl::StatusOr<worker::DecodeStepOutput> step =
      model.DecodeStep(PastOf(exact), past_tokens, token);
  if (!step.ok()) return step.status();
  out.exact = *std::move(step);
  const size_t prompt_elements = static_cast<size_t>(codec_tokens) * c.kv_dim();
  LayerKvSet prompt, decoded;
  for (size_t l = 0; l < exact.k.size(); ++l) {
    if (exact.k[l].size() < prompt_elements || exact.v[l].size() < prompt_elements) {
      return absl::InternalError("the KV holds fewer tokens than the prompt");
    }
    prompt.k.emplace_back(exact.k[l].begin(), exact.k[l].begin() + prompt_elements);
    prompt.v.emplace_back(exact.v[l].begin(), exact.v[l].begin() + prompt_elements);
  }
  for (const CodecChoice& codec : codecs) {
    absl::StatusOr<RoundTripStats> kv =
        RoundTripKv(codec, prompt, c.num_kv_heads, c.head_dim,
                    absl::GetFlag(FLAGS_codec_chunk_bytes), &decoded);
    if (!kv.ok()) return kv.status();
    for (size_t l = 0; l < exact.k.size(); ++l) {  // the decoded tokens' KV stays exact
      decoded.k[l].insert(decoded.k[l].end(), exact.k[l].begin() + prompt_elements,
                          exact.k[l].end());
      decoded.v[l].insert(decoded.v[l].end(), exact.v[l].begin() + prompt_elements,
                          exact.v[l].end());
    }
    absl::StatusOr<worker::DecodeStepOutput> lossy =
        model.DecodeStep(PastOf(decoded), past_tokens, token);
    if (!lossy.ok()) return lossy.status();
    out.next_token.push_back(lossy->next_token);
    out.logits_rel_err.push_back(RelativeError(lossy->logits, out.exact.logits));
    out.kv.push_back(*kv);
  }
  return out;
}

// The prompt of a text file: its tokens, cut to --tokens.
absl::StatusOr<std::vector<int32_t>> PromptTokens(const worker::BpeTokenizer& tokenizer,
                                                  const std::string& path) {
  absl::StatusOr<std::string> text = worker::ReadTextFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(*text);
  if (!ids.ok()) return ids.status();
  if (static_cast<int64_t>(ids->size()) > absl::GetFlag(FLAGS_tokens)) {
    ids->resize(absl::GetFlag(FLAGS_tokens));
  }
  return ids;
}

// The per-head search: dense prefills of the calibration prompts score every candidate on every
// head (recall, density, modeled kernel cost); each head takes its best within the budget.
// Writes the config to `out`.
absl::StatusOr<NamedConfig> Search(const worker::Model& model, RecallProbeBackend& probe,
                                   const std::string& out) {
  const worker::ModelConfig& c = model.config();
  const std::string kind = absl::GetFlag(FLAGS_search_budget_kind);
  if (kind != "cost" && kind != "density") {
    return absl::InvalidArgumentError(
        absl::StrCat("--search_budget_kind is 'cost' or 'density', not '", kind, "'"));
  }
  std::vector<NamedConfig> candidates;
  std::vector<HeadPattern> patterns;
  std::vector<const PatternConfig*> probes;
  const std::vector<std::string> specs =
      absl::StrSplit(absl::GetFlag(FLAGS_search_candidates), ',', absl::SkipEmpty());
  for (const std::string& spec : specs) {
    absl::StatusOr<NamedConfig> parsed = ParseConfig(spec, c);
    if (!parsed.ok()) return parsed.status();
    candidates.push_back(*std::move(parsed));
  }
  for (const NamedConfig& nc : candidates) {
    patterns.push_back(nc.config.layer(0)[0]);
    probes.push_back(&nc.config);
  }
  std::optional<NamedConfig> match;
  if (const std::string spec = absl::GetFlag(FLAGS_search_match); !spec.empty()) {
    absl::StatusOr<NamedConfig> parsed = ParseConfig(spec, c);
    if (!parsed.ok()) return parsed.status();
    match = *std::move(parsed);
    probes.push_back(&match->config);  // scored last, not a candidate
  }
  // [probe][layer][head], averaged over the calibration prompts.
  HeadScores recall(probes.size()), density(probes.size()), cost(probes.size());
  const std::vector<std::string> files =
      absl::StrSplit(absl::GetFlag(FLAGS_search_prompts), ',', absl::SkipEmpty());
  for (const std::string& path : files) {
    absl::StatusOr<std::vector<int32_t>> ids = PromptTokens(*model.tokenizer(), path);
    if (!ids.ok()) return ids.status();
    std::fprintf(stderr, "search: %s, %zu tokens, scoring %zu candidates\n", path.c_str(),
                 ids->size(), candidates.size());
    probe.SetProbes(probes, absl::GetFlag(FLAGS_last_queries));
    absl::StatusOr<worker::PrefillOutput> dense = model.Prefill(*ids, worker::PrefillOptions{});
    probe.SetProbes({}, 0);
    if (!dense.ok()) return dense.status();
    for (size_t k = 0; k < probes.size(); ++k) {
      for (auto [sum, scores] :
           {std::pair{&recall[k], &probe.recall()[k]}, std::pair{&density[k], &probe.density()[k]},
            std::pair{&cost[k], &probe.kernel_cost()[k]}}) {
        if (sum->empty()) sum->assign(scores->size(), std::vector<double>(c.num_heads, 0.0));
        for (size_t l = 0; l < scores->size(); ++l) {
          for (int h = 0; h < c.num_heads; ++h) {
            (*sum)[l][h] += (*scores)[l][h] / static_cast<double>(files.size());
          }
        }
      }
    }
  }
  auto mean_all = [&](const std::vector<std::vector<double>>& s) {
    std::vector<double> all;
    for (const auto& l : s) all.insert(all.end(), l.begin(), l.end());
    return Mean(all);
  };
  std::optional<std::array<double, 3>> reference;  // recall, density, cost of --search_match
  if (match) {
    reference = {mean_all(recall.back()), mean_all(density.back()), mean_all(cost.back())};
    for (HeadScores* s : {&recall, &density, &cost}) s->pop_back();
  }
  const HeadScores& budget_scores = kind == "cost" ? cost : density;
  struct Searched {
    std::string kind;
    double budget;
    SearchResult result;
  };
  std::vector<Searched> searched;
  for (const std::string k : {"cost", "density"}) {
    const HeadScores& scores = k == "cost" ? cost : density;
    if (!reference && k != kind) continue;
    double budget = absl::GetFlag(FLAGS_search_budget);
    absl::StatusOr<SearchResult> r =
        reference
            ? SearchPatternsAtMeanCost(patterns, recall, scores, cost, (*reference)[2], &budget)
            : SearchPatterns(patterns, recall, budget_scores, budget);
    if (!r.ok()) return r.status();
    searched.push_back({k, budget, *std::move(r)});
  }
  const Searched& chosen = searched[searched[0].kind == kind ? 0 : 1];
  std::ofstream file(out);
  file << chosen.result.config.ToJson() << "\n";
  if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot write ", out));

  std::printf("## Per-head pattern search\n\n");
  std::printf(
      "Calibration: %s. Each head takes the candidate with the highest recall whose %s is within "
      "the budget; modeled kernel cost: the GPU kernel's 64x64 tiles by kind, weighed by their "
      "H100 cost (tests/accuracy/kernel_cost_model.h), relative to every causal tile as an "
      "A-shape tile. Written to `%s`: the %s-budget search.\n\n",
      absl::StrJoin(files, ", ").c_str(), kind == "cost" ? "modeled kernel cost" : "density",
      out.c_str(), kind.c_str());
  std::printf(
      "| candidate | mean recall (calibration) | density | modeled kernel cost | heads choosing "
      "it |\n|---|---|---|---|---|\n");
  for (size_t k = 0; k < candidates.size(); ++k) {
    int chosen_by = 0;
    for (const auto& l : chosen.result.choice) chosen_by += std::count(l.begin(), l.end(), k);
    std::printf("| %s | %.4f | %.3f | %.3f | %d |\n", candidates[k].name.c_str(),
                mean_all(recall[k]), mean_all(density[k]), mean_all(cost[k]), chosen_by);
  }
  std::printf(
      "\n| search | per-head budget | mean recall (calibration) | density | modeled kernel "
      "cost |\n|---|---|---|---|---|\n");
  if (reference) {
    std::printf("| %s (reference) | | %.4f | %.3f | %.3f |\n", match->name.c_str(), (*reference)[0],
                (*reference)[1], (*reference)[2]);
  }
  for (const Searched& s : searched) {
    std::printf("| %s%s budget%s%s | %.4f | %.4f | %.3f | %.3f |\n", &s == &chosen ? "**" : "",
                s.kind.c_str(), reference ? ", at equal cost" : "",
                &s == &chosen ? " (written)**" : "", s.budget, s.result.mean_recall,
                MeanOfChoice(density, s.result.choice), MeanOfChoice(cost, s.result.choice));
  }
  std::printf("\n");
  return NamedConfig{"searched", chosen.result.config};
}

// The greedy continuation of `ids`, `count` tokens, as a decode node gets it: one prefill (with
// `patterns`; null is dense) gives the first token and the prompt's KV; each further token is a
// decode step of the token before it, which appends that token's K and V to the KV (a decode
// loop, worker/decode_loop.h). Each decode step also runs on the prompt's KV round-tripped
// through each codec (once, after the prefill) plus the decoded tokens' exact KV, as a decode
// node computes it: a codec keeps the continuation when every step picks the exact KV's token.
struct Continuation {
  std::vector<int32_t> tokens;
  std::vector<bool> codec_agrees;  // every decode step picked the exact KV's token
  std::vector<double> codec_max_logits_err;
  std::vector<RoundTripStats> codec_kv;  // of the prompt's KV
};

absl::StatusOr<Continuation> GreedyContinuation(const worker::Model& model,
                                                const std::vector<int32_t>& ids, int count,
                                                const PatternConfig* patterns,
                                                const std::vector<CodecChoice>& codecs) {
  const worker::ModelConfig& c = model.config();
  Continuation result;
  result.codec_agrees.assign(codecs.size(), true);
  result.codec_max_logits_err.assign(codecs.size(), 0.0);
  result.codec_kv.resize(codecs.size());
  testing::KvCollector kv;
  worker::PrefillOptions options;
  options.patterns = patterns;
  options.kv_sink = &kv;
  absl::StatusOr<worker::PrefillOutput> prefill = model.Prefill(ids, options);
  if (!prefill.ok()) return prefill.status();
  const int64_t tokens = static_cast<int64_t>(ids.size());
  std::vector<worker::HostKvCache> codec_caches;
  for (size_t i = 0; i < codecs.size() && count > 1; ++i) {
    LayerKvSet decoded;
    absl::StatusOr<RoundTripStats> stats =
        RoundTripKv(codecs[i], LayerKvSet{kv.k, kv.v}, c.num_kv_heads, c.head_dim,
                    absl::GetFlag(FLAGS_codec_chunk_bytes), &decoded);
    if (!stats.ok()) return stats.status();
    result.codec_kv[i] = *stats;
    absl::StatusOr<worker::HostKvCache> cache =
        worker::HostKvCache::Create(std::move(decoded.k), std::move(decoded.v), tokens, c.kv_dim());
    if (!cache.ok()) return cache.status();
    codec_caches.push_back(*std::move(cache));
  }
  absl::StatusOr<worker::HostKvCache> exact =
      worker::HostKvCache::Create(std::move(kv.k), std::move(kv.v), tokens, c.kv_dim());
  if (!exact.ok()) return exact.status();
  std::vector<int32_t>& out = result.tokens;
  out.push_back(prefill->first_token);
  while (static_cast<int>(out.size()) < count) {
    absl::StatusOr<worker::DecodeStepOutput> step =
        model.DecodeStep(exact->past(), exact->tokens(), out.back());
    if (!step.ok()) return step.status();
    for (size_t i = 0; i < codec_caches.size(); ++i) {
      absl::StatusOr<worker::DecodeStepOutput> lossy =
          model.DecodeStep(codec_caches[i].past(), codec_caches[i].tokens(), out.back());
      if (!lossy.ok()) return lossy.status();
      result.codec_agrees[i] = result.codec_agrees[i] && lossy->next_token == step->next_token;
      result.codec_max_logits_err[i] =
          std::max(result.codec_max_logits_err[i], RelativeError(lossy->logits, step->logits));
      // The decoded token's KV as the decode node computes it: exact.
      if (absl::Status s = codec_caches[i].Append(step->k, step->v); !s.ok()) return s;
    }
    if (absl::Status s = exact->Append(step->k, step->v); !s.ok()) return s;
    out.push_back(step->next_token);
  }
  return result;
}

// Per prompt and config: recall, density, logits against dense; then a summary per config.
void PrintPromptReport(const std::vector<Row>& rows, const std::vector<NamedConfig>& configs) {
  std::printf("## Attention recall and last-token logits, sparse vs dense\n\n");
  std::printf(
      "| prompt | tokens | config | mean recall | worst layer | worst head | density | "
      "logits rel err | top-1 | top-5 overlap |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %ld | %s | %.4f | %.4f | %.4f | %.3f | %.3e | %s | %d/5 |\n",
                r.prompt.c_str(), static_cast<long>(r.tokens), r.config.c_str(), r.recall_mean,
                r.recall_worst_layer, r.recall_min_head, r.run_density, r.logits_rel_err,
                r.top1 ? "yes" : "NO", r.top5_overlap);
  }
  std::printf(
      "\n| config | prompts | mean recall | lowest prompt recall | density | modeled kernel cost | "
      "top-1 agreement | mean top-5 overlap | mean logits rel err | max logits rel err |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n");
  for (const NamedConfig& nc : configs) {
    std::vector<double> rec, dens, cost, top1, top5, err;
    for (const Row& r : rows) {
      if (r.config != nc.name) continue;
      rec.push_back(r.recall_mean);
      dens.push_back(r.run_density);
      cost.push_back(r.probe_cost);
      top1.push_back(r.top1 ? 1.0 : 0.0);
      top5.push_back(r.top5_overlap);
      err.push_back(r.logits_rel_err);
    }
    if (rec.empty()) continue;
    std::printf(
        "| %s | %zu | %.4f | %.4f | %.3f | %.3f | %.1f%% (%.0f/%zu) | %.2f/5 | %.3e | %.3e |\n",
        nc.name.c_str(), rec.size(), Mean(rec), *std::min_element(rec.begin(), rec.end()),
        Mean(dens), Mean(cost), 100 * Mean(top1), std::accumulate(top1.begin(), top1.end(), 0.0),
        top1.size(), Mean(top5), Mean(err), *std::max_element(err.begin(), err.end()));
  }
}

// The decode side on compressed KV: per prompt and config the next-token check, per passkey depth
// and config whether each codec kept the exact KV's tokens, then a summary per (config, codec).
void PrintCodecReport(const std::vector<CodecRow>& rows, const std::vector<CodecChoice>& codecs,
                      const std::vector<NamedConfig>& configs) {
  std::printf(
      "\n## Compressed KV on the decode side (each codec's CPU encoder and decoder, chunked as the "
      "server chunks, %ld-byte payloads), against the exact KV of the same prefill\n\n",
      static_cast<long>(absl::GetFlag(FLAGS_codec_chunk_bytes)));
  std::printf(
      "Next-token check: the prefill's first token, one decode step over the KV; top-1 and the "
      "relative L2 error of its logits against the same step over the exact KV. Passkey: every "
      "digit after the first is a decode step, over the prompt's KV through the codec and the "
      "digits' KV exact; a codec keeps the key when every step picks the exact KV's token (logits "
      "error: the largest over the steps).\n\n");
  std::printf("| prompt | config |");
  for (const CodecChoice& codec : codecs) std::printf(" %s |", codec.name.c_str());
  std::printf("\n|---|---|");
  for (size_t i = 0; i < codecs.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (size_t i = 0; i < rows.size(); i += codecs.size()) {
    std::printf("| %s | %s |", rows[i].prompt.c_str(), rows[i].config.c_str());
    for (size_t j = i; j < i + codecs.size() && j < rows.size(); ++j) {
      std::printf(" %s %.1e |", rows[j].agree ? "same" : "DIFFERS", rows[j].logits_rel_err);
    }
    std::printf("\n");
  }
  std::printf(
      "\n| config | codec | KV bytes vs bf16 | K rel err | V rel err | next-token top-1 | "
      "mean logits rel err | passkey same as exact KV | passkey correct | worst passkey logits "
      "rel err |\n|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<std::string> config_names = {"dense"};
  for (const NamedConfig& nc : configs) config_names.push_back(nc.name);
  for (const std::string& config : config_names) {
    for (const CodecChoice& codec : codecs) {
      std::vector<double> bytes, k_err, v_err, top1, logits_err, same, correct;
      double worst_passkey = 0;
      for (const CodecRow& r : rows) {
        if (r.config != config || r.codec != codec.name) continue;
        bytes.push_back(static_cast<double>(r.kv.payload_bytes) /
                        static_cast<double>(r.kv.bf16_bytes));
        k_err.push_back(r.kv.k_rel_err);
        v_err.push_back(r.kv.v_rel_err);
        if (r.passkey) {
          same.push_back(r.agree ? 1.0 : 0.0);
          correct.push_back(r.correct ? 1.0 : 0.0);
          worst_passkey = std::max(worst_passkey, r.logits_rel_err);
        } else {
          top1.push_back(r.agree ? 1.0 : 0.0);
          logits_err.push_back(r.logits_rel_err);
        }
      }
      if (bytes.empty()) continue;
      auto count = [](const std::vector<double>& v) {
        return absl::StrFormat("%.0f/%zu", std::accumulate(v.begin(), v.end(), 0.0), v.size());
      };
      std::printf("| %s | %s | %.3f | %.2e | %.2e | %s | %.2e | %s | %s | %.2e |\n", config.c_str(),
                  codec.name.c_str(), Mean(bytes), Mean(k_err), Mean(v_err), count(top1).c_str(),
                  Mean(logits_err), count(same).c_str(), count(correct).c_str(), worst_passkey);
    }
  }
}

int Run() {
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "sparsefill-accuracy: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  auto probe_owner = std::make_unique<RecallProbeBackend>(worker::MakeCpuBackend());
  RecallProbeBackend* probe = probe_owner.get();
  worker::ModelLoadOptions load;
  load.model_dir = absl::GetFlag(FLAGS_model);
  absl::StatusOr<std::unique_ptr<worker::Model>> model =
      worker::Model::Load(load, std::move(probe_owner));
  if (!model.ok()) {
    return fail(absl::Status(
        model.status().code(),
        absl::StrCat(model.status().message(), " (deploy/fetch_models.sh fetches SmolLM2-135M)")));
  }
  const worker::ModelConfig& c = (*model)->config();
  const worker::BpeTokenizer* tokenizer = (*model)->tokenizer();
  if (tokenizer == nullptr) return fail(absl::InvalidArgumentError("the model has no tokenizer"));

  std::vector<NamedConfig> configs;
  const std::vector<std::string> specs =
      absl::StrSplit(absl::GetFlag(FLAGS_configs), ',', absl::SkipEmpty());
  for (const std::string& spec : specs) {
    absl::StatusOr<NamedConfig> parsed = ParseConfig(spec, c);
    if (!parsed.ok()) return fail(parsed.status());
    configs.push_back(*std::move(parsed));
  }

  std::printf("# Sparse attention accuracy: %s on the CPU backend\n\n", (*model)->name().c_str());
  std::printf("Model: %s. Prompts cut to %ld tokens; recall over the last %ld queries of each.\n\n",
              c.Summary().c_str(), static_cast<long>(absl::GetFlag(FLAGS_tokens)),
              static_cast<long>(absl::GetFlag(FLAGS_last_queries)));

  if (const std::string out = absl::GetFlag(FLAGS_search_out); !out.empty()) {
    absl::StatusOr<NamedConfig> searched = Search(**model, *probe, out);
    if (!searched.ok()) return fail(searched.status());
    configs.push_back(*std::move(searched));
  }
  std::vector<const PatternConfig*> probes;
  for (const NamedConfig& nc : configs) probes.push_back(&nc.config);
  absl::StatusOr<std::vector<CodecChoice>> codecs = ParseCodecList(absl::GetFlag(FLAGS_codecs));
  if (!codecs.ok()) return fail(codecs.status());

  // The decode step after a prefill (its first token over its KV), on exact and compressed KV.
  std::vector<CodecRow> codec_rows;
  auto next_token_check = [&](const std::string& prompt, const std::string& config,
                              const testing::KvCollector& kv, int64_t tokens,
                              int32_t first_token) -> absl::Status {
    if (codecs->empty()) return absl::OkStatus();
    std::fprintf(stderr, "%s: decode step on %zu codecs' KV, %s\n", prompt.c_str(), codecs->size(),
                 config.c_str());
    absl::StatusOr<CodecSteps> step =
        DecodeStepWithCodecs(**model, LayerKvSet{kv.k, kv.v}, tokens, first_token, *codecs, tokens);
    if (!step.ok()) return step.status();
    for (size_t i = 0; i < codecs->size(); ++i) {
      CodecRow r;
      r.prompt = prompt;
      r.config = config;
      r.codec = (*codecs)[i].name;
      r.agree = step->next_token[i] == step->exact.next_token;
      r.logits_rel_err = step->logits_rel_err[i];
      r.kv = step->kv[i];
      codec_rows.push_back(std::move(r));
    }
    return absl::OkStatus();
  };

  std::vector<Row> rows;
  std::vector<PasskeyRow> passkey_rows;
  const std::vector<std::string> prompt_files =
      absl::StrSplit(absl::GetFlag(FLAGS_prompts), ',', absl::SkipEmpty());
  for (const std::string& path : prompt_files) {
    absl::StatusOr<std::vector<int32_t>> ids = PromptTokens(*tokenizer, path);
    if (!ids.ok()) return fail(ids.status());
    const std::string name = path.substr(path.find_last_of('/') + 1);
    std::fprintf(stderr, "%s: %zu tokens, dense prefill scoring %zu configs\n", name.c_str(),
                 ids->size(), configs.size());
    probe->SetProbes(probes, absl::GetFlag(FLAGS_last_queries));
    testing::KvCollector dense_kv;
    worker::PrefillOptions dense_options;
    dense_options.kv_sink = &dense_kv;
    absl::StatusOr<worker::PrefillOutput> dense = (*model)->Prefill(*ids, dense_options);
    if (!dense.ok()) return fail(dense.status());
    const auto recall = probe->recall();
    const auto density = probe->density();
    const auto kernel_cost = probe->kernel_cost();
    probe->SetProbes({}, 0);
    const int64_t tokens = static_cast<int64_t>(ids->size());
    if (absl::Status s = next_token_check(name, "dense", dense_kv, tokens, dense->first_token);
        !s.ok()) {
      return fail(s);
    }
    const std::vector<int32_t> dense_top5 = TopK(dense->logits_last, 5);
    for (size_t p = 0; p < configs.size(); ++p) {
      std::fprintf(stderr, "%s: sparse prefill, %s\n", name.c_str(), configs[p].name.c_str());
      testing::KvCollector sparse_kv;
      worker::PrefillOptions options;
      options.patterns = &configs[p].config;
      options.kv_sink = &sparse_kv;
      absl::StatusOr<worker::PrefillOutput> sparse = (*model)->Prefill(*ids, options);
      if (!sparse.ok()) return fail(sparse.status());
      if (absl::Status s =
              next_token_check(name, configs[p].name, sparse_kv, tokens, sparse->first_token);
          !s.ok()) {
        return fail(s);
      }
      Row r;
      r.prompt = name;
      r.config = configs[p].name;
      r.tokens = static_cast<int64_t>(ids->size());
      std::vector<double> all, dens, costs;
      r.recall_min_head = 1.0;
      r.recall_worst_layer = 1.0;
      for (size_t l = 0; l < recall[p].size(); ++l) {
        r.recall_per_layer.push_back(Mean(recall[p][l]));
        r.recall_worst_layer = std::min(r.recall_worst_layer, r.recall_per_layer.back());
        for (double x : recall[p][l]) {
          all.push_back(x);
          r.recall_min_head = std::min(r.recall_min_head, x);
        }
        for (double x : density[p][l]) dens.push_back(x);
        for (double x : kernel_cost[p][l]) costs.push_back(x);
      }
      r.recall_mean = Mean(all);
      r.probe_density = Mean(dens);
      r.probe_cost = Mean(costs);
      r.run_density = Mean(sparse->attention_density);
      r.logits_rel_err = RelativeError(sparse->logits_last, dense->logits_last);
      r.top1 = sparse->first_token == dense->first_token;
      for (int32_t t : TopK(sparse->logits_last, 5)) {
        r.top5_overlap += std::count(dense_top5.begin(), dense_top5.end(), t) > 0;
      }
      rows.push_back(std::move(r));
    }
  }

  if (!rows.empty()) PrintPromptReport(rows, configs);

  // Passkey probe.
  const std::vector<std::string> depths =
      absl::StrSplit(absl::GetFlag(FLAGS_passkey_depths), ',', absl::SkipEmpty());
  if (!depths.empty()) {
    const std::string filler =
        "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back "
        "again. ";
    const std::vector<int32_t> filler_ids = tokenizer->Encode(filler, false).value();
    std::vector<int64_t> lengths;
    for (absl::string_view text :
         absl::StrSplit(absl::GetFlag(FLAGS_passkey_tokens), ',', absl::SkipEmpty())) {
      int64_t n;
      if (!absl::SimpleAtoi(text, &n) || n < 128) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat("bad --passkey_tokens entry '", text, "' (a length >= 128)")));
      }
      lengths.push_back(n);
    }
    if (lengths.empty()) lengths.push_back(absl::GetFlag(FLAGS_tokens));
    const int digits = std::clamp(absl::GetFlag(FLAGS_passkey_digits), 1, 5);
    std::printf(
        "\n## Passkey (the first %d digits of a 5-digit key hidden in filler sentences; greedy: "
        "one prefill gives the first, each further one a dense decode step over the prompt's KV "
        "and the decoded digits' KV, which each step appends)\n\n",
        digits);
    std::printf("| length | depth | tokens | key | dense |");
    for (const NamedConfig& nc : configs) std::printf(" %s |", nc.name.c_str());
    std::printf("\n|---|---|---|---|---|");
    for (size_t i = 0; i < configs.size(); ++i) std::printf("---|");
    std::printf("\n");
    std::vector<std::vector<int>> correct(lengths.size(), std::vector<int>(configs.size() + 1, 0));
    std::vector<int> trials(lengths.size(), 0);
    int trial = 0;
    for (size_t n = 0; n < lengths.size(); ++n) {
      const int64_t filler_reps =
          std::max<int64_t>(1, (lengths[n] - 64) / static_cast<int64_t>(filler_ids.size()));
      for (const std::string& depth_text : depths) {
        double depth;
        if (!absl::SimpleAtod(depth_text, &depth) || depth < 0 || depth > 1) {
          return fail(
              absl::InvalidArgumentError(absl::StrCat("bad passkey depth '", depth_text, "'")));
        }
        const int key = 10000 + (trial * 37139 + 28411) % 90000;  // first digits vary by trial
        ++trial;
        ++trials[n];
        const int64_t before = static_cast<int64_t>(std::lround(depth * filler_reps));
        std::string prompt = "There is a pass key hidden in this text. Remember it.\n";
        for (int64_t i = 0; i < filler_reps; ++i) {
          if (i == before)
            absl::StrAppend(&prompt, "The pass key is ", key, ". Remember it. ", key,
                            " is the pass key. ");
          prompt += filler;
        }
        if (before >= filler_reps) absl::StrAppend(&prompt, "The pass key is ", key, ". ");
        prompt += "\nWhat is the pass key? The pass key is ";
        const std::vector<int32_t> ids = tokenizer->Encode(prompt).value();
        const std::string want = std::to_string(key).substr(0, digits);
        std::string line = absl::StrFormat("| %ld | %.2f | %zu | %d |",
                                           static_cast<long>(lengths[n]), depth, ids.size(), key);
        for (size_t p = 0; p <= configs.size(); ++p) {
          if (p == 0 && !absl::GetFlag(FLAGS_passkey_dense)) {
            absl::StrAppend(&line, " (not run) |");
            continue;
          }
          const PatternConfig* patterns = p > 0 ? &configs[p - 1].config : nullptr;
          const std::string config = p == 0 ? "dense" : configs[p - 1].name;
          const absl::Time start = absl::Now();
          absl::StatusOr<Continuation> out =
              GreedyContinuation(**model, ids, digits, patterns, *codecs);
          if (!out.ok()) return fail(out.status());
          const std::string got = tokenizer->Decode(out->tokens);
          correct[n][p] += got == want;
          std::fprintf(stderr, "passkey %zu tokens, depth %.2f, %s: %s (want %s), %.1f s\n",
                       ids.size(), depth, config.c_str(), got.c_str(), want.c_str(),
                       absl::ToDoubleSeconds(absl::Now() - start));
          PasskeyRow pr;
          pr.length = lengths[n];
          pr.tokens = static_cast<int64_t>(ids.size());
          pr.depth = depth;
          pr.config = config;
          pr.want = want;
          pr.got = got;
          passkey_rows.push_back(pr);
          for (size_t i = 0; i < codecs->size(); ++i) {
            CodecRow r;
            r.prompt = absl::StrFormat("passkey@%ld:%.2f", static_cast<long>(lengths[n]), depth);
            r.config = config;
            r.codec = (*codecs)[i].name;
            r.passkey = true;
            r.agree = out->codec_agrees[i];
            r.correct = r.agree && got == want;
            r.logits_rel_err = out->codec_max_logits_err[i];
            r.kv = out->codec_kv[i];
            codec_rows.push_back(std::move(r));
          }
          absl::StrAppend(&line, " ", got == want ? "yes" : "no", " ",
                          worker::JsonValue::String(got).Serialize(), " |");
        }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      }
    }
    for (size_t n = 0; n < lengths.size(); ++n) {
      std::printf("| %ld: all | | | | %s |", static_cast<long>(lengths[n]),
                  absl::GetFlag(FLAGS_passkey_dense)
                      ? absl::StrFormat("%d/%d", correct[n][0], trials[n]).c_str()
                      : "");
      for (size_t p = 1; p <= configs.size(); ++p) {
        std::printf(" %d/%d |", correct[n][p], trials[n]);
      }
      std::printf("\n");
    }
  }

  if (!codec_rows.empty()) PrintCodecReport(codec_rows, *codecs, configs);

  if (const std::string json = absl::GetFlag(FLAGS_json); !json.empty()) {
    std::ofstream out(json);
    for (const Row& r : rows) {
      worker::JsonValue::Object o;
      o["prompt"] = worker::JsonValue::String(r.prompt);
      o["config"] = worker::JsonValue::String(r.config);
      o["tokens"] = worker::JsonValue::Integer(r.tokens);
      o["recall_mean"] = worker::JsonValue::Number(r.recall_mean);
      o["recall_worst_head"] = worker::JsonValue::Number(r.recall_min_head);
      worker::JsonValue::Array layers;
      for (double x : r.recall_per_layer) layers.push_back(worker::JsonValue::Number(x));
      o["recall_per_layer"] = worker::JsonValue::MakeArray(std::move(layers));
      o["density_probe"] = worker::JsonValue::Number(r.probe_density);
      o["density_run"] = worker::JsonValue::Number(r.run_density);
      o["modeled_kernel_cost"] = worker::JsonValue::Number(r.probe_cost);
      o["logits_rel_err"] = worker::JsonValue::Number(r.logits_rel_err);
      o["top1_agree"] = worker::JsonValue::Bool(r.top1);
      o["top5_overlap"] = worker::JsonValue::Integer(r.top5_overlap);
      out << worker::JsonValue::MakeObject(std::move(o)).Serialize() << "\n";
    }
    for (const PasskeyRow& r : passkey_rows) {
      worker::JsonValue::Object o;
      o["passkey_length"] = worker::JsonValue::Integer(r.length);
      o["tokens"] = worker::JsonValue::Integer(r.tokens);
      o["depth"] = worker::JsonValue::Number(r.depth);
      o["config"] = worker::JsonValue::String(r.config);
      o["want"] = worker::JsonValue::String(r.want);
      o["got"] = worker::JsonValue::String(r.got);
      o["correct"] = worker::JsonValue::Bool(r.want == r.got);
      out << worker::JsonValue::MakeObject(std::move(o)).Serialize() << "\n";
    }
    for (const CodecRow& r : codec_rows) {
      worker::JsonValue::Object o;
      o["prompt"] = worker::JsonValue::String(r.prompt);
      o["config"] = worker::JsonValue::String(r.config);
      o["codec"] = worker::JsonValue::String(r.codec);
      o[r.passkey ? "same_tokens_as_exact_kv" : "top1_agree_exact_kv"] =
          worker::JsonValue::Bool(r.agree);
      if (r.passkey) o["passkey_correct"] = worker::JsonValue::Bool(r.correct);
      o["logits_rel_err"] = worker::JsonValue::Number(r.logits_rel_err);
      o["k_rel_err"] = worker::JsonValue::Number(r.kv.k_rel_err);
      o["v_rel_err"] = worker::JsonValue::Number(r.kv.v_rel_err);
      o["payload_vs_bf16"] = worker::JsonValue::Number(static_cast<double>(r.kv.payload_bytes) /
                                                       static_cast<double>(r.kv.bf16_bytes));
      o["chunks"] = worker::JsonValue::Integer(r.kv.chunks);
      out << worker::JsonValue::MakeObject(std::move(o)).Serialize() << "\n";
    }
  }
  return 0;
}

}  // namespace
}  // namespace sparsefill::accuracy

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sparse attention accuracy on a real model (CPU backend): recall, logits, passkey");
  absl::ParseCommandLine(argc, argv);
  return sparsefill::accuracy::Run();
}
