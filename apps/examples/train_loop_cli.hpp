// What the two hand-written-loop examples share: the FunctionTrainer options as flags, and the
// Result printed as Ray Train's guide prints it. Exit codes as mpitrain-train's: 0, 2 bad input, 1.
#pragma once
#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/train/loop/function_trainer.hpp"

namespace examples {

struct LoopCli {
  std::string function;
  mpitrain::ScalingConfig scaling;
  mpitrain::loop::RunConfig run;
  std::string resume;

  void add_options(boost::program_options::options_description& d, const std::string& default_function) {
    namespace po = boost::program_options;
    d.add_options()("workers", po::value(&scaling.num_workers)->default_value(2), "workers to spawn when run alone")
        ("function", po::value(&function)->default_value(default_function), "registered training function to run")
        ("storage-path", po::value(&run.storage_path)->default_value("mpitrain_results"), "where run directories go")
        ("name", po::value(&run.name), "run name (default: <function>_<date>_<time>)")
        ("num-to-keep", po::value(&run.checkpoint_config.num_to_keep)->default_value(-1),
         "checkpoints kept: the best N by the score (plus the latest), -1 all")
        ("score-attribute", po::value(&run.checkpoint_config.checkpoint_score_attribute),
         "reported metric that ranks checkpoints (default: recency)")
        ("score-order", po::value(&run.checkpoint_config.checkpoint_score_order)->default_value("max"), "max or min")
        ("max-failures", po::value(&run.failure_config.max_failures)->default_value(0),
         "relaunch a failed job this many times, from its last reported checkpoint")
        ("resume-from", po::value(&resume), "a checkpoint file of an earlier run to continue from");
  }
};

inline void print_result(const mpitrain::loop::Result& r) {
  auto ckpt = [](const mpitrain::loop::ReportedCheckpoint& c) {
    return "Checkpoint(path=" + c.path + ", index=" + std::to_string(c.index) +
           ", metrics=" + mpitrain::detail::json_numbers(c.metrics).dump() + ")";
  };
  std::cout << "Result(\n  metrics=" << mpitrain::detail::json_numbers(r.metrics).dump()
            << ",\n  checkpoint=" << (r.checkpoint ? ckpt(*r.checkpoint) : "None") << ",\n  best_checkpoints=[";
  for (size_t i = 0; i < r.best_checkpoints.size(); ++i) std::cout << (i ? ",\n    " : "\n    ") << ckpt(r.best_checkpoints[i]);
  std::cout << "],\n  path=" << r.path << ",\n  error=" << (r.ok() ? "None" : r.error) << "\n)\n";
}

/// Parses argv into `d`; returns -1 to go on, else the exit code (--help: 0, a bad flag: 2).
inline int parse(int argc, char** argv, const boost::program_options::options_description& d, bool printer,
                 const char* prog) {
  namespace po = boost::program_options;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(d).positional({}).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (printer) std::cout << d << "\n";
      return 0;
    }
  } catch (const po::error& e) {
    if (printer) std::cerr << prog << ": " << e.what() << " (see --help)\n";
    return 2;
  }
  return -1;
}

/// Runs the trainer and prints its Result on rank 0; returns the exit code.
inline int run(const LoopCli& cli, const nlohmann::json& config, bool printer, const char* prog) {
  try {
    mpitrain::loop::FunctionTrainer trainer(cli.function, config, cli.scaling, cli.run, cli.resume);
    const mpitrain::loop::Result r = trainer.fit();
    if (printer) {
      if (!mpitrain::is_bad_input(r.error_kind)) print_result(r);  // bad input: the one line below
      if (!r.ok()) std::cerr << prog << ": " << r.error << "\n";
    }
    return r.exit_code();
  } catch (const mpitrain::Error& e) {
    if (printer) std::cerr << prog << ": " << e.what() << "\n";
    return mpitrain::exit_code_for(mpitrain::error_kind_of(e));
  } catch (const std::exception& e) {
    if (printer) std::cerr << prog << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace examples
