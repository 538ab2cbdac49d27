#include "mpitrain/train/checkpoint.hpp"

#include <ATen/core/Generator.h>
#include <ATen/Context.h>

#include <map>
#include <sstream>

#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/version.hpp"

namespace mpitrain {

namespace h5 = hdf5_io;
using nlohmann::json;

namespace {

// hdf5_io is a library of its own with its own error type; callers of mpitrain see one family.
template <class F>
auto translated(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const h5::CheckpointError& e) {
    throw CheckpointError(e.what());
  } catch (const H5::Exception& e) {
    throw CheckpointError("HDF5 error in " + e.getFuncName() + ": " + e.getDetailMsg());
  }
}

std::string impl_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

std::map<const c10::TensorImpl*, std::string> parameter_names(torch::nn::Module& m) {
  std::map<const c10::TensorImpl*, std::string> names;
  for (const auto& p : m.named_parameters()) names[p.value().unsafeGetTensorImpl()] = p.key();
  return names;
}

// ---- optimizer options <-> JSON (the optimizers LibTorch ships that have per-parameter state
// worth naming; others are kept as a LibTorch archive blob).
json options_json(const torch::optim::OptimizerOptions& o, std::string& type) {
  if (auto* s = dynamic_cast<const torch::optim::SGDOptions*>(&o)) {
    type = "sgd";
    return {{"lr", s->lr()}, {"momentum", s->momentum()}, {"dampening", s->dampening()},
            {"weight_decay", s->weight_decay()}, {"nesterov", s->nesterov()}};
  }
  auto adam_like = [](const auto& a) {
    return json{{"lr", a.lr()},   {"beta1", std::get<0>(a.betas())}, {"beta2", std::get<1>(a.betas())},
                {"eps", a.eps()}, {"weight_decay", a.weight_decay()}, {"amsgrad", a.amsgrad()}};
  };
  if (auto* a = dynamic_cast<const torch::optim::AdamWOptions*>(&o)) {
    type = "adamw";
    return adam_like(*a);
  }
  if (auto* a = dynamic_cast<const torch::optim::AdamOptions*>(&o)) {
    type = "adam";
    return adam_like(*a);
  }
  type = "other";
  return json::object();
}

void apply_options(torch::optim::OptimizerOptions& o, const json& j) {
  if (auto* s = dynamic_cast<torch::optim::SGDOptions*>(&o)) {
    s->lr(j.at("lr")).momentum(j.at("momentum")).dampening(j.at("dampening"));
    s->weight_decay(j.at("weight_decay")).nesterov(j.at("nesterov"));
    return;
  }
  auto adam_like = [&j](auto& a) {
    a.lr(j.at("lr")).eps(j.at("eps")).weight_decay(j.at("weight_decay")).amsgrad(j.at("amsgrad"));
    a.betas(std::make_tuple(j.at("beta1").get<double>(), j.at("beta2").get<double>()));
  };
  if (auto* a = dynamic_cast<torch::optim::AdamWOptions*>(&o)) return adam_like(*a);
  if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&o)) return adam_like(*a);
}

// Per-parameter optimizer state as named tensors (step counters become int64 scalars).
std::map<std::string, at::Tensor> state_tensors(const torch::optim::OptimizerParamState& st) {
  std::map<std::string, at::Tensor> out;
  auto put = [&out](const char* k, const at::Tensor& t) {
    if (t.defined()) out[k] = t;
  };
  if (auto* s = dynamic_cast<const torch::optim::SGDParamState*>(&st)) put("momentum_buffer", s->momentum_buffer());
  auto adam_like = [&](const auto& a) {
    out["step"] = at::scalar_tensor(a.step(), at::kLong);
    put("exp_avg", a.exp_avg());
    put("exp_avg_sq", a.exp_avg_sq());
    put("max_exp_avg_sq", a.max_exp_avg_sq());
  };
  if (auto* a = dynamic_cast<const torch::optim::AdamWParamState*>(&st)) adam_like(*a);
  else if (auto* a = dynamic_cast<const torch::optim::AdamParamState*>(&st)) adam_like(*a);
  return out;
}

std::unique_ptr<torch::optim::OptimizerParamState> make_state(const std::string& type,
                                                             const std::map<std::string, at::Tensor>& t) {
  auto get = [&t](const char* k) { return t.count(k) ? t.at(k) : at::Tensor(); };
  if (type == "sgd") {
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(get("momentum_buffer"));
    return s;
  }
  auto fill = [&](auto& a) {
    a.step(get("step").defined() ? get("step").template item<int64_t>() : 0);
    a.exp_avg(get("exp_avg"));
    a.exp_avg_sq(get("exp_avg_sq"));
    if (get("max_exp_avg_sq").defined()) a.max_exp_avg_sq(get("max_exp_avg_sq"));
  };
  if (type == "adamw") {
    auto a = std::make_unique<torch::optim::AdamWParamState>();
    fill(*a);
    return a;
  }
  auto a = std::make_unique<torch::optim::AdamParamState>();
  fill(*a);
  return a;
}

void write_optimizer(H5::H5File& f, torch::nn::Module& m, const Optimizers& optim) {
  H5::Group g = h5::require_group(f, "/optimizer");
  if (!optim.optimizer) return;
  auto& opt = *optim.optimizer;
  const auto names = parameter_names(m);
  std::string type = "none";
  json groups = json::array();
  for (const auto& pg : opt.param_groups()) {
    json params = json::array();
    for (const auto& p : pg.params()) {
      auto it = names.find(p.unsafeGetTensorImpl());
      if (it == names.end()) throw CheckpointError("the optimizer holds a tensor that is not a parameter of the module");
      params.push_back(it->second);
    }
    groups.push_back({{"options", options_json(pg.options(), type)}, {"params", params}});
  }
  h5::set_attribute(g, "type", type);
  h5::set_attribute(g, "param_groups", groups.dump());
  if (type == "other") {  // unknown optimizer: LibTorch's own serialisation, as an opaque blob
    torch::serialize::OutputArchive archive;
    opt.save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    const std::string s = bytes.str();
    h5::write_tensor(g, "torch_archive", at::from_blob(const_cast<char*>(s.data()), {int64_t(s.size())}, at::kByte));
    return;
  }
  for (const auto& pg : opt.param_groups())
    for (const auto& p : pg.params()) {
      auto st = opt.state().find(impl_key(p));
      if (st == opt.state().end()) continue;  // not stepped yet
      H5::Group pgp = g.createGroup(names.at(p.unsafeGetTensorImpl()));
      for (const auto& [k, t] : state_tensors(*st->second)) h5::write_tensor(pgp, k, t);
    }
}

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

void save_checkpoint(const std::string& path, Module& module, const Optimizers& optim, const TrainerState& st,
                     const std::vector<at::Tensor>& rng_states, const CheckpointMeta& meta) {
  translated([&] {
    h5::CheckpointWriter w(path);
    {  // every group handle closed before commit()
      H5::H5File& f = w.file();
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
      write_optimizer(f, module, optim);
      H5::Group trainer = h5::require_group(f, "/trainer");
      h5::set_int_attribute(trainer, "epoch", st.epoch);
      h5::set_int_attribute(trainer, "batch_in_epoch", st.batch_in_epoch);
      h5::set_int_attribute(trainer, "global_step", st.global_step);
      h5::set_int_attribute(trainer, "scheduler_steps", optim.scheduler ? optim.scheduler->steps() : 0);
      h5::set_attribute(trainer, "state", st.extra.dump());
      H5::Group rng = h5::require_group(f, "/rng");
      for (size_t r = 0; r < rng_states.size(); ++r) h5::write_tensor(rng, "rank_" + std::to_string(r), rng_states[r]);
    }
    w.commit();
  });
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

void read_optimizer(const H5::H5File& f, torch::nn::Module& m, const Optimizers& optim, const std::string& path) {
  auto& opt = *optim.optimizer;
  if (!f.nameExists("/optimizer")) throw CheckpointError("checkpoint " + path + " has no group /optimizer");
  H5::Group g = f.openGroup("/optimizer");
  const std::string type = h5::get_attribute(g, "type");
  std::string mine = "none";
  for (const auto& pg : opt.param_groups()) options_json(pg.options(), mine);
  if (type != mine)
    throw CheckpointError("checkpoint " + path + ": /optimizer holds " + type + " state, the run uses " + mine);
  if (type == "other") {
    at::Tensor blob = h5::read_tensor(g, "torch_archive");
    std::istringstream bytes(std::string(static_cast<const char*>(blob.data_ptr()), size_t(blob.numel())));
    torch::serialize::InputArchive archive;
    archive.load_from(bytes);
    opt.load(archive);
    return;
  }
  const json groups = parse_attr(g, "param_groups", path);
  if (groups.size() != opt.param_groups().size())
    throw CheckpointError("checkpoint " + path + ": /optimizer has " + std::to_string(groups.size()) +
                          " param groups, the run has " + std::to_string(opt.param_groups().size()));
  const auto names = parameter_names(m);
  // Read everything first; apply only when all of it is there and well-formed.
  std::vector<std::pair<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>> states;
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& params = opt.param_groups()[i].params();
    const json& saved = groups[i].at("params");
    if (saved.size() != params.size())
      throw CheckpointError("checkpoint " + path + ": optimizer param group " + std::to_string(i) + " has " +
                            std::to_string(saved.size()) + " parameters, the run has " + std::to_string(params.size()));
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string name = names.at(params[k].unsafeGetTensorImpl());
      if (saved[k] != name)
        throw CheckpointError("checkpoint " + path + ": optimizer parameter " + saved[k].dump() + " where the run has \"" +
                              name + "\" (saved from another model?)");
      if (!g.nameExists(name)) continue;  // never stepped
      H5::Group pg = g.openGroup(name);
      std::map<std::string, at::Tensor> t;
      for (hsize_t j = 0; j < pg.getNumObjs(); ++j) {
        const std::string key = pg.getObjnameByIdx(j);
        t[key] = h5::read_tensor(pg, key);
        if (key != "step" && t[key].sizes() != params[k].sizes())
          throw CheckpointError("checkpoint " + path + ": dataset /optimizer/" + name + "/" + key + " has shape " +
                                c10::str(t[key].sizes()) + ", the parameter has " + c10::str(params[k].sizes()));
      }
      for (const char* required : type == "sgd" ? std::vector<const char*>{"momentum_buffer"}
                                                 : std::vector<const char*>{"step", "exp_avg", "exp_avg_sq"})
        if (!t.count(required))
          throw CheckpointError("checkpoint " + path + " has no dataset /optimizer/" + name + "/" + required);
      states.emplace_back(impl_key(params[k]), make_state(type, t));
    }
  }
  for (size_t i = 0; i < groups.size(); ++i) apply_options(opt.param_groups()[i].options(), groups[i].at("options"));
  opt.state().clear();
  for (auto& [k, s] : states) opt.state()[k] = std::move(s);
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path, torch::nn::Module& module, const Optimizers* optim, int rank) {
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
    if (optim && optim->optimizer) {
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
      read_optimizer(f, module, *optim, path);  // validates before it changes anything
      if (optim->scheduler) optim->scheduler->set_steps(sched);
    }
    torch::NoGradGuard no_grad;
    for (auto& p : module.named_parameters()) p.value().copy_(params.at(p.key()));
    for (auto& b : module.named_buffers()) b.value().copy_(buffers.at(b.key()));
    return out;
  });
}

}  // namespace mpitrain
