// Push mode end to end, in process: a sparsefill server pushes a request's KV to a KvReceiver
// (client/kv_receiver.h) on 127.0.0.1 port 0. The receiver drops the connection before chosen
// chunks (several times, at different chunks): the assembled KV still equals the pulled KV bit
// for bit, every chunk is applied exactly once, and the caller gets the result only after the
// receiver acknowledged everything. A receiver that never comes back, or that keeps dropping,
// ends the call with UNAVAILABLE saying how far the delivery got. A receiver with a paged layout
// assembles the same KV into vLLM-layout blocks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/kv_receiver.h"
#include "server/prefill_server.h"
#include "tests/server/test_util.h"

namespace sparsefill::server {
namespace {

using ::testing::HasSubstr;

class KvPushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::EmbeddedModel();
    ASSERT_NE(model_, nullptr);
    auto server = PrefillServer::Start(model_, testing::TestServerOptions(/*metrics=*/true));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = testing::MakeStub(server_->port());
  }
  void TearDown() override {
    release_.Notify();  // a hung receiver lets go, so its server can shut down
    if (receiver_server_ != nullptr) receiver_server_->Shutdown();
  }

  // Starts a receiver that drops the connection before the chunks `drop_at` says (once per
  // listed sequence, or always from `drop_from` on).
  // With `paged_layout`, the receiver assembles paged blocks (client/paged_kv_layout.h).
  void StartReceiver(std::set<uint64_t> drop_at, uint64_t drop_from = UINT64_MAX,
                     std::function<absl::StatusOr<client::PagedKvLayout>(const v1::KvPushHeader&)>
                         paged_layout = nullptr) {
    client::KvReceiverService::Options options;
    options.paged_layout = std::move(paged_layout);
    options.on_complete = [this](client::KvReceiverService::Session s) {
      absl::MutexLock lock(&mu_);
      sessions_.push_back(std::move(s));
    };
    options.drop_before_chunk = [this, drop_at = std::move(drop_at), drop_from](
                                    const std::string&, uint64_t sequence) mutable {
      if (sequence == hang_at_) {
        hung_.Notify();
        release_.WaitForNotification();  // stops answering, connection open
      }
      absl::MutexLock lock(&mu_);
      if (sequence >= drop_from) return true;
      if (drop_at.erase(sequence) == 0) return false;
      ++drops_;
      return true;
    };
    receiver_ = std::make_unique<client::KvReceiverService>(std::move(options));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(receiver_.get());
    receiver_server_ = builder.BuildAndStart();
    ASSERT_NE(receiver_server_, nullptr);
    receiver_endpoint_ = absl::StrCat("127.0.0.1:", port);
  }

  v1::PrefillRequest Request(v1::KvCodec codec) const {
    v1::PrefillRequest r;
    r.set_request_id("push-1");
    for (int32_t id : testing::RandomTokens(300, model_->config().vocab_size, 7)) {
      r.add_token_ids(id);
    }
    r.set_attention_mode(v1::ATTENTION_MODE_DENSE);
    r.set_kv_codec(codec);
    r.set_max_chunk_bytes(64 << 10);  // several chunks per layer
    return r;
  }

  // Runs Request(codec) pulled (the reference KV, reassembled into `want`), then the same request
  // pushed to the receiver as `session_id`; both must succeed.
  struct PullThenPushResult {
    testing::PrefillStream pulled, pushed;
    testing::AssembledKv want;
  };
  void PullThenPush(v1::KvCodec codec, const std::string& session_id, PullThenPushResult* out) {
    const v1::PrefillRequest pull_request = Request(codec);
    out->pulled = testing::RunPrefill(*stub_, pull_request);
    ASSERT_TRUE(out->pulled.status.ok()) << out->pulled.status.error_message();
    const worker::ModelConfig& c = model_->config();
    out->want = testing::AssembleKv(out->pulled, c.num_layers, 300, c.num_kv_heads, c.head_dim);

    v1::PrefillRequest push_request = pull_request;
    push_request.mutable_kv_push()->set_endpoint(receiver_endpoint_);
    push_request.mutable_kv_push()->set_session_id(session_id);
    out->pushed = testing::RunPrefill(*stub_, push_request);
    ASSERT_TRUE(out->pushed.status.ok()) << out->pushed.status.error_message();
  }

  std::shared_ptr<const worker::Model> model_;
  std::unique_ptr<PrefillServer> server_;
  std::unique_ptr<v1::PrefillService::Stub> stub_;
  std::unique_ptr<client::KvReceiverService> receiver_;
  std::unique_ptr<grpc::Server> receiver_server_;
  std::string receiver_endpoint_;
  uint64_t hang_at_ = UINT64_MAX;  // the receiver stops answering before this chunk
  absl::Notification hung_, release_;
  absl::Mutex mu_;
  std::vector<client::KvReceiverService::Session> sessions_;
  int drops_ = 0;
};

TEST_F(KvPushTest, DroppedConnectionsResumeAndThePushedKvEqualsThePulledKv) {
  const std::set<uint64_t> drop_at = {0, 3, 4, 11};  // 4 drops at different chunks
  StartReceiver(drop_at);
  for (v1::KvCodec codec : {v1::KV_CODEC_RAW_FP32, v1::KV_CODEC_LOSSLESS}) {
    SCOPED_TRACE(v1::KvCodec_Name(codec));
    const int64_t streams_before = receiver_->streams_opened();  // the pull does not touch them
    const int64_t applied_before = receiver_->chunks_applied();
    PullThenPushResult run;
    ASSERT_NO_FATAL_FAILURE(PullThenPush(codec, absl::StrCat("session-", codec), &run));
    const testing::PrefillStream& pulled = run.pulled;
    const testing::PrefillStream& pushed = run.pushed;
    const testing::AssembledKv& want = run.want;
    const worker::ModelConfig& c = model_->config();
    EXPECT_TRUE(pushed.chunks().empty()) << "push mode sends no KV on the Prefill stream";
    ASSERT_NE(pushed.result(), nullptr);
    const uint64_t total = pulled.chunks().size();
    ASSERT_GE(total, 12u);
    EXPECT_EQ(pushed.result()->kv_chunks_sent(), total);
    EXPECT_EQ(pushed.result()->first_token(), pulled.result()->first_token());
    // Every chunk applied exactly once; one stream per connection attempt.
    EXPECT_EQ(receiver_->chunks_applied() - applied_before, static_cast<int64_t>(total));
    if (codec == v1::KV_CODEC_RAW_FP32) {
      EXPECT_EQ(receiver_->streams_opened() - streams_before, 1 + 4);
    }

    absl::MutexLock lock(&mu_);
    ASSERT_EQ(sessions_.size(), 1u);
    const client::KvReceiverService::Session& got = sessions_.back();
    EXPECT_EQ(got.request_id, "push-1");
    EXPECT_EQ(got.result.first_token(), pulled.result()->first_token());
    ASSERT_EQ(got.layers.size(), static_cast<size_t>(c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) {
      ASSERT_EQ(got.layers[l].k.size(), want.k[l].size());
      EXPECT_EQ(std::memcmp(got.layers[l].k.data(), want.k[l].data(), want.k[l].size() * 4), 0)
          << "K layer " << l;
      EXPECT_EQ(std::memcmp(got.layers[l].v.data(), want.v[l].data(), want.v[l].size() * 4), 0)
          << "V layer " << l;
    }
    sessions_.clear();
  }
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(drops_, 4) << "the drops happened (during the first push)";
}

// The receiver assembles into paged blocks (vLLM layout, block size 16 over 300 tokens: the last
// block is partial; a reversed block table with unused blocks between), through dropped
// connections: each token's row sits at its block's slot, equal to the pulled KV; the rest is 0.
TEST_F(KvPushTest, PagedAssemblyThroughDroppedConnectionsEqualsThePulledKv) {
  constexpr int kBlockSize = 16;
  constexpr int64_t kLogicalBlocks = (300 + kBlockSize - 1) / kBlockSize;  // 19
  std::vector<int32_t> table;
  for (int64_t i = 0; i < kLogicalBlocks; ++i) {
    table.push_back(static_cast<int32_t>(2 * (kLogicalBlocks - 1 - i) + 1));
  }
  StartReceiver({1, 6}, UINT64_MAX, [&table](const v1::KvPushHeader& h) {
    return client::PagedKvLayout::Create(static_cast<int64_t>(h.tokens()),
                                         static_cast<int>(h.kv_heads()),
                                         static_cast<int>(h.head_dim()), kBlockSize, table);
  });
  PullThenPushResult run;
  ASSERT_NO_FATAL_FAILURE(PullThenPush(v1::KV_CODEC_RAW_FP32, "session-paged", &run));
  const testing::AssembledKv& want = run.want;
  const worker::ModelConfig& c = model_->config();

  absl::MutexLock lock(&mu_);
  EXPECT_EQ(drops_, 2);
  ASSERT_EQ(sessions_.size(), 1u);
  const client::KvReceiverService::Session& got = sessions_.back();
  EXPECT_TRUE(got.layers.empty());
  ASSERT_TRUE(got.paged_layout.has_value());
  EXPECT_EQ(got.paged_layout->num_blocks(), 2 * kLogicalBlocks);
  ASSERT_EQ(got.paged_layers.size(), static_cast<size_t>(c.num_layers));
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  for (int l = 0; l < c.num_layers; ++l) {
    std::vector<float> k(2 * kLogicalBlocks * kBlockSize * row, 0.0f), v(k.size(), 0.0f);
    for (int64_t t = 0; t < 300; ++t) {
      const int64_t at = (table[t / kBlockSize] * int64_t{kBlockSize} + t % kBlockSize) * row;
      std::memcpy(&k[at], &want.k[l][t * row], row * sizeof(float));
      std::memcpy(&v[at], &want.v[l][t * row], row * sizeof(float));
    }
    ASSERT_EQ(got.paged_layers[l].k.size(), k.size());
    ASSERT_EQ(got.paged_layers[l].v.size(), v.size());
    EXPECT_EQ(std::memcmp(got.paged_layers[l].k.data(), k.data(), k.size() * 4), 0)
        << "K layer " << l;
    EXPECT_EQ(std::memcmp(got.paged_layers[l].v.data(), v.data(), v.size() * 4), 0)
        << "V layer " << l;
  }
}

TEST_F(KvPushTest, AReceiverThatNeverComesBackIsUnavailableWithTheProgress) {
  StartReceiver({});
  const std::string endpoint = receiver_endpoint_;
  receiver_server_->Shutdown();  // nothing listens there any more
  receiver_server_.reset();
  v1::PrefillRequest r = Request(v1::KV_CODEC_RAW_BF16);
  r.mutable_kv_push()->set_endpoint(endpoint);
  r.mutable_kv_push()->set_session_id("gone");
  const testing::PrefillStream s = testing::RunPrefill(*stub_, r);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.status.error_message(), HasSubstr("KV push to " + endpoint + " failed 8 times"));
  EXPECT_THAT(s.status.error_message(), HasSubstr("acknowledged 0 of"));
  EXPECT_EQ(s.result(), nullptr);
}

TEST_F(KvPushTest, AReceiverThatKeepsDroppingEndsUnavailableAfterTheAcknowledgedChunks) {
  StartReceiver({}, /*drop_from=*/5);
  v1::PrefillRequest r = Request(v1::KV_CODEC_INT8);
  r.mutable_kv_push()->set_endpoint(receiver_endpoint_);
  r.mutable_kv_push()->set_session_id("flaky");
  const testing::PrefillStream s = testing::RunPrefill(*stub_, r);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.status.error_message(), HasSubstr("acknowledged 5 of"));
  EXPECT_THAT(s.status.error_message(), HasSubstr("sending chunk 5"));
  EXPECT_EQ(receiver_->chunks_applied(), 5);
  const std::string metrics = testing::HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_EQ(testing::MetricValue(metrics, "sparsefill_kv_push_failures_total"), 1);
}

TEST_F(KvPushTest, TheCallersDeadlineFreesAWorkerBlockedOnAHungReceiver) {
  hang_at_ = 2;
  StartReceiver({});
  v1::PrefillRequest r = Request(v1::KV_CODEC_RAW_BF16);
  r.mutable_kv_push()->set_endpoint(receiver_endpoint_);
  r.mutable_kv_push()->set_session_id("hung");
  const absl::Time start = absl::Now();
  const testing::PrefillStream s = testing::RunPrefill(*stub_, r, absl::Seconds(2));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(hung_.HasBeenNotified());
  // The worker is free again: the next (pulled) request completes.
  const testing::PrefillStream next =
      testing::RunPrefill(*stub_, Request(v1::KV_CODEC_RAW_BF16), absl::Seconds(10));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_TRUE(testing::WaitFor([&] { return server_->stats().running == 0; }));
}

}  // namespace
}  // namespace sparsefill::server
