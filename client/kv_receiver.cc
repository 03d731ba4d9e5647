// KvReceiverService (see kv_receiver.h).
#include "client/kv_receiver.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sparsefill::client {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

bool SameShape(const v1::KvPushHeader& a, const v1::KvPushHeader& b) {
  return a.request_id() == b.request_id() && a.num_layers() == b.num_layers() &&
         a.tokens() == b.tokens() && a.kv_heads() == b.kv_heads() && a.head_dim() == b.head_dim() &&
         a.codec() == b.codec() && a.total_chunks() == b.total_chunks();
}

}  // namespace

KvReceiverService::KvReceiverService(Options options) : options_(std::move(options)) {}

int64_t KvReceiverService::streams_opened() const {
  absl::MutexLock lock(&mu_);
  return streams_opened_;
}

int64_t KvReceiverService::chunks_applied() const {
  absl::MutexLock lock(&mu_);
  return chunks_applied_;
}

absl::StatusOr<std::shared_ptr<KvReceiverService::SessionState>> KvReceiverService::GetSession(
    const v1::KvPushHeader& header) {
  absl::MutexLock lock(&mu_);
  ++streams_opened_;
  auto it = sessions_.find(header.session_id());
  if (it != sessions_.end()) {
    if (!SameShape(it->second->header, header)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session '", header.session_id(), "' resumed with another request, shape or codec"));
    }
    return it->second;
  }
  auto state = std::make_shared<SessionState>();
  state->header = header;
  const KvShape shape{static_cast<int>(header.num_layers()), static_cast<int64_t>(header.tokens()),
                      static_cast<int>(header.kv_heads()), static_cast<int>(header.head_dim())};
  SessionState* raw = state.get();
  // The callbacks run under raw->mu (AddChunk's caller).
  absl::StatusOr<KvAssembler> assembler;
  if (options_.paged_layout) {
    absl::StatusOr<PagedKvLayout> layout = options_.paged_layout(header);
    if (!layout.ok()) return layout.status();
    state->done.paged_layout = *layout;
    assembler = KvAssembler::CreatePaged(shape, header.codec(), header.request_id(),
                                         *std::move(layout), [raw](PagedKvLayer layer) {
                                           raw->done.paged_layers.push_back(std::move(layer));
                                           return absl::OkStatus();
                                         });
  } else {
    assembler =
        KvAssembler::Create(shape, header.codec(), header.request_id(), [raw](KvLayer layer) {
          raw->done.layers.push_back(std::move(layer));
          return absl::OkStatus();
        });
  }
  if (!assembler.ok()) return assembler.status();
  state->assembler = std::make_unique<KvAssembler>(*std::move(assembler));
  state->done.session_id = header.session_id();
  state->done.request_id = header.request_id();
  state->done.shape = shape;
  state->done.codec = header.codec();
  sessions_[header.session_id()] = state;
  return state;
}

grpc::Status KvReceiverService::PushKv(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<v1::KvPushAck, v1::KvPushRequest>* stream) {
  v1::KvPushRequest message;
  if (!stream->Read(&message)) return grpc::Status::OK;  // the pusher went away at once
  if (!message.has_header() || message.header().session_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of PushKv must be a header with a session id");
  }
  absl::StatusOr<std::shared_ptr<SessionState>> session = GetSession(message.header());
  if (!session.ok()) return ToGrpc(session.status());
  SessionState& s = **session;
  absl::MutexLock lock(&s.mu);
  auto ack = [&] {
    v1::KvPushAck a;
    a.set_next_sequence(s.assembler->chunks_received());
    a.set_complete(s.complete);
    return stream->Write(a);
  };
  if (!ack()) return grpc::Status::OK;
  while (stream->Read(&message)) {
    if (message.has_chunk()) {
      const v1::KvChunk& chunk = message.chunk();
      if (chunk.sequence() < s.assembler->chunks_received()) {  // resent after a reconnect
        if (!ack()) break;
        continue;
      }
      if (options_.drop_before_chunk &&
          options_.drop_before_chunk(s.header.session_id(), chunk.sequence())) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection dropped (injected)");
      }
      if (absl::Status st = s.assembler->AddChunk(chunk); !st.ok()) return ToGrpc(st);
      {
        absl::MutexLock count(&mu_);
        ++chunks_applied_;
      }
    } else if (message.has_result()) {
      if (!s.complete) {
        if (absl::Status st = s.assembler->Finish(); !st.ok()) return ToGrpc(st);
        s.complete = true;
        s.done.result = message.result();
        if (options_.on_complete) options_.on_complete(std::move(s.done));
        s.done = Session{};
      }
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second header on one stream");
    }
    if (!ack()) break;
  }
  return grpc::Status::OK;
}

}  // namespace sparsefill::client
