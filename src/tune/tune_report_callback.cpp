#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "mpitrain/detail/json_number.hpp"
#include "mpitrain/detail/json_options.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/train/callback.hpp"
#include "mpitrain/train/callbacks/model_checkpoint.hpp"
#include "mpitrain/train/trainer.hpp"
#include "mpitrain/tune/tune_report.hpp"

namespace mpitrain::tune {

void TuneReportOptions::validate() const {
  if (dir.empty() || trial.empty()) throw ConfigError("tune_report: dir and trial must be set");
  if (on != "validation_end" && on != "train_epoch_end")
    throw ConfigError("tune_report: on must be validation_end or train_epoch_end (got '" + on + "')");
  if (scheduler != "fifo" && scheduler != "asha") throw ConfigError("tune_report: scheduler must be fifo or asha (got '" + scheduler + "')");
  if (scheduler == "asha") asha.validate();
}

TuneReportOptions TuneReportOptions::from_json(const nlohmann::json& j) {
  auto o = detail::options_from_json<TuneReportOptions>(j, "callback 'tune_report'");
  o.validate();
  return o;
}

std::string trial_dir(const std::string& sweep_dir, const std::string& trial) { return sweep_dir + "/trials/" + trial; }

namespace {

class TuneReport final : public Callback {
 public:
  explicit TuneReport(TuneReportOptions o) : o_(std::move(o)), start_(std::chrono::steady_clock::now()) {}
  std::string state_key() const override { return "tune_report"; }

  void on_validation_end(FitLoopView& loop) override {
    if (o_.on == "validation_end") report(loop);
  }
  void on_train_epoch_end(FitLoopView& loop) override {
    if (o_.on == "train_epoch_end") report(loop);
  }

 private:
  void report(FitLoopView& loop) {
    const auto& em = loop.epoch_metrics();
    nlohmann::json rec = {{"epoch", loop.epoch() + 1}, {"step", loop.global_step()},
                          {"time_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()}};
    auto value_of = [&](const std::string& name) {
      auto f = em.find(name);
      if (f == em.end()) {
        std::string have;
        for (const auto& [k, v] : em) have += (have.empty() ? "" : ", ") + k;
        throw ConfigError("tune_report: metric '" + name + "' was not logged this epoch (logged: " + have + ")");
      }
      return f->second;
    };
    if (o_.metrics.empty())
      for (const auto& [k, v] : em) rec[k] = detail::json_number(v);
    for (const auto& [reported, name] : o_.metrics) rec[reported] = detail::json_number(value_of(name));
    if (o_.checkpoint) {  // collective: every rank saves (unless this step is saved already)
      if (loop.last_saved_step() != loop.global_step()) loop.save_checkpoint(loop.epoch() + 1, 0, std::nullopt);
      rec["checkpoint"] = loop.options().checkpoint_dir() + "/" + ModelCheckpoint::file_name(loop.epoch(), loop.global_step());
    }
    int stop = 0;  // 1: ASHA stops it early, 2: it reached max_t
    if (loop.rank() == 0) {
      const std::string dir = trial_dir(o_.dir, o_.trial);
      std::filesystem::create_directories(dir);
      std::ofstream(dir + "/progress.jsonl", std::ios::app) << rec.dump() << "\n";
      if (o_.scheduler == "asha") {
        const double t = o_.asha.time_attr == "step" ? double(loop.global_step()) : double(loop.epoch() + 1);
        const auto it = o_.metrics.find(o_.asha.metric);
        const double v = value_of(it == o_.metrics.end() ? o_.asha.metric : it->second);
        const bool halted = Asha(o_.asha, o_.dir + "/asha").on_result(o_.trial, t, v) == Asha::Decision::Stop;
        stop = !halted ? 0 : t >= o_.asha.max_t ? 2 : 1;
        if (stop == 1)
          std::ofstream(dir + "/stopped.json") << nlohmann::json{{"t", t}, {o_.asha.metric, detail::json_number(v)}}.dump() << "\n";
      }
    }
    if (o_.scheduler != "asha") return;
    loop.engine().enqueue([&stop](Communicator& c) { c.broadcast(&stop, 1, DType::Int32, 0); }).wait();
    if (stop == 1) loop.request_stop("ASHA stopped trial " + o_.trial);
    if (stop == 2) loop.request_stop("trial " + o_.trial + " reached max_t");
  }

  TuneReportOptions o_;
  std::chrono::steady_clock::time_point start_;
};

MPITRAIN_REGISTER_CALLBACK("tune_report", [](const nlohmann::json& o) {
  return std::make_shared<TuneReport>(TuneReportOptions::from_json(o));
});

}  // namespace
}  // namespace mpitrain::tune
