#include "tests/client/fake_prefill_service.h"

#include <algorithm>

#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "tests/client/kv_test_util.h"
#include "tests/worker/kv_collector.h"

namespace sparsefill::testing {
namespace {

// Chunks of `layers` (float32 [tokens, kv_heads, head_dim] each) for `request`, with progress
// events when requested, and the result fields that follow from them.
void AppendKv(const std::vector<SyntheticLayer>& layers, const client::KvShape& shape,
              const v1::PrefillRequest& request, int64_t tokens_per_chunk, int heads_per_chunk,
              std::vector<v1::PrefillResponse>& out, v1::PrefillResult& result) {
  const v1::KvCodec codec =
      request.kv_codec() == v1::KV_CODEC_UNSPECIFIED ? v1::KV_CODEC_RAW_BF16 : request.kv_codec();
  auto progress = [&](int done) {
    if (!request.progress()) return;
    v1::Progress* p = out.emplace_back().mutable_progress();
    p->set_request_id(request.request_id());
    p->set_layers_done(done);
    p->set_num_layers(shape.num_layers);
  };
  progress(0);
  std::vector<v1::KvChunk> chunks;
  if (!request.skip_kv()) {
    chunks = EncodeKvStream(layers, shape, codec, request.request_id(), tokens_per_chunk,
                            heads_per_chunk);
  }
  size_t next = 0;
  for (int l = 0; l < shape.num_layers; ++l) {
    progress(l + 1);
    while (next < chunks.size() && chunks[next].layer() == static_cast<uint32_t>(l)) {
      result.set_kv_bytes_sent(result.kv_bytes_sent() + chunks[next].payload().size());
      *out.emplace_back().mutable_kv_chunk() = std::move(chunks[next++]);
    }
  }
  result.set_kv_chunks_sent(chunks.size());
  result.set_request_id(request.request_id());
  result.set_prompt_tokens(request.token_ids_size());
  result.set_num_layers(shape.num_layers);
  result.set_kv_codec(codec);
}

}  // namespace

grpc::Status FakePrefillService::ModelInfo(grpc::ServerContext*, const v1::ModelInfoRequest*,
                                           v1::ModelInfoResponse* response) {
  ++model_info_calls;
  *response = model_info;
  return grpc::Status::OK;
}

grpc::Status FakePrefillService::Prefill(grpc::ServerContext* context,
                                         const v1::PrefillRequest* request,
                                         grpc::ServerWriter<v1::PrefillResponse>* writer) {
  ++prefill_calls;
  const std::vector<v1::PrefillResponse> responses = script(*request);
  for (const v1::PrefillResponse& response : responses) {
    // Sleep in small steps so a cancellation is seen promptly, as a worker sees it at the next
    // layer boundary.
    const absl::Time until = absl::Now() + delay_per_message;
    while (absl::Now() < until && !context->IsCancelled()) absl::SleepFor(absl::Milliseconds(1));
    if (context->IsCancelled() || !writer->Write(response)) break;
    ++messages_sent;
  }
  if (context->IsCancelled()) {
    if (!saw_cancel.HasBeenNotified()) saw_cancel.Notify();
    return grpc::Status::CANCELLED;
  }
  return final_status;
}

v1::ModelInfoResponse SyntheticModelInfo(int num_layers, int kv_heads, int head_dim, int vocab) {
  v1::ModelInfoResponse info;
  info.set_model_name("synthetic");
  info.set_model_type("llama");
  info.set_num_layers(num_layers);
  info.set_num_attention_heads(kv_heads * 2);
  info.set_num_kv_heads(kv_heads);
  info.set_head_dim(head_dim);
  info.set_hidden_size(kv_heads * 2 * head_dim);
  info.set_vocab_size(vocab);
  info.set_max_prompt_tokens(4096);
  for (v1::KvCodec codec : {v1::KV_CODEC_RAW_BF16, v1::KV_CODEC_RAW_FP32, v1::KV_CODEC_LOSSLESS,
                            v1::KV_CODEC_FP8_E4M3, v1::KV_CODEC_INT8, v1::KV_CODEC_INT4}) {
    info.add_supported_codecs(codec);  // the stream is encoded with kernels::EncodeKvChunk
  }
  info.add_supported_attention_modes(v1::ATTENTION_MODE_DENSE);
  info.set_backend("cpu");
  return info;
}

std::vector<v1::PrefillResponse> MakeScript(const v1::ModelInfoResponse& info,
                                            const v1::PrefillRequest& request,
                                            int64_t tokens_per_chunk, int heads_per_chunk) {
  const client::KvShape shape{static_cast<int>(info.num_layers()), request.token_ids_size(),
                              static_cast<int>(info.num_kv_heads()),
                              static_cast<int>(info.head_dim())};
  std::vector<v1::PrefillResponse> out;
  v1::PrefillResult result;
  AppendKv(MakeSyntheticKv(shape), shape, request, tokens_per_chunk, heads_per_chunk, out, result);
  result.set_first_token(7);
  result.set_first_token_logit(1.5f);
  if (request.return_logits()) {
    for (uint32_t i = 0; i < info.vocab_size(); ++i) result.add_logits_last(i == 7 ? 1.5f : 0.f);
  }
  for (int l = 0; l < shape.num_layers; ++l) result.add_attention_density(1.0);
  result.set_attention_mode(v1::ATTENTION_MODE_DENSE);
  *out.emplace_back().mutable_result() = std::move(result);
  return out;
}

void ServeModel(FakePrefillService& service, std::shared_ptr<const worker::Model> model,
                int64_t tokens_per_chunk) {
  const worker::ModelConfig& c = model->config();
  v1::ModelInfoResponse& info = service.model_info;
  info =
      SyntheticModelInfo(c.num_layers, c.num_kv_heads, c.head_dim, static_cast<int>(c.vocab_size));
  info.set_model_name(model->name());
  info.set_num_attention_heads(c.num_heads);
  info.set_hidden_size(c.hidden_size);
  info.add_supported_attention_modes(v1::ATTENTION_MODE_MODEL_SPARSE);
  const int heads_per_chunk = std::max(1, c.num_kv_heads / 2);
  service.script = [model, tokens_per_chunk, heads_per_chunk](const v1::PrefillRequest& request) {
    std::vector<v1::PrefillResponse> out;
    const std::vector<int32_t> tokens(request.token_ids().begin(), request.token_ids().end());
    KvCollector kv;
    worker::PrefillOptions options;
    options.kv_sink = &kv;
    const bool dense = request.attention_mode() == v1::ATTENTION_MODE_DENSE;
    options.patterns = dense ? nullptr : &model->sparse_patterns();
    absl::StatusOr<worker::PrefillOutput> prefill = model->Prefill(tokens, options);
    if (!prefill.ok()) return out;  // the client then reports a stream without a result
    const worker::ModelConfig& c = model->config();
    const client::KvShape shape{c.num_layers, static_cast<int64_t>(tokens.size()), c.num_kv_heads,
                                c.head_dim};
    std::vector<SyntheticLayer> layers(c.num_layers);
    for (int l = 0; l < c.num_layers; ++l) layers[l] = {kv.k[l], kv.v[l]};
    v1::PrefillResult result;
    AppendKv(layers, shape, request, tokens_per_chunk, heads_per_chunk, out, result);
    result.set_first_token(prefill->first_token);
    result.set_first_token_logit(prefill->first_token_logit);
    if (request.return_logits()) {
      result.mutable_logits_last()->Add(prefill->logits_last.begin(), prefill->logits_last.end());
    }
    result.mutable_attention_density()->Add(prefill->attention_density.begin(),
                                            prefill->attention_density.end());
    result.mutable_timings()->set_compute_seconds(prefill->compute_seconds);
    result.mutable_timings()->set_total_seconds(prefill->compute_seconds);
    result.set_attention_mode(dense ? v1::ATTENTION_MODE_DENSE : v1::ATTENTION_MODE_MODEL_SPARSE);
    *out.emplace_back().mutable_result() = std::move(result);
    return out;
  };
}

FakeServer::FakeServer(FakePrefillService* service) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service);
  server_ = builder.BuildAndStart();
}

FakeServer::~FakeServer() {
  // Bounded: handlers see their calls cancelled and return.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace sparsefill::testing
