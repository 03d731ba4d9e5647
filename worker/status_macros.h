// Early-return helpers for absl::Status / absl::StatusOr (the error model of every folder above
// kernels/).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SF_STATUS_CONCAT_INNER(a, b) a##b
#define SF_STATUS_CONCAT(a, b) SF_STATUS_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define SF_RETURN_IF_ERROR(expr)                                                 \
  do {                                                                           \
    if (::absl::Status _sf_status = (expr); !_sf_status.ok()) return _sf_status; \
  } while (0)

// `SF_ASSIGN_OR_RETURN(auto x, MakeX());` or `SF_ASSIGN_OR_RETURN(x, MakeX());`
#define SF_ASSIGN_OR_RETURN(lhs, expr) \
  SF_ASSIGN_OR_RETURN_IMPL(SF_STATUS_CONCAT(_sf_statusor_, __LINE__), lhs, expr)
#define SF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = *std::move(tmp)
