// Test helper for the PyTorch interop test: loads an mpitrain checkpoint of the Classifier into a
// fresh model (the config comes from the checkpoint) and writes the first N test images and the
// logits mpitrain computes for them to an HDF5 file. Usage: ckpt_forward CKPT OUT.h5 [N]
#include <iostream>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/train/checkpoint.hpp"
#include "train/classifier.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ckpt_forward CKPT OUT.h5 [N]\n";
    return 2;
  }
  const int64_t n = argc > 3 ? std::stoll(argv[3]) : 64;
  try {
    mpitrain::Config config;
    {
      H5::H5File f = hdf5_io::open_checkpoint(argv[1]);
      config = nlohmann::json::parse(hdf5_io::get_attribute(f.openGroup("/"), "config"));
    }
    mpitrain::apps::Classifier model(config);
    mpitrain::load_checkpoint(argv[1], model, nullptr, 0);
    model.eval();
    auto data = model.dataloaders();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min(n, data.test->size()); ++i) idx.push_back(i);
    mpitrain::Batch batch = data.test->get(idx);
    torch::NoGradGuard no_grad;
    at::Tensor logits = model.net()->forward(batch.input);
    H5::H5File out = hdf5_io::create_file(argv[2]);
    H5::Group root = out.openGroup("/");
    hdf5_io::write_tensor(root, "input", batch.input);
    hdf5_io::write_tensor(root, "logits", logits);
    std::cout << "wrote " << idx.size() << " inputs and logits to " << argv[2] << "\n";
  } catch (const std::exception& e) {
    std::cerr << "ckpt_forward: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
