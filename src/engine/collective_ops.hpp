// How the bytes of agreed named tensors move (Horovod's ops, apart from the controller): ready
// allreduces of one dtype/op/device/scale are packed into the fusion buffer and reduced with one
// collective; a lone tensor is reduced where it lies; broadcasts and allgathers go one by one.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <vector>

#include "handle_state.hpp"
#include "message.hpp"
#include "mpitrain/comm/communicator.hpp"
#include "timeline.hpp"

namespace mpitrain::detail {

/// One agreed tensor to move on this rank. `tensor` is undefined on a rank that has joined (it
/// contributes zeros, or nothing to an allgather).
struct Job {
  Response resp;
  at::Tensor tensor;
  at::Tensor output;  // allgather's result, filled by run()
  std::chrono::steady_clock::time_point agreed;
};

class CollectiveOps {
 public:
  CollectiveOps(Communicator& comm, size_t fusion_threshold, Timeline* timeline);

  struct Counts {
    int64_t collectives = 0;
    int64_t fused_bytes = 0;
  };
  /// Runs `jobs` in order (the same on every rank). `contributors`: ranks that have not joined
  /// (Avg's divisor). Throws CommError when a collective fails.
  Counts run(std::vector<Job>& jobs, int contributors);

 private:
  void allreduce_unit(std::vector<Job>& jobs, size_t begin, size_t end, int contributors, Counts& n);
  void broadcast(Job& j);
  void allgather(Job& j);
  char* fusion_buffer(int device);
  at::Tensor input_or_zeros(const Job& j) const;

  Communicator& comm_;
  size_t threshold_;
  Timeline* timeline_;
  SharedBuffer shared_;   // host fusion buffer in the Communicator's shared window (zero-copy)
  at::Tensor host_;       // host fusion buffer when the backend has no shared window
  at::Tensor device_;     // CUDA fusion buffer
};

}  // namespace mpitrain::detail
