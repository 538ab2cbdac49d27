#include "mpitrain/data/distributed_sampler.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstring>

#include "mpitrain/errors.hpp"

namespace mpitrain {

DistributedSampler::DistributedSampler(int64_t dataset_size, int num_replicas, int rank, bool shuffle, uint64_t seed,
                                       bool drop_last)
    : size_(dataset_size), num_replicas_(num_replicas), rank_(rank), shuffle_(shuffle), drop_last_(drop_last),
      seed_(seed) {
  if (num_replicas < 1 || rank < 0 || rank >= num_replicas)
    throw ConfigError("DistributedSampler: rank " + std::to_string(rank) + " outside [0, " + std::to_string(num_replicas) + ")");
  if (dataset_size < 0) throw ConfigError("DistributedSampler: negative dataset size");
  // As torch.utils.data.DistributedSampler: with drop_last every rank gets floor(n / replicas)
  // (PyTorch's ceil((n - replicas) / replicas)), else ceil(n / replicas) with the head repeated.
  num_samples_ = drop_last_ ? size_ / num_replicas_ : (size_ + num_replicas_ - 1) / num_replicas_;
  total_size_ = num_samples_ * num_replicas_;
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> all(static_cast<size_t>(size_));
  if (shuffle_) {
    at::Generator gen = at::detail::createCPUGenerator(seed_ + uint64_t(epoch_));
    at::Tensor perm = at::randperm(size_, gen, at::TensorOptions(at::kLong));
    std::memcpy(all.data(), perm.data_ptr<int64_t>(), size_t(size_) * sizeof(int64_t));
  } else {
    for (int64_t i = 0; i < size_; ++i) all[size_t(i)] = i;
  }
  if (!drop_last_) {
    // Pad with the head of the list (repeated as often as needed for tiny datasets).
    const size_t base = all.size();
    for (size_t i = 0; all.size() < size_t(total_size_) && base > 0; ++i) all.push_back(all[i % base]);
  } else {
    all.resize(size_t(total_size_));
  }
  std::vector<int64_t> mine;
  mine.reserve(size_t(num_samples_));
  for (int64_t i = rank_; i < total_size_; i += num_replicas_) mine.push_back(all[size_t(i)]);
  return mine;
}

}  // namespace mpitrain
