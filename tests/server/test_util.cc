// Integration-test helpers (see test_util.h).
#include "tests/server/test_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/kv_codec.h"
#include "worker/backend_factory.h"

namespace sparsefill::server::testing {

std::shared_ptr<const worker::Model> EmbeddedModel() {
  static const std::shared_ptr<const worker::Model> model = [] {
    auto backend = worker::MakeBackend("cpu");
    EXPECT_TRUE(backend.ok()) << backend.status();
    auto loaded = worker::Model::Load(worker::ModelLoadOptions{}, *std::move(backend));
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return std::shared_ptr<const worker::Model>(loaded.ok() ? std::move(*loaded) : nullptr);
  }();
  return model;
}

ServerOptions TestServerOptions(bool metrics) {
  ServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = metrics ? "127.0.0.1:0" : "";
  return o;
}

std::vector<int32_t> RandomTokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = dist(rng);
  return ids;
}

std::unique_ptr<v1::PrefillService::Stub> MakeStub(int port) {
  return v1::PrefillService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

std::shared_ptr<grpc::Channel> SmallWindowChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
  // A channel of its own (not shared with other calls in the test).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

const v1::PrefillResult* PrefillStream::result() const {
  if (messages.empty() || !messages.back().has_result()) return nullptr;
  return &messages.back().result();
}

std::vector<const v1::KvChunk*> PrefillStream::chunks() const {
  std::vector<const v1::KvChunk*> out;
  for (const auto& m : messages) {
    if (m.has_kv_chunk()) out.push_back(&m.kv_chunk());
  }
  return out;
}

PrefillStream RunPrefill(v1::PrefillService::Stub& stub, const v1::PrefillRequest& request,
                         std::optional<absl::Duration> timeout) {
  grpc::ClientContext context;
  if (timeout) context.set_deadline(absl::ToChronoTime(absl::Now() + *timeout));
  PrefillStream out;
  std::unique_ptr<grpc::ClientReader<v1::PrefillResponse>> reader = stub.Prefill(&context, request);
  v1::PrefillResponse message;
  while (reader->Read(&message)) out.messages.push_back(message);
  out.status = reader->Finish();
  return out;
}

UnreadCall::UnreadCall(std::shared_ptr<grpc::Channel> channel, const v1::PrefillRequest& request,
                       std::optional<absl::Duration> timeout)
    : stub_(v1::PrefillService::NewStub(std::move(channel))) {
  if (timeout) context_.set_deadline(absl::ToChronoTime(absl::Now() + *timeout));
  reader_ = stub_->Prefill(&context_, request);
}

UnreadCall::~UnreadCall() {
  if (!finished_) {
    context_.TryCancel();
    Finish();
  }
}

PrefillStream UnreadCall::ReadAll() {
  PrefillStream out;
  v1::PrefillResponse message;
  while (reader_->Read(&message)) out.messages.push_back(message);
  out.status = Finish();
  return out;
}

grpc::Status UnreadCall::Finish() {
  finished_ = true;
  return reader_->Finish();
}

AssembledKv AssembleKv(const PrefillStream& stream, int num_layers, int64_t tokens, int kv_heads,
                       int head_dim) {
  AssembledKv kv;
  const size_t n = static_cast<size_t>(tokens) * kv_heads * head_dim;
  kv.k.assign(num_layers, std::vector<float>(n, 0.0f));
  kv.v.assign(num_layers, std::vector<float>(n, 0.0f));
  std::vector<int64_t> next_token(num_layers, 0);
  for (const v1::KvChunk* c : stream.chunks()) {
    EXPECT_LT(c->layer(), static_cast<uint32_t>(num_layers));
    if (c->layer() >= static_cast<uint32_t>(num_layers)) continue;
    EXPECT_EQ(c->payload_crc32c(), kernels::Crc32c(c->payload().data(), c->payload().size()))
        << "chunk " << c->sequence();
    EXPECT_EQ(c->token_begin(), static_cast<uint64_t>(next_token[c->layer()])) << "gap or overlap";
    EXPECT_EQ(c->kv_head_begin(), 0u);
    EXPECT_EQ(c->kv_head_end(), static_cast<uint32_t>(kv_heads));
    EXPECT_EQ(c->head_dim(), static_cast<uint32_t>(head_dim));
    next_token[c->layer()] = static_cast<int64_t>(c->token_end());
    kernels::KvChunkExtent extent;
    extent.token_begin = static_cast<int64_t>(c->token_begin());
    extent.token_end = static_cast<int64_t>(c->token_end());
    extent.head_begin = static_cast<int>(c->kv_head_begin());
    extent.head_end = static_cast<int>(c->kv_head_end());
    extent.head_dim = static_cast<int>(c->head_dim());
    const absl::StatusOr<kernels::KvCodecId> codec = kernels::KvCodecFromNumber(c->codec());
    EXPECT_TRUE(codec.ok()) << codec.status();
    if (!codec.ok()) continue;
    const absl::Status decoded = kernels::DecodeKvChunk(
        *codec, c->payload(), kv_heads, extent, kv.k[c->layer()].data(), kv.v[c->layer()].data());
    EXPECT_TRUE(decoded.ok()) << "chunk " << c->sequence() << ": " << decoded;
  }
  for (int l = 0; l < num_layers; ++l)
    EXPECT_EQ(next_token[l], tokens) << "layer " << l << " incomplete";
  return kv;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "";
  return response.substr(body + 4);
}

double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return -1;
}

int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  // HealthCheckRequest { string service = 1; } encoded by hand: no generated health stubs needed.
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response_buffer.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse { ServingStatus status = 1; }: empty means 0 (UNKNOWN).
  if (bytes.empty()) return 0;
  if (bytes.size() != 2 || bytes[0] != 0x08) return -1;
  return bytes[1];
}

}  // namespace sparsefill::server::testing
