// mpitrain-bench allreduce: OSU-style sweep of allreduce, reduce-scatter and allgather latency and
// bandwidth, mpitrain's paths against plain MPI_Allreduce / MPI_Reduce_scatter_block /
// MPI_Allgather measured in the same run (DESIGN §4: ratios, never timed asserts).
#include <mpi.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "mpitrain/comm/mpi_communicator.hpp"

namespace po = boost::program_options;

namespace mpitrain::bench {
namespace {

const char* kColumns = R"(Output (CSV on stdout, rank 0 only; lines starting with '#' are comments):
  size_bytes   message size in bytes (float32 elements x 4): the whole buffer of an allreduce, the
               input of a reduce-scatter, the output of an allgather (each rank's block: size/n)
  method       mpi        plain MPI_Allreduce(MPI_IN_PLACE, float, MPI_SUM) on a private buffer: the baseline
               user       mpitrain Communicator::allreduce on a private (user) buffer, in place
               zero_copy  mpitrain allreduce on a SharedBuffer from allocate_shared (node-shared window),
                          the engine's fusion buffer
               chunked_mpi mpitrain's chunked MPI_Iallreduce path (UserBufferPath::ChunkedMpi), with its
                          agreement check (CommOptions::verify_mpi_calls, one small allreduce first)
               chunked_unverified the same with verify_mpi_calls = false: chunked_mpi / this = the check's cost
               rs_mpi     plain MPI_Reduce_scatter_block (float, MPI_SUM), private buffers: baseline of rs_*
               rs_user    mpitrain Communicator::reduce_scatter from a private buffer
               rs_zero_copy mpitrain reduce_scatter whose input is a SharedBuffer (Sharded stage 2's buckets)
               ag_mpi     plain MPI_Allgather, private buffers, in place: baseline of ag_*
               ag_user    mpitrain Communicator::allgather into a private buffer, in place
               ag_zero_copy mpitrain allgather into a SharedBuffer, in place
  time_us      median over windows of (max over ranks of summed allreduce time) / iterations, in us.
               Every iteration of every method first has each rank write its whole buffer (the
               producer: gradients written before they are reduced) and pass a barrier, untimed;
               only the allreduce itself is timed. So no method reduces data still hot in cache
               from its previous call, and all methods see the same fresh data.
  algbw_GBps   size_bytes / time (GB/s = 1e9 bytes/s)
  busbw_GBps   algbw * 2(n-1)/n for allreduce, algbw * (n-1)/n for reduce-scatter and allgather: the
               nccl-tests bus bandwidth (n = ranks), comparable across rank counts and collectives
  vs_mpi       time of the plain MPI call of the same collective (mpi, rs_mpi, ag_mpi) / time of this
               method at the same size (>1: faster than MPI)
  check        ok when one call on rank-dependent data gave the exact expected result on every rank
The last comment line gives the busbw of every method at 64 MiB, and rs_user/user and
rs_zero_copy/zero_copy (reduce-scatter busbw over the Communicator's allreduce busbw).
Each size runs every method in round-robin windows so machine noise hits all methods alike.)";

struct Method {
  std::string name;
  std::function<void()> prepare;  // untimed: write the buffer
  std::function<void()> op;       // timed: the allreduce
  std::string check;
  long iters = 1;
  std::vector<double> times;
};

// Window: K iterations of (prepare, barrier, timed op); max over ranks of the summed op time.
double window(const Method& m, long k) {
  double t = 0;
  for (long i = 0; i < k; ++i) {
    m.prepare();
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    m.op();
    t += MPI_Wtime() - t0;
  }
  double tmax = 0;
  MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return tmax / double(k);
}

// Iterations per window so that a window lasts about target_s (prepare included).
long calibrate(const Method& m, double target_s) {
  window(m, 2);  // warm-up: page faults, caches
  const double t0 = MPI_Wtime();
  window(m, 1);
  double one = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return std::clamp(long(target_s / std::max(one, 1e-9)), 1L, 200000L);
}

// One allreduce of rank-dependent data; exact float sums of small integers.
std::string verify(const std::function<void(float*)>& run, float* buf, size_t count, int rank, int n) {
  for (size_t i = 0; i < count; ++i) buf[i] = float((i + size_t(rank)) % 13);
  run(buf);
  long bad = 0;
  for (size_t i = 0; i < count; ++i) {
    float want = 0;
    for (int r = 0; r < n; ++r) want += float((i + size_t(r)) % 13);
    bad += buf[i] != want;
  }
  long total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total == 0 ? "ok" : "WRONG";
}

// One reduce-scatter of rank-dependent data: rank r's input element i is (i + r) % 13.
std::string verify_reduce_scatter(const std::function<void(float*, float*)>& run, float* in, float* out,
                                  size_t block, int rank, int n) {
  for (size_t i = 0; i < block * size_t(n); ++i) in[i] = float((i + size_t(rank)) % 13);
  run(in, out);
  long bad = 0;
  for (size_t i = 0; i < block; ++i) {
    float want = 0;
    for (int r = 0; r < n; ++r) want += float((size_t(rank) * block + i + size_t(r)) % 13);
    bad += out[i] != want;
  }
  long total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total == 0 ? "ok" : "WRONG";
}

// One in-place allgather: rank r's block element i is (i + 3r) % 13.
std::string verify_allgather(const std::function<void(float*)>& run, float* buf, size_t block, int rank, int n) {
  for (size_t i = 0; i < block; ++i) buf[size_t(rank) * block + i] = float((i + 3 * size_t(rank)) % 13);
  run(buf);
  long bad = 0;
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < block; ++i) bad += buf[size_t(r) * block + i] != float((i + 3 * size_t(r)) % 13);
  long total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total == 0 ? "ok" : "WRONG";
}

const std::vector<std::string> kMethods = {"mpi",    "user",         "zero_copy", "chunked_mpi", "chunked_unverified",
                                           "rs_mpi", "rs_user",      "rs_zero_copy", "ag_mpi", "ag_user", "ag_zero_copy"};

std::string baseline_of(const std::string& m) {
  if (m.rfind("rs_", 0) == 0) return "rs_mpi";
  if (m.rfind("ag_", 0) == 0) return "ag_mpi";
  return "mpi";
}

}  // namespace

int run_allreduce(const std::vector<std::string>& args, bool spmd) {
  po::options_description desc("mpitrain-bench allreduce [options]   (run under mpirun -n N)");
  std::string min_s = "4", max_s = "256M", methods_s;
  for (const auto& m : kMethods) methods_s += (methods_s.empty() ? "" : ",") + m;
  int windows = 5;
  double window_s = 0.1, timeout_s = 300;
  CommOptions defaults;
  std::string staging_s = std::to_string(defaults.staging_bytes), pipe_s = std::to_string(defaults.pipeline_chunk_bytes);
  desc.add_options()("help,h", "show this help and the meaning of every column")
      ("min-bytes", po::value(&min_s)->default_value(min_s), "smallest message (suffix K, M, G allowed)")
      ("max-bytes", po::value(&max_s)->default_value(max_s), "largest message; sizes double from min to max")
      ("windows", po::value(&windows)->default_value(windows), "timed windows per method and size (median reported)")
      ("window-seconds", po::value(&window_s)->default_value(window_s), "target length of one window")
      ("methods", po::value(&methods_s)->default_value(methods_s), "comma-separated subset of the methods (see below)")
      ("timeout", po::value(&timeout_s)->default_value(timeout_s), "collective deadline in seconds")
      ("staging-bytes", po::value(&staging_s)->default_value(staging_s), "CommOptions::staging_bytes (user path ring)")
      ("pipeline-chunk", po::value(&pipe_s)->default_value(pipe_s), "CommOptions::pipeline_chunk_bytes (user path)");
  int rank = 0, n = 1;
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
  }
  if (!parse_options(desc, args, kColumns, rank == 0)) return 0;
  const size_t min_b = parse_bytes(min_s), max_b = parse_bytes(max_s);
  if (min_b < 4 || max_b < min_b) throw UsageError("need 4 <= --min-bytes <= --max-bytes");
  if (windows < 1 || window_s <= 0 || timeout_s <= 0) throw UsageError("--windows, --window-seconds and --timeout must be positive");
  std::vector<std::string> methods = split(methods_s, ',');
  for (auto& m : methods)
    if (std::find(kMethods.begin(), kMethods.end(), m) == kMethods.end())
      throw UsageError("unknown method '" + m + "' (expected a subset of " + methods_s + ")");
  if (!spmd) throw UsageError("allreduce runs on the ranks of an MPI job: mpirun -n 2 mpitrain-bench allreduce");

  CommOptions opts;
  opts.staging_bytes = parse_bytes(staging_s);
  opts.pipeline_chunk_bytes = parse_bytes(pipe_s);
  opts.timeout = std::chrono::milliseconds(long(timeout_s * 1000));
  MpiCommunicator comm(MPI_COMM_WORLD, opts);
  CommOptions chunked_opts = opts;
  chunked_opts.user_path = UserBufferPath::ChunkedMpi;
  MpiCommunicator chunked(MPI_COMM_WORLD, chunked_opts);
  CommOptions unverified_opts = chunked_opts;  // the cost of the agreement check, same run
  unverified_opts.verify_mpi_calls = false;
  MpiCommunicator unverified(MPI_COMM_WORLD, unverified_opts);
  const size_t max_count = max_b / 4;
  std::vector<float> user(max_count), out(max_count);
  SharedBuffer shared = comm.allocate_shared(max_b);

  if (rank == 0) {
    std::printf("# mpitrain-bench allreduce: %d ranks on %d node(s), float32 sum, %d windows of ~%.2f s\n", n,
                comm.node_count(), windows, window_s);
    std::printf("size_bytes,method,time_us,algbw_GBps,busbw_GBps,vs_mpi,check\n");
  }
  const double busf_ar = n > 1 ? 2.0 * (n - 1) / n : 0.0, busf_rs = n > 1 ? double(n - 1) / n : 0.0;
  std::map<std::string, double> at_64m;
  for (size_t bytes = min_b; bytes <= max_b; bytes *= 2) {
    const size_t count = bytes / 4;
    float* u = user.data();
    float* z = shared.as<float>();
    float* o = out.data();
    const size_t block = count / size_t(n);  // reduce-scatter output / allgather input per rank
    std::vector<Method> ms;
    const auto fill = [](float* p, size_t c) { std::fill(p, p + c, 1.0f); };
    for (const auto& m : methods) {
      Method x{m, [=] { fill(u, count); }, {}, {}, 1, {}};
      if (m == "mpi") {
        x.op = [=] { MPI_Allreduce(MPI_IN_PLACE, u, int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
        x.check = verify([&](float* b) { MPI_Allreduce(MPI_IN_PLACE, b, int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); },
                         u, count, rank, n);
      } else if (m == "user") {
        x.op = [&comm, u, count] { comm.allreduce(u, u, int64_t(count), DType::Float32, ReduceOp::Sum); };
        x.check = verify([&](float* b) { comm.allreduce(b, b, int64_t(count), DType::Float32, ReduceOp::Sum); }, u,
                         count, rank, n);
      } else if (m == "chunked_mpi") {
        x.op = [&chunked, u, count] { chunked.allreduce(u, u, int64_t(count), DType::Float32, ReduceOp::Sum); };
        x.check = verify([&](float* b) { chunked.allreduce(b, b, int64_t(count), DType::Float32, ReduceOp::Sum); },
                         u, count, rank, n);
      } else if (m == "chunked_unverified") {
        x.op = [&unverified, u, count] { unverified.allreduce(u, u, int64_t(count), DType::Float32, ReduceOp::Sum); };
        x.check = verify([&](float* b) { unverified.allreduce(b, b, int64_t(count), DType::Float32, ReduceOp::Sum); },
                         u, count, rank, n);
      } else if (m == "zero_copy") {
        x.prepare = [=] { fill(z, count); };
        x.op = [&comm, z, count] { comm.allreduce(z, z, int64_t(count), DType::Float32, ReduceOp::Sum); };
        x.check = verify([&](float* b) { comm.allreduce(b, b, int64_t(count), DType::Float32, ReduceOp::Sum); }, z,
                         count, rank, n);
      } else if (block == 0) {
        continue;  // reduce-scatter / allgather need at least one element per rank
      } else if (m == "rs_mpi") {
        x.op = [=] { MPI_Reduce_scatter_block(u, o, int(block), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
        x.check = verify_reduce_scatter(
            [&](float* in, float* r) { MPI_Reduce_scatter_block(in, r, int(block), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); },
            u, o, block, rank, n);
      } else if (m == "rs_user" || m == "rs_zero_copy") {
        float* in = m == "rs_user" ? u : z;
        x.prepare = [=] { fill(in, count); };
        x.op = [&comm, in, o, block] { comm.reduce_scatter(in, o, int64_t(block), DType::Float32, ReduceOp::Sum); };
        x.check = verify_reduce_scatter(
            [&](float* i, float* r) { comm.reduce_scatter(i, r, int64_t(block), DType::Float32, ReduceOp::Sum); }, in, o,
            block, rank, n);
      } else if (m == "ag_mpi") {
        x.prepare = [=] { fill(u + size_t(rank) * block, block); };
        x.op = [=] { MPI_Allgather(MPI_IN_PLACE, 0, MPI_FLOAT, u, int(block), MPI_FLOAT, MPI_COMM_WORLD); };
        x.check = verify_allgather(
            [&](float* b) { MPI_Allgather(MPI_IN_PLACE, 0, MPI_FLOAT, b, int(block), MPI_FLOAT, MPI_COMM_WORLD); }, u,
            block, rank, n);
      } else {  // ag_user, ag_zero_copy
        float* buf = m == "ag_user" ? u : z;
        float* mine = buf + size_t(rank) * block;
        x.prepare = [=] { fill(mine, block); };
        x.op = [&comm, buf, mine, block] { comm.allgather(mine, buf, int64_t(block), DType::Float32); };
        x.check = verify_allgather(
            [&](float* b) { comm.allgather(b + size_t(rank) * block, b, int64_t(block), DType::Float32); }, buf, block,
            rank, n);
      }
      x.iters = calibrate(x, window_s);
      ms.push_back(std::move(x));
    }
    for (int w = 0; w < windows; ++w)
      for (auto& x : ms) x.times.push_back(window(x, x.iters));
    std::map<std::string, double> base_t;
    for (auto& x : ms)
      if (x.name == baseline_of(x.name)) base_t[x.name] = median(x.times);
    for (auto& x : ms) {
      const double t = median(x.times), alg = double(bytes) / t / 1e9;
      const double busbw = alg * (baseline_of(x.name) == "mpi" ? busf_ar : busf_rs);
      if (bytes == (size_t(64) << 20)) at_64m[x.name] = busbw;
      const auto b = base_t.find(baseline_of(x.name));
      if (rank == 0)
        std::printf("%zu,%s,%.3f,%.3f,%.3f,%s,%s\n", bytes, x.name.c_str(), t * 1e6, alg, busbw,
                    b != base_t.end() ? format("%.2f", b->second / t).c_str() : "", x.check.c_str());
    }
    if (rank == 0) std::fflush(stdout);
  }
  if (rank == 0 && !at_64m.empty()) {
    std::printf("# at 64 MiB, busbw GB/s:");
    for (auto& [k, v] : at_64m) std::printf(" %s=%.2f", k.c_str(), v);
    for (const char* pair : {"rs_user/user", "rs_zero_copy/zero_copy"}) {
      const std::string a = split(pair, '/')[0], b = split(pair, '/')[1];
      if (at_64m.count(a) && at_64m.count(b) && at_64m[b] > 0) std::printf(" %s=%.2f", pair, at_64m[a] / at_64m[b]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace mpitrain::bench
