// Batches of a Dataset in the order of a DistributedSampler, assembled ahead of use by a
// prefetch thread (bounded queue), so batch assembly overlaps the training step.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "mpitrain/data/dataset.hpp"
#include "mpitrain/data/distributed_sampler.hpp"

namespace mpitrain {

class DataLoader {
 public:
  /// batch_size >= 1 per rank; prefetch = batches assembled ahead (0: assemble on demand).
  DataLoader(std::shared_ptr<const Dataset> dataset, DistributedSampler sampler, int64_t batch_size,
             bool drop_last = false, int prefetch = 2);

  void set_epoch(int64_t epoch) { sampler_.set_epoch(epoch); }
  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return batch_size_; }
  const Dataset& dataset() const { return *dataset_; }

  /// One pass over the current epoch, starting at batch `start` (resuming inside an epoch).
  class Epoch {
   public:
    ~Epoch();
    Epoch(Epoch&&) = delete;
    /// The next batch, or nothing at the end of the epoch. Rethrows a failure of the prefetcher.
    std::optional<Batch> next();

   private:
    friend class DataLoader;
    Epoch(const DataLoader& loader, int64_t start);
    void produce();
    Batch make(int64_t b) const;

    const DataLoader& loader_;
    std::vector<int64_t> indices_;
    int64_t next_produce_, next_consume_, end_;
    std::deque<Batch> queue_;
    std::exception_ptr error_;
    bool stop_ = false;
    std::mutex m_;
    std::condition_variable cv_;
    std::thread thread_;
  };
  std::unique_ptr<Epoch> epoch(int64_t start = 0) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  DistributedSampler sampler_;
  int64_t batch_size_;
  bool drop_last_;
  int prefetch_;
};

}  // namespace mpitrain
