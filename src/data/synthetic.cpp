#include "mpitrain/data/synthetic.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "mpitrain/errors.hpp"

namespace mpitrain {

std::shared_ptr<TensorDataset> make_synthetic_classification(int64_t size, const std::vector<int64_t>& input_shape,
                                                             int64_t classes, uint64_t seed) {
  if (size < 1 || classes < 2 || input_shape.empty())
    throw ConfigError("synthetic dataset needs size >= 1, classes >= 2 and an input shape");
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<int64_t> shape = {size};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  at::Tensor x = at::randn(shape, gen, at::TensorOptions(at::kFloat));
  const int64_t features = x.numel() / size;
  at::Tensor teacher = at::randn({features, classes}, gen, at::TensorOptions(at::kFloat));
  at::Tensor y = x.reshape({size, features}).matmul(teacher).argmax(1);
  return std::make_shared<TensorDataset>(x, y, "synthetic");
}

}  // namespace mpitrain
