// Worker side of Trainer::validate / test (and the evaluation pass fit shares), resolving
// ckpt_path, and the entry points of the fit and evaluation jobs.
#include <filesystem>

#include "fit_loop.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/launch/registry.hpp"
#include "rank_agreement.hpp"
#include "seeds.hpp"

namespace mpitrain {

namespace detail {

std::unique_ptr<DataLoader> loader_for(const std::shared_ptr<Dataset>& ds, int n, int rank, int64_t batch) {
  if (!ds) return nullptr;
  return std::make_unique<DataLoader>(ds, sampler_for(*ds, n, rank, false, 0), batch);
}

DistributedSampler sampler_for(const Dataset& ds, int n, int rank, bool shuffle, uint64_t seed) {
  if (ds.rank_local()) return DistributedSampler(ds.size(), 1, 0, shuffle, detail::mix_seed(seed, rank, -1));
  return DistributedSampler(ds.size(), n, rank, shuffle, seed);
}

void run_evaluation(Module& m, DataLoader& loader, bool is_test, int64_t limit, const Placement& placement) {
  torch::NoGradGuard no_grad;
  m.eval();
  auto epoch = loader.epoch();
  const int64_t nb = limit < 0 ? loader.batches_per_epoch() : std::min(limit, loader.batches_per_epoch());
  for (int64_t b = 0; b < nb; ++b) {
    const Batch batch = placement.apply(*epoch->next());
    if (is_test) m.test_step(batch, b);
    else m.validation_step(batch, b);
  }
  m.train();
}

}  // namespace detail

std::string resolve_checkpoint_path(const std::string& ckpt_path, const std::string& dir) {
  if (ckpt_path.empty()) return "";
  if (ckpt_path == "latest" || ckpt_path == "auto") {
    const std::string latest = hdf5_io::read_latest(dir);
    if (latest.empty() && std::filesystem::exists(dir + "/latest"))  // never restart over a damaged pointer
      throw CheckpointError(dir + "/latest is empty or unreadable: name the checkpoint to resume from, or remove it");
    if (latest.empty()) {
      if (ckpt_path == "auto") return "";
      throw CheckpointError("no checkpoint to resume from: " + dir + "/latest does not exist");
    }
    if (!std::filesystem::exists(latest)) throw CheckpointError(dir + "/latest names " + latest + ", which does not exist");
    return latest;
  }
  if (!std::filesystem::exists(ckpt_path)) throw CheckpointError("checkpoint " + ckpt_path + " does not exist");
  return ckpt_path;
}

FitResult Trainer::run(Module& m, const TrainerOptions& o, TaskContext& ctx, const FitInfo& info) {
  return detail::FitLoop(m, o, ctx, info).run();
}

FitResult Trainer::evaluate(Module& m, const TrainerOptions& o, TaskContext& ctx, const std::string& stage,
                            const std::string& ckpt_path) {
  o.validate();
  const int rank = ctx.rank(), n = ctx.world_size();
  MetricSink sink;
  detail::ModuleAccess::bind(m, &sink, rank, n);
  const Placement placement{torch::Device(ctx.env().device), parse_memory_format(o.memory_format)};
  EngineOptions fifo;
  fifo.mode = EngineMode::Fifo;  // evaluation needs no named collectives
  Engine engine(ctx.comm(), fifo);
  FitResult r;
  std::unique_ptr<DataLoader> loader;
  detail::on_every_rank(engine, [&] {  // bad input fails alike on every rank, and is reported once
    placement.apply(m);
    r.checkpoint = resolve_checkpoint_path(ckpt_path, o.checkpoint_dir());
    if (!r.checkpoint.empty()) load_checkpoint(r.checkpoint, m, nullptr, rank);
    DataLoaders dl = m.dataloaders();
    if (dl.batch_size < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(dl.batch_size) + ")");
    loader = detail::loader_for(stage == "test" ? dl.test : dl.val, n, rank, dl.batch_size);
    if (!loader) throw ConfigError("dataloaders(): no " + std::string(stage == "test" ? "test" : "validation") + " dataset");
  });
  try {
    detail::run_evaluation(m, *loader, stage == "test", stage == "test" ? -1 : o.limit_val_batches, placement);
  } catch (const std::exception&) {
    detail::fail_fast_unless_agreed(ctx.env().role == Role::Spmd);  // one rank's failure ends an SPMD job at once
    throw;
  }
  r.metrics = sink.reduce_epoch(engine);
  for (auto& [k, v] : r.metrics) ctx.report_metric(k, v);
  return r;
}

namespace {

std::shared_ptr<Module> build_module(const nlohmann::json& p, const TrainerOptions& o) {
  // LibTorch's default generator starts from a random seed: seed it before the module builds its
  // layers, the same on every rank, so initialisation is reproducible (DDP then broadcasts rank 0's).
  torch::manual_seed(detail::mix_seed(o.seed, -1, -1));
  return create_module(p.at("module"), p.value("config", Config::object()));
}

nlohmann::json fit_entry(TaskContext& ctx, const nlohmann::json& p) {
  const TrainerOptions o = TrainerOptions::from_json(p.at("trainer"));
  auto module = build_module(p, o);
  return to_json(Trainer::run(*module, o, ctx, {p.at("module"), p.value("config", Config::object()), p.value("ckpt_path", "")}));
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.fit", fit_entry);

nlohmann::json evaluate_entry(TaskContext& ctx, const nlohmann::json& p) {
  const TrainerOptions o = TrainerOptions::from_json(p.at("trainer"));
  auto module = build_module(p, o);
  return to_json(Trainer::evaluate(*module, o, ctx, p.at("stage"), p.value("ckpt_path", "")));
}
MPITRAIN_REGISTER_ENTRY_POINT("mpitrain.evaluate", evaluate_entry);

}  // namespace

}  // namespace mpitrain
