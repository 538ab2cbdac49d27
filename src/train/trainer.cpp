// Driver side of the Trainer: fit / validate / test as jobs of workers (launch()), relaunching a
// failed fit from its latest checkpoint as FailureConfig allows.
#include "mpitrain/train/trainer.hpp"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "hdf5_io/checkpoint_file.hpp"
#include "launch_options_of.hpp"
#include "mpitrain/launch/runtime.hpp"

namespace mpitrain {

namespace {

// A job's outcome as the Trainer reports it: the workers' FitResult, or why the job failed.
FitResult result_of(const Result& job) {
  if (!job.ok()) {
    FitResult r;
    r.status = FitStatus::Failed;
    r.error = job.error;
    r.error_kind = job.error_kind;
    r.failed_rank = job.failed_rank;
    return r;
  }
  return fit_result_from_json(job.value);
}

// Bad paths are bad input, found before any worker starts (and in SPMD on every rank, before
// training): the directory is created if need be and must be a writable directory.
void require_writable_directory(const std::string& dir, const std::string& what) {
  if (dir.empty()) throw ConfigError(what + " is empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ConfigError(what + " " + dir + " cannot be created: " + ec.message());
  if (!std::filesystem::is_directory(dir, ec)) throw ConfigError(what + " " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw ConfigError(what + " " + dir + " is not writable: " + std::strerror(errno));
}

// Spawned workers beyond the node's CPUs run slowly, and enough of them exhaust its memory.
void require_cpus(const TrainerOptions& o) {
  const Runtime* rt = Runtime::current();
  if (o.scaling.oversubscribe || (rt && rt->role() == Role::Spmd)) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  const long cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : ::sysconf(_SC_NPROCESSORS_ONLN);
  const long want = long(o.scaling.num_workers) * long(o.scaling.cpus_per_worker);
  if (cpus > 0 && want > cpus)
    throw ConfigError(std::to_string(o.scaling.num_workers) + " workers x " + std::to_string(o.scaling.cpus_per_worker) +
                      " CPUs each = " + std::to_string(want) + " CPUs, but this node has " + std::to_string(cpus) +
                      " for this process (scaling.oversubscribe / --oversubscribe to run anyway)");
}

void require_output_paths(const TrainerOptions& o) {
  if (!o.loggers.empty()) require_writable_directory(o.default_root_dir, "output directory");
  if (o.checkpoint.enabled) require_writable_directory(o.checkpoint_dir(), "checkpoint directory");
}

LaunchOptions launch_options(const TrainerOptions& o) { return detail::launch_options_of(o); }

FitResult finished(FitResult r, const TrainerOptions& o) {
  if (o.throw_on_error && !r.ok()) throw WorkerFailure(r.error, r.failed_rank, r.error_kind);
  return r;
}

}  // namespace

Trainer::Trainer(TrainerOptions options) : opts_(std::move(options)) { opts_.validate(); }

FitResult Trainer::fit(const std::string& module_name, const Config& given, const std::string& ckpt_path) const {
  const Config config = given.is_null() ? Config::object() : given;  // fit<M>({}) passes null
  create_module(module_name, config);  // unknown names and bad configs fail here, before any spawn
  require_output_paths(opts_);
  require_cpus(opts_);
  const LaunchOptions lo = launch_options(opts_);
  nlohmann::json payload = {{"module", module_name}, {"config", config}, {"trainer", opts_.to_json()}, {"ckpt_path", ckpt_path}};
  std::vector<std::string> failures;
  FitResult r;
  for (;;) {
    const std::string latest_before = hdf5_io::read_latest(checkpoint_dir());
    r = result_of(launch("mpitrain.fit", payload, opts_.scaling, lo));
    // Bad input fails the same way every time: only a crash or a dead worker is worth a relaunch.
    const bool retryable = !r.ok() && !is_bad_input(r.error_kind);
    if (r.ok() || !retryable || int(failures.size()) >= opts_.failure.max_failures || Runtime::current() == nullptr ||
        Runtime::current()->role() == Role::Spmd)
      break;
    failures.push_back(r.error);
    std::cerr << "mpitrain: job failed (" << r.error << "); relaunching from the latest checkpoint (failure "
              << failures.size() << " of at most " << opts_.failure.max_failures << ")\n";
    // Resume from what this attempt wrote; if it wrote nothing, start again as it started (never
    // from an older run's checkpoint that happens to be in the same directory).
    const std::string latest_now = hdf5_io::read_latest(checkpoint_dir());
    if (!latest_now.empty() && latest_now != latest_before) payload["ckpt_path"] = latest_now;
  }
  r.failures = std::move(failures);
  return finished(std::move(r), opts_);
}

FitResult Trainer::launch_stage(const std::string& stage, const std::string& module_name, const Config& given,
                                const std::string& ckpt_path) const {
  const Config config = given.is_null() ? Config::object() : given;
  create_module(module_name, config);
  const LaunchOptions lo = launch_options(opts_);
  return finished(result_of(launch("mpitrain.evaluate",
                                   {{"module", module_name}, {"config", config}, {"trainer", opts_.to_json()},
                                    {"ckpt_path", ckpt_path}, {"stage", stage}},
                                   opts_.scaling, lo)),
                  opts_);
}

FitResult Trainer::validate(const std::string& module_name, const Config& config, const std::string& ckpt_path) const {
  return launch_stage("validate", module_name, config, ckpt_path);
}

FitResult Trainer::test(const std::string& module_name, const Config& config, const std::string& ckpt_path) const {
  return launch_stage("test", module_name, config, ckpt_path);
}

}  // namespace mpitrain
