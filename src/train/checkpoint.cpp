// The HDF5 side of training checkpoints, both directions (the layout is in checkpoint.hpp); kept in
// one file, a little over 250 lines, so that what is written and what is read stay side by side.
#include "mpitrain/train/checkpoint.hpp"

#include <ATen/core/Generator.h>
#include <ATen/Context.h>

#include <map>
#include <sstream>

#include "hdf5_errors.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/version.hpp"

namespace mpitrain {

namespace h5 = hdf5_io;
using nlohmann::json;

using detail::translated;

namespace {

// /optimizer in HDF5: attributes type + param_groups, /optimizer/<parameter>/<key> datasets, or
// /optimizer/torch_archive. The first failure is kept for commit() (see CheckpointFileWriter).
class H5OptimizerWriter final : public OptimizerStateWriter {
 public:
  explicit H5OptimizerWriter(H5::H5File& f) : f_(f) {}
  void write_header(const std::string& type, const json& groups) override {
    guarded([&] {
      H5::Group g = f_.openGroup("/optimizer");
      h5::set_attribute(g, "type", type);
      h5::set_attribute(g, "param_groups", groups.dump());
    });
  }
  void write_state(const std::string& param, const std::string& key, const at::Tensor& t) override {
    guarded([&] {
      H5::Group g = f_.openGroup("/optimizer");
      H5::Group pg = g.nameExists(param) ? g.openGroup(param) : g.createGroup(param);
      h5::write_tensor(pg, key, t);
    });
  }
  void write_archive(const std::string& bytes) override {
    guarded([&] {
      H5::Group g = f_.openGroup("/optimizer");
      h5::write_tensor(g, "torch_archive",
                       at::from_blob(const_cast<char*>(bytes.data()), {int64_t(bytes.size())}, at::kByte));
    });
  }
  void rethrow_first_failure() const {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  template <class F>
  void guarded(F&& f) {
    if (failure_) return;
    try {
      translated(f);
    } catch (...) {
      failure_ = std::current_exception();
    }
  }
  H5::H5File& f_;
  std::exception_ptr failure_;
};

}  // namespace

at::Tensor rng_state() {
  auto gen = at::globalContext().defaultGenerator(at::kCPU);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const at::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(at::kCPU);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

struct CheckpointFileWriter::Impl {
  explicit Impl(const std::string& path) : file(path), optimizer(file.file()) {}
  h5::CheckpointWriter file;
  H5OptimizerWriter optimizer;
};

CheckpointFileWriter::CheckpointFileWriter(const std::string& path, torch::nn::Module& module, const TrainerState& st,
                                           int64_t scheduler_steps, const std::vector<at::Tensor>& rng_states,
                                           const CheckpointMeta& meta) {
  translated([&] {
    impl_ = std::make_unique<Impl>(path);
    H5::H5File& f = impl_->file.file();
    H5::Group root = f.openGroup("/");
    h5::set_attribute(root, "kind", "full");
    h5::set_attribute(root, "library_version", MPITRAIN_VERSION);
    h5::set_attribute(root, "module", meta.module);
    h5::set_attribute(root, "config", meta.config.dump());
    h5::set_attribute(root, "trainer_options", meta.trainer_options.dump());
    h5::set_attribute(root, "strategy", meta.strategy);
    h5::set_int_attribute(root, "world_size", meta.world_size);
    H5::Group model = h5::require_group(f, "/model"), buffers = h5::require_group(f, "/buffers");
    for (const auto& p : module.named_parameters()) h5::write_tensor(model, p.key(), p.value());
    for (const auto& b : module.named_buffers()) h5::write_tensor(buffers, b.key(), b.value());
    h5::require_group(f, "/optimizer");
    H5::Group trainer = h5::require_group(f, "/trainer");
    h5::set_int_attribute(trainer, "epoch", st.epoch);
    h5::set_int_attribute(trainer, "batch_in_epoch", st.batch_in_epoch);
    h5::set_int_attribute(trainer, "global_step", st.global_step);
    h5::set_int_attribute(trainer, "scheduler_steps", scheduler_steps);
    h5::set_attribute(trainer, "state", st.extra.dump());
    H5::Group rng = h5::require_group(f, "/rng");
    for (size_t r = 0; r < rng_states.size(); ++r) h5::write_tensor(rng, "rank_" + std::to_string(r), rng_states[r]);
  });
}

CheckpointFileWriter::~CheckpointFileWriter() = default;

OptimizerStateWriter& CheckpointFileWriter::optimizer() { return impl_->optimizer; }

void CheckpointFileWriter::commit() {
  impl_->optimizer.rethrow_first_failure();
  translated([&] { impl_->file.commit(); });  // every group handle above is closed by now
}

void save_checkpoint(const std::string& path, Module& module, const Optimizers& optim, const TrainerState& st,
                     const std::vector<at::Tensor>& rng_states, const CheckpointMeta& meta) {
  CheckpointFileWriter w(path, module, st, optim.scheduler ? optim.scheduler->steps() : 0, rng_states, meta);
  if (optim.optimizer) write_optimizer_state(*optim.optimizer, module, w.optimizer());
  w.commit();
}

namespace {

json parse_attr(const H5::H5Object& o, const std::string& name, const std::string& path) {
  try {
    return json::parse(h5::get_attribute(o, name));
  } catch (const json::exception&) {
    throw CheckpointError("checkpoint " + path + ": attribute '" + name + "' of " + o.getObjName() + " is not valid JSON");
  }
}

// Reads every tensor of `group` that `expected` names, checking shape and dtype; extra datasets
// in the file are an error too (a checkpoint of another model).
std::map<std::string, at::Tensor> read_matching(const H5::H5File& f, const std::string& group, const std::string& path,
                                                const std::vector<std::pair<std::string, at::Tensor>>& expected) {
  std::map<std::string, at::Tensor> out;
  if (!f.nameExists(group)) {
    if (expected.empty()) return out;
    throw CheckpointError("checkpoint " + path + " has no group " + group);
  }
  H5::Group g = f.openGroup(group);
  for (const auto& [name, t] : expected) {
    if (!g.nameExists(name))
      throw CheckpointError("checkpoint " + path + " has no dataset " + group + "/" + name +
                            " (saved from another model?)");
    at::Tensor v = h5::read_tensor(g, name);
    if (v.sizes() != t.sizes())
      throw CheckpointError("checkpoint " + path + ": dataset " + group + "/" + name + " has shape " + c10::str(v.sizes()) +
                            ", the model expects " + c10::str(t.sizes()) + " (saved from another model?)");
    if (v.scalar_type() != t.scalar_type())
      throw CheckpointError("checkpoint " + path + ": dataset " + group + "/" + name + " has dtype " +
                            c10::toString(v.scalar_type()) + ", the model expects " + c10::toString(t.scalar_type()));
    out[name] = v;
  }
  if (g.getNumObjs() != expected.size())
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const std::string n = g.getObjnameByIdx(i);
      if (!out.count(n))
        throw CheckpointError("checkpoint " + path + " has dataset " + group + "/" + n +
                              " that the model does not have (saved from another model?)");
    }
  return out;
}

template <class Items>
std::vector<std::pair<std::string, at::Tensor>> pairs(const Items& items) {
  std::vector<std::pair<std::string, at::Tensor>> v;
  for (const auto& i : items) v.emplace_back(i.key(), i.value());
  return v;
}

class H5OptimizerReader final : public OptimizerStateReader {
 public:
  H5OptimizerReader(const H5::H5File& f, std::string path) : f_(f), path_(std::move(path)) {}
  bool present() override { return f_.nameExists("/optimizer"); }
  std::string type() override { return h5::get_attribute(group(), "type"); }
  json param_groups() override { return parse_attr(group(), "param_groups", path_); }
  std::vector<std::string> state_keys(const std::string& param) override {
    std::vector<std::string> keys;
    H5::Group g = group();
    if (!g.nameExists(param)) return keys;
    H5::Group pg = g.openGroup(param);
    for (hsize_t j = 0; j < pg.getNumObjs(); ++j) keys.push_back(pg.getObjnameByIdx(j));
    return keys;
  }
  at::Tensor read_state(const std::string& param, const std::string& key) override {
    return h5::read_tensor(group().openGroup(param), key);
  }
  std::string read_archive() override {
    at::Tensor blob = h5::read_tensor(group(), "torch_archive");
    return std::string(static_cast<const char*>(blob.data_ptr()), size_t(blob.numel()));
  }
  std::string source() override { return "checkpoint " + path_; }

 private:
  H5::Group group() const { return f_.openGroup("/optimizer"); }
  const H5::H5File& f_;
  std::string path_;
};

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, int rank,
                                 const std::function<void(OptimizerStateReader&)>& load_optimizer, LRScheduler* scheduler) {
  return translated([&] {
    LoadedCheckpoint out;
    H5::H5File f = h5::open_checkpoint(path);
    H5::Group root = f.openGroup("/");
    out.weights_only = h5::has_attribute(root, "kind") && h5::get_attribute(root, "kind") == "weights";
    if (h5::has_attribute(root, "module")) out.meta.module = h5::get_attribute(root, "module");
    if (h5::has_attribute(root, "config")) out.meta.config = parse_attr(root, "config", path);
    if (h5::has_attribute(root, "world_size")) out.meta.world_size = int(h5::get_int_attribute(root, "world_size"));
    if (h5::has_attribute(root, "strategy")) out.meta.strategy = h5::get_attribute(root, "strategy");
    auto params = read_matching(f, "/model", path, pairs(module.named_parameters()));
    auto buffers = read_matching(f, "/buffers", path, pairs(module.named_buffers()));
    if (load_optimizer) {
      if (out.weights_only)
        throw CheckpointError("checkpoint " + path + " holds weights only (mpitrain-ckpt export); it cannot resume training");
      H5::Group t = f.openGroup("/trainer");
      out.state.epoch = h5::get_int_attribute(t, "epoch");
      out.state.batch_in_epoch = h5::get_int_attribute(t, "batch_in_epoch");
      out.state.global_step = h5::get_int_attribute(t, "global_step");
      out.state.extra = parse_attr(t, "state", path);
      const int64_t sched = h5::get_int_attribute(t, "scheduler_steps");
      const std::string rng_name = "rank_" + std::to_string(rank);
      if (f.nameExists("/rng") && f.openGroup("/rng").nameExists(rng_name))
        out.rng_state = h5::read_tensor(f.openGroup("/rng"), rng_name);
      H5OptimizerReader reader(f, path);
      load_optimizer(reader);  // validates before it changes anything
      if (scheduler) scheduler->set_steps(sched);
    }
    torch::NoGradGuard no_grad;
    for (auto& p : module.named_parameters()) p.value().copy_(params.at(p.key()));
    for (auto& b : module.named_buffers()) b.value().copy_(buffers.at(b.key()));
    return out;
  });
}

LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, const Optimizers* optim, int rank) {
  if (!optim || !optim->optimizer) return load_checkpoint(path, module, rank, nullptr);
  return load_checkpoint(
      path, module, rank, [&](OptimizerStateReader& r) { read_optimizer_state(*optim->optimizer, module, r); },
      optim->scheduler.get());
}

}  // namespace mpitrain
