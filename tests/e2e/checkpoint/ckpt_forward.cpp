// Test helper for the PyTorch interop test: loads an mpitrain checkpoint of the Classifier into a
// fresh model (the config comes from the checkpoint) and writes the first N test images and the
// logits mpitrain computes for them to an HDF5 file. Usage: ckpt_forward CKPT OUT.h5 [N]
// Or: ckpt_forward --init-weights W.h5 IN.h5 OUT.h5 — a resnet18 initialised from W.h5 (torchvision
// names, as h5py wrote them), its eval-mode logits on IN.h5's /input written to OUT.h5.
#include <iostream>

#include "hdf5_io/checkpoint_file.hpp"
#include "hdf5_io/tensor_io.hpp"
#include "mpitrain/train/checkpoint.hpp"
#include "train/classifier.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ckpt_forward CKPT OUT.h5 [N]\n";
    return 2;
  }
  if (std::string(argv[1]) == "--init-weights") try {
      if (argc != 5) throw std::runtime_error("usage: ckpt_forward --init-weights W.h5 IN.h5 OUT.h5");
      mpitrain::apps::Classifier model({{"model", "resnet18"}, {"dataset", "synthetic"}, {"init_weights", argv[2]}});
      model.eval();
      at::Tensor input = hdf5_io::read_tensor(hdf5_io::open_file(argv[3]).openGroup("/"), "input");
      torch::NoGradGuard no_grad;
      at::Tensor logits = model.net()->forward(input);
      H5::H5File out = hdf5_io::create_file(argv[4]);
      H5::Group root = out.openGroup("/");
      hdf5_io::write_tensor(root, "logits", logits);
      std::cout << "wrote logits of " << input.size(0) << " inputs to " << argv[4] << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "ckpt_forward: " << e.what() << "\n";
      return 1;
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
