// PrefillService handlers (see prefill_service.h).
#include "server/prefill_service.h"

#include <string>

namespace sparsefill::server {

v1::ModelInfoResponse MakeModelInfo(const worker::Model& model, int64_t max_prompt_tokens) {
  const worker::ModelConfig& c = model.config();
  v1::ModelInfoResponse info;
  info.set_model_name(model.name());
  info.set_model_type(c.model_type);
  info.set_num_layers(static_cast<uint32_t>(c.num_layers));
  info.set_num_attention_heads(static_cast<uint32_t>(c.num_heads));
  info.set_num_kv_heads(static_cast<uint32_t>(c.num_kv_heads));
  info.set_head_dim(static_cast<uint32_t>(c.head_dim));
  info.set_hidden_size(static_cast<uint32_t>(c.hidden_size));
  info.set_vocab_size(static_cast<uint32_t>(c.vocab_size));
  info.set_max_prompt_tokens(static_cast<uint64_t>(max_prompt_tokens));
  for (v1::KvCodec codec : {v1::KV_CODEC_RAW_BF16, v1::KV_CODEC_RAW_FP32, v1::KV_CODEC_LOSSLESS,
                            v1::KV_CODEC_FP8_E4M3, v1::KV_CODEC_INT8, v1::KV_CODEC_INT4}) {
    // INT4 packs channel pairs into bytes: a model with an odd head_dim cannot use it.
    if (codec == v1::KV_CODEC_INT4 && c.head_dim % 2 != 0) continue;
    info.add_supported_codecs(codec);
  }
  info.add_supported_attention_modes(v1::ATTENTION_MODE_DENSE);
  info.add_supported_attention_modes(v1::ATTENTION_MODE_MODEL_SPARSE);
  info.add_supported_attention_modes(v1::ATTENTION_MODE_INLINE);
  info.set_backend(std::string(model.backend_name()));
  info.set_model_pattern_config(model.sparse_patterns().ToJson());
  return info;
}

PrefillServiceImpl::PrefillServiceImpl(CallEnvironment* env)
    : env_(env), model_info_(MakeModelInfo(*env->model, env->limits.max_prompt_tokens)) {}

grpc::ServerWriteReactor<v1::PrefillResponse>* PrefillServiceImpl::Prefill(
    grpc::CallbackServerContext* context, const v1::PrefillRequest* request) {
  return PrefillCall::Start(env_, context, request);
}

grpc::ServerUnaryReactor* PrefillServiceImpl::ModelInfo(grpc::CallbackServerContext* context,
                                                        const v1::ModelInfoRequest* /*request*/,
                                                        v1::ModelInfoResponse* response) {
  *response = model_info_;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sparsefill::server
