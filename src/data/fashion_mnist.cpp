#include "mpitrain/data/fashion_mnist.hpp"

#include <ATen/ATen.h>
#include <zlib.h>

#include <filesystem>

#include "mpitrain/errors.hpp"

namespace mpitrain {

namespace {
// gzread reads gzip and plain files alike.
struct GzFile {
  gzFile f;
  explicit GzFile(const std::string& path) : f(gzopen(path.c_str(), "rb")) {}
  ~GzFile() {
    if (f) gzclose(f);
  }
};

uint32_t big_endian(const unsigned char* b) { return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3]; }
}  // namespace

at::Tensor read_idx(const std::string& path) {
  if (!std::filesystem::exists(path)) throw ConfigError("IDX file not found: " + path);
  GzFile in(path);
  if (!in.f) throw ConfigError("cannot open IDX file " + path);
  unsigned char head[4];
  if (gzread(in.f, head, 4) != 4) throw ConfigError("IDX file " + path + " is empty or not gzip/IDX");
  if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
    throw ConfigError("IDX file " + path + ": bad magic (expected unsigned-byte IDX data)");
  const int dims = head[3];
  if (dims < 1 || dims > 4) throw ConfigError("IDX file " + path + ": " + std::to_string(dims) + " dimensions");
  std::vector<int64_t> shape(static_cast<size_t>(dims));
  int64_t total = 1;
  for (int d = 0; d < dims; ++d) {
    unsigned char b[4];
    if (gzread(in.f, b, 4) != 4) throw ConfigError("IDX file " + path + ": truncated header");
    shape[size_t(d)] = int64_t(big_endian(b));
    total *= shape[size_t(d)];
  }
  if (total > (int64_t(1) << 34)) throw ConfigError("IDX file " + path + ": implausible size in header");
  at::Tensor t = at::empty(shape, at::kByte);
  int64_t done = 0;
  while (done < total) {
    const unsigned chunk = unsigned(std::min<int64_t>(total - done, 1 << 30));
    const int n = gzread(in.f, t.data_ptr<uint8_t>() + done, chunk);
    if (n <= 0) {
      int err = 0;
      const char* msg = gzerror(in.f, &err);
      throw ConfigError("IDX file " + path + ": truncated data (" + std::to_string(done) + " of " + std::to_string(total) +
                        " bytes" + (err ? std::string(", ") + msg : std::string()) + ")");
    }
    done += n;
  }
  return t;
}

std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& dir, bool train, double mean, double std) {
  const std::string prefix = dir + "/" + (train ? "train" : "t10k");
  auto find = [&](const std::string& stem) {
    for (const char* ext : {".gz", ""})
      if (std::filesystem::exists(stem + ext)) return stem + ext;
    throw ConfigError("Fashion-MNIST file " + stem + ".gz not found (apt-get install dataset-fashion-mnist, or pass "
                      "the directory that holds the IDX files)");
  };
  at::Tensor images = read_idx(find(prefix + "-images-idx3-ubyte"));
  at::Tensor labels = read_idx(find(prefix + "-labels-idx1-ubyte"));
  if (images.dim() != 3 || labels.dim() != 1 || images.size(0) != labels.size(0))
    throw ConfigError("Fashion-MNIST in " + dir + ": images " + std::to_string(images.dim()) + "-D with " +
                      std::to_string(images.size(0)) + " entries do not match " + std::to_string(labels.size(0)) + " labels");
  if (labels.max().item<uint8_t>() > 9) throw ConfigError("Fashion-MNIST in " + dir + ": label outside 0..9");
  at::Tensor x = images.to(at::kFloat).div_(255.0).sub_(mean).div_(std).unsqueeze(1).contiguous();
  return std::make_shared<TensorDataset>(x, labels.to(at::kLong), std::string("fashion-mnist/") + (train ? "train" : "test"));
}

}  // namespace mpitrain
