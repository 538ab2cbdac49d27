// Datasets in HDF5 files (e.g. written with h5py): inputs `X` [N, ...] and targets `y` [N].
// Each rank reads only its own rows (one hyperslab, plus one more where padding wraps around),
// so a file much larger than one process's memory can still be split across ranks.
#pragma once
#include <memory>
#include <string>

#include "mpitrain/data/dataset.hpp"

namespace mpitrain {

/// The examples of one rank, already split: the Trainer shuffles them locally and does not split
/// them again. Every rank holds ceil(N / world) examples: rank r reads rows
/// [r * ceil(N/world), ...), and the last ranks wrap around to the first rows to pad (as
/// DistributedSampler pads), so all ranks run the same number of batches.
class RankShardDataset : public TensorDataset {
 public:
  using TensorDataset::TensorDataset;
  bool rank_local() const override { return true; }
};

/// Reads rank `rank`'s shard of datasets `x` and `y` of `path`. ConfigError names the file or
/// dataset that is missing, unreadable, or of mismatched length.
std::shared_ptr<RankShardDataset> load_hdf5_shard(const std::string& path, int rank, int world,
                                                  const std::string& x = "X", const std::string& y = "y");
/// Whether `path` holds a dataset `name` (e.g. an optional "X_test").
bool hdf5_has_dataset(const std::string& path, const std::string& name);

}  // namespace mpitrain
