// Which examples each rank sees in an epoch, with PyTorch's DistributedSampler semantics: the
// same permutation on every rank (torch.randperm seeded with seed + epoch), padded by repeating
// its head to a multiple of the world size (or truncated with drop_last), then every
// num_replicas-th index from `rank`. Identical index lists to PyTorch for the same arguments.
#pragma once
#include <cstdint>
#include <vector>

namespace mpitrain {

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int num_replicas, int rank, bool shuffle = true, uint64_t seed = 0,
                     bool drop_last = false);
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }
  /// Examples this rank sees per epoch (the same on every rank).
  int64_t num_samples() const { return num_samples_; }
  /// This rank's indices for the current epoch.
  std::vector<int64_t> indices() const;

 private:
  int64_t size_;
  int num_replicas_, rank_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  int64_t epoch_ = 0, num_samples_ = 0, total_size_ = 0;
};

}  // namespace mpitrain
