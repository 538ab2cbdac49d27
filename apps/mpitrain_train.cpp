// mpitrain-train: train a built-in model on Fashion-MNIST (or synthetic data) with DDP.
// Alone it spawns --workers workers (default 2); under mpirun/srun it trains in place (SPMD).
// With no arguments: 2 spawned workers, MLP, Fashion-MNIST, 1 epoch.
#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>

#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/train/trainer.hpp"
#include "train/classifier.hpp"

namespace po = boost::program_options;
using namespace mpitrain;

int main(int argc, char** argv) {
  Runtime rt(argc, argv);  // spawned workers serve their task in here and exit
  const bool printer = rt.env().rank == 0;
  po::options_description desc(
      "mpitrain-train [options]\n"
      "  alone: spawns --workers workers on this node; under mpirun/srun: trains in place on every rank.\n"
      "  Options may also come from --config FILE (lines 'key = value', same names); flags override the file.\n"
      "Options");
  std::string config_file, model = "mlp", dataset = "fashion-mnist", data_dir, optimizer = "sgd", precision = "32",
                           output_dir = "mpitrain_logs", summary_json, strategy = "ddp", scheduler = "none",
                           loggers = "csv", resume = "none", checkpoint_dir, monitor, monitor_mode = "min";
  int workers = 2, cpus = 1, max_failures = 0, keep_last_k = 2, save_top_k = 1;
  int64_t ckpt_every_steps = 0, ckpt_every_epochs = 1;
  int64_t epochs = 1, batch_size = 64, max_steps = -1, limit_train = -1, limit_val = -1, accumulate = 1, log_every = 50;
  double lr = 0.05, clip = 0, momentum = 0.9, weight_decay = 0;
  uint64_t seed = 0;
  bool deterministic = false, no_progress = false, no_checkpoint = false;
  desc.add_options()
      ("help,h", "show this help")
      ("config", po::value(&config_file), "options file (key = value per line)")
      ("model", po::value(&model)->default_value(model), "mlp | lenet | resnet18")
      ("dataset", po::value(&dataset)->default_value(dataset), "fashion-mnist | synthetic | hdf5:PATH")
      ("data-dir", po::value(&data_dir), "Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist)")
      ("workers", po::value(&workers)->default_value(workers), "workers to spawn when run alone")
      ("cpus-per-worker", po::value(&cpus)->default_value(cpus), "LibTorch threads per worker")
      ("strategy", po::value(&strategy)->default_value(strategy), "ddp")
      ("epochs", po::value(&epochs)->default_value(epochs), "max epochs")
      ("max-steps", po::value(&max_steps)->default_value(max_steps), "stop after this many optimizer steps (-1: off)")
      ("limit-train-batches", po::value(&limit_train)->default_value(limit_train), "batches per epoch (-1: all)")
      ("limit-val-batches", po::value(&limit_val)->default_value(limit_val), "validation batches (-1: all)")
      ("batch-size", po::value(&batch_size)->default_value(batch_size), "batch size per worker")
      ("accumulate-grad-batches", po::value(&accumulate)->default_value(accumulate), "micro-batches per optimizer step")
      ("lr", po::value(&lr)->default_value(lr), "learning rate")
      ("optimizer", po::value(&optimizer)->default_value(optimizer), "sgd | adam | adamw")
      ("momentum", po::value(&momentum)->default_value(momentum), "SGD momentum")
      ("weight-decay", po::value(&weight_decay)->default_value(weight_decay), "weight decay")
      ("scheduler", po::value(&scheduler)->default_value(scheduler), "none | step | cosine | one-cycle")
      ("gradient-clip-val", po::value(&clip)->default_value(clip), "clip the gradient norm (0: off)")
      ("seed", po::value(&seed)->default_value(seed), "seed of initialisation, shuffling and dropout")
      ("deterministic", po::bool_switch(&deterministic), "LibTorch deterministic algorithms")
      ("precision", po::value(&precision)->default_value(precision), "32 | bf16-mixed")
      ("output-dir", po::value(&output_dir)->default_value(output_dir), "logs (metrics.csv, tensorboard/) go here")
      ("loggers", po::value(&loggers)->default_value(loggers), "comma-separated: csv, tensorboard")
      ("log-every-n-steps", po::value(&log_every)->default_value(log_every), "progress line every N steps")
      ("no-progress", po::bool_switch(&no_progress), "no progress lines")
      ("summary-json", po::value(&summary_json), "write test accuracy, epochs, steps, wall time, samples/s here")
      ("resume", po::value(&resume)->default_value(resume),
       "none | auto (resume from the checkpoint directory's latest if there is one) | latest (must exist) | PATH")
      ("checkpoint-dir", po::value(&checkpoint_dir), "where checkpoints go (default OUTPUT_DIR/checkpoints)")
      ("checkpoint-every-n-epochs", po::value(&ckpt_every_epochs)->default_value(ckpt_every_epochs), "0: off")
      ("checkpoint-every-n-steps", po::value(&ckpt_every_steps)->default_value(ckpt_every_steps), "0: off")
      ("keep-last-k", po::value(&keep_last_k)->default_value(keep_last_k), "newest checkpoints kept (-1: all)")
      ("monitor", po::value(&monitor), "epoch metric that ranks checkpoints (e.g. val_loss); best kept")
      ("monitor-mode", po::value(&monitor_mode)->default_value(monitor_mode), "min | max")
      ("save-top-k", po::value(&save_top_k)->default_value(save_top_k), "with --monitor: best checkpoints kept")
      ("no-checkpoint", po::bool_switch(&no_checkpoint), "write no checkpoints")
      ("max-failures", po::value(&max_failures)->default_value(max_failures),
       "spawn mode: relaunch a failed job from its latest checkpoint up to N times");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) throw ConfigError("cannot read config file " + file);
      po::store(po::parse_config_file(in, desc), vm);  // stored second: command-line values win
    }
    po::notify(vm);
    if (vm.count("help")) {
      if (printer) std::cout << desc << "\n";
      return 0;
    }
    Config config = {{"model", model},         {"dataset", dataset}, {"batch_size", batch_size}, {"lr", lr},
                     {"optimizer", optimizer}, {"momentum", momentum}, {"weight_decay", weight_decay},
                     {"scheduler", scheduler}};
    if (!data_dir.empty()) config["data_dir"] = data_dir;
    apps::validate_classifier_config(config);
    TrainerOptions o;
    o.max_epochs = epochs;
    o.max_steps = max_steps;
    o.limit_train_batches = limit_train;
    o.limit_val_batches = limit_val;
    o.accumulate_grad_batches = accumulate;
    o.gradient_clip_val = clip;
    o.seed = seed;
    o.deterministic = deterministic;
    o.precision = precision;
    o.default_root_dir = output_dir;
    o.loggers.clear();
    for (size_t p = 0; p <= loggers.size();) {
      size_t q = loggers.find(',', p);
      if (q == std::string::npos) q = loggers.size();
      if (q > p) o.loggers.push_back(loggers.substr(p, q - p));
      p = q + 1;
    }
    o.log_every_n_steps = log_every;
    o.checkpoint.enabled = !no_checkpoint;
    o.checkpoint.dirpath = checkpoint_dir;
    o.checkpoint.every_n_epochs = ckpt_every_epochs;
    o.checkpoint.every_n_train_steps = ckpt_every_steps;
    o.checkpoint.keep_last_k = keep_last_k;
    o.checkpoint.monitor = monitor;
    o.checkpoint.mode = monitor_mode;
    o.checkpoint.save_top_k = save_top_k;
    o.failure.max_failures = max_failures;
    o.enable_progress_bar = !no_progress;
    o.strategy = strategy;
    o.scaling.num_workers = workers;
    o.scaling.cpus_per_worker = cpus;
    if (!vm["workers"].defaulted()) o.mode = LaunchMode::Spawn;  // an explicit --workers means spawn mode
    if (scheduler != "none") {
      // Schedules span the whole run: epochs x optimizer steps per epoch.
      config["total_steps"] = max_steps > 0 ? max_steps : 1000000;
    }
    Trainer trainer(o);
    Result r = trainer.fit("Classifier", config, resume == "none" ? "" : resume);
    if (!r.ok()) {
      if (printer) std::cerr << "mpitrain-train: " << r.error << "\n";
      // Bad input (options, a checkpoint that cannot be used) is 2, like a bad flag; a crash is 1.
      return r.error_kind == "config" || r.error_kind == "checkpoint" ? 2 : 1;
    }
    if (r.value.value("preempted", false)) {
      if (printer)
        std::cerr << "mpitrain-train: stopped by signal " << r.value.value("signal", 0) << " after checkpoint "
                  << r.checkpoint << "; exit " << kExitPreempted << " (requeue and rerun with --resume auto)\n";
      return kExitPreempted;
    }
    if (printer) {
      nlohmann::json summary = {{"model", model}, {"dataset", dataset}, {"workers", rt.role() == Role::Spmd ? rt.env().world_size : workers}};
      for (auto& [k, v] : r.metrics) summary[k] = v;
      if (!r.checkpoint.empty()) summary["checkpoint"] = r.checkpoint;
      if (!r.failures.empty()) summary["failures"] = r.failures;
      if (r.metrics.count("test_acc")) summary["test_accuracy"] = r.metrics.at("test_acc");
      std::cout << "mpitrain-train: " << summary.dump() << "\n";
      if (!summary_json.empty()) std::ofstream(summary_json) << summary.dump(2) << "\n";
    }
  } catch (const po::error& e) {
    if (printer) std::cerr << "mpitrain-train: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const ConfigError& e) {
    if (printer) std::cerr << "mpitrain-train: " << e.what() << "\n";
    return 2;
  } catch (const CheckpointError& e) {  // SPMD: every rank raises it
    if (printer) std::cerr << "mpitrain-train: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
