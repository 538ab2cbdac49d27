// A synthetic classification dataset: Gaussian inputs, labels from a fixed random linear teacher,
// so a model can actually learn it. Deterministic in (seed, size, shape, classes).
#pragma once
#include <memory>
#include <vector>

#include "mpitrain/data/dataset.hpp"

namespace mpitrain {

std::shared_ptr<TensorDataset> make_synthetic_classification(int64_t size, const std::vector<int64_t>& input_shape,
                                                             int64_t classes, uint64_t seed);

}  // namespace mpitrain
