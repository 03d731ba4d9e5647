// kv_stream_bench: issue 6's streaming benchmark. KV bytes per second over gRPC on loopback
// (127.0.0.1), with the project's wire messages, next to a raw TCP socket baseline in the same run.
//
// gRPC: an in-process PrefillService (the real generated service and message types) whose Prefill
// streams PrefillResponse{kv_chunk} messages exactly as the server cuts a layer: RAW_BF16 chunks
// of --kv-heads x --head-dim, as many tokens per chunk as --max-chunk-bytes allows
// (kernels::MaxTokensPerChunk, as server/kv_chunk_sink.cc), with CRC32C, request id, sequence,
// layer and token range; one write in flight per call (StartWrite from OnWriteDone, the real
// server's backpressure). It does not run a model: the payload is encoded once and resent, so
// the numbers are the transport's, not the prefill's. Clients read with the synchronous stub and
// the SDK's receive-size limit; a call ends after --bytes-per-stream or --time-limit.
// TCP: the same payload bytes in the same chunk size, plain send()/recv() over 127.0.0.1.
//
// Cases: 1 stream, N streams on one channel (one HTTP/2 connection, as one PrefillClient), N
// streams on N channels; TCP with 1 and N connections. Throughput = payload bytes received by all
// clients / wall time from the start to the last stream's end. MB = 10^6 bytes.
//
// Each case runs --repeats times, the cases interleaved (the machine's background load hits them
// alike); the table shows each case's median run and the range.
//
//   kv_stream_bench [--bytes-per-stream 2147483648] [--max-chunk-bytes 1048576]
//                   [--kv-heads 8] [--head-dim 128] [--streams 8] [--time-limit 20] [--repeats 3]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "client/cli/arg_parser.h"
#include "grpcpp/grpcpp.h"
#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/kv_codec.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"

namespace sparsefill::bench {
namespace {

using Clock = std::chrono::steady_clock;

// The flags' values (defaults in Flags()).
struct Options {
  int64_t bytes_per_stream = 0;
  int64_t max_chunk_bytes = 0;  // the server's default is 1 MiB (request_validation.h)
  int kv_heads = 0;             // 8 x 128: llama3-8b
  int head_dim = 0;
  int streams = 0;
  double time_limit_s = 0;  // per run of a case
  int repeats = 0;          // runs per case; the table shows the median
};

// The chunk every message carries: `tokens` tokens of RAW_BF16 K and V.
struct ChunkTemplate {
  int64_t tokens = 0;
  std::string payload;
  uint32_t crc = 0;
};

ChunkTemplate MakeChunkTemplate(const Options& o) {
  ChunkTemplate c;
  const kernels::KvCodecId codec = kernels::KvCodecId::kRawBf16;
  c.tokens = kernels::MaxTokensPerChunk(codec, int64_t{1} << 30, o.kv_heads, o.head_dim,
                                        o.max_chunk_bytes);
  kernels::KvChunkExtent e{0, c.tokens, 0, o.kv_heads, o.head_dim};
  c.payload.resize(kernels::MaxKvPayloadBytes(codec, e));
  std::mt19937 rng(7);
  for (char& b : c.payload) b = static_cast<char>(rng());
  c.crc = kernels::Crc32c(c.payload.data(), c.payload.size());
  return c;
}

// --- gRPC --------------------------------------------------------------------------------------

// One Prefill call: writes `chunks` KvChunk messages, one in flight at a time.
class KvStreamReactor final : public grpc::ServerWriteReactor<v1::PrefillResponse> {
 public:
  KvStreamReactor(const ChunkTemplate& chunk, int kv_heads, int head_dim, int64_t chunks,
                  std::string request_id)
      : chunks_(chunks), tokens_(chunk.tokens) {
    v1::KvChunk* c = message_.mutable_kv_chunk();
    c->set_request_id(std::move(request_id));
    c->set_kv_head_begin(0);
    c->set_kv_head_end(kv_heads);
    c->set_head_dim(head_dim);
    c->set_codec(v1::KV_CODEC_RAW_BF16);
    c->set_payload(chunk.payload);
    c->set_payload_crc32c(chunk.crc);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  // 32 layers' worth of chunks per layer number, like a long prompt of llama3-8b.
  void WriteNext() {
    if (sent_ == chunks_) {
      Finish(grpc::Status::OK);
      return;
    }
    v1::KvChunk* c = message_.mutable_kv_chunk();
    c->set_sequence(static_cast<uint64_t>(sent_));
    c->set_layer(static_cast<uint32_t>(sent_ % 32));
    c->set_token_begin(static_cast<uint64_t>(sent_ / 32 * tokens_));
    c->set_token_end(static_cast<uint64_t>((sent_ / 32 + 1) * tokens_));
    c->set_last_in_layer(false);
    ++sent_;
    StartWrite(&message_);
  }

  v1::PrefillResponse message_;
  const int64_t chunks_;
  const int64_t tokens_;
  int64_t sent_ = 0;
};

class KvStreamService final : public v1::PrefillService::CallbackService {
 public:
  KvStreamService(const ChunkTemplate& chunk, const Options& o)
      : chunk_(chunk),
        options_(o),
        chunks_per_stream_(std::max<int64_t>(
            1, o.bytes_per_stream / static_cast<int64_t>(chunk.payload.size()))) {}

  grpc::ServerWriteReactor<v1::PrefillResponse>* Prefill(
      grpc::CallbackServerContext* /*context*/, const v1::PrefillRequest* request) override {
    return new KvStreamReactor(chunk_, options_.kv_heads, options_.head_dim, chunks_per_stream_,
                               request->request_id());
  }

  int64_t chunks_per_stream() const { return chunks_per_stream_; }

 private:
  const ChunkTemplate& chunk_;
  const Options options_;
  const int64_t chunks_per_stream_;
};

std::shared_ptr<grpc::Channel> MakeChannel(int port, int index) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);  // the SDK's (client/prefill_client.cc)
  // A distinct argument per channel index keeps channels from sharing one subchannel
  // (connection).
  args.SetInt("sparsefill.bench_channel", index);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

struct CaseResult {
  int64_t bytes = 0;
  double seconds = 0;
  bool complete = true;  // every stream got all its bytes (false: the time limit cut it)
  std::string error;

  double mb_per_s() const { return seconds > 0 ? bytes / seconds / 1e6 : 0; }
};

// Runs `streams` concurrent clients, `stream_fn(i)` each, released together; the result sums
// their bytes over the wall time from the release to the last one's end.
template <typename StreamFn>
CaseResult RunConcurrent(int streams, StreamFn stream_fn) {
  std::vector<CaseResult> per(streams);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      per[i] = stream_fn(i);
    });
  }
  while (ready.load() < streams) std::this_thread::yield();
  const Clock::time_point start = Clock::now();
  go.store(true);
  for (std::thread& t : threads) t.join();
  CaseResult total;
  total.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const CaseResult& r : per) {
    total.bytes += r.bytes;
    total.complete = total.complete && r.complete;
    if (!r.error.empty() && total.error.empty()) total.error = r.error;
  }
  return total;
}

CaseResult RunGrpc(int port, int streams, bool channel_per_stream, int64_t expected_bytes,
                   double time_limit_s) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < (channel_per_stream ? streams : 1); ++i) {
    channels.push_back(MakeChannel(port, i));
    channels.back()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  return RunConcurrent(streams, [&](int i) {
    CaseResult r;
    auto stub = v1::PrefillService::NewStub(channels[channel_per_stream ? i : 0]);
    grpc::ClientContext context;
    const Clock::time_point limit = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                       std::chrono::duration<double>(time_limit_s));
    v1::PrefillRequest request;
    request.set_request_id("bench-" + std::to_string(i));
    std::unique_ptr<grpc::ClientReader<v1::PrefillResponse>> reader =
        stub->Prefill(&context, request);
    v1::PrefillResponse message;
    bool cancelled = false;
    while (reader->Read(&message)) {
      r.bytes += static_cast<int64_t>(message.kv_chunk().payload().size());
      if (Clock::now() >= limit) {
        context.TryCancel();
        cancelled = true;
        while (reader->Read(&message)) {
        }
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    if (!cancelled && !status.ok()) r.error = status.error_message();
    r.complete = !cancelled && r.bytes == expected_bytes;
    return r;
  });
}

// --- raw TCP -----------------------------------------------------------------------------------

// On each accepted connection, after the receiver's one-byte start signal, sends `chunks` times
// `chunk` (one send() loop per chunk) until done or the receiver closes.
class TcpSender {
 public:
  TcpSender(const std::string& chunk, int64_t chunks) : chunk_(chunk), chunks_(chunks) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 64) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("kv_stream_bench: TCP listen");
      std::exit(1);
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~TcpSender() {
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    for (std::thread& t : senders_) t.join();
  }
  int port() const { return port_; }

 private:
  void AcceptLoop() {
    while (true) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;  // the listening socket was shut down
      senders_.emplace_back([this, fd] { Send(fd); });
    }
  }
  void Send(int fd) {
    char go = 0;  // the receiver's start signal: the transfer starts inside its timed window
    if (recv(fd, &go, 1, 0) != 1) {
      close(fd);
      return;
    }
    for (int64_t i = 0; i < chunks_; ++i) {
      size_t off = 0;
      while (off < chunk_.size()) {
        const ssize_t n = send(fd, chunk_.data() + off, chunk_.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          close(fd);
          return;  // the receiver stopped (time limit)
        }
        off += static_cast<size_t>(n);
      }
    }
    close(fd);
  }

  const std::string& chunk_;
  const int64_t chunks_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> senders_;  // the acceptor's until the destructor joins it
};

CaseResult RunTcp(int port, int streams, size_t chunk_bytes, int64_t expected_bytes,
                  double time_limit_s) {
  // Connect first, so the timed part is the transfer (as with the connected gRPC channels).
  std::vector<int> fds(streams, -1);
  for (int& fd : fds) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("kv_stream_bench: TCP connect");
      std::exit(1);
    }
  }
  CaseResult result = RunConcurrent(streams, [&](int i) {
    CaseResult r;
    std::vector<char> buffer(chunk_bytes);
    const Clock::time_point limit = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                       std::chrono::duration<double>(time_limit_s));
    const char go = 1;
    if (send(fds[i], &go, 1, MSG_NOSIGNAL) != 1) {
      r.error = "TCP start signal not sent";
      return r;
    }
    while (true) {
      // One chunk, however many recv() calls it takes.
      size_t got = 0;
      while (got < chunk_bytes) {
        const ssize_t n = recv(fds[i], buffer.data() + got, chunk_bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      r.bytes += static_cast<int64_t>(got);
      if (got < chunk_bytes || Clock::now() >= limit) break;
    }
    r.complete = r.bytes == expected_bytes;
    return r;
  });
  for (int fd : fds) close(fd);
  return result;
}

// --- main --------------------------------------------------------------------------------------

// One row of the table: its runs (one per repeat, interleaved with the other cases so every case
// sees the same background load) and the TCP row it is compared with.
struct Case {
  std::string transport;
  int streams = 1;
  std::string connections;
  int baseline = -1;  // index of the TCP case, -1 for TCP rows
  std::function<CaseResult()> run;
  std::vector<CaseResult> runs;

  // The run with the median MB/s.
  const CaseResult& Median() const {
    std::vector<const CaseResult*> sorted;
    for (const CaseResult& r : runs) sorted.push_back(&r);
    std::sort(sorted.begin(), sorted.end(), [](const CaseResult* a, const CaseResult* b) {
      return a->mb_per_s() < b->mb_per_s();
    });
    return *sorted[sorted.size() / 2];
  }
  double MinMbPerS() const {
    double m = runs.front().mb_per_s();
    for (const CaseResult& r : runs) m = std::min(m, r.mb_per_s());
    return m;
  }
  double MaxMbPerS() const {
    double m = 0;
    for (const CaseResult& r : runs) m = std::max(m, r.mb_per_s());
    return m;
  }
  std::string Error() const {
    for (const CaseResult& r : runs) {
      if (!r.error.empty()) return r.error;
    }
    return "";
  }
};

void PrintRow(const Case& c, const Case* tcp) {
  const CaseResult& r = c.Median();
  char ratio[32] = "-";
  if (tcp != nullptr && tcp->Median().mb_per_s() > 0) {
    std::snprintf(ratio, sizeof(ratio), "%.2f", r.mb_per_s() / tcp->Median().mb_per_s());
  }
  const std::string error = c.Error();
  std::printf("| %s | %d | %s | %.0f | %.2f | %.0f | %.0f-%.0f | %s | %s |\n", c.transport.c_str(),
              c.streams, c.connections.c_str(), r.bytes / 1e6, r.seconds, r.mb_per_s(),
              c.MinMbPerS(), c.MaxMbPerS(), ratio,
              !error.empty() ? error.c_str() : (r.complete ? "all bytes" : "time limit"));
}

const std::vector<cli::FlagSpec>& Flags() {
  static const std::vector<cli::FlagSpec> flags = {
      {"bytes-per-stream", "B", "KV payload bytes each stream carries", "2147483648"},
      {"max-chunk-bytes", "B", "largest chunk payload (the server's default)", "1048576"},
      {"kv-heads", "H", "KV heads per chunk", "8"},
      {"head-dim", "D", "head dimension", "128"},
      {"streams", "N", "concurrent streams (and TCP connections) of the N-stream rows", "8"},
      {"time-limit", "S", "seconds after which a run stops reading", "20"},
      {"repeats", "R", "runs per case, interleaved; the table shows the median", "3"},
  };
  return flags;
}

int Main(int argc, char** argv) {
  constexpr char kUsage[] = "kv_stream_bench [flags]";
  constexpr char kDescription[] =
      "KV bytes per second over gRPC on 127.0.0.1 (an in-process PrefillService streaming\n"
      "RAW_BF16 KvChunk messages cut as the server cuts them; no model runs) beside raw TCP\n"
      "send/recv of the same bytes in the same chunk size; 1 stream and N concurrent.";
  absl::StatusOr<cli::ParsedFlags> flags =
      cli::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), Flags());
  if (!flags.ok()) {
    std::fprintf(stderr, "kv_stream_bench: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help")) {
    std::printf("%s", cli::FormatHelp(kUsage, kDescription, Flags()).c_str());
    return 0;
  }
  Options o;
  const bool parsed = absl::SimpleAtoi(flags->Get("bytes-per-stream"), &o.bytes_per_stream) &&
                      absl::SimpleAtoi(flags->Get("max-chunk-bytes"), &o.max_chunk_bytes) &&
                      absl::SimpleAtoi(flags->Get("kv-heads"), &o.kv_heads) &&
                      absl::SimpleAtoi(flags->Get("head-dim"), &o.head_dim) &&
                      absl::SimpleAtoi(flags->Get("streams"), &o.streams) &&
                      absl::SimpleAtod(flags->Get("time-limit"), &o.time_limit_s) &&
                      absl::SimpleAtoi(flags->Get("repeats"), &o.repeats);
  if (!parsed || o.bytes_per_stream < 1 || o.max_chunk_bytes < 1 || o.kv_heads < 1 ||
      o.head_dim < 1 || o.streams < 1 || !(o.time_limit_s > 0) || o.repeats < 1) {
    std::fprintf(stderr, "kv_stream_bench: every flag takes a positive number (see --help)\n");
    return 2;
  }

  const ChunkTemplate chunk = MakeChunkTemplate(o);
  KvStreamService service(chunk, o);
  const int64_t chunks = service.chunks_per_stream();
  const int64_t expected = chunks * static_cast<int64_t>(chunk.payload.size());
  int grpc_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    std::fprintf(stderr, "kv_stream_bench: cannot start the gRPC server\n");
    return 1;
  }
  TcpSender tcp(chunk.payload, chunks);

  std::printf(
      "gRPC server: in-process PrefillService (synthetic: RAW_BF16 KvChunk messages cut as the "
      "server cuts them, no model)\n");
  std::printf(
      "chunk: %lld tokens x %d kv heads x %d head_dim, K and V, bf16 = %zu payload bytes; %lld "
      "chunks (%.0f MB) per stream; time limit %.0f s per run; %u hardware threads\n\n",
      static_cast<long long>(chunk.tokens), o.kv_heads, o.head_dim, chunk.payload.size(),
      static_cast<long long>(chunks), expected / 1e6, o.time_limit_s,
      std::thread::hardware_concurrency());
  std::printf(
      "| transport | streams | connections | MB received | seconds | MB/s (median of %d) | "
      "MB/s range | gRPC / TCP | ended by |\n|---|---:|---|---:|---:|---:|---:|---:|---|\n",
      o.repeats);
  std::fflush(stdout);

  const std::string n = std::to_string(o.streams);
  const size_t bytes = chunk.payload.size();
  const double limit = o.time_limit_s;
  std::vector<Case> cases;
  cases.push_back(
      {"TCP", 1, "1", -1, [&] { return RunTcp(tcp.port(), 1, bytes, expected, limit); }});
  cases.push_back({"TCP", o.streams, n, -1,
                   [&] { return RunTcp(tcp.port(), o.streams, bytes, expected, limit); }});
  cases.push_back(
      {"gRPC", 1, "1", 0, [&] { return RunGrpc(grpc_port, 1, false, expected, limit); }});
  cases.push_back({"gRPC", o.streams, "1 (one channel)", 1,
                   [&] { return RunGrpc(grpc_port, o.streams, false, expected, limit); }});
  cases.push_back({"gRPC", o.streams, n + " (a channel each)", 1,
                   [&] { return RunGrpc(grpc_port, o.streams, true, expected, limit); }});
  for (int rep = 0; rep < o.repeats; ++rep) {
    for (Case& c : cases) c.runs.push_back(c.run());
  }
  for (const Case& c : cases) PrintRow(c, c.baseline >= 0 ? &cases[c.baseline] : nullptr);

  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  const double tcp1 = cases[0].Median().mb_per_s();
  const double ratio = tcp1 > 0 ? cases[2].Median().mb_per_s() / tcp1 : 0;
  std::printf("\nissue 6 target (one gRPC stream >= 50%% of raw TCP): %s (%.2f)\n",
              ratio >= 0.5 ? "met" : "not met", ratio);
  for (const Case& c : cases) {
    if (!c.Error().empty()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace sparsefill::bench

int main(int argc, char** argv) { return sparsefill::bench::Main(argc, argv); }
