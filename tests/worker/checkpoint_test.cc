// Safetensors reading and writing, sharded checkpoints, and loader errors that name the tensor.
#include "worker/checkpoint.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/kernels/test_util.h"
#include "tests/worker/kv_collector.h"
#include "worker/cpu_backend.h"
#include "worker/llama_weights.h"
#include "worker/model.h"

namespace sparsefill::worker {
namespace {

namespace fs = std::filesystem;

const std::string kGolden = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3";

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("sparsefill-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Copies the golden model's tensors into two shard files plus an index, like save_pretrained.
void WriteShardedCopy(const std::string& dir, bool drop_from_shard = false) {
  auto file = SafetensorsFile::Open(kGolden + "/model.safetensors").value();
  SafetensorsWriter first, second;
  std::string index = R"({"metadata": {}, "weight_map": {)";
  bool comma = false;
  for (const TensorView& t : file->tensors()) {
    const bool to_first =
        t.name.find("layers.0.") != std::string::npos || t.name.find("embed") != std::string::npos;
    const char* shard =
        to_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    const bool dropped = drop_from_shard && t.name == "model.norm.weight";
    if (!dropped) (to_first ? first : second).Add(t.name, t.dtype, t.shape, t.data);
    index += std::string(comma ? ", " : "") + "\"" + t.name + "\": \"" + shard + "\"";
    comma = true;
  }
  index += "}}";
  ASSERT_TRUE(first.Write(dir + "/model-00001-of-00002.safetensors").ok());
  ASSERT_TRUE(second.Write(dir + "/model-00002-of-00002.safetensors").ok());
  WriteText(dir + "/model.safetensors.index.json", index);
  fs::copy_file(kGolden + "/config.json", dir + "/config.json");
}

TEST(Safetensors, WriterRoundTrip) {
  TempDir tmp;
  const auto data = testing::RandomVector(6, 1);
  const int32_t ids[3] = {5, -1, 7};
  SafetensorsWriter w;
  w.AddFloat32("x", {2, 3}, data.data());
  w.AddInt32("ids", {3}, ids);
  ASSERT_TRUE(w.Write(tmp / "a.safetensors").ok());
  auto f = SafetensorsFile::Open(tmp / "a.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  const TensorView* x = (*f)->Find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ToFloat32(*x).value(), data);
  EXPECT_EQ((*f)->Find("ids")->dtype, kernels::ScalarType::kInt32);
  EXPECT_EQ((*f)->Find("nope"), nullptr);
}

TEST(Safetensors, TruncatedFileNamesTheTensor) {
  TempDir tmp;
  fs::copy_file(kGolden + "/model.safetensors", tmp / "model.safetensors");
  fs::resize_file(tmp / "model.safetensors", fs::file_size(tmp / "model.safetensors") - 100);
  auto f = SafetensorsFile::Open(tmp / "model.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find("tensor '"), absl::string_view::npos) << f.status();
  EXPECT_NE(f.status().message().find("truncated"), absl::string_view::npos) << f.status();

  fs::resize_file(tmp / "model.safetensors", 20);  // header cut in the middle
  f = SafetensorsFile::Open(tmp / "model.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("truncated"), absl::string_view::npos) << f.status();
}

TEST(Safetensors, InconsistentHeaderNamesTheTensor) {
  TempDir tmp;
  const std::string header = R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(16, '\0');
  std::ofstream(tmp / "bad.safetensors", std::ios::binary) << bytes;
  auto f = SafetensorsFile::Open(tmp / "bad.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("'w'"), absl::string_view::npos) << f.status();
  EXPECT_NE(f.status().message().find("need 16"), absl::string_view::npos) << f.status();
}

TEST(Checkpoint, ShardedCopyGivesIdenticalPrefill) {
  TempDir tmp;
  WriteShardedCopy(tmp.str());
  auto ckpt = Checkpoint::Open(tmp.str());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->shard_count(), 2u);

  const std::vector<int32_t> tokens = {1, 5, 9, 200, 3, 77, 511, 0};
  std::vector<float> logits[2];
  int i = 0;
  for (const std::string& dir : {kGolden, tmp.str()}) {
    auto model = Model::Load(ModelLoadOptions{dir, ""}, MakeCpuBackend());
    ASSERT_TRUE(model.ok()) << model.status();
    auto out = (*model)->Prefill(tokens, PrefillOptions{});
    ASSERT_TRUE(out.ok()) << out.status();
    logits[i++] = out->logits_last;
  }
  EXPECT_EQ(logits[0], logits[1]);
}

TEST(Checkpoint, IndexErrorsNameShardAndTensor) {
  {
    TempDir tmp;
    WriteShardedCopy(tmp.str());
    fs::remove(tmp / "model-00002-of-00002.safetensors");
    auto ckpt = Checkpoint::Open(tmp.str());
    ASSERT_FALSE(ckpt.ok());
    EXPECT_NE(ckpt.status().message().find("model-00002-of-00002.safetensors"),
              absl::string_view::npos)
        << ckpt.status();
  }
  {
    TempDir tmp;
    WriteShardedCopy(tmp.str(), /*drop_from_shard=*/true);
    auto ckpt = Checkpoint::Open(tmp.str());
    ASSERT_FALSE(ckpt.ok());
    EXPECT_NE(ckpt.status().message().find("'model.norm.weight'"), absl::string_view::npos)
        << ckpt.status();
  }
  {
    TempDir tmp;
    auto ckpt = Checkpoint::Open(tmp.str());
    ASSERT_FALSE(ckpt.ok());
    EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(LlamaWeights, WrongShapeAndMissingTensorAreNamed) {
  auto ckpt = Checkpoint::Open(kGolden).value();
  auto config = ModelConfig::FromFile(kGolden + "/config.json").value();
  auto backend = MakeCpuBackend();

  ModelConfig wider = config;
  wider.intermediate_size = 641;
  auto w = LoadLlamaWeights(wider, *ckpt, *backend);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("'model.layers.0.mlp.gate_proj.weight'"),
            absl::string_view::npos)
      << w.status();
  EXPECT_NE(w.status().message().find("[641, 256]"), absl::string_view::npos) << w.status();

  ModelConfig deeper = config;
  deeper.num_layers = 4;
  w = LoadLlamaWeights(deeper, *ckpt, *backend);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("'model.layers.3.input_layernorm.weight'"),
            absl::string_view::npos)
      << w.status();
}

TEST(LlamaWeights, TiedEmbeddingsNeedNoLmHead) {
  // Drop lm_head from the golden model: untied must fail naming it, tied must load and use the
  // embedding table as the output projection.
  TempDir tmp;
  auto file = SafetensorsFile::Open(kGolden + "/model.safetensors").value();
  SafetensorsWriter w;
  for (const TensorView& t : file->tensors()) {
    if (t.name != "lm_head.weight") w.Add(t.name, t.dtype, t.shape, t.data);
  }
  ASSERT_TRUE(w.Write(tmp / "model.safetensors").ok());
  fs::copy_file(kGolden + "/config.json", tmp / "config.json");
  auto untied = Model::Load(ModelLoadOptions{tmp.str(), ""}, MakeCpuBackend());
  ASSERT_FALSE(untied.ok());
  EXPECT_NE(untied.status().message().find("'lm_head.weight'"), absl::string_view::npos)
      << untied.status();

  std::string config = ReadTextFile(tmp / "config.json").value();
  const std::string untied_key = "\"tie_word_embeddings\": false";
  config.replace(config.find(untied_key), untied_key.size(), "\"tie_word_embeddings\": true");
  WriteText(tmp / "config.json", config);
  auto tied = Model::Load(ModelLoadOptions{tmp.str(), ""}, MakeCpuBackend());
  ASSERT_TRUE(tied.ok()) << tied.status();

  // The same model untied, with lm_head.weight an explicit copy of the embedding table, must give
  // bit-identical logits.
  TempDir copy;
  SafetensorsWriter explicit_head;
  for (const TensorView& t : file->tensors()) {
    if (t.name == "lm_head.weight") continue;
    explicit_head.Add(t.name, t.dtype, t.shape, t.data);
    if (t.name == "model.embed_tokens.weight")
      explicit_head.Add("lm_head.weight", t.dtype, t.shape, t.data);
  }
  ASSERT_TRUE(explicit_head.Write(copy / "model.safetensors").ok());
  fs::copy_file(kGolden + "/config.json", copy / "config.json");
  auto untied_copy = Model::Load(ModelLoadOptions{copy.str(), ""}, MakeCpuBackend());
  ASSERT_TRUE(untied_copy.ok()) << untied_copy.status();

  const std::vector<int32_t> tokens = {4, 8, 15, 16, 23, 42};
  auto a = (*tied)->Prefill(tokens, PrefillOptions{});
  auto b = (*untied_copy)->Prefill(tokens, PrefillOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->logits_last, b->logits_last);
  auto original = Model::Load(ModelLoadOptions{kGolden, ""}, MakeCpuBackend()).value();
  EXPECT_NE(original->Prefill(tokens, PrefillOptions{})->logits_last, a->logits_last);
}

}  // namespace
}  // namespace sparsefill::worker
