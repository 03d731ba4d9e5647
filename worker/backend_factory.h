// Picks a backend by name: "cpu", "cuda" (GPU 0; Unavailable without CUDA or a GPU), or "auto"
// (CUDA when built with it and a GPU is visible, else CPU).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/backend.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(absl::string_view name);

}  // namespace sparsefill::worker
