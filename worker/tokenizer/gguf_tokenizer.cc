#include "worker/tokenizer/gguf_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

absl::StatusOr<std::vector<std::string>> Strings(const GgufFile& file, absl::string_view key) {
  SF_ASSIGN_OR_RETURN(const GgufValue::Array* array, file.GetArray(key, GgufValueType::kString));
  std::vector<std::string> out;
  out.reserve(array->items.size());
  for (const GgufValue& v : array->items) out.push_back(std::get<std::string>(v.value));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> TokenizerFromGguf(const GgufFile& file) {
  if (file.Find("tokenizer.ggml.model") == nullptr) {
    return absl::NotFoundError(absl::StrCat(file.path(), ": no tokenizer (tokenizer.ggml.model)"));
  }
  SF_ASSIGN_OR_RETURN(const std::string model, file.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::UnimplementedError(absl::StrCat(file.path(),
                                                 ": metadata 'tokenizer.ggml.model' is '", model,
                                                 "': only byte-level BPE ('gpt2') is supported"));
  }
  BpeTokenizerSpec spec;
  std::string pre = "default";
  if (file.Find("tokenizer.ggml.pre") != nullptr) {
    SF_ASSIGN_OR_RETURN(pre, file.GetString("tokenizer.ggml.pre"));
  }
  absl::StatusOr<PreTokenizer> kind = PreTokenizerFromName(pre);
  if (!kind.ok()) {
    return absl::Status(kind.status().code(), absl::StrCat(file.path(),
                                                           ": metadata "
                                                           "'tokenizer.ggml.pre': ",
                                                           kind.status().message()));
  }
  spec.pre_tokenizer = *kind;
  SF_ASSIGN_OR_RETURN(spec.tokens, Strings(file, "tokenizer.ggml.tokens"));
  SF_ASSIGN_OR_RETURN(spec.merges, Strings(file, "tokenizer.ggml.merges"));
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    SF_ASSIGN_OR_RETURN(const GgufValue::Array* types,
                        file.GetArray("tokenizer.ggml.token_type", GgufValueType::kInt64));
    for (const GgufValue& v : types->items) {
      spec.types.push_back(static_cast<TokenType>(std::get<int64_t>(v.value)));
    }
  }
  for (auto [key, id] :
       {std::pair<const char*, int32_t*>{"tokenizer.ggml.bos_token_id", &spec.bos_id},
        {"tokenizer.ggml.eos_token_id", &spec.eos_id}}) {
    if (file.Find(key) == nullptr) continue;
    SF_ASSIGN_OR_RETURN(const int64_t v, file.GetInt(key));
    *id = static_cast<int32_t>(v);
  }
  if (file.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    SF_ASSIGN_OR_RETURN(spec.add_bos, file.GetBool("tokenizer.ggml.add_bos_token"));
  }
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::Create(std::move(spec));
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(file.path(), ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

}  // namespace sparsefill::worker
