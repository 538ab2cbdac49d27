// LibTorch optimizers <-> named state. SGD, Adam and AdamW have per-parameter state worth naming
// (readable from h5py, loadable into PyTorch); any other optimizer travels as LibTorch's archive.
#include "mpitrain/strategy/optimizer_state.hpp"

#include <torch/optim.h>
#include <torch/serialize.h>

#include <map>
#include <memory>
#include <sstream>

#include "mpitrain/errors.hpp"
#include "param_state.hpp"

namespace mpitrain {

using nlohmann::json;

namespace {

std::string impl_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

std::map<const c10::TensorImpl*, std::string> parameter_names(torch::nn::Module& m) {
  std::map<const c10::TensorImpl*, std::string> names;
  for (const auto& p : m.named_parameters()) names[p.value().unsafeGetTensorImpl()] = p.key();
  return names;
}

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

}  // namespace

namespace detail {

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

std::string optimizer_type(torch::optim::Optimizer& opt) {
  std::string type = "none";
  for (const auto& pg : opt.param_groups()) options_json(pg.options(), type);
  return type;
}

}  // namespace detail

using detail::make_state;
using detail::state_tensors;

void write_optimizer_state(torch::optim::Optimizer& opt, torch::nn::Module& m, OptimizerStateWriter& out) {
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
  out.write_header(type, groups);
  if (type == "other") {  // unknown optimizer: LibTorch's own serialisation, as an opaque blob
    torch::serialize::OutputArchive archive;
    opt.save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    out.write_archive(bytes.str());
    return;
  }
  for (const auto& pg : opt.param_groups())
    for (const auto& p : pg.params()) {
      auto st = opt.state().find(impl_key(p));
      if (st == opt.state().end()) continue;  // not stepped yet
      for (const auto& [k, t] : state_tensors(*st->second)) out.write_state(names.at(p.unsafeGetTensorImpl()), k, t);
    }
}

void read_optimizer_state(torch::optim::Optimizer& opt, torch::nn::Module& m, OptimizerStateReader& in) {
  const std::string src = in.source();
  if (!in.present()) throw CheckpointError(src + " has no group /optimizer");
  const std::string type = in.type(), mine = detail::optimizer_type(opt);
  if (type != mine) throw CheckpointError(src + ": /optimizer holds " + type + " state, the run uses " + mine);
  if (type == "other") {
    std::istringstream bytes(in.read_archive());
    torch::serialize::InputArchive archive;
    archive.load_from(bytes);
    opt.load(archive);
    return;
  }
  const json groups = in.param_groups();
  if (groups.size() != opt.param_groups().size())
    throw CheckpointError(src + ": /optimizer has " + std::to_string(groups.size()) + " param groups, the run has " +
                          std::to_string(opt.param_groups().size()));
  const auto names = parameter_names(m);
  // Read everything first; apply only when all of it is there and well-formed.
  std::vector<std::pair<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>> states;
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& params = opt.param_groups()[i].params();
    const json& saved = groups[i].at("params");
    if (saved.size() != params.size())
      throw CheckpointError(src + ": optimizer param group " + std::to_string(i) + " has " + std::to_string(saved.size()) +
                            " parameters, the run has " + std::to_string(params.size()));
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string name = names.at(params[k].unsafeGetTensorImpl());
      if (saved[k] != name)
        throw CheckpointError(src + ": optimizer parameter " + saved[k].dump() + " where the run has \"" + name +
                              "\" (saved from another model?)");
      const auto keys = in.state_keys(name);
      if (keys.empty()) continue;  // never stepped
      std::map<std::string, at::Tensor> t;
      for (const auto& key : keys) {
        t[key] = in.read_state(name, key);  // host memory; the state lives where its parameter does
        if (key != "step" && t[key].device() != params[k].device()) t[key] = t[key].to(params[k].device());
        if (key != "step" && t[key].sizes() != params[k].sizes())
          throw CheckpointError(src + ": dataset /optimizer/" + name + "/" + key + " has shape " +
                                c10::str(t[key].sizes()) + ", the parameter has " + c10::str(params[k].sizes()));
        // Saved contiguous; kept with the parameter's strides (channels-last), as a fresh step makes it.
        if (key != "step" && t[key].strides() != params[k].strides()) t[key] = torch::empty_like(params[k]).copy_(t[key]);
      }
      for (const char* required : type == "sgd" ? std::vector<const char*>{"momentum_buffer"}
                                                 : std::vector<const char*>{"step", "exp_avg", "exp_avg_sq"})
        if (!t.count(required)) throw CheckpointError(src + " has no dataset /optimizer/" + name + "/" + required);
      states.emplace_back(impl_key(params[k]), make_state(type, t));
    }
  }
  for (size_t i = 0; i < groups.size(); ++i) apply_options(opt.param_groups()[i].options(), groups[i].at("options"));
  opt.state().clear();
  for (auto& [k, s] : states) opt.state()[k] = std::move(s);
}

}  // namespace mpitrain
