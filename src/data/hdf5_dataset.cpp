#include "mpitrain/data/hdf5_dataset.hpp"

#include <ATen/ATen.h>

#include <filesystem>

#include "hdf5_io/tensor_io.hpp"
#include "mpitrain/errors.hpp"

namespace mpitrain {

bool hdf5_has_dataset(const std::string& path, const std::string& name) {
  try {
    return hdf5_io::open_file(path).nameExists(name);
  } catch (const hdf5_io::CheckpointError& e) {
    throw ConfigError(std::string("dataset file: ") + e.what());
  }
}

std::shared_ptr<RankShardDataset> load_hdf5_shard(const std::string& path, int rank, int world, const std::string& x,
                                                  const std::string& y) {
  if (world < 1 || rank < 0 || rank >= world) throw ArgumentError("load_hdf5_shard: rank outside [0, world)");
  if (!std::filesystem::exists(path)) throw ConfigError("dataset file " + path + " not found");
  try {
    H5::H5File f = hdf5_io::open_file(path);
    H5::Group root = f.openGroup("/");
    for (const auto& name : {x, y})
      if (!root.nameExists(name)) throw ConfigError("dataset file " + path + " has no dataset '" + name + "'");
    const auto xs = hdf5_io::dataset_shape(root, x), ys = hdf5_io::dataset_shape(root, y);
    if (xs.empty() || ys.empty() || xs[0] != ys[0])
      throw ConfigError("dataset file " + path + ": '" + x + "' and '" + y + "' must have the same first dimension (" +
                        (xs.empty() ? "scalar" : std::to_string(xs[0])) + " vs " + (ys.empty() ? "scalar" : std::to_string(ys[0])) + ")");
    const int64_t n = xs[0];
    if (n == 0) throw ConfigError("dataset file " + path + ": '" + x + "' is empty");
    const int64_t per_rank = (n + world - 1) / world;
    // Rows [start, start + per_rank) modulo n: at most two hyperslabs (the tail, then from row 0).
    auto read = [&](const std::string& name) {
      std::vector<at::Tensor> parts;
      int64_t start = (int64_t(rank) * per_rank) % n, left = per_rank;
      while (left > 0) {
        const int64_t take = std::min(left, n - start);
        parts.push_back(hdf5_io::read_rows(root, name, start, take));
        left -= take;
        start = 0;
      }
      return parts.size() == 1 ? parts[0] : at::cat(parts);
    };
    return std::make_shared<RankShardDataset>(read(x), read(y),
                                              path + " rows of rank " + std::to_string(rank) + "/" + std::to_string(world));
  } catch (const hdf5_io::CheckpointError& e) {
    throw ConfigError(std::string("dataset file: ") + e.what());
  }
}

}  // namespace mpitrain
