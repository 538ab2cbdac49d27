// What ranks tell the coordinator (Request) and what it answers (Response), and their wire form.
// A Request is everything ranks must agree on for one named tensor; two requests for a name match
// when everything but the shape's first dimension (allgather) or nothing (others) differs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mpitrain/comm/types.hpp"

namespace mpitrain::detail {

enum class OpType : uint8_t { Allreduce, Allgather, Broadcast, Join };
const char* op_type_name(OpType t);

struct Request {
  OpType type = OpType::Allreduce;
  std::string name;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  ReduceOp op = ReduceOp::Sum;
  int32_t root = 0;
  double prescale = 1.0, postscale = 1.0;
  int32_t device = -1;    // -1: host memory; else the CUDA device index
  std::string group;      // grouped_allreduce: the group's key (its first name), else empty
  int32_t group_size = 0;

  int64_t numel() const;
  size_t bytes() const;
  /// "float32[3, 4] avg" (with root / scales where they matter): what a mismatch report shows.
  std::string signature() const;
  /// Same operation (the name aside): allgather compares all but dimension 0.
  bool matches(const Request& other) const;
};

/// Rank 0's answer for one tensor: run it (with the agreed request), or fail it.
struct Response {
  bool error = false;
  std::string message;                // error text
  Request req;                        // the agreed operation (any rank's request, as they match)
  std::vector<int64_t> first_dims;    // allgather: dimension 0 of every rank (0 for joined ranks)
  std::vector<int32_t> arrival;       // ranks in the order their requests reached rank 0 (timeline)
};

/// Rank 0's answer for one negotiation round.
struct ResponseList {
  std::vector<Response> responses;
  std::vector<int32_t> joined;        // ranks that have joined, after this round
  int32_t join_completed_by = -1;     // every rank has joined: the last one (joined resets)
  std::string shutdown;               // non-empty: every rank fails with this CommError and stops
};

std::string serialize(const std::vector<Request>& rs);
std::vector<Request> parse_requests(const std::string& bytes);
std::string serialize(const ResponseList& rl);
ResponseList parse_response_list(const std::string& bytes);

}  // namespace mpitrain::detail
