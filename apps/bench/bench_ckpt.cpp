// mpitrain-bench ckpt: write (with fsync) and read of a ~100 MB training state, in MB/s, for
// mpitrain's checkpoint path (save_checkpoint / load_checkpoint: HDF5, Fletcher-32, fsync,
// rename), for torch::save / torch::load of the same tensors, and for `dd conv=fdatasync` of
// the same number of bytes (the disk's sequential write rate), all in the same run.
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "bench_common.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/train/checkpoint.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV; '#' lines are comments):
  case       dd_fdatasync: dd if=/dev/zero bs=1M conv=fdatasync of the same size (the disk's write rate)
             mpitrain:     save_checkpoint (HDF5, chunked, Fletcher-32, fsync, rename, dir fsync) /
                           load_checkpoint (every checksum verified, shapes checked, copied into the model)
             torch_save:   torch::save of the same tensors, then fsync / torch::load
  op         write (includes fsync) or read (page cache warm unless --drop-caches)
  bytes      size of the file written or read
  median_s   median seconds over --runs
  MBps       bytes / median_s / 1e6
  vs_dd      MBps / dd's MBps (writes; the target is >= 0.90 for mpitrain))";

// The state: a model of `tensors` [rows, cols] float32 parameters plus SGD momentum for each.
struct BenchModule : Module {
  BenchModule(int tensors, int64_t rows, int64_t cols) {
    for (int i = 0; i < tensors; ++i) register_parameter("w" + std::to_string(i), torch::randn({rows, cols}));
  }
  torch::Tensor training_step(const Batch&, int64_t) override { return {}; }
  Optimizers configure_optimizers() override { return {}; }
  DataLoaders dataloaders() override { return {}; }
};

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void drop_caches() {
  ::sync();
  if (FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w")) {
    std::fputs("3\n", f);
    std::fclose(f);
  }
}

}  // namespace

int run_ckpt(const std::vector<std::string>& args, bool spmd) {
  int64_t megabytes = 100;
  int runs = 3;
  std::string dir = ".";
  bool drop = false;
  po::options_description desc("mpitrain-bench ckpt [options] (run alone)");
  desc.add_options()("help,h", "show this help")
      ("size-mb", po::value(&megabytes)->default_value(megabytes), "state size in MB (half weights, half momentum)")
      ("runs", po::value(&runs)->default_value(runs), "repetitions of each case (median reported)")
      ("dir", po::value(&dir)->default_value(dir), "directory to write in (use the file system you checkpoint to)")
      ("drop-caches", po::bool_switch(&drop), "drop the page cache before every read (needs root)");
  if (!parse_options(desc, args, kColumns)) return 0;
  if (spmd) throw UsageError("ckpt runs alone, not under mpirun/srun");
  if (megabytes < 1 || runs < 1) throw UsageError("--size-mb and --runs must be at least 1");
  if (!fs::is_directory(dir)) throw UsageError("--dir " + dir + " is not a directory");
  at::set_num_threads(1);

  // 8 tensors of weights + 8 of momentum; rows sized so that the total is --size-mb.
  const int tensors = 8;
  const int64_t cols = 1024, rows = std::max<int64_t>(1, megabytes * 1000000 / 2 / tensors / cols / 4);
  BenchModule model(tensors, rows, cols);
  Optimizers optim;
  optim.optimizer = std::make_shared<torch::optim::SGD>(model.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  for (auto& p : model.parameters()) p.mutable_grad() = torch::randn_like(p);
  optim.optimizer->step();  // creates the momentum buffers
  std::vector<torch::Tensor> all;
  for (auto& p : model.parameters()) all.push_back(p.detach());
  for (auto& [k, st] : optim.optimizer->state())
    all.push_back(static_cast<torch::optim::SGDParamState&>(*st).momentum_buffer());

  const std::string base = (fs::path(dir) / ("mpitrain-bench-ckpt-" + std::to_string(::getpid()))).string();
  const std::string h5 = base + ".h5", pt = base + ".pt", raw = base + ".dd";
  struct Row {
    std::string name, op;
    double bytes, seconds;
  };
  std::vector<Row> rows_out;
  auto measure = [&](const std::string& name, const std::string& op, const std::string& file, bool read,
                     const std::function<void()>& body) {
    std::vector<double> t;
    for (int r = 0; r < runs; ++r) {
      if (read && drop) drop_caches();
      if (!read) fs::remove(file);
      const auto t0 = clock_type::now();
      body();
      t.push_back(since(t0));
    }
    rows_out.push_back({name, op, double(fs::file_size(file)), median(t)});
  };
  try {
    measure("mpitrain", "write", h5, false, [&] {
      save_checkpoint(h5, model, optim, TrainerState{}, {rng_state()}, CheckpointMeta{"BenchModule"});
    });
    measure("torch_save", "write", pt, false, [&] {
      torch::save(all, pt);
      fsync_file(pt);
    });
    const int64_t mb = int64_t(fs::file_size(h5) / (1 << 20)) + 1;
    const std::string dd = "dd if=/dev/zero of=" + raw + " bs=1M count=" + std::to_string(mb) + " conv=fdatasync";
    measure("dd_fdatasync", "write", raw, false, [&] {
      if (std::system((dd + " 2>/dev/null").c_str()) != 0) throw mpitrain::Error("'" + dd + "' failed");
    });
    measure("mpitrain", "read", h5, true, [&] { load_checkpoint(h5, model, &optim, 0); });
    measure("torch_save", "read", pt, true, [&] {
      std::vector<torch::Tensor> back;
      torch::load(back, pt);
    });
  } catch (...) {
    for (auto& f : {h5, pt, raw}) fs::remove(f);
    throw;
  }
  for (auto& f : {h5, pt, raw}) fs::remove(f);

  double dd_rate = 0;
  for (auto& r : rows_out)
    if (r.name == "dd_fdatasync") dd_rate = r.bytes / r.seconds / 1e6;
  std::cout << "# mpitrain-bench ckpt: " << all.size() << " tensors, " << megabytes << " MB target, runs " << runs
            << ", dir " << fs::absolute(dir).string() << (drop ? ", cold reads" : ", warm reads") << "\n";
  std::cout << "case,op,bytes,median_s,MBps,vs_dd\n";
  for (auto& r : rows_out) {
    const double rate = r.bytes / r.seconds / 1e6;
    std::cout << format("%s,%s,%.0f,%.4f,%.1f,%s\n", r.name.c_str(), r.op.c_str(), r.bytes, r.seconds, rate,
                        r.op == "write" ? format("%.2f", rate / dd_rate).c_str() : "");
  }
  return 0;
}

}  // namespace mpitrain::bench
