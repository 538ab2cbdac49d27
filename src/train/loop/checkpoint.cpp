// loop::Checkpoint in HDF5 (layout in checkpoint.hpp), and its module / optimizer / directory helpers.
#include "mpitrain/train/loop/checkpoint.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "../hdf5_errors.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "map_optimizer_state.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/strategy/optimizer_state.hpp"

namespace mpitrain::loop {

namespace h5 = hdf5_io;
namespace fs = std::filesystem;
using nlohmann::json;

using mpitrain::detail::translated;

namespace {

// "a/b/c" under `root`: groups a and a/b are created as needed, c is the dataset.
void write_named(H5::H5File& f, const std::string& root, const std::string& name, const at::Tensor& t) {
  const auto slash = name.rfind('/');
  H5::Group g = h5::require_group(f, slash == std::string::npos ? root : root + "/" + name.substr(0, slash));
  h5::write_tensor(g, slash == std::string::npos ? name : name.substr(slash + 1), t.detach().to(at::kCPU).contiguous());
}

// Every dataset under `g`, named by its path relative to the walk's root.
void read_all(const H5::Group& g, const std::string& prefix, std::map<std::string, at::Tensor>& out) {
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string n = g.getObjnameByIdx(i);
    if (g.getObjTypeByIdx(i) == H5G_GROUP) read_all(g.openGroup(n), prefix + n + "/", out);
    else out[prefix + n] = h5::read_tensor(g, n);
  }
}

// A replicated optimizer's state as checkpoint tensors: optimizer_state.hpp's interfaces over the map.
class MapOptimizerWriter final : public OptimizerStateWriter {
 public:
  MapOptimizerWriter(Checkpoint& c, std::string prefix) : c_(c), prefix_(std::move(prefix)) {}
  void write_header(const std::string& type, const json& groups) override {
    c_.state[prefix_] = {{"type", type}, {"param_groups", groups}};
  }
  void write_state(const std::string& param, const std::string& key, const at::Tensor& v) override {
    c_.tensors[prefix_ + "/" + param + "/" + key] = v.detach().to(at::kCPU).clone();
  }
  void write_archive(const std::string& bytes) override {
    c_.tensors[prefix_ + "/torch_archive"] =
        at::from_blob(const_cast<char*>(bytes.data()), {int64_t(bytes.size())}, at::kByte).clone();
  }

 private:
  Checkpoint& c_;
  std::string prefix_;
};

class MapOptimizerReader final : public OptimizerStateReader {
 public:
  MapOptimizerReader(const Checkpoint& c, std::string prefix) : c_(c), prefix_(std::move(prefix)) {}
  bool present() override { return c_.state.contains(prefix_); }
  std::string type() override { return header("type"); }
  json param_groups() override { return header("param_groups"); }
  std::vector<std::string> state_keys(const std::string& param) override {
    std::vector<std::string> keys;
    const std::string p = prefix_ + "/" + param + "/";
    for (auto it = c_.tensors.lower_bound(p); it != c_.tensors.end() && it->first.rfind(p, 0) == 0; ++it)
      if (it->first.find('/', p.size()) == std::string::npos) keys.push_back(it->first.substr(p.size()));
    return keys;
  }
  at::Tensor read_state(const std::string& param, const std::string& key) override {
    auto it = c_.tensors.find(prefix_ + "/" + param + "/" + key);
    if (it == c_.tensors.end()) throw CheckpointError(source() + ": no optimizer state " + param + "/" + key);
    return it->second.clone();  // the optimizer keeps it: never share storage with the checkpoint
  }
  std::string read_archive() override {
    auto it = c_.tensors.find(prefix_ + "/torch_archive");
    if (it == c_.tensors.end()) throw CheckpointError(source() + ": no " + prefix_ + "/torch_archive");
    const at::Tensor t = it->second.contiguous();
    return std::string(static_cast<const char*>(t.data_ptr()), size_t(t.numel()));
  }
  std::string source() override { return "checkpoint " + (c_.path.empty() ? std::string("(in memory)") : c_.path); }

 private:
  json header(const char* key) {
    const json& h = c_.state.at(prefix_);
    if (!h.is_object() || !h.contains(key)) throw CheckpointError(source() + ": state." + prefix_ + " has no '" + key + "'");
    return h.at(key);
  }

  const Checkpoint& c_;
  std::string prefix_;
};

std::string where(const Checkpoint& c) { return c.path.empty() ? "checkpoint" : "checkpoint " + c.path; }

}  // namespace

namespace detail {
std::unique_ptr<OptimizerStateWriter> optimizer_writer(Checkpoint& c, const std::string& prefix) {
  return std::make_unique<MapOptimizerWriter>(c, prefix);
}
std::unique_ptr<OptimizerStateReader> optimizer_reader(const Checkpoint& c, const std::string& prefix) {
  return std::make_unique<MapOptimizerReader>(c, prefix);
}
}  // namespace detail

void Checkpoint::add_module(const std::string& prefix, const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) tensors[prefix + "/" + p.key()] = p.value().detach().to(at::kCPU).clone();
  for (const auto& b : module.named_buffers()) tensors[prefix + "/" + b.key()] = b.value().detach().to(at::kCPU).clone();
}

void Checkpoint::load_module(const std::string& prefix, torch::nn::Module& module) const {
  std::vector<std::pair<at::Tensor, const at::Tensor*>> copies;  // all checked before any is changed
  auto match = [&](const std::string& name, const at::Tensor& dst) {
    auto it = tensors.find(prefix + "/" + name);
    if (it == tensors.end()) throw CheckpointError(where(*this) + " has no tensor '" + prefix + "/" + name + "'");
    if (it->second.sizes() != dst.sizes() || it->second.scalar_type() != dst.scalar_type())
      throw CheckpointError(where(*this) + ": '" + prefix + "/" + name + "' is " + c10::str(it->second.sizes()) + " " +
                            std::string(c10::toString(it->second.scalar_type())) + ", the module's is " +
                            c10::str(dst.sizes()) + " " + std::string(c10::toString(dst.scalar_type())));
    copies.emplace_back(dst, &it->second);
  };
  for (const auto& p : module.named_parameters()) match(p.key(), p.value());
  for (const auto& b : module.named_buffers()) match(b.key(), b.value());
  const std::string under = prefix + "/";  // strict: nothing under the prefix that the module lacks
  size_t n = 0;
  for (auto it = tensors.lower_bound(under); it != tensors.end() && it->first.rfind(under, 0) == 0; ++it) ++n;
  if (n != copies.size()) {
    std::set<const at::Tensor*> used;
    for (const auto& c : copies) used.insert(c.second);
    for (auto it = tensors.lower_bound(under); it != tensors.end() && it->first.rfind(under, 0) == 0; ++it)
      if (!used.count(&it->second))
        throw CheckpointError(where(*this) + ": '" + it->first + "' is not a parameter or buffer of the module");
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(*src);
}

void Checkpoint::add_optimizer(const std::string& prefix, torch::optim::Optimizer& optimizer, torch::nn::Module& module) {
  MapOptimizerWriter w(*this, prefix);
  write_optimizer_state(optimizer, module, w);
}

void Checkpoint::load_optimizer(const std::string& prefix, torch::optim::Optimizer& optimizer,
                                torch::nn::Module& module) const {
  MapOptimizerReader r(*this, prefix);
  if (!r.present()) throw CheckpointError(where(*this) + " has no optimizer state '" + prefix + "'");
  read_optimizer_state(optimizer, module, r);
}

Checkpoint Checkpoint::from_directory(const std::string& dir) {
  Checkpoint c;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw CheckpointError("checkpoint directory " + dir + " does not exist");
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in) throw CheckpointError("cannot read " + it->path().string());
    c.files[fs::relative(it->path(), dir).string()] = bytes.str();
  }
  if (ec) throw CheckpointError("cannot list " + dir + ": " + ec.message());
  return c;
}

std::string Checkpoint::to_directory(const std::string& dir) const {
  for (const auto& [rel, bytes] : files) {
    const fs::path r(rel);
    if (r.is_absolute() || std::find(r.begin(), r.end(), "..") != r.end())
      throw CheckpointError("checkpoint file '" + rel + "' is not a path inside the directory");
    const fs::path p = fs::path(dir) / r;
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw CheckpointError("cannot create " + p.parent_path().string() + ": " + ec.message());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw CheckpointError("cannot write " + p.string());
  }
  return dir;
}

void Checkpoint::save(const std::string& file) const {
  translated([&] {
    h5::CheckpointWriter w(file);
    H5::H5File& f = w.file();
    {
      H5::Group root = f.openGroup("/");
      h5::set_attribute(root, "kind", "loop");
      h5::set_attribute(root, "state", state.dump());
      h5::set_attribute(root, "metrics", mpitrain::detail::json_numbers(metrics).dump());
      h5::set_int_attribute(root, "index", index);
    }
    h5::require_group(f, "/tensors");
    for (const auto& [name, t] : tensors) {
      if (name.empty() || name.front() == '/' || name.back() == '/' || name.find("//") != std::string::npos)
        throw CheckpointError("tensor name '" + name + "' is not a path of names separated by '/'");
      write_named(f, "/tensors", name, t);
    }
    h5::require_group(f, "/files");
    for (const auto& [rel, bytes] : files)
      write_named(f, "/files", rel, at::from_blob(const_cast<char*>(bytes.data()), {int64_t(bytes.size())}, at::kByte));
    w.commit();
  });
}

Checkpoint Checkpoint::load(const std::string& file) {
  return translated([&] {
    H5::H5File f = h5::open_checkpoint(file);
    H5::Group root = f.openGroup("/");
    if (!h5::has_attribute(root, "kind") || h5::get_attribute(root, "kind") != "loop")
      throw CheckpointError("checkpoint " + file + " was not written by a training loop's report() (kind " +
                            (h5::has_attribute(root, "kind") ? h5::get_attribute(root, "kind") : std::string("?")) + ")");
    Checkpoint c;
    c.path = file;
    try {
      c.state = json::parse(h5::get_attribute(root, "state"));
      c.metrics = mpitrain::detail::numbers_from_json(json::parse(h5::get_attribute(root, "metrics")));
    } catch (const json::exception& e) {  // numbers_from_json throws mpitrain::CheckpointError itself
      throw CheckpointError("checkpoint " + file + ": bad state or metrics attribute (" + e.what() + ")");
    }
    c.index = h5::get_int_attribute(root, "index");
    read_all(f.openGroup("/tensors"), "", c.tensors);
    std::map<std::string, at::Tensor> files;
    read_all(f.openGroup("/files"), "", files);
    for (auto& [rel, t] : files) c.files[rel] = std::string(static_cast<const char*>(t.data_ptr()), size_t(t.numel()));
    return c;
  });
}

}  // namespace mpitrain::loop
