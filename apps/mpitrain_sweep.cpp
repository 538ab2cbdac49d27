// mpitrain-sweep: hyperparameter sweeps of mpitrain-train trials, Ray Tune's tune.run for the
// command line (DESIGN §3 Sweeps).
//   mpitrain-sweep run --space FILE --dir DIR --num-samples N --metric val_loss --mode min
//                      [--scheduler asha --max-t 8 --grace-period 1 --reduction-factor 2]
//                      [--workers-per-trial W --cpus-per-worker C --slots S] [--seed K] [-- trial options]
//   mpitrain-sweep submit (run's options) [--array-parallelism K] [--sbatch-arg A]... [--dry-run]
//                      a Slurm array, one trial per task (slurm/sweep.sbatch runs `run-trial DIR I`)
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
#include <chrono>

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
    "       mpitrain-sweep submit --space FILE --dir DIR --metric NAME [--array-parallelism K] [options] [-- ...]\n"
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

struct Sweep {
  tune::SweepPlan plan;
  std::string dir, train_bin;
  int slots = 0, array_parallelism = 0;
  bool dry_run = false;
  std::vector<std::string> sbatch_args;
  TrainFlags flags;
};

// argv of one trial's mpitrain-train.
std::vector<std::string> trial_argv(const Sweep& sw, const json& t) {
  const tune::SweepPlan& plan = sw.plan;
  const std::string id = t.at("id"), tdir = tune::trial_dir(sw.dir, id);
  std::vector<std::string> argv = {sw.train_bin};
  argv.insert(argv.end(), plan.trial_args.begin(), plan.trial_args.end());
  const json& config = t.at("config");
  for (auto it = config.begin(); it != config.end(); ++it) {
    std::string f = it.key();
    std::replace(f.begin(), f.end(), '_', '-');
    auto fl = sw.flags.takes_value.find(f);
    if (fl == sw.flags.takes_value.end()) continue;
    if (!fl->second) {
      if (it.value() == true) argv.push_back("--" + f);
      continue;
    }
    argv.push_back("--" + f);
    argv.push_back(flag_text(it.value()));
  }
  tune::TuneReportOptions report;
  report.dir = sw.dir;
  report.trial = id;
  report.scheduler = plan.scheduler;
  report.asha = plan.asha;
  argv.insert(argv.end(), {"--workers", std::to_string(plan.workers_per_trial), "--cpus-per-worker",
                           std::to_string(plan.cpus_per_worker), "--output-dir", tdir, "--resume", "auto",
                           "--summary-json", tdir + "/result.json", "--tune-report", json(report).dump()});
  if (!has_flag(plan.trial_args, "no-progress")) argv.push_back("--no-progress");
  return argv;
}

// run's / submit's options into `sw` (and the space file's name); false after --help.
bool parse_sweep_options(std::vector<std::string> args, bool submit, Sweep& sw, std::string& space_file) {
  tune::SweepPlan& plan = sw.plan;
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] == "--") {
      plan.trial_args.assign(args.begin() + long(i) + 1, args.end());
      args.resize(i);
      break;
    }
  po::options_description desc(std::string("mpitrain-sweep ") + (submit ? "submit" : "run") +
                               " [options] [-- options for every trial's mpitrain-train]");
  desc.add_options()("help,h", "show this help")
      ("space", po::value(&space_file)->required(), "search space JSON file (Tune's dict: choice, uniform, quniform, loguniform, randint, grid_search, constants)")
      ("dir", po::value(&sw.dir)->required(), "sweep directory (a restart with the same options resumes it)")
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
      ("train-bin", po::value(&sw.train_bin), "mpitrain-train to run (default: the one next to mpitrain-sweep)");
  if (submit)
    desc.add_options()
        ("array-parallelism", po::value(&sw.array_parallelism)->default_value(2), "array tasks at once (--array=0-(n-1)%K)")
        ("sbatch-arg", po::value(&sw.sbatch_args)->composing(), "passed to sbatch (repeatable), e.g. --sbatch-arg=--time=01:00:00")
        ("dry-run", po::bool_switch(&sw.dry_run), "write the sweep directory and sweep.sbatch, do not submit");
  else
    desc.add_options()("slots", po::value(&sw.slots)->default_value(0), "CPUs for trials (0: the Slurm allocation's, else this machine's)");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional({}).run(), vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return false;
  }
  po::notify(vm);
  if (submit && sw.array_parallelism < 1) throw ConfigError("--array-parallelism must be at least 1");
  if (sw.train_bin.empty())
    sw.train_bin = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "mpitrain-train").string();
  sw.dir = std::filesystem::absolute(sw.dir).lexically_normal().string();  // array tasks may start elsewhere
  return true;
}

// Space keys that the sweep sets itself are errors; keys that name no mpitrain-train option are
// recorded only (said once).
void check_space_keys(const Sweep& sw) {
  for (const auto& r : kReserved)
    if (has_flag(sw.plan.trial_args, r)) throw ConfigError("--" + r + " is set by the sweep for every trial; leave it out");
  std::set<std::string> recorded_only;
  for (auto it = sw.plan.space.begin(); it != sw.plan.space.end(); ++it) {
    std::string f = it.key();
    std::replace(f.begin(), f.end(), '_', '-');
    if (kReserved.count(f)) throw ConfigError("search space key '" + it.key() + "' is set by the sweep for every trial");
    if (!sw.flags.takes_value.count(f)) recorded_only.insert(it.key());
  }
  for (const auto& k : recorded_only)
    std::cout << "mpitrain-sweep: space key '" << k << "' names no mpitrain-train option: recorded in the results only\n";
}

// Parses run's / submit's options, checks everything that can be checked before a trial starts,
// and writes (or checks) the plan and every trial's argv in the sweep directory.
Sweep prepare(const std::vector<std::string>& args, bool submit, bool* help) {
  Sweep sw;
  tune::SweepPlan& plan = sw.plan;
  std::string space_file;
  if ((*help = !parse_sweep_options(args, submit, sw, space_file))) return sw;
  if (!kReported.count(plan.metric))
    throw ConfigError("metric '" + plan.metric + "' is never reported by mpitrain-train trials (they report train_loss, val_loss, val_acc)");
  tune::SearchSpace::from_file(space_file);  // ConfigError naming the key, or the JSON error's line
  plan.space = json::parse(std::ifstream(space_file));
  tune::expand(plan);
  sw.flags = train_flags(sw.train_bin);
  check_space_keys(sw);
  if (plan.scheduler == "asha" && plan.asha.time_attr == "epoch" && !plan.space.contains("epochs") &&
      !has_flag(plan.trial_args, "epochs"))
    plan.trial_args.insert(plan.trial_args.end(), {"--epochs", std::to_string(int64_t(plan.asha.max_t))});
  check_trial_options(trial_argv(sw, plan.trials.at(0)));
  if (!submit) {  // the allocation must hold one trial
    const int slots = sw.slots > 0 ? sw.slots : tune::allocation_slots(), need = plan.workers_per_trial * plan.cpus_per_worker;
    if (need > slots)
      throw ConfigError("a trial needs " + std::to_string(plan.workers_per_trial) + " workers x " +
                        std::to_string(plan.cpus_per_worker) + " CPUs = " + std::to_string(need) +
                        " slots, the allocation has " + std::to_string(slots));
  }
  tune::save_or_check_plan(sw.dir, plan);
  for (const auto& t : plan.trials) {  // one argv per trial in the directory: what an array task runs
    const std::string tdir = tune::trial_dir(sw.dir, t.at("id"));
    std::filesystem::create_directories(tdir);
    std::ofstream(tdir + "/argv.json") << json(trial_argv(sw, t)).dump() << "\n";
  }
  return sw;
}

int report_results(const std::string& dir, const tune::SweepPlan& plan, int failed, double wall) {
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

std::vector<std::string> saved_argv(const std::string& dir, const json& t) {
  std::ifstream in(tune::trial_dir(dir, t.at("id")) + "/argv.json");
  if (!in) throw ConfigError("trial " + t.at("id").get<std::string>() + " has no argv.json in " + dir);
  return json::parse(in).get<std::vector<std::string>>();
}

int cmd_run(const std::vector<std::string>& args) {
  bool help = false;
  Sweep sw = prepare(args, false, &help);
  if (help) return 0;
  tune::RunOptions ro;
  ro.slots = sw.slots;
  const auto t0 = std::chrono::steady_clock::now();
  const int failed = tune::run_sweep(sw.dir, sw.plan, [&](const json& t) { return saved_argv(sw.dir, t); }, ro);
  return report_results(sw.dir, sw.plan, failed, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// A Slurm array over the trials: slurm/sweep.sbatch (next to this binary) runs `run-trial` per task.
int cmd_submit(const std::vector<std::string>& args) {
  bool help = false;
  Sweep sw = prepare(args, true, &help);
  if (help) return 0;
  const auto here = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  std::string tmpl;
  for (const auto& c : {here / "sweep.sbatch", here / "../share/mpitrain/slurm/sweep.sbatch"})
    if (std::filesystem::exists(c)) {
      tmpl = c.string();
      break;
    }
  if (tmpl.empty()) throw ConfigError("slurm/sweep.sbatch not found next to " + here.string());
  const std::string script = sw.dir + "/sweep.sbatch";
  std::filesystem::copy_file(tmpl, script, std::filesystem::copy_options::overwrite_existing);
  const int n = int(sw.plan.trials.size());
  std::vector<std::string> cmd = {"sbatch", "--parsable", "--array=0-" + std::to_string(n - 1) + "%" + std::to_string(sw.array_parallelism),
                                  "--cpus-per-task=" + std::to_string(sw.plan.workers_per_trial * sw.plan.cpus_per_worker),
                                  "--output=" + sw.dir + "/slurm-%A_%a.out"};
  cmd.insert(cmd.end(), sw.sbatch_args.begin(), sw.sbatch_args.end());
  cmd.insert(cmd.end(), {script, std::filesystem::read_symlink("/proc/self/exe").string(), sw.dir});
  std::string line;
  for (const auto& c : cmd) line += (line.empty() ? "" : " ") + ("'" + c + "'");
  std::ofstream(sw.dir + "/submit.sh") << "#!/bin/sh\n" << line << "\n";
  if (sw.dry_run) {
    std::printf("mpitrain-sweep: %d trials planned in %s; submit with: sh %s/submit.sh\n", n, sw.dir.c_str(), sw.dir.c_str());
    return 0;
  }
  FILE* p = ::popen((line + " 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = p ? ::pclose(p) : -1;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  if (rc != 0) throw Error("sbatch failed (is it on PATH?): " + out);
  std::printf("mpitrain-sweep: submitted array job %s (%d trials, %d at once); mpitrain-sweep status %s\n", out.c_str(), n,
              sw.array_parallelism, sw.dir.c_str());
  return 0;
}

// One array task: trial INDEX of the sweep in DIR (skipped when already finished).
int cmd_run_trial(const std::string& dir, const std::string& index) {
  tune::SweepPlan plan = tune::load_plan(dir);
  const size_t i = size_t(std::stoul(index));
  if (i >= plan.trials.size()) throw ConfigError("trial index " + index + " outside the sweep's " + std::to_string(plan.trials.size()) + " trials");
  tune::SweepPlan one = plan;
  one.trials = {plan.trials[i]};
  tune::RunOptions ro;
  ro.slots = plan.workers_per_trial * plan.cpus_per_worker;  // the task's allocation holds exactly one trial
  return tune::run_sweep(dir, one, [&](const json& t) { return saved_argv(dir, t); }, ro) ? 1 : 0;
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
    if (cmd == "submit") return cmd_submit(args);
    if (cmd == "run-trial" && args.size() == 2) return cmd_run_trial(args[0], args[1]);
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
