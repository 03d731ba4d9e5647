#include "worker/model.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/checkpoint.h"
#include "worker/embedded_model.h"
#include "worker/gguf_file.h"
#include "worker/gguf_weights.h"
#include "worker/llama_forward.h"
#include "worker/named_models.h"
#include "worker/status_macros.h"
#include "worker/tokenizer/gguf_tokenizer.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const ModelLoadOptions& options,
                                                   std::unique_ptr<Backend> backend) {
  namespace fs = std::filesystem;
  std::unique_ptr<Model> model(new Model());
  model->backend_ = std::move(backend);
  std::string pattern_path = options.pattern_config_path;
  if (absl::StartsWith(options.model_dir, kRandomModelPrefix)) {
    const absl::string_view shape =
        absl::string_view(options.model_dir).substr(sizeof(kRandomModelPrefix) - 1);
    SF_ASSIGN_OR_RETURN(model->config_, NamedModelConfig(shape));
    SF_ASSIGN_OR_RETURN(model->weights_, MakeRandomLlamaWeights(model->config_, options.random_seed,
                                                                *model->backend_));
    model->name_ = options.model_dir;
  } else if (absl::StartsWith(options.model_dir, kGgufModelPrefix) ||
             (absl::EndsWith(options.model_dir, ".gguf") && !fs::is_directory(options.model_dir))) {
    absl::string_view prefixed = options.model_dir;
    absl::ConsumePrefix(&prefixed, kGgufModelPrefix);
    const std::string path(prefixed);
    if (!fs::is_regular_file(path)) {
      return absl::NotFoundError(
          absl::StrCat("GGUF model file ", path,
                       " does not exist: run deploy/fetch_models.sh to fetch it (SmolLM2-135M into "
                       "$SPARSEFILL_MODEL_CACHE, default ~/.cache/sparsefill/models)"));
    }
    SF_ASSIGN_OR_RETURN(const auto file, GgufFile::Open(path));
    SF_ASSIGN_OR_RETURN(model->config_, ModelConfigFromGguf(*file));
    SF_ASSIGN_OR_RETURN(const auto weights, GgufWeights::Load(*file, model->config_));
    SF_ASSIGN_OR_RETURN(model->weights_,
                        LoadLlamaWeights(model->config_, *weights, *model->backend_));
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = TokenizerFromGguf(*file);
    if (tokenizer.ok()) {
      model->tokenizer_ = *std::move(tokenizer);
    } else if (!absl::IsNotFound(tokenizer.status())) {
      return tokenizer.status();
    }
    model->name_ = fs::path(path).stem().string();
    const fs::path patterns = fs::path(path).replace_extension(".sparsefill_patterns.json");
    if (pattern_path.empty() && fs::exists(patterns)) pattern_path = patterns.string();
  } else if (options.model_dir.empty()) {
    model->name_ = kEmbeddedModelName;
    model->config_ = EmbeddedModelConfig();
    const auto weights = MakeSeededRandomWeights(model->config_, kEmbeddedModelSeed);
    SF_ASSIGN_OR_RETURN(model->weights_,
                        LoadLlamaWeights(model->config_, *weights, *model->backend_));
  } else {
    const fs::path dir(options.model_dir);
    if (!fs::is_directory(dir)) {
      return absl::NotFoundError(
          absl::StrCat("model folder ", options.model_dir, " does not exist"));
    }
    SF_ASSIGN_OR_RETURN(model->config_, ModelConfig::FromFile((dir / "config.json").string()));
    SF_ASSIGN_OR_RETURN(const auto checkpoint, Checkpoint::Open(options.model_dir));
    SF_ASSIGN_OR_RETURN(model->weights_,
                        LoadLlamaWeights(model->config_, *checkpoint, *model->backend_));
    model->name_ = fs::absolute(dir).lexically_normal().filename().string();
    if (model->name_.empty()) model->name_ = fs::absolute(dir).parent_path().filename().string();
    if (pattern_path.empty() && fs::exists(dir / "sparsefill_patterns.json")) {
      pattern_path = (dir / "sparsefill_patterns.json").string();
    }
  }
  const ModelConfig& c = model->config_;
  if (pattern_path.empty()) {
    model->sparse_patterns_ =
        PatternConfig::Uniform(c.num_layers, c.num_heads, HeadPattern::VerticalSlash(1000, 6096));
  } else {
    SF_ASSIGN_OR_RETURN(model->sparse_patterns_,
                        PatternConfig::FromFile(pattern_path, c.num_layers, c.num_heads));
  }
  return model;
}

absl::StatusOr<PrefillOutput> Model::Prefill(std::span<const int32_t> tokens,
                                             const PrefillOptions& options) const {
  if (backend_->concurrent_prefills()) {
    return RunLlamaPrefill(*backend_, config_, weights_, tokens, options);
  }
  std::lock_guard<std::mutex> lock(exclusive_);
  return RunLlamaPrefill(*backend_, config_, weights_, tokens, options);
}

absl::StatusOr<DecodeStepOutput> Model::DecodeStep(std::span<const PastKvLayer> past,
                                                   int64_t past_tokens, int32_t token) const {
  // The step allocates like a prefill: serialize it with prefills where the backend requires.
  std::unique_lock<std::mutex> lock(exclusive_, std::defer_lock);
  if (!backend_->concurrent_prefills()) lock.lock();
  return RunLlamaDecodeStep(*backend_, config_, weights_, past, past_tokens, token);
}

}  // namespace sparsefill::worker
