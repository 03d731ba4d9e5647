// PrefillClient and PrefillStream against a scripted in-process gRPC service: what the SDK does
// with correct streams (blocking and streaming, both codecs), with the server's errors, with
// deadlines and cancellation, and with streams that break the contract.
#include "client/prefill_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "client/grpc_status.h"
#include "tests/client/fake_prefill_service.h"
#include "tests/client/kv_test_util.h"

namespace sparsefill::client {
namespace {

using testing::FakePrefillService;
using testing::FakeServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kLayers = 3, kKvHeads = 3, kHeadDim = 8, kVocab = 32;

std::vector<int32_t> Tokens(int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7) % kVocab;
  return t;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class PrefillClientTest : public ::testing::Test {
 protected:
  PrefillClientTest() {
    service_.model_info = testing::SyntheticModelInfo(kLayers, kKvHeads, kHeadDim, kVocab);
    service_.script = [this](const v1::PrefillRequest& request) {
      return testing::MakeScript(service_.model_info, request, 10, 2);
    };
    server_ = std::make_unique<FakeServer>(&service_);
    client_ = std::make_unique<PrefillClient>(server_->target());
  }

  PrefillCall Call(int tokens, v1::KvCodec codec = v1::KV_CODEC_RAW_FP32) {
    PrefillCall call;
    call.request = MakePrefillRequest(Tokens(tokens), codec, v1::ATTENTION_MODE_DENSE);
    call.request.set_request_id("test-req");
    call.timeout = absl::Seconds(20);
    return call;
  }

  // Replaces the script with the correct one edited by `edit`.
  void EditScript(std::function<void(std::vector<v1::PrefillResponse>&)> edit) {
    service_.script = [this, edit](const v1::PrefillRequest& request) {
      auto responses = testing::MakeScript(service_.model_info, request, 10, 2);
      edit(responses);
      return responses;
    };
  }

  FakePrefillService service_;
  std::unique_ptr<FakeServer> server_;
  std::unique_ptr<PrefillClient> client_;
};

TEST_F(PrefillClientTest, BlockingPrefillReturnsEveryLayerBitExactInFp32) {
  const PrefillCall call = Call(37);
  absl::StatusOr<PrefillReply> reply = client_->Prefill(call);
  ASSERT_TRUE(reply.ok()) << reply.status();

  const KvShape shape{kLayers, 37, kKvHeads, kHeadDim};
  const auto want = testing::MakeSyntheticKv(shape);
  ASSERT_EQ(reply->layers.size(), static_cast<size_t>(kLayers));
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(reply->layers[l].layer, l);
    EXPECT_TRUE(BitEqual(reply->layers[l].k, want[l].k)) << "layer " << l;
    EXPECT_TRUE(BitEqual(reply->layers[l].v, want[l].v)) << "layer " << l;
  }
  EXPECT_EQ(reply->result.request_id(), "test-req");
  EXPECT_EQ(reply->result.first_token(), 7);
  // 3 layers x 4 token blocks x 2 head blocks.
  EXPECT_EQ(reply->stats.kv_chunks, 24u);
  EXPECT_EQ(reply->stats.kv_payload_bytes, 3u * 2 * 37 * 3 * 8 * 4);
  EXPECT_GT(reply->stats.wall_seconds, 0);
  EXPECT_GT(reply->stats.first_kv_seconds, 0);
}

TEST_F(PrefillClientTest, BlockingPrefillDecodesBf16) {
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(19, v1::KV_CODEC_RAW_BF16));
  ASSERT_TRUE(reply.ok()) << reply.status();
  const auto want = testing::MakeSyntheticKv({kLayers, 19, kKvHeads, kHeadDim});
  for (int l = 0; l < kLayers; ++l) {
    std::vector<float> k = want[l].k;
    for (float& x : k) x = testing::Bf16Round(x);
    EXPECT_TRUE(BitEqual(reply->layers[l].k, k)) << "layer " << l;
  }
  EXPECT_EQ(reply->stats.kv_payload_bytes, 3u * 2 * 19 * 3 * 8 * 2);
}

TEST_F(PrefillClientTest, StreamingDeliversProgressAndLayersInOrder) {
  PrefillCall call = Call(25);
  call.request.set_progress(true);
  std::vector<std::string> events;  // reactions are serialised: no lock needed
  PrefillCallbacks callbacks;
  callbacks.on_progress = [&](const v1::Progress& p) {
    events.push_back("progress " + std::to_string(p.layers_done()));
  };
  callbacks.on_layer = [&](KvLayer layer) {
    events.push_back("layer " + std::to_string(layer.layer));
    return absl::OkStatus();
  };
  std::unique_ptr<PrefillStream> stream = client_->StartPrefill(call, std::move(callbacks));
  ASSERT_TRUE(stream->Await().ok());
  EXPECT_THAT(events, ::testing::ElementsAre("progress 0", "progress 1", "layer 0", "progress 2",
                                             "layer 1", "progress 3", "layer 2"));
  EXPECT_EQ(stream->result().num_layers(), 3u);
}

TEST_F(PrefillClientTest, ModelInfoIsFetchedOnceAndCached) {
  ASSERT_TRUE(client_->Prefill(Call(5)).ok());
  ASSERT_TRUE(client_->Prefill(Call(6)).ok());
  EXPECT_EQ(service_.model_info_calls.load(), 1);
  absl::StatusOr<v1::ModelInfoResponse> info = client_->ModelInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->model_name(), "synthetic");
  EXPECT_EQ(service_.model_info_calls.load(), 2);
}

TEST_F(PrefillClientTest, EmptyRequestIdIsReplacedByAGeneratedOne) {
  PrefillCall call = Call(5);
  call.request.clear_request_id();
  absl::StatusOr<PrefillReply> reply = client_->Prefill(call);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_THAT(reply->result.request_id(), StartsWith("sfc-"));
}

TEST_F(PrefillClientTest, SkipKvReturnsOnlyTheResult) {
  PrefillCall call = Call(5);
  call.request.set_skip_kv(true);
  absl::StatusOr<PrefillReply> reply = client_->Prefill(call);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(reply->layers.empty());
  EXPECT_EQ(reply->stats.kv_chunks, 0u);
}

TEST_F(PrefillClientTest, ServerErrorKeepsItsCodeAndMessage) {
  service_.script = [](const v1::PrefillRequest&) { return std::vector<v1::PrefillResponse>(); };
  service_.final_status =
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full (16 requests waiting)");
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(5));
  EXPECT_EQ(reply.status(), absl::ResourceExhaustedError("queue full (16 requests waiting)"));
}

TEST_F(PrefillClientTest, DeadlineGivesDeadlineExceeded) {
  ASSERT_TRUE(client_->ModelInfo().ok());  // so the deadline hits the Prefill call itself
  service_.delay_per_message = absl::Milliseconds(50);
  PrefillCall call = Call(37);
  call.timeout = absl::Milliseconds(1);
  const absl::Time start = absl::Now();
  absl::StatusOr<PrefillReply> reply = client_->Prefill(call);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("Prefill exceeded its deadline (timeout 1ms)"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(PrefillClientTest, DeadlineAlsoBoundsTheFirstModelInfoLookup) {
  PrefillCall call = Call(5);
  call.timeout = absl::ZeroDuration();
  absl::StatusOr<PrefillReply> reply = client_->Prefill(call);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("ModelInfo exceeded its deadline"));
}

TEST_F(PrefillClientTest, CancelGivesCancelledAndStopsTheServer) {
  service_.delay_per_message = absl::Milliseconds(20);  // 24 chunks: about half a second
  absl::Notification first_layer;
  PrefillCallbacks callbacks;
  callbacks.on_layer = [&](KvLayer layer) {
    if (layer.layer == 0) first_layer.Notify();
    return absl::OkStatus();
  };
  std::unique_ptr<PrefillStream> stream = client_->StartPrefill(Call(37), std::move(callbacks));
  first_layer.WaitForNotification();
  stream->Cancel();
  const absl::Status status = stream->Await();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_THAT(status.message(), HasSubstr("cancelled by the client"));
  EXPECT_TRUE(service_.saw_cancel.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(service_.messages_sent.load(), 24);
}

TEST_F(PrefillClientTest, DestroyingAStreamInFlightCancelsIt) {
  service_.delay_per_message = absl::Milliseconds(20);
  std::unique_ptr<PrefillStream> stream = client_->StartPrefill(Call(37), {});
  absl::SleepFor(absl::Milliseconds(50));
  stream.reset();  // must cancel and wait for gRPC to let go, not crash
  EXPECT_TRUE(service_.saw_cancel.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(PrefillClientTest, LayerCallbackErrorCancelsTheCallAndIsReturned) {
  service_.delay_per_message = absl::Milliseconds(5);
  PrefillCallbacks callbacks;
  callbacks.on_layer = [](KvLayer) { return absl::ResourceExhaustedError("decode cache full"); };
  std::unique_ptr<PrefillStream> stream = client_->StartPrefill(Call(37), std::move(callbacks));
  EXPECT_EQ(stream->Await(), absl::ResourceExhaustedError("decode cache full"));
  EXPECT_TRUE(service_.saw_cancel.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(PrefillClientTest, CorruptChunkOnTheWireIsDataLossAndCancelsTheCall) {
  service_.delay_per_message = absl::Milliseconds(5);
  EditScript([](std::vector<v1::PrefillResponse>& r) {
    r[2].mutable_kv_chunk()->mutable_payload()->at(3) ^= 0x40;
  });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reply.status().message(),
              HasSubstr("chunk 2 (layer 0, tokens [10,20), kv heads [0,2)): CRC32C mismatch"));
  EXPECT_TRUE(service_.saw_cancel.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(PrefillClientTest, StreamWithoutAResultIsDataLoss) {
  EditScript([](std::vector<v1::PrefillResponse>& r) { r.pop_back(); });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status(),
            absl::DataLossError("the stream ended without a PrefillResult (after 3 of 3 layers)"));
}

TEST_F(PrefillClientTest, StreamEndingEarlyIsDataLoss) {
  EditScript([](std::vector<v1::PrefillResponse>& r) { r.resize(10); });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status(),
            absl::DataLossError("the stream ended without a PrefillResult (after 1 of 3 layers)"));
}

TEST_F(PrefillClientTest, ResultBeforeTheLastLayerIsDataLoss) {
  // Drop layer 2's chunks but keep the result: "success" with a layer missing must not pass.
  EditScript([](std::vector<v1::PrefillResponse>& r) { r.erase(r.begin() + 16, r.end() - 1); });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reply.status().message(),
              HasSubstr("PrefillResult: arrived before the KV was complete: KV stream ended "
                        "after 2 of 3 layers"));
}

TEST_F(PrefillClientTest, ResultCountsMustMatchWhatArrived) {
  EditScript([](std::vector<v1::PrefillResponse>& r) {
    r.back().mutable_result()->set_kv_chunks_sent(25);
  });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reply.status().message(), HasSubstr("the server sent 25 chunks"));
}

TEST_F(PrefillClientTest, MessageAfterTheResultIsDataLoss) {
  EditScript([](std::vector<v1::PrefillResponse>& r) { r.push_back(r.back()); });
  absl::StatusOr<PrefillReply> reply = client_->Prefill(Call(37));
  EXPECT_EQ(reply.status(), absl::DataLossError("a message arrived after the PrefillResult"));
}

TEST_F(PrefillClientTest, UnknownEventsAreSkipped) {
  // An empty oneof is what a newer server's new event type looks like to this client.
  EditScript(
      [](std::vector<v1::PrefillResponse>& r) { r.insert(r.begin() + 1, v1::PrefillResponse()); });
  EXPECT_TRUE(client_->Prefill(Call(37)).ok());
}

TEST_F(PrefillClientTest, InvalidCallsFailBeforeAnyRpc) {
  PrefillCall empty = Call(0);
  EXPECT_EQ(client_->Prefill(empty).status(),
            absl::InvalidArgumentError("PrefillRequest.token_ids is empty"));
  PrefillCall bad_codec = Call(5);
  bad_codec.request.set_kv_codec(static_cast<v1::KvCodec>(9));
  EXPECT_EQ(client_->Prefill(bad_codec).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(service_.model_info_calls.load(), 0);
  EXPECT_EQ(service_.prefill_calls.load(), 0);
}

TEST(PrefillClientUnavailableTest, NoServerGivesUnavailable) {
  FakePrefillService service;
  std::string target;
  {
    FakeServer server(&service);  // a port that was just free, and is closed again
    target = server.target();
  }
  PrefillClient client(target);
  PrefillCall call;
  call.request = MakePrefillRequest(Tokens(5));
  call.timeout = absl::Seconds(10);
  EXPECT_EQ(client.Prefill(call).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client.ModelInfo().status().code(), absl::StatusCode::kUnavailable);
}

TEST(GrpcStatusTest, ConvertsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "too long")),
            absl::OutOfRangeError("too long"));
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token")),
            absl::UnauthenticatedError("no token"));
}

}  // namespace
}  // namespace sparsefill::client
