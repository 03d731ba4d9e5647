// The service end to end, in process on 127.0.0.1 port 0, through the generated stub: KV
// bit-identical to an in-process prefill, the golden model against transformers, the stream's
// order, every bad input, admission (full queue), cancellation, deadlines, metrics and shutdown.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/ops/numeric.h"
#include "server/prefill_server.h"
#include "tests/kernels/test_util.h"
#include "tests/server/test_util.h"
#include "tests/worker/kv_collector.h"
#include "worker/backend_factory.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::server {
namespace {

using testing::AssembledKv;
using testing::EmbeddedModel;
using testing::PrefillStream;
using testing::RandomTokens;
using testing::RunPrefill;
using testing::UnreadCall;
using testing::WaitFor;

class PrefillServiceTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = testing::TestServerOptions(),
                   std::shared_ptr<const worker::Model> model = EmbeddedModel()) {
    ASSERT_NE(model, nullptr);
    model_ = model;
    auto server = PrefillServer::Start(model, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    stub_ = testing::MakeStub(server_->port());
  }

  v1::PrefillRequest Request(size_t tokens, uint32_t seed = 1) const {
    v1::PrefillRequest r;
    r.set_request_id(absl::StrCat("test-", seed));
    for (int32_t id : RandomTokens(tokens, model_->config().vocab_size, seed)) r.add_token_ids(id);
    return r;
  }

  // A call that occupies the only worker: its client does not read, so the worker blocks on
  // backpressure (needs max_buffered_bytes_per_call small). Returns once the worker is blocked.
  std::unique_ptr<UnreadCall> OccupyWorker(std::optional<absl::Duration> timeout = std::nullopt) {
    v1::PrefillRequest r = Request(1000, 99);
    r.set_kv_codec(v1::KV_CODEC_RAW_FP32);
    r.set_max_chunk_bytes(64 << 10);
    auto call =
        std::make_unique<UnreadCall>(testing::SmallWindowChannel(server_->port()), r, timeout);
    EXPECT_TRUE(WaitFor([&] { return server_->stats().waiting_on_client == 1; }))
        << "the unread call never blocked its worker";
    return call;
  }

  static ServerOptions OneWorkerOneQueued(bool metrics = false) {
    ServerOptions o = testing::TestServerOptions(metrics);
    o.num_workers = 1;
    o.max_concurrent_per_worker = 1;
    o.max_queued_requests = 1;
    o.max_buffered_bytes_per_call = 64 << 10;
    return o;
  }

  std::string Scrape() const { return testing::HttpGet(server_->metrics_port(), "/metrics"); }

  std::shared_ptr<const worker::Model> model_;
  std::unique_ptr<PrefillServer> server_;
  std::unique_ptr<v1::PrefillService::Stub> stub_;
};

// The in-process reference: the same model, tokens and patterns through Model::Prefill.
struct Reference {
  sparsefill::testing::KvCollector kv;
  worker::PrefillOutput out;
};

Reference InProcess(const worker::Model& model, const v1::PrefillRequest& r,
                    const worker::PatternConfig* patterns) {
  Reference ref;
  worker::PrefillOptions options;
  options.patterns = patterns;
  options.kv_sink = &ref.kv;
  std::vector<int32_t> tokens(r.token_ids().begin(), r.token_ids().end());
  auto out = model.Prefill(tokens, options);
  EXPECT_TRUE(out.ok()) << out.status();
  if (out.ok()) ref.out = *std::move(out);
  return ref;
}

float RoundToBf16(float f) { return kernels::Bf16ToFloat(kernels::FloatToBf16(f)); }

TEST_F(PrefillServiceTest, Fp32KvIsBitIdenticalToAnInProcessPrefill) {
  StartServer();
  v1::PrefillRequest r = Request(300);
  r.set_kv_codec(v1::KV_CODEC_RAW_FP32);
  r.set_return_logits(true);
  r.set_max_chunk_bytes(64 << 10);  // several chunks per layer
  const PrefillStream s = RunPrefill(*stub_, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const worker::ModelConfig& c = model_->config();
  const AssembledKv kv = testing::AssembleKv(s, c.num_layers, 300, c.num_kv_heads, c.head_dim);
  const Reference ref = InProcess(*model_, r, &model_->sparse_patterns());
  ASSERT_EQ(ref.kv.k.size(), static_cast<size_t>(c.num_layers));
  EXPECT_GT(s.chunks().size(), static_cast<size_t>(c.num_layers))
      << "expected several chunks per layer";
  for (int l = 0; l < c.num_layers; ++l) {
    ASSERT_EQ(kv.k[l].size(), ref.kv.k[l].size());
    EXPECT_EQ(std::memcmp(kv.k[l].data(), ref.kv.k[l].data(), 4 * kv.k[l].size()), 0)
        << "K layer " << l;
    EXPECT_EQ(std::memcmp(kv.v[l].data(), ref.kv.v[l].data(), 4 * kv.v[l].size()), 0)
        << "V layer " << l;
  }
  const v1::PrefillResult* result = s.result();
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->first_token(), ref.out.first_token);
  EXPECT_EQ(result->first_token_logit(), ref.out.first_token_logit);
  ASSERT_EQ(result->logits_last_size(), c.vocab_size);
  EXPECT_EQ(std::memcmp(result->logits_last().data(), ref.out.logits_last.data(), 4 * c.vocab_size),
            0);
  EXPECT_EQ(result->attention_mode(), v1::ATTENTION_MODE_MODEL_SPARSE);
  EXPECT_EQ(result->kv_codec(), v1::KV_CODEC_RAW_FP32);
  EXPECT_EQ(result->prompt_tokens(), 300u);
  EXPECT_EQ(result->num_layers(), static_cast<uint32_t>(c.num_layers));
  ASSERT_EQ(result->attention_density_size(), c.num_layers);
  for (int l = 0; l < c.num_layers; ++l)
    EXPECT_EQ(result->attention_density(l), ref.out.attention_density[l]);
}

TEST_F(PrefillServiceTest, EveryCodecDeliversTheInProcessKv) {
  StartServer();
  const worker::ModelConfig& c = model_->config();
  v1::PrefillRequest base = Request(300, 5);
  base.set_attention_mode(v1::ATTENTION_MODE_DENSE);
  base.set_max_chunk_bytes(64 << 10);  // several chunks per layer
  const Reference ref = InProcess(*model_, base, /*patterns=*/nullptr);
  uint64_t bf16_bytes = 0;
  for (v1::KvCodec codec : {v1::KV_CODEC_RAW_BF16, v1::KV_CODEC_LOSSLESS, v1::KV_CODEC_FP8_E4M3,
                            v1::KV_CODEC_INT8, v1::KV_CODEC_INT4}) {
    SCOPED_TRACE(v1::KvCodec_Name(codec));
    v1::PrefillRequest r = base;
    r.set_kv_codec(codec);
    if (codec == v1::KV_CODEC_INT4) r.set_kv_int4_group_tokens(32);
    const PrefillStream s = RunPrefill(*stub_, r);
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    ASSERT_NE(s.result(), nullptr);
    EXPECT_EQ(s.result()->kv_codec(), codec);
    for (const v1::KvChunk* chunk : s.chunks()) {
      EXPECT_EQ(chunk->codec(), codec);
      EXPECT_LE(chunk->payload().size(), 64u << 10);
      if (codec == v1::KV_CODEC_INT4) {
        EXPECT_EQ(static_cast<uint8_t>(chunk->payload()[4]), 32) << "G in the header";
      }
    }
    const AssembledKv kv = testing::AssembleKv(s, c.num_layers, 300, c.num_kv_heads, c.head_dim);
    if (codec == v1::KV_CODEC_RAW_BF16) bf16_bytes = s.result()->kv_bytes_sent();
    for (int l = 0; l < c.num_layers; ++l) {
      if (codec == v1::KV_CODEC_RAW_BF16 || codec == v1::KV_CODEC_LOSSLESS) {
        for (size_t i = 0; i < kv.k[l].size(); ++i) {
          ASSERT_EQ(kv.k[l][i], RoundToBf16(ref.kv.k[l][i])) << "K layer " << l << " element " << i;
          ASSERT_EQ(kv.v[l][i], RoundToBf16(ref.kv.v[l][i])) << "V layer " << l << " element " << i;
        }
      } else {
        const double ceiling = codec == v1::KV_CODEC_INT4 ? 0.15 : 0.04;
        EXPECT_LT(sparsefill::testing::RelativeError(kv.k[l], ref.kv.k[l]), ceiling)
            << "layer " << l;
        EXPECT_LT(sparsefill::testing::RelativeError(kv.v[l], ref.kv.v[l]), ceiling)
            << "layer " << l;
      }
    }
    if (codec != v1::KV_CODEC_RAW_BF16) {
      EXPECT_LT(s.result()->kv_bytes_sent(), bf16_bytes) << "compressed smaller than bf16";
    }
  }
}

TEST_F(PrefillServiceTest, Bf16KvIsTheRoundingOfTheInProcessKv) {
  StartServer();
  v1::PrefillRequest r = Request(257, 3);  // default codec: RAW_BF16
  r.set_attention_mode(v1::ATTENTION_MODE_DENSE);
  const PrefillStream s = RunPrefill(*stub_, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const worker::ModelConfig& c = model_->config();
  for (const v1::KvChunk* chunk : s.chunks()) EXPECT_EQ(chunk->codec(), v1::KV_CODEC_RAW_BF16);
  const AssembledKv kv = testing::AssembleKv(s, c.num_layers, 257, c.num_kv_heads, c.head_dim);
  const Reference ref = InProcess(*model_, r, /*patterns=*/nullptr);
  for (int l = 0; l < c.num_layers; ++l) {
    for (size_t i = 0; i < kv.k[l].size(); ++i) {
      ASSERT_EQ(kv.k[l][i], RoundToBf16(ref.kv.k[l][i])) << "K layer " << l << " element " << i;
      ASSERT_EQ(kv.v[l][i], RoundToBf16(ref.kv.v[l][i])) << "V layer " << l << " element " << i;
    }
  }
  ASSERT_NE(s.result(), nullptr);
  EXPECT_EQ(s.result()->attention_mode(), v1::ATTENTION_MODE_DENSE);
  EXPECT_EQ(s.result()->kv_codec(), v1::KV_CODEC_RAW_BF16);
  EXPECT_EQ(s.result()->logits_last_size(), 0) << "logits only with return_logits";
  for (const double d : s.result()->attention_density()) EXPECT_EQ(d, 1.0);
}

TEST_F(PrefillServiceTest, GoldenModelThroughTheServiceMatchesTransformers) {
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3";
  auto backend = worker::MakeBackend("cpu");
  ASSERT_TRUE(backend.ok());
  auto model = worker::Model::Load(worker::ModelLoadOptions{dir, ""}, *std::move(backend));
  ASSERT_TRUE(model.ok()) << model.status();
  StartServer(testing::TestServerOptions(),
              std::shared_ptr<const worker::Model>(*std::move(model)));
  auto golden = worker::SafetensorsFile::Open(dir + "/golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status();
  auto tensor = [&](const std::string& name) {
    const worker::TensorView* t = (*golden)->Find(name);
    EXPECT_NE(t, nullptr) << name;
    return t == nullptr ? std::vector<float>{} : worker::ToFloat32(*t).value();
  };
  const worker::TensorView* ids = (*golden)->Find("input_ids");
  ASSERT_NE(ids, nullptr);
  v1::PrefillRequest r;
  r.set_request_id("golden");
  const auto* id_data = reinterpret_cast<const int32_t*>(ids->data);
  for (int64_t i = 0; i < ids->numel(); ++i) r.add_token_ids(id_data[i]);
  r.set_attention_mode(v1::ATTENTION_MODE_DENSE);  // transformers computes dense attention
  r.set_kv_codec(v1::KV_CODEC_RAW_FP32);
  r.set_return_logits(true);

  const PrefillStream s = RunPrefill(*stub_, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const worker::ModelConfig& c = model_->config();
  const AssembledKv kv =
      testing::AssembleKv(s, c.num_layers, ids->numel(), c.num_kv_heads, c.head_dim);
  for (int l = 0; l < c.num_layers; ++l) {
    EXPECT_LE(sparsefill::testing::RelativeError(kv.k[l], tensor(absl::StrCat("layer.", l, ".k"))),
              1e-4)
        << "K layer " << l;
    EXPECT_LE(sparsefill::testing::RelativeError(kv.v[l], tensor(absl::StrCat("layer.", l, ".v"))),
              1e-4)
        << "V layer " << l;
  }
  ASSERT_NE(s.result(), nullptr);
  const std::vector<float> logits(s.result()->logits_last().begin(),
                                  s.result()->logits_last().end());
  EXPECT_LE(sparsefill::testing::RelativeError(logits, tensor("logits_last")), 1e-4);
  EXPECT_EQ(s.result()->first_token(), 479);
}

TEST_F(PrefillServiceTest, ProgressEventsPrecedeEachLayersChunks) {
  StartServer();
  v1::PrefillRequest r = Request(1000, 5);
  r.set_progress(true);
  r.set_max_chunk_bytes(64 << 10);  // bf16: 512 B per token -> 128 tokens per chunk, 8 per layer
  const PrefillStream s = RunPrefill(*stub_, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const uint32_t layers = static_cast<uint32_t>(model_->config().num_layers);

  // Expected: P(0), then per layer l: P(l + 1), its chunks (the last with last_in_layer), then
  // the result.
  size_t i = 0;
  ASSERT_FALSE(s.messages.empty());
  ASSERT_TRUE(s.messages[i].has_progress());
  EXPECT_EQ(s.messages[i].progress().layers_done(), 0u);
  double elapsed = s.messages[i].progress().elapsed_seconds();
  ++i;
  uint64_t sequence = 0, payload_bytes = 0;
  for (uint32_t l = 0; l < layers; ++l) {
    ASSERT_LT(i, s.messages.size());
    ASSERT_TRUE(s.messages[i].has_progress()) << "message " << i;
    const v1::Progress& p = s.messages[i].progress();
    EXPECT_EQ(p.layers_done(), l + 1);
    EXPECT_EQ(p.num_layers(), layers);
    EXPECT_EQ(p.request_id(), r.request_id());
    EXPECT_GE(p.elapsed_seconds(), elapsed);
    elapsed = p.elapsed_seconds();
    ++i;
    uint64_t next_token = 0;
    int chunks_in_layer = 0;
    while (i < s.messages.size() && s.messages[i].has_kv_chunk()) {
      const v1::KvChunk& c = s.messages[i].kv_chunk();
      EXPECT_EQ(c.layer(), l);
      EXPECT_EQ(c.sequence(), sequence++) << "sequence numbers are consecutive from 0";
      EXPECT_EQ(c.token_begin(), next_token);
      EXPECT_EQ(c.request_id(), r.request_id());
      EXPECT_LE(c.payload().size(), 64u << 10);
      next_token = c.token_end();
      payload_bytes += c.payload().size();
      ++chunks_in_layer;
      ++i;
      EXPECT_EQ(c.last_in_layer(), next_token == 1000u);
      if (c.last_in_layer()) break;
    }
    EXPECT_EQ(next_token, 1000u) << "layer " << l;
    EXPECT_EQ(chunks_in_layer, 8);
  }
  ASSERT_EQ(i + 1, s.messages.size()) << "only the result may follow the last layer";
  const v1::PrefillResult* result = s.result();
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->request_id(), r.request_id());
  EXPECT_EQ(result->kv_chunks_sent(), sequence);
  EXPECT_EQ(result->kv_bytes_sent(), payload_bytes);
  const v1::Timings& t = result->timings();
  EXPECT_GT(t.compute_seconds(), 0);
  EXPECT_GE(t.total_seconds(), t.compute_seconds());
  EXPECT_GE(t.queue_seconds(), 0);
  EXPECT_GT(t.time_to_first_kv_seconds(), 0);
  EXPECT_LE(t.time_to_first_kv_seconds(), t.total_seconds());
  EXPECT_GT(t.linear_seconds(), 0);
  EXPECT_GT(t.attention_seconds(), 0);
}

TEST_F(PrefillServiceTest, SkipKvSendsProgressAndTheResultOnly) {
  StartServer();
  v1::PrefillRequest r = Request(200, 6);
  r.set_progress(true);
  r.set_skip_kv(true);
  const PrefillStream s = RunPrefill(*stub_, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const int layers = model_->config().num_layers;
  ASSERT_EQ(s.messages.size(), static_cast<size_t>(layers + 2));
  for (int i = 0; i <= layers; ++i) {
    ASSERT_TRUE(s.messages[i].has_progress());
    EXPECT_EQ(s.messages[i].progress().layers_done(), static_cast<uint32_t>(i));
  }
  ASSERT_NE(s.result(), nullptr);
  EXPECT_EQ(s.result()->kv_bytes_sent(), 0u);
  EXPECT_EQ(s.result()->kv_chunks_sent(), 0u);
  EXPECT_EQ(s.result()->timings().time_to_first_kv_seconds(), 0);
}

TEST_F(PrefillServiceTest, InlinePatternConfigIsApplied) {
  StartServer();
  v1::PrefillRequest r = Request(600, 7);
  r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
  std::string config = R"({"format": "sparsefill.patterns.v1", "layers": [)";
  for (int l = 0; l < model_->config().num_layers; ++l) {
    config += absl::StrCat(l ? ", " : "", R"({"type": "a_shape", "n_init": 16, "n_local": 64})");
  }
  r.set_inline_pattern_config(config + "]}");
  const PrefillStream ok = RunPrefill(*stub_, r);
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  ASSERT_NE(ok.result(), nullptr);
  EXPECT_EQ(ok.result()->attention_mode(), v1::ATTENTION_MODE_INLINE);
  for (const double d : ok.result()->attention_density())
    EXPECT_LT(d, 0.5) << "A-shape 16+64 of 600 tokens";
}

TEST_F(PrefillServiceTest, ModelInfoDescribesTheModel) {
  ServerOptions o = testing::TestServerOptions();
  o.max_prompt_tokens = 4096;
  StartServer(o);
  grpc::ClientContext context;
  v1::ModelInfoResponse info;
  ASSERT_TRUE(stub_->ModelInfo(&context, v1::ModelInfoRequest(), &info).ok());
  const worker::ModelConfig& c = model_->config();
  EXPECT_EQ(info.model_name(), "sparsefill-embedded-tiny");
  EXPECT_EQ(info.model_type(), "llama");
  EXPECT_EQ(info.num_layers(), static_cast<uint32_t>(c.num_layers));
  EXPECT_EQ(info.num_attention_heads(), static_cast<uint32_t>(c.num_heads));
  EXPECT_EQ(info.num_kv_heads(), static_cast<uint32_t>(c.num_kv_heads));
  EXPECT_EQ(info.head_dim(), static_cast<uint32_t>(c.head_dim));
  EXPECT_EQ(info.hidden_size(), static_cast<uint32_t>(c.hidden_size));
  EXPECT_EQ(info.vocab_size(), 8192u);
  EXPECT_EQ(info.max_prompt_tokens(), 4096u);
  EXPECT_EQ(info.backend(), "cpu");
  ASSERT_EQ(info.supported_codecs_size(), 6);
  EXPECT_EQ(info.supported_codecs(0), v1::KV_CODEC_RAW_BF16);
  EXPECT_EQ(info.supported_codecs(1), v1::KV_CODEC_RAW_FP32);
  EXPECT_EQ(info.supported_codecs(2), v1::KV_CODEC_LOSSLESS);
  EXPECT_EQ(info.supported_codecs(3), v1::KV_CODEC_FP8_E4M3);
  EXPECT_EQ(info.supported_codecs(4), v1::KV_CODEC_INT8);
  EXPECT_EQ(info.supported_codecs(5), v1::KV_CODEC_INT4);
  ASSERT_EQ(info.supported_attention_modes_size(), 3);
  EXPECT_EQ(info.model_pattern_config(), model_->sparse_patterns().ToJson());
  auto parsed =
      worker::PatternConfig::Parse(info.model_pattern_config(), c.num_layers, c.num_heads);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

TEST_F(PrefillServiceTest, EveryBadInputGetsItsCodeAndTheServerKeepsServing) {
  ServerOptions o = testing::TestServerOptions(/*metrics=*/true);
  o.max_prompt_tokens = 64;
  StartServer(o);
  struct Case {
    const char* what;
    std::function<void(v1::PrefillRequest&)> mutate;
    std::string message_prefix;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"empty prompt", [](auto& r) { r.clear_token_ids(); }, "token_ids", "empty"},
      {"token id = vocab", [](auto& r) { r.set_token_ids(5, 8192); }, "token_ids[5]", "[0, 8192)"},
      {"negative token id", [](auto& r) { r.set_token_ids(0, -3); }, "token_ids[0]", "-3"},
      {"prompt too long",
       [](auto& r) {
         for (int i = 0; i < 60; ++i) r.add_token_ids(1);
       },
       "token_ids", "max_prompt_tokens (64)"},
      {"unknown codec", [](auto& r) { r.set_kv_codec(static_cast<v1::KvCodec>(17)); }, "kv_codec",
       "17"},
      {"unknown attention mode",
       [](auto& r) { r.set_attention_mode(static_cast<v1::AttentionMode>(9)); }, "attention_mode",
       "9"},
      {"inline config with dense",
       [](auto& r) {
         r.set_attention_mode(v1::ATTENTION_MODE_DENSE);
         r.set_inline_pattern_config("{}");
       },
       "inline_pattern_config", "must be empty"},
      {"inline mode without config",
       [](auto& r) { r.set_attention_mode(v1::ATTENTION_MODE_INLINE); }, "inline_pattern_config",
       "required"},
      {"malformed inline config",
       [](auto& r) {
         r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
         r.set_inline_pattern_config("{\"layers\": [");
       },
       "inline_pattern_config", "JSON"},
      {"inline config for another model",
       [](auto& r) {
         r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
         r.set_inline_pattern_config(R"({"layers": [{"type": "dense"}]})");
       },
       "inline_pattern_config", "layers"},
      {"request id too long", [](auto& r) { r.set_request_id(std::string(129, 'x')); },
       "request_id", "128"},
      {"request id not printable", [](auto& r) { r.set_request_id("a\x01"); }, "request_id",
       "printable"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    v1::PrefillRequest r = Request(10, 11);
    c.mutate(r);
    const PrefillStream s = RunPrefill(*stub_, r);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.status.error_message();
    EXPECT_EQ(s.status.error_message().rfind(c.message_prefix, 0), 0u) << s.status.error_message();
    EXPECT_NE(s.status.error_message().find(c.message_part), std::string::npos)
        << s.status.error_message();
    EXPECT_TRUE(s.messages.empty()) << "nothing is streamed for a rejected request";
  }
  const PrefillStream good = RunPrefill(*stub_, Request(64, 12));
  EXPECT_TRUE(good.status.ok()) << good.status.error_message();
  EXPECT_NE(good.result(), nullptr);
  const std::string metrics = Scrape();
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_requests_total{code=\"INVALID_ARGUMENT\"}"),
            static_cast<double>(cases.size()));
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_requests_total{code=\"OK\"}"), 1);
}

TEST_F(PrefillServiceTest, FullQueueIsRejectedAtOnce) {
  StartServer(OneWorkerOneQueued(/*metrics=*/true));
  std::unique_ptr<UnreadCall> blocker = OccupyWorker();

  // One request may wait for the worker...
  PrefillStream queued;
  std::thread queued_client([&] { queued = RunPrefill(*stub_, Request(100, 21)); });
  ASSERT_TRUE(WaitFor([&] { return server_->stats().queued == 1; }));

  // ...the next one is turned away at once.
  const absl::Time start = absl::Now();
  const PrefillStream rejected = RunPrefill(*stub_, Request(100, 22));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(rejected.status.error_message().find("queue is full"), std::string::npos)
      << rejected.status.error_message();

  // Releasing the worker lets the queued request through.
  blocker->Cancel();
  EXPECT_EQ(blocker->Finish().error_code(), grpc::StatusCode::CANCELLED);
  queued_client.join();
  EXPECT_TRUE(queued.status.ok()) << queued.status.error_message();
  const std::string metrics = Scrape();
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_requests_total{code=\"RESOURCE_EXHAUSTED\"}"),
            1);
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_requests_total{code=\"CANCELLED\"}"), 1);
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_requests_total{code=\"OK\"}"), 1);
}

TEST_F(PrefillServiceTest, CancelledCallFreesItsWorker) {
  StartServer(OneWorkerOneQueued());
  std::unique_ptr<UnreadCall> blocker = OccupyWorker();
  blocker->Cancel();
  EXPECT_EQ(blocker->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const absl::Time start = absl::Now();
  const PrefillStream next = RunPrefill(*stub_, Request(100, 31));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the next request is served promptly";
  EXPECT_TRUE(WaitFor([&] { return server_->stats().running == 0; }));
}

TEST_F(PrefillServiceTest, CancelledQueuedCallFreesItsPlace) {
  StartServer(OneWorkerOneQueued());
  std::unique_ptr<UnreadCall> blocker = OccupyWorker();
  {
    UnreadCall queued(testing::SmallWindowChannel(server_->port()), Request(100, 41));
    ASSERT_TRUE(WaitFor([&] { return server_->stats().queued == 1; }));
    queued.Cancel();
    EXPECT_EQ(queued.Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ASSERT_TRUE(WaitFor([&] { return server_->stats().queued == 0; }))
      << "cancelled job left the queue";
  // Its place is free: the next request is admitted (queued), not rejected.
  PrefillStream next;
  std::thread client([&] { next = RunPrefill(*stub_, Request(100, 42)); });
  ASSERT_TRUE(WaitFor([&] { return server_->stats().queued == 1; }));
  blocker->Cancel();
  client.join();
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

TEST_F(PrefillServiceTest, DeadlineIsHonouredAndFreesTheWorker) {
  StartServer(OneWorkerOneQueued(/*metrics=*/true));
  // A client that does not read and gives up after its deadline, while its worker is blocked.
  UnreadCall slow(
      testing::SmallWindowChannel(server_->port()),
      [&] {
        v1::PrefillRequest r = Request(1000, 51);
        r.set_kv_codec(v1::KV_CODEC_RAW_FP32);
        return r;
      }(),
      absl::Milliseconds(500));
  EXPECT_EQ(slow.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const absl::Time start = absl::Now();
  const PrefillStream next = RunPrefill(*stub_, Request(100, 52), absl::Seconds(10));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_TRUE(WaitFor([&] {
    return testing::MetricValue(Scrape(),
                                "sparsefill_requests_total{code=\"DEADLINE_EXCEEDED\"}") == 1;
  })) << Scrape();

  // A deadline that passes while the request is still queued removes it from the queue.
  std::unique_ptr<UnreadCall> blocker = OccupyWorker();
  const PrefillStream expired = RunPrefill(*stub_, Request(100, 53), absl::Milliseconds(300));
  EXPECT_EQ(expired.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitFor([&] { return server_->stats().queued == 0; }));
}

TEST_F(PrefillServiceTest, MetricsCountRequestsByCode) {
  StartServer(testing::TestServerOptions(/*metrics=*/true));
  ASSERT_GT(server_->metrics_port(), 0);
  const PrefillStream ok = RunPrefill(*stub_, Request(120, 61));
  ASSERT_TRUE(ok.status.ok());
  v1::PrefillRequest bad = Request(3, 62);
  bad.set_token_ids(1, -1);
  EXPECT_EQ(RunPrefill(*stub_, bad).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::string m = Scrape();
  ASSERT_FALSE(m.empty()) << "no /metrics response";
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_requests_total{code=\"OK\"}"), 1) << m;
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_requests_total{code=\"INVALID_ARGUMENT\"}"), 1);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_requests_total{code=\"RESOURCE_EXHAUSTED\"}"), 0);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_prompt_tokens_total"), 120);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_kv_bytes_sent_total"),
            static_cast<double>(ok.result()->kv_bytes_sent()));
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_kv_bytes_raw_total"),
            2.0 * ok.result()->kv_bytes_sent())
      << "fp32 runtime KV is twice its bf16 encoding";
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_queue_depth"), 0);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_requests_in_flight"), 0);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_worker_busy{worker=\"0\"}"), 0);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_request_duration_seconds_count"), 2);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_queue_seconds_count"), 1);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_prefill_seconds_count"), 1);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_time_to_first_kv_seconds_count"), 1);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_attention_density_count"),
            model_->config().num_layers);
  EXPECT_EQ(testing::MetricValue(m, "sparsefill_request_duration_seconds_bucket{le=\"1800\"}"), 2);
}

TEST_F(PrefillServiceTest, ShutdownDrainsInFlightWorkAndRejectsNewCalls) {
  ServerOptions o = OneWorkerOneQueued();
  StartServer(o);
  auto channel = testing::SmallWindowChannel(server_->port());
  EXPECT_EQ(testing::HealthCheck(channel, ""), 1);
  EXPECT_EQ(testing::HealthCheck(channel, "sparsefill.v1.PrefillService"), 1);
  std::unique_ptr<UnreadCall> in_flight = OccupyWorker();

  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(30)); });
  // New calls fail with UNAVAILABLE once shutdown has begun.
  EXPECT_TRUE(WaitFor([&] {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::ModelInfoResponse info;
    return stub_->ModelInfo(&context, v1::ModelInfoRequest(), &info).error_code() ==
           grpc::StatusCode::UNAVAILABLE;
  }));
  // The call in flight completes once its client reads.
  const PrefillStream s = in_flight->ReadAll();
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_NE(s.result(), nullptr);
  shutdown.join();
}

TEST_F(PrefillServiceTest, ShutdownCancelsWhatOutlastsTheGrace) {
  StartServer(OneWorkerOneQueued());
  std::unique_ptr<UnreadCall> stuck = OccupyWorker();
  const absl::Time start = absl::Now();
  server_->Shutdown(absl::Milliseconds(200));  // the client never reads: the grace expires
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  // The server cancelled the call: what was sent arrives, then a non-OK status.
  EXPECT_FALSE(stuck->ReadAll().status.ok());
}

}  // namespace
}  // namespace sparsefill::server
