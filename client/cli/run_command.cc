// `sparsefill run`: a prefill in this process, on the model and backend given.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <span>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/arg_parser.h"
#include "client/cli/commands.h"
#include "client/cli/kv_file.h"
#include "client/cli/progress_line.h"
#include "client/cli/token_file.h"
#include "worker/backend_factory.h"
#include "worker/model.h"
#include "worker/model_config.h"

namespace sparsefill::cli {
namespace {

const std::vector<FlagSpec>& RunFlags() {
  static const std::vector<FlagSpec> specs = {
      {"model", "DIR",
       "Hugging Face Llama-family checkpoint folder (config.json + safetensors), gguf:FILE (a "
       "GGUF model; deploy/fetch_models.sh fetches SmolLM2-135M) or random:SHAPE",
       "the embedded model"},
      {"tokens", "FILE",
       "prompt: safetensors with an int32 input_ids tensor, or whitespace-separated ids", ""},
      {"text", "TEXT", "prompt as text (models with a tokenizer: GGUF models)", ""},
      {"text-file", "FILE", "prompt as the text of a UTF-8 file (models with a tokenizer)", ""},
      {"save-kv", "OUT", "write layer.{i}.k/v, logits_last and first_token as float32 safetensors",
       ""},
      {"backend", "NAME", "compute backend: auto (CUDA when a GPU is present, else CPU), cpu, cuda",
       "auto"},
      {"attention", "MODE",
       "dense, sparse (the model's pattern config) or a pattern-config JSON file", "dense"},
      {"pattern-config", "FILE", "the model's sparse pattern config (used by --attention sparse)",
       "<model>/sparsefill_patterns.json (<name>.sparsefill_patterns.json beside a GGUF file), "
       "else vertical_slash 1000/6096"},
  };
  return specs;
}

constexpr char kUsage[] =
    "sparsefill run [--model DIR|gguf:FILE] (--tokens FILE | --text TEXT | --text-file FILE) "
    "[--save-kv OUT] [--backend cpu] [--attention dense|sparse|CONFIG.json]";
constexpr char kDescription[] =
    "Runs a prefill in this process and prints a summary (tokens, layers, time, tokens/s, first\n"
    "token). With --save-kv, writes the KV cache (K after RoPE) and the last-position logits.\n"
    "Text prompts are tokenized with the model's own tokenizer (its BOS first when it adds one).";

// `text` in double quotes with control characters, quotes and backslashes escaped.
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += absl::StrFormat("\\x%02x", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  int exit_code = 0;
  const std::optional<ParsedFlags> flags =
      ParseCommandFlags({"run", kUsage, kDescription, RunFlags(), {}}, args, &exit_code);
  if (!flags) return exit_code;
  const int prompts = flags->Has("tokens") + flags->Has("text") + flags->Has("text-file");
  if (prompts != 1) {
    return UsageError("run", "give the prompt with exactly one of --tokens, --text, --text-file");
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "sparsefill run: %s\n", std::string(s.message()).c_str());
    return 1;
  };

  absl::StatusOr<std::vector<int32_t>> tokens;
  if (flags->Has("tokens")) {
    tokens = ReadTokenFile(flags->Get("tokens"));
    if (!tokens.ok()) return fail(tokens.status());
  }
  absl::StatusOr<std::unique_ptr<worker::Backend>> backend =
      worker::MakeBackend(flags->Get("backend"));
  if (!backend.ok()) return fail(backend.status());

  const auto load_start = std::chrono::steady_clock::now();
  worker::ModelLoadOptions load;
  load.model_dir = flags->Has("model") ? flags->Get("model") : "";
  load.pattern_config_path = flags->Has("pattern-config") ? flags->Get("pattern-config") : "";
  absl::StatusOr<std::unique_ptr<worker::Model>> model =
      worker::Model::Load(load, *std::move(backend));
  if (!model.ok()) return fail(model.status());
  const worker::ModelConfig& config = (*model)->config();
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const worker::BpeTokenizer* tokenizer = (*model)->tokenizer();
  if (!flags->Has("tokens")) {
    if (tokenizer == nullptr) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("model ", (*model)->name(),
                       " has no tokenizer: give the prompt as token ids with --tokens")));
    }
    std::string text = flags->Get("text");
    if (flags->Has("text-file")) {
      absl::StatusOr<std::string> file = worker::ReadTextFile(flags->Get("text-file"));
      if (!file.ok()) return fail(file.status());
      text = *std::move(file);
    }
    tokens = tokenizer->Encode(text);
    if (!tokens.ok()) return fail(tokens.status());
    if (tokens->empty()) return fail(absl::InvalidArgumentError("the text prompt has no tokens"));
  }

  // Attention: dense, the model's sparse config, or a config file.
  worker::PatternConfig file_patterns;
  const worker::PatternConfig* patterns = nullptr;
  const std::string attention = flags->Get("attention");
  if (attention == "sparse") {
    patterns = &(*model)->sparse_patterns();
  } else if (attention != "dense") {
    absl::StatusOr<worker::PatternConfig> parsed =
        worker::PatternConfig::FromFile(attention, config.num_layers, config.num_heads);
    if (!parsed.ok()) return fail(parsed.status());
    file_patterns = *std::move(parsed);
    patterns = &file_patterns;
  }

  std::unique_ptr<KvFileWriter> kv_file;
  if (flags->Has("save-kv")) {
    KvFileLayout layout{config.num_layers, static_cast<int64_t>(tokens->size()),
                        config.num_kv_heads, config.head_dim, config.vocab_size};
    absl::StatusOr<std::unique_ptr<KvFileWriter>> writer =
        KvFileWriter::Create(flags->Get("save-kv"), layout);
    if (!writer.ok()) return fail(writer.status());
    kv_file = *std::move(writer);
  }

  ProgressLine progress;
  worker::PrefillOptions options;
  options.patterns = patterns;
  options.kv_sink = kv_file.get();
  options.on_layer_done = [&](int done, int total) {
    progress.Update(absl::StrFormat("prefill: layer %d/%d", done, total));
  };
  absl::StatusOr<worker::PrefillOutput> out = (*model)->Prefill(*tokens, options);
  progress.Clear();
  if (!out.ok()) return fail(out.status());
  if (kv_file != nullptr) {
    if (absl::Status s = kv_file->Finish(out->logits_last, out->first_token); !s.ok())
      return fail(s);
  }

  const double density =
      out->attention_density.empty()
          ? 1.0
          : std::accumulate(out->attention_density.begin(), out->attention_density.end(), 0.0) /
                out->attention_density.size();
  std::printf("model      %s (%s) on %s, loaded in %.2f s\n", (*model)->name().c_str(),
              config.Summary().c_str(), std::string((*model)->backend_name()).c_str(),
              load_seconds);
  std::printf(
      "prefill    %zu tokens, %d layers in %.3f s (%.0f tokens/s), attention %s, mean density "
      "%.4f\n",
      tokens->size(), config.num_layers, out->compute_seconds,
      tokens->size() / std::max(out->compute_seconds, 1e-9), attention.c_str(), density);
  std::printf("stages     linear %.3f s, attention %.3f s, estimation %.3f s, kv export %.3f s\n",
              out->stages.linear, out->stages.attention, out->stages.estimation,
              out->stages.kv_export);
  if (out->peak_device_bytes > 0) {
    std::printf("memory     peak %.2f GiB on the device\n", out->peak_device_bytes / double(1 << 30));
  }
  if (tokenizer != nullptr) {
    const std::string text = tokenizer->Decode(std::span<const int32_t>(&out->first_token, 1));
    std::printf("first      token %d (logit %.4f) %s\n", out->first_token, out->first_token_logit,
                Quoted(text).c_str());
  } else {
    std::printf("first      token %d (logit %.4f)\n", out->first_token, out->first_token_logit);
  }
  if (kv_file != nullptr) {
    std::printf("saved      %s (%.1f MiB)\n", flags->Get("save-kv").c_str(),
                kv_file->bytes_written() / (1024.0 * 1024.0));
  }
  return 0;
}

}  // namespace sparsefill::cli
