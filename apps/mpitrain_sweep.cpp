// mpitrain-sweep: hyperparameter sweeps of mpitrain-train trials, Ray Tune's tune.run for the
// command line (DESIGN §3 Sweeps).
//   mpitrain-sweep run --space FILE --dir DIR --num-samples N --metric val_loss --mode min
//                      [--scheduler asha --max-t 8 --grace-period 1 --reduction-factor 2]
//                      [--workers-per-trial W --cpus-per-worker C --slots S] [--seed K] [-- trial options]
//   mpitrain-sweep status DIR      one line per trial
//   mpitrain-sweep collect DIR     results.csv / results.json and the best trial
// A trial's config keys that name mpitrain-train options (lr, batch_size -> --batch-size,
// layer_1, optimizer, epochs, ...) set them; other keys are recorded only.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <map>
#include <regex>
#include <set>

#include "mpitrain/errors.hpp"
#include "mpitrain/tune/search_space.hpp"
#include "mpitrain/tune/sweep.hpp"
#include "mpitrain/tune/tune_report.hpp"

namespace po = boost::program_options;
using nlohmann::json;
using namespace mpitrain;

namespace {

const char* kUsage =
    "usage: mpitrain-sweep run --space FILE --dir DIR --metric NAME [options] [-- mpitrain-train options]\n"
    "       mpitrain-sweep status DIR\n"
    "       mpitrain-sweep collect DIR\n"
    "'mpitrain-sweep run --help' lists the options.\n";

// Metrics mpitrain-train's trials report at each validation end.
const std::set<std::string> kReported = {"train_loss", "val_loss", "val_acc"};
// Options the sweep sets for every trial itself.
const std::set<std::string> kReserved = {"output-dir", "resume", "summary-json", "tune-report", "workers", "cpus-per-worker"};

struct TrainFlags {
  std::map<std::string, bool> takes_value;  // flag -> false for switches
};

// mpitrain-train's options, from its --help (so the sweep always agrees with the binary).
TrainFlags train_flags(const std::string& bin) {
  FILE* p = ::popen(("'" + bin + "' --help 2>&1").c_str(), "r");
  if (!p) throw ConfigError("cannot run " + bin + " --help");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (::pclose(p) != 0) throw ConfigError(bin + " --help failed: is it mpitrain-train?");
  TrainFlags f;
  const std::regex line(R"(^\s+(?:-\w \[ )?--([a-z0-9-]+)( \])?( arg)?)");
  std::istringstream in(out);
  std::string l;
  std::smatch m;
  while (std::getline(in, l))
    if (std::regex_search(l, m, line)) f.takes_value[m[1]] = m[3].matched;
  return f;
}

std::string flag_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args)
    if (a == "--" + flag || a.rfind("--" + flag + "=", 0) == 0) return true;
  return false;
}

// Options every trial would reject (unknown, repeated, mistyped) are bad input of the sweep:
// mpitrain-train parses its whole command line before it honours --help.
void check_trial_options(std::vector<std::string> argv) {
  std::string cmd;
  for (const auto& a : argv) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += q + "' ";
  }
  FILE* p = ::popen((cmd + "--help 2>&1").c_str(), "r");
  std::string out, last;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) {
    out = buf;
    if (out.rfind("mpitrain-train: ", 0) == 0) last = out.substr(16);
  }
  if (!p || ::pclose(p) != 0) {
    while (!last.empty() && last.back() == '\n') last.pop_back();
    throw ConfigError("trial options rejected by mpitrain-train: " + (last.empty() ? std::string("see its --help") : last));
  }
}

int cmd_run(std::vector<std::string> args) {
  std::vector<std::string> trial_args;
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] == "--") {
      trial_args.assign(args.begin() + long(i) + 1, args.end());
      args.resize(i);
      break;
    }
  tune::SweepPlan plan;
  std::string space_file, dir, train_bin;
  int slots = 0;
  po::options_description desc("mpitrain-sweep run [options] [-- options for every trial's mpitrain-train]");
  desc.add_options()("help,h", "show this help")
      ("space", po::value(&space_file)->required(), "search space JSON file (Tune's dict: choice, uniform, quniform, loguniform, randint, grid_search, constants)")
      ("dir", po::value(&dir)->required(), "sweep directory (a restart with the same options resumes it)")
      ("num-samples", po::value(&plan.num_samples)->default_value(1), "samples per grid combination")
      ("metric", po::value(&plan.metric)->required(), "metric that ranks trials: val_loss, val_acc or train_loss")
      ("mode", po::value(&plan.mode)->default_value("min"), "min | max")
      ("seed", po::value(&plan.seed)->default_value(0), "the same seed gives the same trials")
      ("scheduler", po::value(&plan.scheduler)->default_value("fifo"), "fifo | asha")
      ("max-t", po::value(&plan.asha.max_t)->default_value(plan.asha.max_t), "ASHA: a trial ends at this time (epochs or steps)")
      ("grace-period", po::value(&plan.asha.grace_period)->default_value(plan.asha.grace_period), "ASHA: first rung")
      ("reduction-factor", po::value(&plan.asha.reduction_factor)->default_value(plan.asha.reduction_factor), "ASHA: 1/rf of the trials go on at each rung")
      ("time-attr", po::value(&plan.asha.time_attr)->default_value(plan.asha.time_attr), "ASHA: epoch | step")
      ("workers-per-trial", po::value(&plan.workers_per_trial)->default_value(1), "spawned workers per trial")
      ("cpus-per-worker", po::value(&plan.cpus_per_worker)->default_value(1), "LibTorch threads per worker")
      ("slots", po::value(&slots)->default_value(0), "CPUs for trials (0: the Slurm allocation's, else this machine's)")
      ("train-bin", po::value(&train_bin), "mpitrain-train to run (default: the one next to mpitrain-sweep)");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional({}).run(), vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  po::notify(vm);
  if (train_bin.empty()) train_bin = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "mpitrain-train").string();
  if (!kReported.count(plan.metric))
    throw ConfigError("metric '" + plan.metric + "' is never reported by mpitrain-train trials (they report train_loss, val_loss, val_acc)");
  tune::SearchSpace::from_file(space_file);  // ConfigError naming the key, or the JSON error's line
  plan.space = json::parse(std::ifstream(space_file));
  plan.trial_args = trial_args;
  tune::expand(plan);
  const TrainFlags flags = train_flags(train_bin);
  for (const auto& r : kReserved)
    if (has_flag(trial_args, r)) throw ConfigError("--" + r + " is set by the sweep for every trial; leave it out");
  std::set<std::string> recorded_only;
  for (auto it = plan.space.begin(); it != plan.space.end(); ++it) {
    std::string f = it.key();
    std::replace(f.begin(), f.end(), '_', '-');
    if (kReserved.count(f)) throw ConfigError("search space key '" + it.key() + "' is set by the sweep for every trial");
    if (!flags.takes_value.count(f)) recorded_only.insert(it.key());
  }
  for (const auto& k : recorded_only)
    std::cout << "mpitrain-sweep: space key '" << k << "' names no mpitrain-train option: recorded in the results only\n";
  if (plan.scheduler == "asha" && plan.asha.time_attr == "epoch" && !plan.space.contains("epochs") &&
      !has_flag(trial_args, "epochs"))
    plan.trial_args.insert(plan.trial_args.end(), {"--epochs", std::to_string(int64_t(plan.asha.max_t))});
  tune::save_or_check_plan(dir, plan);

  auto command = [&](const json& t) {
    const std::string id = t.at("id"), tdir = tune::trial_dir(dir, id);
    std::vector<std::string> argv = {train_bin};
    argv.insert(argv.end(), plan.trial_args.begin(), plan.trial_args.end());
    const json& config = t.at("config");
    for (auto it = config.begin(); it != config.end(); ++it) {
      std::string f = it.key();
      std::replace(f.begin(), f.end(), '_', '-');
      auto fl = flags.takes_value.find(f);
      if (fl == flags.takes_value.end()) continue;
      if (!fl->second) {
        if (it.value() == true) argv.push_back("--" + f);
        continue;
      }
      argv.push_back("--" + f);
      argv.push_back(flag_text(it.value()));
    }
    tune::TuneReportOptions report;
    report.dir = dir;
    report.trial = id;
    report.scheduler = plan.scheduler;
    report.asha = plan.asha;
    argv.insert(argv.end(), {"--workers", std::to_string(plan.workers_per_trial), "--cpus-per-worker",
                             std::to_string(plan.cpus_per_worker), "--output-dir", tdir, "--resume", "auto",
                             "--summary-json", tdir + "/result.json", "--tune-report", json(report).dump()});
    if (!has_flag(plan.trial_args, "no-progress")) argv.push_back("--no-progress");
    return argv;
  };
  check_trial_options(command(plan.trials.at(0)));
  tune::RunOptions ro;
  ro.slots = slots;
  const auto t0 = std::chrono::steady_clock::now();
  const int failed = tune::run_sweep(dir, plan, command, ro);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto results = tune::collect(dir);
  int64_t trial_epochs = 0;
  double trial_wall = 0;
  for (const auto& r : results) {
    trial_epochs += r.iterations;
    trial_wall += r.wall_s;
  }
  std::printf("mpitrain-sweep: %zu trials (%d failed), %lld trial-epochs, sweep %.1f s, trials %.1f s in all\n",
              results.size(), failed, (long long)trial_epochs, wall, trial_wall);
  const tune::TrialResult* best = tune::best_trial(results, plan.metric, plan.mode);
  if (!best) {
    std::printf("mpitrain-sweep: no trial reported %s; results in %s/results.csv\n", plan.metric.c_str(), dir.c_str());
    return 1;
  }
  std::printf("Best trial %s: %s=%s\nBest config: %s\nBest checkpoint: %s\nResults: %s/results.csv\n", best->id.c_str(),
              plan.metric.c_str(), best->last[plan.metric].dump().c_str(), best->config.dump().c_str(),
              best->checkpoint.c_str(), dir.c_str());
  return 0;
}

int cmd_status(const std::string& dir, bool collect_only) {
  const tune::SweepPlan plan = tune::load_plan(dir);
  const auto results = tune::collect(dir);
  if (!collect_only)
    for (const auto& r : results)
      std::printf("%s %-8s iterations=%lld %s=%s %s%s\n", r.id.c_str(), r.status.c_str(), (long long)r.iterations,
                  plan.metric.c_str(), r.last.contains(plan.metric) ? r.last[plan.metric].dump().c_str() : "-",
                  r.config.dump().c_str(), r.error.empty() ? "" : (" error: " + r.error).c_str());
  const tune::TrialResult* best = tune::best_trial(results, plan.metric, plan.mode);
  if (best)
    std::printf("Best trial %s: %s=%s\nBest config: %s\nBest checkpoint: %s\n", best->id.c_str(), plan.metric.c_str(),
                best->last[plan.metric].dump().c_str(), best->config.dump().c_str(), best->checkpoint.c_str());
  else
    std::printf("no trial has reported %s yet\n", plan.metric.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      std::fputs(kUsage, args.empty() ? stderr : stdout);
      return args.empty() ? 2 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "run") return cmd_run(args);
    if ((cmd == "status" || cmd == "collect") && args.size() == 1) return cmd_status(args[0], cmd == "collect");
    if (cmd == "status" || cmd == "collect") throw ConfigError(cmd + " takes one argument: the sweep directory");
    throw ConfigError("unknown command '" + cmd + "'\n" + kUsage);
  } catch (const po::error& e) {
    std::fprintf(stderr, "mpitrain-sweep: %s (see --help)\n", e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "mpitrain-sweep: %s\n", e.what());
    return exit_code_for(error_kind_of(e));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpitrain-sweep: %s\n", e.what());
    return 1;
  }
}
