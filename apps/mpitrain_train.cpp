// mpitrain-train: train a built-in model on Fashion-MNIST (or synthetic data) with DDP.
// Alone it spawns --workers workers (default 2); under mpirun/srun it trains in place (SPMD).
// With no arguments: 2 spawned workers, MLP, Fashion-MNIST, 1 epoch.
//
// Flags map onto the JSON of TrainerOptions and of the Classifier's Config (kFlags below): a new
// option is one line there, its type and default come from the option structs themselves.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "mpitrain/launch/runtime.hpp"
#include "mpitrain/strategy/gradient_compression.hpp"
#include "mpitrain/train/trainer.hpp"
#include "mpitrain/tune/tune_report.hpp"
#include "train/classifier.hpp"

namespace po = boost::program_options;
using namespace mpitrain;
using nlohmann::json;

namespace {

enum class Kind { Value, Switch, NegatedSwitch, CommaList, Json };
struct Flag {
  const char* name;     // --name
  const char* pointer;  // where it goes in {"trainer": TrainerOptions, "config": Classifier config}
  const char* help;
  Kind kind = Kind::Value;
};

const Flag kFlags[] = {
    {"model", "/config/model", "mlp | lenet | resnet18 (torchvision's) | resnet18-cifar (3x3 stem, no max-pool)"},
    {"dataset", "/config/dataset", "fashion-mnist | synthetic | hdf5:PATH"},
    {"data-dir", "/config/data_dir", "Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist)"},
    {"workers", "/trainer/scaling/num_workers", "workers to spawn when run alone"},
    {"cpus-per-worker", "/trainer/scaling/cpus_per_worker", "LibTorch threads per worker"},
    {"use-gpu", "/trainer/scaling/use_gpu", "one CUDA device per rank, NCCL for gradients", Kind::Switch},
    {"oversubscribe", "/trainer/scaling/oversubscribe", "allow workers x cpus-per-worker beyond this node's CPUs", Kind::Switch},
    {"strategy", "/trainer/strategy/name", "ddp | horovod | sharded (or any registered strategy)"},
    {"strategy-options", "/trainer/strategy/options", "the strategy's options as JSON, e.g. '{\"bucket_cap_bytes\": 4194304}'", Kind::Json},
    {"epochs", "/trainer/max_epochs", "max epochs"},
    {"max-steps", "/trainer/max_steps", "stop after this many optimizer steps (-1: off)"},
    {"limit-train-batches", "/trainer/limit_train_batches", "batches per epoch (-1: all)"},
    {"limit-val-batches", "/trainer/limit_val_batches", "validation batches (-1: all)"},
    {"batch-size", "/config/batch_size", "batch size per worker"},
    {"init-weights", "/config/init_weights", "HDF5 file whose /model holds the model's tensors by name (e.g. torchvision weights saved with h5py)"},
    {"val-split", "/config/val_split", "Fashion-MNIST: training images held out for validation (0: none; the test set is only for test)"},
    {"accumulate-grad-batches", "/trainer/accumulate_grad_batches", "micro-batches per optimizer step"},
    {"lr", "/config/lr", "learning rate"},
    {"layer-1", "/config/layer_1", "MLP: first hidden layer's width"},
    {"layer-2", "/config/layer_2", "MLP: second hidden layer's width"},
    {"optimizer", "/config/optimizer", "sgd | adam | adamw"},
    {"momentum", "/config/momentum", "SGD momentum"},
    {"weight-decay", "/config/weight_decay", "weight decay"},
    {"scheduler", "/config/scheduler", "none | step | cosine | one-cycle"},
    {"gradient-clip-val", "/trainer/gradient_clip_val", "clip the gradient norm (0: off)"},
    {"seed", "/trainer/seed", "seed of initialisation, shuffling and dropout"},
    {"deterministic", "/trainer/deterministic", "LibTorch deterministic algorithms", Kind::Switch},
    {"precision", "/trainer/precision", "32 | bf16-mixed"},
    {"memory-format", "/trainer/memory_format", "contiguous | channels_last (4-D weights, buffers and batches NHWC: oneDNN's layout, faster convolutions on CPU)"},
    {"output-dir", "/trainer/default_root_dir", "logs (metrics.csv, tensorboard/) go here"},
    {"loggers", "/trainer/loggers", "comma-separated: csv, tensorboard", Kind::CommaList},
    {"log-every-n-steps", "/trainer/log_every_n_steps", "progress line every N steps"},
    {"no-progress", "/trainer/enable_progress_bar", "no progress lines", Kind::NegatedSwitch},
    {"allow-nonfinite-loss", "/trainer/check_finite_loss", "train on when the loss becomes NaN/inf (default: stop)", Kind::NegatedSwitch},
    {"checkpoint-dir", "/trainer/checkpoint/dirpath", "where checkpoints go (default OUTPUT_DIR/checkpoints)"},
    {"checkpoint-every-n-epochs", "/trainer/checkpoint/every_n_epochs", "0: off"},
    {"checkpoint-every-n-steps", "/trainer/checkpoint/every_n_train_steps", "0: off"},
    {"keep-last-k", "/trainer/checkpoint/keep_last_k", "newest checkpoints kept (-1: all)"},
    {"monitor", "/trainer/checkpoint/monitor", "epoch metric that ranks checkpoints (e.g. val_loss); best kept"},
    {"monitor-mode", "/trainer/checkpoint/mode", "min | max"},
    {"save-top-k", "/trainer/checkpoint/save_top_k", "with --monitor: best checkpoints kept"},
    {"no-checkpoint", "/trainer/checkpoint/enabled", "write no checkpoints", Kind::NegatedSwitch},
    {"max-failures", "/trainer/failure/max_failures", "spawn mode: relaunch a failed job from its latest checkpoint up to N times"},
    {"comm-timeout", "/trainer/comm_timeout_s", "seconds a collective may wait for a peer before the job fails"},
    {"liveness-timeout", "/trainer/liveness_timeout_s", "seconds without a rank's heartbeat before it is named as stopped/hung, spawn and SPMD (0: off, else >= 1)"},
    {"startup-timeout", "/trainer/startup_timeout_s", "seconds for every worker to start and connect (spawn), for MPI start-up of all ranks (SPMD; also MPITRAIN_STARTUP_TIMEOUT)"},
};

json defaults() {
  return {{"trainer", TrainerOptions{}.to_json()},
          {"config",
           {{"model", "mlp"}, {"dataset", "fashion-mnist"}, {"data_dir", ""}, {"batch_size", 64}, {"lr", 0.05}, {"layer_1", 1024}, {"layer_2", 1024}, {"val_split", 5000}, {"init_weights", ""},
            {"optimizer", "sgd"}, {"momentum", 0.9}, {"weight_decay", 0.0}, {"scheduler", "none"}}}};
}

// One typed Boost option per flag, its type and default taken from the JSON default.
void add_flag(po::options_description& desc, const Flag& f, const json& d) {
  if (f.kind == Kind::Switch || f.kind == Kind::NegatedSwitch) {
    desc.add_options()(f.name, po::bool_switch(), f.help);
  } else if (f.kind == Kind::Json) {
    desc.add_options()(f.name, po::value<std::string>()->default_value(d.dump()), f.help);
  } else if (f.kind == Kind::CommaList) {
    std::string joined;
    for (const auto& v : d) joined += (joined.empty() ? "" : ",") + v.get<std::string>();
    desc.add_options()(f.name, po::value<std::string>()->default_value(joined), f.help);
  } else if (d.is_number_unsigned()) {
    desc.add_options()(f.name, po::value<uint64_t>()->default_value(d.get<uint64_t>()), f.help);
  } else if (d.is_number_integer()) {
    desc.add_options()(f.name, po::value<int64_t>()->default_value(d.get<int64_t>()), f.help);
  } else if (d.is_number()) {
    desc.add_options()(f.name, po::value<double>()->default_value(d.get<double>()), f.help);
  } else if (d.get<std::string>().empty()) {
    desc.add_options()(f.name, po::value<std::string>(), f.help);
  } else {
    desc.add_options()(f.name, po::value<std::string>()->default_value(d.get<std::string>()), f.help);
  }
}

json flag_value(const Flag& f, const po::variable_value& v, const json& d) {
  switch (f.kind) {
    case Kind::Switch: return v.as<bool>();
    case Kind::NegatedSwitch: return !v.as<bool>();
    case Kind::CommaList: {
      json list = json::array();
      const std::string s = v.as<std::string>();
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        if (q > p) list.push_back(s.substr(p, q - p));
        p = q + 1;
      }
      return list;
    }
    case Kind::Json:
      try {
        return json::parse(v.as<std::string>());
      } catch (const json::exception& e) {
        throw ConfigError(std::string("--") + f.name + ": not valid JSON (" + e.what() + ")");
      }
    case Kind::Value: break;
  }
  if (d.is_number_unsigned()) return v.as<uint64_t>();
  if (d.is_number_integer()) return v.as<int64_t>();
  if (d.is_number()) return v.as<double>();
  return v.as<std::string>();
}

// --sharded-stage: the Sharded strategy's stage (strategy options are strict, so a flag belongs
// to one strategy).
void apply_sharded_flags(const po::variables_map& vm, json& root) {
  if (!vm.count("sharded-stage")) return;
  json& strategy = root["trainer"]["strategy"];
  if (strategy["name"] != "sharded")
    throw ConfigError("--sharded-stage applies to --strategy sharded (not '" + strategy["name"].get<std::string>() + "')");
  strategy["options"]["stage"] = vm["sharded-stage"].as<int>();  // the strategy checks the value
}

// --grad-compression, --num-hosts, --num-slots: options of the Horovod strategy (DDP's options are
// strict, so they are not flags of every strategy). hosts x slots replaces --workers.
void apply_horovod_flags(const po::variables_map& vm, json& root) {
  const bool compression = vm.count("grad-compression"), hosts = vm.count("num-hosts"), slots = vm.count("num-slots");
  if (!compression && !hosts && !slots) return;
  json& strategy = root["trainer"]["strategy"];
  if (strategy["name"] != "horovod")
    throw ConfigError("--grad-compression, --num-hosts and --num-slots apply to --strategy horovod (not '" +
                      strategy["name"].get<std::string>() + "')");
  if (compression) {
    const std::string c = vm["grad-compression"].as<std::string>();
    parse_grad_compression(c);  // ConfigError naming the value
    strategy["options"]["compression"] = c;
  }
  if (hosts != slots) throw ConfigError("--num-hosts and --num-slots go together");
  if (!hosts) return;
  const int h = vm["num-hosts"].as<int>(), k = vm["num-slots"].as<int>();
  if (h < 1 || k < 1) throw ConfigError("--num-hosts and --num-slots must be at least 1 (got " + std::to_string(h) + " x " + std::to_string(k) + ")");
  const int workers = root["trainer"]["scaling"]["num_workers"].get<int>();
  if (!vm["workers"].defaulted() && workers != h * k)
    throw ConfigError("--workers " + std::to_string(workers) + " disagrees with --num-hosts x --num-slots = " +
                      std::to_string(h) + " x " + std::to_string(k));
  strategy["options"]["num_hosts"] = h;
  strategy["options"]["num_slots"] = k;
  root["trainer"]["scaling"]["num_workers"] = h * k;  // spawn mode; under mpirun the strategy checks the world
}

// --tune-report: a sweep trial reports through the tune_report callback (validated here, on every rank).
void apply_tune_report_flag(const po::variables_map& vm, json& root) {
  if (!vm.count("tune-report")) return;
  json o;
  try {
    o = json::parse(vm["tune-report"].as<std::string>());
  } catch (const json::exception& e) {
    throw ConfigError(std::string("--tune-report: not valid JSON (") + e.what() + ")");
  }
  tune::TuneReportOptions::from_json(o);
  root["trainer"]["callbacks"].push_back({{"name", "tune_report"}, {"options", o}});
}

// --summary-json must be writable before training starts, not found unwritable at the end.
void check_summary_path(const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) throw ConfigError("--summary-json " + path + " is a directory");
  const fs::path parent = fs::absolute(path).parent_path();
  if (!fs::is_directory(parent) || ::access(parent.c_str(), W_OK | X_OK) != 0)
    throw ConfigError("--summary-json " + path + ": directory " + parent.string() + " does not exist or is not writable");
}

int report(const FitResult& r, const Runtime& rt, const json& root, const std::string& summary_json) {
  const bool printer = rt.env().rank == 0;
  if (!r.ok()) {
    if (printer) std::cerr << "mpitrain-train: " << r.error << "\n";
    return r.exit_code();  // bad input (options, a checkpoint that cannot be used) is 2, a crash 1
  }
  if (r.status == FitStatus::Preempted) {
    if (printer)
      std::cerr << "mpitrain-train: stopped by signal " << r.signal << " after checkpoint " << r.checkpoint << "; exit "
                << kExitPreempted << " (requeue and rerun with --resume auto)\n";
    return r.exit_code();
  }
  if (!printer) return 0;
  const int workers = rt.role() == Role::Spmd ? rt.env().world_size : root["trainer"]["scaling"]["num_workers"].get<int>();
  json summary = {{"model", root["config"]["model"]}, {"dataset", root["config"]["dataset"]}, {"workers", workers}};
  for (auto& [k, v] : r.metrics) summary[k] = v;
  summary["epochs"] = double(r.stats.epochs);
  summary["steps"] = double(r.stats.steps);
  summary["wall_s"] = r.stats.wall_s;
  summary["samples_per_s"] = r.stats.samples_per_s;
  if (!r.checkpoint.empty()) summary["checkpoint"] = r.checkpoint;
  if (!r.failures.empty()) summary["failures"] = r.failures;
  if (r.metrics.count("test_acc")) summary["test_accuracy"] = r.metrics.at("test_acc");
  // Flushed before --summary-json is written: a sweep reads that file as "this run reached its
  // end", and a SIGTERM after it (the sweep driver died) must not lose the buffered line.
  std::cout << "mpitrain-train: " << summary.dump() << std::endl;
  if (summary_json.empty()) return 0;
  std::ofstream out(summary_json);
  out << summary.dump(2) << "\n";
  if (!out.flush()) {
    std::cerr << "mpitrain-train: cannot write --summary-json " << summary_json << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Runtime rt(argc, argv);  // spawned workers serve their task in here and exit
  const bool printer = rt.env().rank == 0;
  po::options_description desc(
      "mpitrain-train [options]\n"
      "  alone: spawns --workers workers on this node; under mpirun/srun: trains in place on every rank.\n"
      "  Options may also come from --config FILE (lines 'key = value', same names); flags override the file.\n"
      "Options");
  json root = defaults();
  std::string summary_json, resume = "none";
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "options file (key = value per line)");
  for (const Flag& f : kFlags) add_flag(desc, f, root.at(json::json_pointer(f.pointer)));
  desc.add_options()
      ("grad-compression", po::value<std::string>(), "with --strategy horovod: none | fp16 | bf16 (gradients on the wire)")
      ("num-hosts", po::value<int>(), "with --strategy horovod: hosts x --num-slots workers (HorovodRayStrategy's shape) instead of --workers")
      ("num-slots", po::value<int>(), "with --strategy horovod: workers per host")
      ("sharded-stage", po::value<int>(), "with --strategy sharded: ZeRO stage (1: optimizer state sharded; 2: and gradients)")
      ("tune-report", po::value<std::string>(), "sweep trials: the tune_report callback's options as JSON (mpitrain-sweep sets it)")
      ("summary-json", po::value(&summary_json), "write test accuracy, epochs, steps, wall time, samples/s here")
      ("resume", po::value(&resume)->default_value(resume),
       "none | auto (resume from the checkpoint directory's latest if there is one) | latest (must exist) | PATH");
  try {
    po::variables_map vm;
    // No positional arguments: a stray word is a mistake, not something to ignore.
    po::store(po::command_line_parser(argc, argv).options(desc).positional({}).run(), vm);
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) throw ConfigError("cannot read config file " + file);
      if (!std::filesystem::is_regular_file(file)) throw ConfigError("config file " + file + " is not a regular file");
      po::store(po::parse_config_file(in, desc), vm);  // stored second: command-line values win
    }
    po::notify(vm);
    if (vm.count("help")) {
      if (printer) std::cout << desc << "\n";
      return 0;
    }
    for (const Flag& f : kFlags) {
      json& slot = root[json::json_pointer(f.pointer)];
      if (vm.count(f.name)) slot = flag_value(f, vm[f.name], slot);
    }
    apply_horovod_flags(vm, root);
    apply_sharded_flags(vm, root);
    apply_tune_report_flag(vm, root);
    Config& config = root["config"];
    if (config["data_dir"] == "") config.erase("data_dir");
    if (config["init_weights"] == "") config.erase("init_weights");
    if (config["scheduler"] != "none")  // schedules span the whole run: epochs x optimizer steps per epoch
      config["total_steps"] = root["trainer"]["max_steps"].get<int64_t>() > 0 ? root["trainer"]["max_steps"].get<int64_t>() : 1000000;
    if (!vm["workers"].defaulted()) root["trainer"]["mode"] = "spawn";  // an explicit --workers means spawn mode
    apps::validate_classifier_config(config);
    check_summary_path(summary_json);  // on every rank: in SPMD all must fail alike
    Trainer trainer(TrainerOptions::from_json(root["trainer"]));
    return report(trainer.fit("Classifier", config, resume == "none" ? "" : resume), rt, root, summary_json);
  } catch (const po::error& e) {
    if (printer) std::cerr << "mpitrain-train: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const Error& e) {  // SPMD: every rank raises it (ConfigError, CheckpointError: 2)
    if (printer) std::cerr << "mpitrain-train: " << e.what() << "\n";
    return exit_code_for(error_kind_of(e));
  } catch (const std::exception& e) {  // a library's own exception type: still one line, never abort
    if (printer) std::cerr << "mpitrain-train: " << e.what() << "\n";
    return 1;
  }
}
