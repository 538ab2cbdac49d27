// mpitrain-bench adam: one optimizer step of torch::optim::Adam against mpitrain::optim::Adam
// (the fused one-pass update) on the parameters of a model (ResNet-18 by default), in both
// layouts of its 4-D weights, in interleaved rounds of the same run. Both start from the same
// parameters and see the same gradients, so the largest parameter difference at the end is
// the fused pass's rounding against torch's: the run fails if it exceeds --tolerance per step
// (rounding moves a parameter by about an ulp per step at most; a wrong term, by about lr).
#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <torch/torch.h>

#include "bench_common.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/models/models.hpp"
#include "mpitrain/strategy/optim/adam.hpp"
#include "mpitrain/train/placement.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV; '#' lines are comments):
  case           torch:    torch::optim::Adam (LibTorch 1.13: eight element-wise ops per parameter)
                 mpitrain: mpitrain::optim::Adam (one fused pass per parameter, same options and state)
  memory_format  layout of the 4-D weights, their gradients and moments: contiguous | channels_last
  elements       parameter elements updated per step
  step_ms        median over --repeats rounds of the mean milliseconds per step
  vs_torch       median over rounds of torch's step_ms / mpitrain's in the same round (> 1: mpitrain faster)
  max_abs_diff   largest |torch - mpitrain| over all parameters, checked after each round
                 (the run fails when it exceeds --tolerance x the steps taken))";

using clock_type = std::chrono::steady_clock;

// Leaf copies of `params` laid out as the Trainer lays them out (Placement: 4-D tensors NHWC for
// channels_last, the one-channel stem too), each with a fixed gradient laid out like it.
std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                                  torch::MemoryFormat format) {
  const Placement place{torch::kCPU, format};
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = place.apply(params[i]).clone(torch::MemoryFormat::Preserve).requires_grad_(true);
    p.mutable_grad() = place.apply(grads[i]).clone(torch::MemoryFormat::Preserve);
    out.push_back(p);
  }
  return out;
}

double mean_step_ms(torch::optim::Optimizer& opt, int steps) {
  const auto t0 = clock_type::now();
  for (int s = 0; s < steps; ++s) opt.step();
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count() / steps;
}

double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i].detach() - b[i].detach()).abs().max().item<double>());
  return d;
}

}  // namespace

int run_adam(const std::vector<std::string>& args, bool spmd) {
  std::string model = "resnet18", formats = "contiguous,channels_last";
  int steps = 20, repeats = 5, warmup = 2, threads = 1;
  double lr = 1e-3, tolerance = 1e-6;
  po::options_description desc("mpitrain-bench adam [options] (run alone)");
  desc.add_options()("help,h", "show this help")
      ("model", po::value(&model)->default_value(model), "whose parameters: resnet18 (the seed's, 1 channel) | resnet18-cifar | lenet | mlp")
      ("memory-formats", po::value(&formats)->default_value(formats), "comma-separated: contiguous, channels_last")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per case and round")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed steps per case before the first round (state allocation)")
      ("repeats", po::value(&repeats)->default_value(repeats), "interleaved rounds (medians reported)")
      ("threads", po::value(&threads)->default_value(threads), "intra-op threads (the seed runs 1 per worker)")
      ("lr", po::value(&lr)->default_value(lr), "Adam's learning rate (the seed's 1e-3)")
      ("tolerance", po::value(&tolerance)->default_value(tolerance), "fail when max_abs_diff exceeds this times the steps taken (float rounding: ~1e-8 per step; an error in the update: ~lr)");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (spmd) throw UsageError("adam runs alone, not under mpirun/srun");
  if (steps < 1 || repeats < 1 || warmup < 0 || threads < 1)
    throw UsageError("--steps, --repeats and --threads must be at least 1, --warmup at least 0");
  const std::vector<std::string> layouts = split(formats, ',');
  for (auto& f : layouts)
    if (f != "contiguous" && f != "channels_last")
      throw UsageError("--memory-formats takes contiguous and/or channels_last (got '" + f + "')");
  if (layouts.empty()) throw UsageError("--memory-formats is empty");
  at::set_num_threads(threads);

  torch::manual_seed(0);
  auto net = models::make_model(model, 1, 28, 10);  // ConfigError names the models on a bad name
  std::vector<torch::Tensor> params, grads;
  int64_t elements = 0;
  for (auto& p : net->parameters()) {
    params.push_back(p.detach());
    grads.push_back(torch::randn_like(p) * 1e-2);
    elements += p.numel();
  }

  std::cout << "# mpitrain-bench adam: " << model << ", " << params.size() << " parameters, " << elements
            << " elements, lr " << lr << ", " << threads << " thread(s), " << steps << " steps x " << repeats
            << " rounds\n";
  std::cout << "case,memory_format,elements,step_ms,vs_torch,max_abs_diff\n";
  int failures = 0;
  for (const std::string& layout : layouts) {
    const char* name = layout.c_str();
    auto a = copies(params, grads, parse_memory_format(layout)), b = copies(params, grads, parse_memory_format(layout));
    torch::optim::Adam theirs(a, torch::optim::AdamOptions(lr));
    mpitrain::optim::Adam ours(b, torch::optim::AdamOptions(lr));
    for (int w = 0; w < warmup; ++w) theirs.step(), ours.step();
    std::vector<double> t_theirs, t_ours, ratio;
    double diff = 0;
    for (int r = 0; r < repeats; ++r) {  // alternate who goes first: drift on a shared machine hits both
      if (r % 2 == 0) {
        t_theirs.push_back(mean_step_ms(theirs, steps));
        t_ours.push_back(mean_step_ms(ours, steps));
      } else {
        t_ours.push_back(mean_step_ms(ours, steps));
        t_theirs.push_back(mean_step_ms(theirs, steps));
      }
      ratio.push_back(t_theirs.back() / t_ours.back());
      diff = std::max(diff, max_abs_diff(a, b));
    }
    std::cout << format("torch,%s,%lld,%.3f,,\n", name, (long long)elements, median(t_theirs));
    std::cout << format("mpitrain,%s,%lld,%.3f,%.2f,%.1e\n", name, (long long)elements, median(t_ours), median(ratio), diff);
    const int taken = warmup + steps * repeats;
    if (!(diff <= tolerance * taken)) {
      std::cerr << "mpitrain-bench adam: error: " << name << ": mpitrain's Adam differs from torch's by " << diff
                << " after " << taken << " steps (> --tolerance " << tolerance << " per step)\n";
      ++failures;
    }
  }
  return failures ? 1 : 0;
}

}  // namespace mpitrain::bench
