// End-to-end prefill benchmark of issue 5: Model::Prefill of a seeded random-weights
// Llama-3-8B-shaped model ("random:llama3-8b") on the CUDA backend, sparse (a pattern config of
// MInference's Llama-3-8B per-head budget mix, tests/bench/configs/llama3-8b-vs-mix.json) and
// dense, at long prompt lengths. Every layer's K/V goes to a KvSink that takes it (sums the
// bytes, reads one byte per page of the pinned host copy, discards), as the service's encoder
// would. One JSON object per (length, mode) on stdout (and appended to --json PATH), a table on
// stderr. tests/bench/README.md describes the rows; tests/bench/run_prefill_bench.sh runs this
// next to the Hugging Face transformers baseline and writes the results table.
//
// Timing: the wall time of Model::Prefill (host clock; the call returns after the device work
// and every KV export is done), after one untimed warm-up prefill per mode at the smallest
// length. Per-stage seconds are the backend's device-measured times (CUDA events per stage on
// the compute stream; kv_export is the copy stream's time, which overlaps compute).
//
// Dense prefill above --dense-max-tokens (default 128K) is not run (512K would take minutes, 1M
// about 10): its row is extrapolated, status "extrapolated", from measured parts:
//   dense_total(T) ~= [linear + embed + lm_head](T, this length's sparse run)
//                     + dense_attention(T0) * (T / T0)^2
// with T0 the largest length where dense ran. The row carries the formula with its numbers, and
// the same formula applied at T0 next to the dense time measured there.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kernels/scalar_type.h"
#include "worker/cpu_backend.h"
#include "worker/cuda_backend.h"
#include "worker/kv_sink.h"
#include "worker/model.h"
#include "worker/pattern_config.h"
#include "worker/prefill.h"

namespace sparsefill::bench {
namespace {

using worker::HeadPattern;
using worker::Model;
using worker::PatternConfig;
using worker::PrefillOutput;
using Clock = std::chrono::steady_clock;

constexpr char kBenchName[] = "sparsefill_prefill";
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
  std::vector<int64_t> tokens = {32768, 131072, 524288, 1048576};
  std::vector<std::string> modes = {"sparse", "dense"};
  int repeats = 2;                 // runs per (length, mode) below --long-from
  int long_repeats = 1;            // runs per (length, mode) at --long-from and above
  int64_t long_from = 524288;
  uint64_t seed = 1;               // weights and prompt tokens
  std::string json_path;
  std::string model = "random:llama3-8b";
  std::string patterns = "tests/bench/configs/llama3-8b-vs-mix.json";
  int64_t dense_max_tokens = 131072;  // dense above this is extrapolated, not run
  int64_t warmup_tokens = -1;         // -1: the smallest --tokens; 0: no warm-up
  double max_seconds = 0;             // 0: no budget
  int device = 0;
  int64_t max_chunk_tokens = 16384;
  int export_slots = 2;
  bool kv_sink = true;
  std::string backend = "cuda";  // "cpu": checks this program on a machine without a GPU
};

const char kUsage[] =
    "usage: prefill_bench [flags]\n"
    "  --tokens=LIST           prompt lengths, K/M suffixes allowed (default 32K,128K,512K,1M)\n"
    "  --modes=LIST            sparse and/or dense (default sparse,dense)\n"
    "  --repeats=N             timed prefills per (length, mode) below --long-from (default 2)\n"
    "  --long-repeats=N        the same at --long-from and above (default 1)\n"
    "  --long-from=T           (default 512K)\n"
    "  --seed=N                weights and prompt seed (default 1)\n"
    "  --json=PATH             also append the JSON rows to PATH\n"
    "  --model=DIR             model (default random:llama3-8b; a HF checkpoint folder works)\n"
    "  --patterns=PATH         sparse pattern config (default\n"
    "                          tests/bench/configs/llama3-8b-vs-mix.json, relative to the cwd)\n"
    "  --dense-max-tokens=T    dense above T is extrapolated, not run (default 128K)\n"
    "  --warmup-tokens=T       warm-up length (default: the smallest --tokens; 0: none)\n"
    "  --max-seconds=S         budget for the whole process: rows predicted not to fit are\n"
    "                          skipped, a prefill running past it stops at the next layer\n"
    "                          (default 0: none)\n"
    "  --device=N              CUDA device (default 0)\n"
    "  --max-chunk-tokens=N    CudaBackendOptions::max_chunk_tokens (default 16384)\n"
    "  --export-slots=N        CudaBackendOptions::export_slots (default 2)\n"
    "  --no-kv-sink            no KvSink (K/V never leave the GPU; for comparison only)\n"
    "  --backend=cuda|cpu      cpu only checks this program without a GPU, on a small model:\n"
    "                          --backend=cpu --model=random:llama3-tiny --patterns=TINY.json\n";

// "32K" -> 32768, "1M" -> 1048576, "4096" -> 4096.
std::optional<int64_t> ParseTokenCount(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return std::nullopt;
  int64_t mult = 1;
  const char last = text.back();
  if (last == 'k' || last == 'K') {
    mult = 1024;
    text.remove_suffix(1);
  } else if (last == 'm' || last == 'M') {
    mult = 1024 * 1024;
    text.remove_suffix(1);
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < 0) return std::nullopt;
  return n * mult;
}

std::string FormatTokens(int64_t t) {
  if (t > 0 && t % (1024 * 1024) == 0) return absl::StrCat(t / (1024 * 1024), "M");
  if (t > 0 && t % 1024 == 0) return absl::StrCat(t / 1024, "K");
  return absl::StrCat(t);
}

// Empty on success, else the error message.
std::string ParseArgs(int argc, char** argv, Options* opt) {
  static const char* kNeedValue[] = {
      "--tokens",        "--modes",  "--repeats",  "--long-repeats",     "--long-from",
      "--seed",          "--json",   "--model",    "--patterns",         "--dense-max-tokens",
      "--warmup-tokens", "--device", "--max-seconds", "--max-chunk-tokens", "--export-slots",
      "--backend"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--help" || arg == "-h") return "help";
    if (arg == "--no-kv-sink") {
      opt->kv_sink = false;
      continue;
    }
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else {
      const bool known = std::any_of(std::begin(kNeedValue), std::end(kNeedValue),
                                     [&](const char* k) { return arg == k; });
      if (!known) return absl::StrCat("unknown flag ", arg);
      if (i + 1 >= argc) return absl::StrCat(arg, " needs a value");
      value = argv[++i];
    }
    auto as_int = [&](int64_t lo, int64_t* out) -> std::string {
      const std::optional<int64_t> n = ParseTokenCount(value);
      if (!n || *n < lo) return absl::StrCat(arg, "=", value, ": want an integer >= ", lo);
      *out = *n;
      return "";
    };
    int64_t n = 0;
    std::string err;
    if (arg == "--tokens") {
      opt->tokens.clear();
      for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
        const std::optional<int64_t> t = ParseTokenCount(item);
        if (!t || *t < 1) return absl::StrCat("--tokens: bad length '", item, "'");
        opt->tokens.push_back(*t);
      }
      if (opt->tokens.empty()) return "--tokens: no lengths";
    } else if (arg == "--modes") {
      opt->modes.clear();
      for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
        const std::string m(absl::StripAsciiWhitespace(item));
        if (m != "sparse" && m != "dense") return absl::StrCat("--modes: unknown mode '", m, "'");
        if (std::find(opt->modes.begin(), opt->modes.end(), m) == opt->modes.end()) {
          opt->modes.push_back(m);
        }
      }
      if (opt->modes.empty()) return "--modes: no modes";
    } else if (arg == "--repeats") {
      err = as_int(1, &n);
      opt->repeats = static_cast<int>(n);
    } else if (arg == "--long-repeats") {
      err = as_int(1, &n);
      opt->long_repeats = static_cast<int>(n);
    } else if (arg == "--long-from") {
      err = as_int(1, &opt->long_from);
    } else if (arg == "--seed") {
      err = as_int(0, &n);
      opt->seed = static_cast<uint64_t>(n);
    } else if (arg == "--json") {
      opt->json_path = value;
    } else if (arg == "--model") {
      opt->model = value;
    } else if (arg == "--patterns") {
      opt->patterns = value;
    } else if (arg == "--dense-max-tokens") {
      err = as_int(0, &opt->dense_max_tokens);
    } else if (arg == "--warmup-tokens") {
      err = as_int(0, &opt->warmup_tokens);
    } else if (arg == "--device") {
      err = as_int(0, &n);
      opt->device = static_cast<int>(n);
    } else if (arg == "--max-seconds") {
      if (!absl::SimpleAtod(value, &opt->max_seconds) || opt->max_seconds < 0) {
        return absl::StrCat("--max-seconds=", value, ": want seconds >= 0");
      }
    } else if (arg == "--backend") {
      if (value != "cuda" && value != "cpu") return absl::StrCat("--backend=", value, ": cuda or cpu");
      opt->backend = value;
    } else if (arg == "--max-chunk-tokens") {
      err = as_int(1, &opt->max_chunk_tokens);
    } else if (arg == "--export-slots") {
      err = as_int(1, &n);
      opt->export_slots = static_cast<int>(n);
    } else {
      return absl::StrCat("unknown flag ", arg);
    }
    if (!err.empty()) return err;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// JSON rows, fields in insertion order.

std::string JsonEscape(absl::string_view s) {
  std::string out;
  for (const char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(ch));
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

class JsonRow {
 public:
  JsonRow& Str(const std::string& key, absl::string_view v) {
    return Raw(key, absl::StrCat("\"", JsonEscape(v), "\""));
  }
  JsonRow& Num(const std::string& key, double v) { return Raw(key, JsonNumber(v)); }
  JsonRow& Int(const std::string& key, int64_t v) { return Raw(key, absl::StrCat(v)); }
  JsonRow& Bool(const std::string& key, bool v) { return Raw(key, v ? "true" : "false"); }
  JsonRow& Null(const std::string& key) { return Raw(key, "null"); }
  JsonRow& NumOrNull(const std::string& key, std::optional<double> v) {
    return v ? Num(key, *v) : Null(key);
  }
  JsonRow& NumList(const std::string& key, const std::vector<double>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + JsonNumber(v[i]);
    return Raw(key, s + "]");
  }
  JsonRow& Raw(const std::string& key, std::string json) {
    for (auto& [k, v] : fields_) {
      if (k == key) {
        v = std::move(json);
        return *this;
      }
    }
    fields_.emplace_back(key, std::move(json));
    return *this;
  }
  std::string Serialize() const {
    std::string s = "{";
    for (size_t i = 0; i < fields_.size(); ++i) {
      absl::StrAppend(&s, i ? "," : "", "\"", JsonEscape(fields_[i].first), "\":",
                      fields_[i].second);
    }
    return s + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// ---------------------------------------------------------------------------------------------
// The KV sink: takes each layer as the service's encoder would, then discards it.

class TouchKvSink : public worker::KvSink {
 public:
  static constexpr int64_t kPage = 4096;

  absl::Status OnLayerKv(const worker::LayerKv& kv) override {
    const auto start = Clock::now();
    if (kv.layer != next_layer_) {
      return absl::InternalError(
          absl::StrCat("KV sink: got layer ", kv.layer, ", expected layer ", next_layer_));
    }
    if (kv.k == nullptr || kv.v == nullptr) {
      return absl::InternalError(absl::StrCat("KV sink: layer ", kv.layer, ": null K or V"));
    }
    const int64_t bytes = kv.tokens * kv.kv_heads * kv.head_dim *
                          static_cast<int64_t>(kernels::ScalarSize(kv.dtype));
    for (const void* p : {kv.k, kv.v}) {
      // One read per page, and the last byte: the copy into host memory must really exist.
      const volatile unsigned char* b = static_cast<const volatile unsigned char*>(p);
      for (int64_t off = 0; off < bytes; off += kPage) Touch(b[off]);
      if (bytes > 0) Touch(b[bytes - 1]);
    }
    bytes_ += 2 * bytes;
    ++layers_;
    ++next_layer_;
    dtype_ = kv.dtype;
    tokens_ = kv.tokens;
    seconds_ += SecondsSince(start);
    return absl::OkStatus();
  }

  int layers() const { return layers_; }
  int64_t bytes() const { return bytes_; }
  int64_t tokens() const { return tokens_; }
  kernels::ScalarType dtype() const { return dtype_; }
  double seconds() const { return seconds_; }
  double nonzero_fraction() const {
    return touched_ > 0 ? static_cast<double>(nonzero_) / static_cast<double>(touched_) : 0.0;
  }
  uint64_t checksum() const { return checksum_; }

 private:
  void Touch(unsigned char c) {
    checksum_ = checksum_ * 131 + c;
    ++touched_;
    if (c != 0) ++nonzero_;
  }

  int next_layer_ = 0;
  int layers_ = 0;
  int64_t bytes_ = 0;
  int64_t tokens_ = 0;
  kernels::ScalarType dtype_ = kernels::ScalarType::kFloat32;
  int64_t touched_ = 0, nonzero_ = 0;
  uint64_t checksum_ = 0;
  double seconds_ = 0;
};

// ---------------------------------------------------------------------------------------------
// One prefill, and a row of several.

struct RunResult {
  absl::Status status;
  bool stopped_by_budget = false;
  int layers_done = 0;
  double wall_s = 0;
  PrefillOutput out;
  // The sink's view.
  int64_t sink_bytes = 0;
  double sink_s = 0;
  std::string kv_check;
};

std::string StatusWord(const absl::Status& s, bool stopped_by_budget) {
  if (s.ok()) return "ok";
  if (stopped_by_budget && absl::IsCancelled(s)) return "stopped";
  if (absl::IsOutOfRange(s)) return "out_of_range";
  if (absl::IsResourceExhausted(s)) return "oom";
  const std::string lower = absl::AsciiStrToLower(s.message());
  if (absl::StrContains(lower, "out of memory") || absl::StrContains(lower, "out of device memory")) {
    return "oom";
  }
  return "error";
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (const double x : v) s += x;
  return s / static_cast<double>(v.size());
}

class Bench {
 public:
  explicit Bench(Options opt) : opt_(std::move(opt)), start_(Clock::now()) {}

  int Run();

 private:
  double Remaining() const {
    return opt_.max_seconds > 0 ? opt_.max_seconds - SecondsSince(start_) : 1e300;
  }
  bool PastDeadline() const { return opt_.max_seconds > 0 && Remaining() <= 0; }

  RunResult RunOnce(const std::vector<int32_t>& tokens, const std::string& mode,
                    const std::string& label);
  void Emit(JsonRow row);
  JsonRow BaseRow(int64_t tokens, const std::string& mode) const;
  void RowAndTable(JsonRow& row, int64_t tokens, const std::string& mode,
                   const std::string& status, std::optional<double> total,
                   const PrefillOutput* out, const std::string& note,
                   bool out_fields_in_row = true);
  void RunRow(int64_t tokens, const std::string& mode, const std::vector<int32_t>& ids);
  void EmitExtrapolated(int64_t tokens);
  std::optional<double> Predict(int64_t tokens, const std::string& mode) const;
  void ErrorRowsForAll(const std::string& why);
  int QueryDevice();  // fills device_name_ and device_mem_gib_; non-zero after error rows

  struct Measured {  // an ok row, for prediction and extrapolation
    double total = 0, linear = 0, embed = 0, lm_head = 0, attention = 0, estimation = 0;
  };

  Options opt_;
  Clock::time_point start_;
  std::unique_ptr<Model> model_;
  std::FILE* json_ = nullptr;
  std::string device_name_;
  double device_mem_gib_ = 0;
  std::string patterns_summary_;
  bool table_header_done_ = false;
  bool any_error_ = false;
  std::map<std::pair<int64_t, std::string>, Measured> measured_;
};

JsonRow Bench::BaseRow(int64_t tokens, const std::string& mode) const {
  JsonRow row;
  row.Str("bench", kBenchName).Int("tokens", tokens).Str("mode", mode);
  return row;
}

void Bench::Emit(JsonRow row) {
  row.Str("model", opt_.model)
      .Str("backend", opt_.backend)
      .Str("device", device_name_)
      .Num("device_mem_gib", device_mem_gib_)
      .Int("seed", static_cast<int64_t>(opt_.seed))
      .Int("max_chunk_tokens", opt_.max_chunk_tokens)
      .Int("export_slots", opt_.export_slots)
      .Bool("kv_sink", opt_.kv_sink);
  const std::string line = row.Serialize();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (json_ != nullptr) {
    std::fprintf(json_, "%s\n", line.c_str());
    std::fflush(json_);
  }
}

// Fills the common fields of a row and prints its table line on stderr. `out` (may be null)
// gives the stage columns; its fields go into the row unless out_fields_in_row is false (the
// caller then set them).
void Bench::RowAndTable(JsonRow& row, int64_t tokens, const std::string& mode,
                        const std::string& status, std::optional<double> total,
                        const PrefillOutput* out, const std::string& note,
                        bool out_fields_in_row) {
  if (!table_header_done_) {
    std::fprintf(stderr, "%8s %-6s %-12s %9s %9s %9s %9s %9s %12s %8s %8s  %s\n", "tokens", "mode",
                 "status", "total_s", "linear_s", "attn_s", "est_s", "kv_s", "tok/s", "density",
                 "peakGiB", "note");
    table_header_done_ = true;
  }
  auto f = [](std::optional<double> v, const char* fmt) {
    if (!v || !std::isfinite(*v)) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof(buf), fmt, *v);
    return std::string(buf);
  };
  std::optional<double> linear, attn, est, kv, density, peak;
  if (out != nullptr) {
    linear = out->stages.linear;
    attn = out->stages.attention;
    est = out->stages.estimation;
    kv = out->stages.kv_export;
    if (!out->attention_density.empty()) density = Mean(out->attention_density);
    if (out->peak_device_bytes > 0) peak = static_cast<double>(out->peak_device_bytes) / kGiB;
    if (!std::isfinite(*kv)) kv.reset();
  }
  std::optional<double> tps;
  if (total && *total > 0) tps = static_cast<double>(tokens) / *total;
  std::fprintf(stderr, "%8s %-6s %-12s %9s %9s %9s %9s %9s %12s %8s %8s  %s\n",
               FormatTokens(tokens).c_str(), mode.c_str(), status.c_str(),
               f(total, "%.3f").c_str(), f(linear, "%.3f").c_str(), f(attn, "%.3f").c_str(),
               f(est, "%.3f").c_str(), f(kv, "%.3f").c_str(), f(tps, "%.0f").c_str(),
               f(density, "%.4f").c_str(), f(peak, "%.2f").c_str(), note.c_str());
  std::fflush(stderr);
  row.Str("status", status);
  row.NumOrNull("total_s", total);
  row.NumOrNull("tokens_per_s", tps);
  if (out != nullptr && out_fields_in_row) {
    const auto& st = out->stages;
    row.Num("linear_s", st.linear)
        .Num("attention_s", st.attention)
        .Num("estimation_s", st.estimation)
        .Num("kv_export_s", st.kv_export)
        .Num("embed_s", st.embed)
        .Num("lm_head_s", st.lm_head)
        .Num("compute_s", out->compute_seconds)
        .NumOrNull("density_mean", density);
    if (!out->attention_density.empty()) {
      row.Num("density_min",
              *std::min_element(out->attention_density.begin(), out->attention_density.end()));
      row.Num("density_max",
              *std::max_element(out->attention_density.begin(), out->attention_density.end()));
    }
    row.Int("peak_device_bytes", out->peak_device_bytes).NumOrNull("peak_gib", peak);
    row.Int("first_token", out->first_token);
  }
}

RunResult Bench::RunOnce(const std::vector<int32_t>& tokens, const std::string& mode,
                         const std::string& label) {
  RunResult r;
  TouchKvSink sink;
  worker::PrefillOptions po;
  po.patterns = mode == "sparse" ? &model_->sparse_patterns() : nullptr;
  po.kv_sink = opt_.kv_sink ? &sink : nullptr;
  po.should_stop = [this, &r] {
    if (PastDeadline()) r.stopped_by_budget = true;
    return r.stopped_by_budget;
  };
  const auto t0 = Clock::now();
  const bool progress = tokens.size() >= (size_t{1} << 19);
  po.on_layer_done = [&r, &t0, &label, progress](int done, int total) {
    r.layers_done = done;
    if (progress && (done % 8 == 0 || done == total)) {
      std::fprintf(stderr, "  [%s] layer %d/%d queued, %.1f s\n", label.c_str(), done, total,
                   SecondsSince(t0));
    }
  };
  absl::StatusOr<PrefillOutput> out = model_->Prefill(tokens, po);
  r.wall_s = SecondsSince(t0);
  r.sink_bytes = sink.bytes();
  r.sink_s = sink.seconds();
  if (!out.ok()) {
    r.status = out.status();
    return r;
  }
  r.out = *std::move(out);
  r.status = absl::OkStatus();
  if (opt_.kv_sink) {
    const auto& c = model_->config();
    const int64_t expected = static_cast<int64_t>(c.num_layers) *
                             static_cast<int64_t>(tokens.size()) * c.kv_dim() * 2 *
                             static_cast<int64_t>(kernels::ScalarSize(sink.dtype()));
    std::vector<std::string> problems;
    if (sink.layers() != c.num_layers) {
      problems.push_back(absl::StrCat(sink.layers(), " layers reached the sink, want ",
                                      c.num_layers));
    }
    if (sink.bytes() != expected) {
      problems.push_back(absl::StrCat(sink.bytes(), " bytes reached the sink, want ", expected));
    }
    if (sink.tokens() != static_cast<int64_t>(tokens.size())) {
      problems.push_back(absl::StrCat("the sink saw ", sink.tokens(), " tokens per layer"));
    }
    if (sink.nonzero_fraction() < 0.5) {
      problems.push_back(absl::StrCat("only ", sink.nonzero_fraction() * 100,
                                      "% of the touched K/V bytes are nonzero"));
    }
    if (problems.empty()) {
      r.kv_check = absl::StrCat("ok: ", sink.layers(), " layers in order, ", sink.bytes(),
                                " bytes, ",
                                absl::StrFormat("%.1f", 100 * sink.nonzero_fraction()),
                                "% of touched bytes nonzero");
    } else {
      r.kv_check = absl::StrCat("FAILED: ", absl::StrJoin(problems, "; "));
      r.status = absl::InternalError(absl::StrCat("KV sink check ", r.kv_check));
    }
  } else {
    r.kv_check = "no sink (--no-kv-sink)";
  }
  return r;
}

std::optional<double> Bench::Predict(int64_t tokens, const std::string& mode) const {
  // From the longest measured length of this mode below `tokens`: the non-attention part
  // scales linearly, attention quadratically (dense) or linearly (sparse: fixed budgets).
  const Measured* prev = nullptr;
  int64_t prev_t = 0;
  for (const auto& [key, m] : measured_) {
    if (key.second == mode && key.first < tokens && key.first > prev_t) {
      prev = &m;
      prev_t = key.first;
    }
  }
  if (prev == nullptr) return std::nullopt;
  const double x = static_cast<double>(tokens) / static_cast<double>(prev_t);
  const double attn = prev->attention + prev->estimation;
  const double other = std::max(0.0, prev->total - attn);
  return 1.2 * (other * x + attn * (mode == "dense" ? x * x : x));
}

void Bench::RunRow(int64_t tokens, const std::string& mode, const std::vector<int32_t>& ids) {
  const int wanted = tokens >= opt_.long_from ? opt_.long_repeats : opt_.repeats;
  const std::string label = absl::StrCat(FormatTokens(tokens), " ", mode);
  JsonRow row = BaseRow(tokens, mode);
  row.Int("repeats_wanted", wanted);
  if (mode == "sparse") {
    row.Str("patterns", opt_.patterns).Str("patterns_summary", patterns_summary_);
  }
  if (opt_.max_seconds > 0) {
    const std::optional<double> predicted = Predict(tokens, mode);
    std::string why;
    if (PastDeadline()) {
      why = absl::StrFormat("time budget (--max-seconds %g) used up", opt_.max_seconds);
    } else if (predicted && *predicted > Remaining()) {
      why = absl::StrFormat(
          "predicted %.1f s (scaled from the longest shorter run of this mode) > %.1f s left of "
          "--max-seconds %g",
          *predicted, Remaining(), opt_.max_seconds);
    }
    if (!why.empty()) {
      row.Str("error", why);
      RowAndTable(row, tokens, mode, "skipped", std::nullopt, nullptr, why);
      Emit(std::move(row));
      return;
    }
  }

  std::vector<RunResult> ok_runs;
  std::optional<RunResult> failed;
  std::string note;
  for (int i = 0; i < wanted; ++i) {
    if (i > 0 && opt_.max_seconds > 0 && ok_runs.back().wall_s * 1.1 > Remaining()) {
      note = absl::StrFormat("%d of %d runs: the next would not fit the time budget", i, wanted);
      break;
    }
    RunResult r = RunOnce(ids, mode, label);
    std::fprintf(stderr, "  [%s] run %d: %s, %.3f s\n", label.c_str(), i + 1,
                 r.status.ok() ? "ok" : r.status.ToString().c_str(), r.wall_s);
    if (!r.status.ok()) {
      failed = std::move(r);
      break;
    }
    ok_runs.push_back(std::move(r));
  }

  std::vector<double> runs_s;
  for (const RunResult& r : ok_runs) runs_s.push_back(r.wall_s);
  row.NumList("runs_s", runs_s).Int("repeats", static_cast<int64_t>(ok_runs.size()));
  if (failed) {
    const std::string status = StatusWord(failed->status, failed->stopped_by_budget);
    std::string error = failed->status.ToString();
    if (status == "stopped") {
      error = absl::StrCat("time budget ran out during the run: stopped after ",
                           failed->layers_done, " of ", model_->config().num_layers,
                           " layers (", error, ")");
    }
    if (status == "error") any_error_ = true;
    row.Str("error", error).Int("layers_done", failed->layers_done);
    if (!failed->kv_check.empty()) row.Str("kv_check", failed->kv_check);
    const bool has_out = !failed->out.attention_density.empty();
    RowAndTable(row, tokens, mode, status, std::nullopt, has_out ? &failed->out : nullptr,
                error.substr(0, 160));
    Emit(std::move(row));
    return;
  }
  // The run whose total is the median (the faster of the middle two for an even count).
  std::vector<size_t> order(ok_runs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return ok_runs[a].wall_s < ok_runs[b].wall_s; });
  const RunResult& med = ok_runs[order[(order.size() - 1) / 2]];
  int64_t peak = 0;
  for (const RunResult& r : ok_runs) peak = std::max(peak, r.out.peak_device_bytes);
  PrefillOutput shown = med.out;
  shown.peak_device_bytes = peak;
  row.Num("total_min_s", ok_runs[order.front()].wall_s)
      .Num("total_max_s", ok_runs[order.back()].wall_s)
      .Str("kv_check", med.kv_check)
      .Num("kv_bytes", static_cast<double>(med.sink_bytes))
      .Num("kv_sink_s", med.sink_s);
  if (!note.empty()) row.Str("note", note);
  RowAndTable(row, tokens, mode, "ok", med.wall_s, &shown, note);
  Emit(std::move(row));
  Measured m;
  m.total = med.wall_s;
  m.linear = med.out.stages.linear;
  m.embed = med.out.stages.embed;
  m.lm_head = med.out.stages.lm_head;
  m.attention = med.out.stages.attention;
  m.estimation = med.out.stages.estimation;
  measured_[{tokens, mode}] = m;
}

// Dense at a length above --dense-max-tokens, from the sparse run at that length and the dense
// attention of the longest length where dense ran.
void Bench::EmitExtrapolated(int64_t tokens) {
  JsonRow row = BaseRow(tokens, "dense");
  const auto sparse = measured_.find({tokens, "sparse"});
  const Measured* dense = nullptr;
  int64_t t0 = 0;
  for (const auto& [key, m] : measured_) {
    if (key.second == "dense" && key.first < tokens && key.first > t0) {
      dense = &m;
      t0 = key.first;
    }
  }
  if (sparse == measured_.end() || dense == nullptr) {
    const std::string why = absl::StrCat(
        "dense not run above --dense-max-tokens ", opt_.dense_max_tokens,
        " and not extrapolated: ",
        sparse == measured_.end() ? "no ok sparse row at this length" : "",
        sparse == measured_.end() && dense == nullptr ? " and " : "",
        dense == nullptr ? "no ok dense row at a shorter length" : "");
    row.Str("error", why);
    RowAndTable(row, tokens, "dense", "skipped", std::nullopt, nullptr, why);
    Emit(std::move(row));
    return;
  }
  const Measured& s = sparse->second;
  const double x = static_cast<double>(tokens) / static_cast<double>(t0);
  const double rest = s.linear + s.embed + s.lm_head;
  const double attention = dense->attention * x * x;
  const double total = rest + attention;
  const std::string formula = absl::StrFormat(
      "dense_total(T) = [linear + embed + lm_head](T, sparse run) + dense_attention(T0) * "
      "(T/T0)^2 = %.3f + %.3f * (%s/%s)^2 = %.3f + %.3f = %.3f s",
      rest, dense->attention, FormatTokens(tokens), FormatTokens(t0), rest, attention, total);
  row.Str("extrapolated_from", FormatTokens(t0))
      .Int("extrapolated_from_tokens", t0)
      .Str("formula", formula);
  // The same formula at T0, against the dense run measured there.
  if (const auto s0 = measured_.find({t0, "sparse"}); s0 != measured_.end()) {
    const double predicted = s0->second.linear + s0->second.embed + s0->second.lm_head +
                             dense->attention;
    row.Num("formula_check_predicted_s", predicted)
        .Num("formula_check_measured_s", dense->total)
        .Str("formula_check",
             absl::StrFormat("at %s the formula gives %.3f s, dense measured %.3f s (ratio "
                             "measured/formula %.3f)",
                             FormatTokens(t0), predicted, dense->total, dense->total / predicted));
  }
  row.Num("linear_s", s.linear)
      .Num("attention_s", attention)
      .Num("estimation_s", 0)
      .Null("kv_export_s")
      .Num("embed_s", s.embed)
      .Num("lm_head_s", s.lm_head)
      .Num("density_mean", 1.0)
      .Null("peak_gib");
  PrefillOutput shown;
  shown.stages.linear = s.linear;
  shown.stages.attention = attention;
  shown.stages.embed = s.embed;
  shown.stages.lm_head = s.lm_head;
  shown.stages.kv_export = std::nan("");
  shown.attention_density = {1.0};
  RowAndTable(row, tokens, "dense", "extrapolated", total, &shown,
              absl::StrCat("from ", FormatTokens(t0), ": ", formula), false);
  Emit(std::move(row));
}

void Bench::ErrorRowsForAll(const std::string& why) {
  for (const int64_t t : opt_.tokens) {
    for (const std::string& mode : opt_.modes) {
      JsonRow row = BaseRow(t, mode);
      row.Str("error", why);
      RowAndTable(row, t, mode, "error", std::nullopt, nullptr, why.substr(0, 160));
      Emit(std::move(row));
    }
  }
}

std::string SummarizePatterns(const PatternConfig& p) {
  std::map<std::string, int> counts;
  for (int l = 0; l < p.num_layers(); ++l) {
    for (const HeadPattern& h : p.layer(l)) {
      std::string key = worker::HeadPatternTypeName(h.type);
      switch (h.type) {
        case HeadPattern::Type::kVerticalSlash:
          absl::StrAppend(&key, "(", h.vertical, ",", h.slash, ")");
          break;
        case HeadPattern::Type::kAShape:
          absl::StrAppend(&key, "(", h.n_init, ",", h.n_local, ")");
          break;
        case HeadPattern::Type::kBlockSparse:
          absl::StrAppend(&key, "(", h.top_k, ")");
          break;
        case HeadPattern::Type::kDense:
          break;
      }
      ++counts[key];
    }
  }
  std::vector<std::pair<int, std::string>> sorted;
  for (const auto& [k, n] : counts) sorted.emplace_back(-n, k);
  std::sort(sorted.begin(), sorted.end());
  std::string s;
  for (const auto& [n, k] : sorted) absl::StrAppend(&s, s.empty() ? "" : ", ", k, " x", -n);
  absl::StrAppend(&s, "; min_sparse_tokens ", p.min_sparse_tokens());
  return s;
}

int Bench::QueryDevice() {
  int count = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess || count == 0) {
    const std::string why = absl::StrCat(
        "no usable CUDA device: ",
        err != cudaSuccess ? absl::StrCat(cudaGetErrorName(err), " (", cudaGetErrorString(err), ")")
                           : "none present");
    std::fprintf(stderr, "prefill_bench: %s\n", why.c_str());
    ErrorRowsForAll(why);
    return 1;
  }
  cudaDeviceProp prop{};
  if (const cudaError_t err = cudaGetDeviceProperties(&prop, opt_.device); err != cudaSuccess) {
    const std::string why = absl::StrCat("cudaGetDeviceProperties(", opt_.device, "): ",
                                         cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
    std::fprintf(stderr, "prefill_bench: %s\n", why.c_str());
    ErrorRowsForAll(why);
    return 1;
  }
  device_name_ = prop.name;
  device_mem_gib_ = static_cast<double>(prop.totalGlobalMem) / kGiB;
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::fprintf(stderr,
               "prefill_bench: %s (%.1f GiB, %d SMs), CUDA driver %d.%d, runtime %d.%d\n",
               device_name_.c_str(), device_mem_gib_, prop.multiProcessorCount, driver / 1000,
               (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10);
  return 0;
}

int Bench::Run() {
  if (!opt_.json_path.empty()) {
    json_ = std::fopen(opt_.json_path.c_str(), "a");
    if (json_ == nullptr) {
      std::fprintf(stderr, "prefill_bench: cannot open --json %s: %s\n", opt_.json_path.c_str(),
                   std::strerror(errno));
      return 2;
    }
  }
  // The device, for the rows.
  if (opt_.backend == "cuda") {
    if (const int rc = QueryDevice(); rc != 0) return rc;
  } else {
    device_name_ = "cpu (program check only)";
  }

  // The backend and the model.
  worker::CudaBackendOptions bo;
  bo.device = opt_.device;
  bo.max_chunk_tokens = opt_.max_chunk_tokens;
  bo.export_slots = opt_.export_slots;
  absl::StatusOr<std::unique_ptr<worker::Backend>> backend =
      opt_.backend == "cuda" ? worker::MakeCudaBackend(bo)
                             : absl::StatusOr<std::unique_ptr<worker::Backend>>(
                                   worker::MakeCpuBackend(worker::CpuBackendOptions{}));
  if (!backend.ok()) {
    const std::string why = absl::StrCat("making the ", opt_.backend, " backend: ",
                                         backend.status().ToString());
    std::fprintf(stderr, "prefill_bench: %s\n", why.c_str());
    ErrorRowsForAll(why);
    return 1;
  }
  const bool want_sparse =
      std::find(opt_.modes.begin(), opt_.modes.end(), "sparse") != opt_.modes.end();
  if (want_sparse && !std::filesystem::exists(opt_.patterns)) {
    const std::string why = absl::StrCat(
        "pattern config ", opt_.patterns, " not found (run from the repository root, or pass "
        "--patterns)");
    std::fprintf(stderr, "prefill_bench: %s\n", why.c_str());
    ErrorRowsForAll(why);
    return 1;
  }
  const auto load_start = Clock::now();
  worker::ModelLoadOptions lo;
  lo.model_dir = opt_.model;
  // Dense alone needs no pattern file (the model then holds the default config, unused).
  lo.pattern_config_path =
      want_sparse || std::filesystem::exists(opt_.patterns) ? opt_.patterns : "";
  lo.random_seed = opt_.seed;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(lo, *std::move(backend));
  if (!model.ok()) {
    const std::string why = absl::StrCat("Model::Load(", opt_.model, ", patterns ", opt_.patterns,
                                         "): ", model.status().ToString());
    std::fprintf(stderr, "prefill_bench: %s\n", why.c_str());
    ErrorRowsForAll(why);
    return 1;
  }
  model_ = *std::move(model);
  const auto& c = model_->config();
  patterns_summary_ = SummarizePatterns(model_->sparse_patterns());
  std::fprintf(stderr,
               "prefill_bench: model %s (%d layers, hidden %" PRId64 ", %d/%d heads of %d, vocab "
               "%" PRId64 ") on %.*s, loaded (queued) in %.2f s\n",
               model_->name().c_str(), c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads,
               c.head_dim, c.vocab_size, static_cast<int>(model_->backend_name().size()),
               model_->backend_name().data(), SecondsSince(load_start));
  std::fprintf(stderr, "prefill_bench: sparse patterns %s: %s\n", opt_.patterns.c_str(),
               patterns_summary_.c_str());

  // Prompts: uniform random token ids, seeded per length (the same prompt for both modes).
  const std::vector<int64_t>& lengths = opt_.tokens;
  auto make_prompt = [&](int64_t t) {
    std::mt19937_64 rng(opt_.seed * 1000003ULL + static_cast<uint64_t>(t));
    std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(c.vocab_size - 1));
    std::vector<int32_t> ids(static_cast<size_t>(t));
    for (int32_t& id : ids) id = dist(rng);
    return ids;
  };

  // Warm-up: one untimed prefill per mode at the smallest length (cuBLAS handles and
  // heuristics, kernel modules, the memory pool, pinned export slots).
  const int64_t warmup = opt_.warmup_tokens >= 0
                             ? opt_.warmup_tokens
                             : *std::min_element(lengths.begin(), lengths.end());
  if (warmup > 0) {
    const std::vector<int32_t> ids = make_prompt(warmup);
    for (const std::string& mode : opt_.modes) {
      const RunResult r = RunOnce(ids, mode, absl::StrCat("warm-up ", FormatTokens(warmup), " ", mode));
      std::fprintf(stderr, "prefill_bench: warm-up %s %s: %s, %.3f s%s%s\n",
                   FormatTokens(warmup).c_str(), mode.c_str(),
                   r.status.ok() ? "ok" : r.status.ToString().c_str(), r.wall_s,
                   r.kv_check.empty() ? "" : ", KV ", r.kv_check.c_str());
    }
  }

  std::vector<int64_t> extrapolate;
  for (const int64_t t : lengths) {
    const std::vector<int32_t> ids = make_prompt(t);
    for (const std::string& mode : opt_.modes) {
      if (mode == "dense" && t > opt_.dense_max_tokens) {
        extrapolate.push_back(t);
        continue;
      }
      RunRow(t, mode, ids);
    }
  }
  for (const int64_t t : extrapolate) EmitExtrapolated(t);
  std::fprintf(stderr, "prefill_bench: done in %.1f s\n", SecondsSince(start_));
  if (json_ != nullptr) std::fclose(json_);
  return any_error_ ? 1 : 0;
}

int Main(int argc, char** argv) {
  Options opt;
  const std::string err = ParseArgs(argc, argv, &opt);
  if (err == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "prefill_bench: %s\n%s", err.c_str(), kUsage);
    return 2;
  }
  std::string command = "prefill_bench";
  for (int i = 1; i < argc; ++i) absl::StrAppend(&command, " ", argv[i]);
  std::fprintf(stderr, "prefill_bench: %s\n", command.c_str());
  Bench bench(std::move(opt));
  return bench.Run();
}

}  // namespace
}  // namespace sparsefill::bench

int main(int argc, char** argv) { return sparsefill::bench::Main(argc, argv); }
