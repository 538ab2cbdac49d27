// A training function's session on one worker: the run directory, the engine, reports and the
// checkpoint to resume from (session_state.hpp).
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <utility>

#include "../rank_agreement.hpp"
#include "hdf5_io/checkpoint_file.hpp"
#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/engine/engine_options.hpp"
#include "session_state.hpp"

namespace mpitrain::loop {

namespace detail {

namespace {
std::atomic<Session*> g_current{nullptr};
std::mutex g_dir_mutex;
std::string g_last_run_dir;
}  // namespace

std::string default_run_name(const std::string& loop) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d_%H-%M-%S", &tm);
  return loop + "_" + stamp;
}

void prepare_run_dir(const std::string& dir, bool continuing) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError("run directory " + dir + " cannot be created: " + ec.message());
  if (!fs::is_directory(dir, ec)) throw ConfigError("run directory " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw ConfigError("run directory " + dir + " is not writable: " + std::strerror(errno));
  if (!continuing && fs::exists(dir + "/checkpoints.json", ec))
    throw ConfigError("run directory " + dir + " already holds the checkpoints of an earlier run; choose another "
                      "run name, remove it, or resume from one of its checkpoints (resume_from_checkpoint)");
}

std::string take_last_run_dir() {
  std::lock_guard<std::mutex> lock(g_dir_mutex);
  return std::exchange(g_last_run_dir, "");
}

Session::Session(TaskContext& ctx, const nlohmann::json& p) : ctx_(ctx) {
  const Environment& env = ctx.env();
  context_ = {env.world_size, env.rank, env.local_size, env.local_rank, env.num_nodes, env.node_rank, env.device,
              "", p.value("attempt", 0)};
  checkpoint_path_ = p.value("resume", "");
  // No engine runs yet: the agreement goes through the Communicator directly.
  std::string dir;
  std::exception_ptr failure;
  if (env.rank == 0) {
    try {
      const std::string name = p.value("name", "");
      dir = p.at("storage_path").get<std::string>() + "/" + (name.empty() ? default_run_name(p.at("loop")) : name);
      prepare_run_dir(dir, context_.attempt > 0 || !checkpoint_path_.empty());
      hdf5_io::remove_stale_temporaries(dir);  // half-written files of a job that died mid-report
      manager_ = std::make_unique<CheckpointManager>(dir, p.at("checkpoint_config").get<CheckpointConfig>());
    } catch (...) {
      failure = std::current_exception();
    }
  }
  try {
    agree_on_failure(ctx.comm(), failure);
  } catch (const Error& e) {
    mpitrain::detail::throw_agreed(e);
  }
  broadcast_bytes(ctx.comm(), dir, 0);
  context_.run_dir = dir;
  {
    std::lock_guard<std::mutex> lock(g_dir_mutex);
    g_last_run_dir = dir;
  }
  Session* none = nullptr;
  if (!g_current.compare_exchange_strong(none, this))  // every rank runs the same code: alike everywhere
    mpitrain::detail::throw_agreed(ConfigError("a training function is already running in this process"));
}

Session::~Session() {
  models_.clear();  // hooks and buckets go before the engine they use
  engine_.reset();
  g_current = nullptr;
}

Session& Session::current() {
  Session* s = g_current.load();
  if (!s)
    throw ConfigError("no training function is running in this process: get_context, report, get_checkpoint, "
                      "prepare_model and prepare_data_loader work only inside a function run by FunctionTrainer");
  return *s;
}

Engine& Session::engine(bool needs_coordinator) {
  if (engine_ && (coordinated_ || !needs_coordinator)) return *engine_;
  if (engine_ && !models_.empty())  // every rank prepares the same strategies in the same order
    mpitrain::detail::throw_agreed(
        ConfigError("prepare_model: this strategy needs the coordinator, but a model was already prepared with a "
                    "strategy that does not; prepare the coordinated one first"));
  engine_.reset();  // every rank is here alike (same strategies, same order)
  EngineOptions eo = EngineOptions::from_env();
  if (!needs_coordinator) eo.mode = EngineMode::Fifo;
  engine_ = std::make_unique<Engine>(ctx_.comm(), eo);
  coordinated_ = needs_coordinator;
  return *engine_;
}

PreparedModel::State& Session::add_model(std::unique_ptr<PreparedModel::State> s) {
  models_.push_back(std::move(s));
  return *models_.back();
}

void Session::report(const std::map<std::string, double>& metrics, const std::optional<Checkpoint>& checkpoint) {
  Engine& e = engine();
  std::string written, reported;  // rank 0's, sent to every rank (each Result shows rank 0's metrics)
  mpitrain::detail::on_every_rank(e, [&] {
    if (context_.world_rank != 0) return;
    if (checkpoint) {
      manager_->check_metrics(metrics);  // before anything is written
      Checkpoint c = *checkpoint;
      c.index = manager_->next_index();
      c.metrics = metrics;
      c.save(manager_->next_path());
      written = manager_->next_path();
      manager_->add(metrics);
    }
    for (const auto& [k, v] : metrics) ctx_.report_metric(k, v);
    reported = mpitrain::detail::json_numbers(metrics).dump();
  });
  e.enqueue([&](Communicator& c) {
     broadcast_bytes(c, written, 0);
     broadcast_bytes(c, reported, 0);
   }).wait();
  last_metrics_ = mpitrain::detail::numbers_from_json(nlohmann::json::parse(reported));
  if (!written.empty()) checkpoint_path_ = written;
}

std::optional<Checkpoint> Session::get_checkpoint() {
  if (checkpoint_path_.empty()) return std::nullopt;
  std::optional<Checkpoint> c;
  mpitrain::detail::on_every_rank(engine(), [&] { c = Checkpoint::load(checkpoint_path_); });
  return c;
}

}  // namespace detail

const TrainContext& get_context() { return detail::Session::current().context(); }

void report(const std::map<std::string, double>& metrics, const std::optional<Checkpoint>& checkpoint) {
  detail::Session::current().report(metrics, checkpoint);
}

std::optional<Checkpoint> get_checkpoint() { return detail::Session::current().get_checkpoint(); }

std::vector<double> allreduce(std::vector<double> values, ReduceOp op) {
  if (!values.empty())
    detail::Session::current().engine().allreduce(values.data(), int64_t(values.size()), DType::Float64, op).wait();
  return values;
}

}  // namespace mpitrain::loop
