// Every collective x dtype x op against a reference computed locally, on every data path:
// shared-memory small/pipelined (with a small staging ring so it wraps), chunked MPI, and
// zero-copy SharedBuffers (allreduce, reduce-scatter, allgather). Run under mpirun -n 2 and -n 4 (and -n 4 as 2 simulated nodes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <thread>

#include "mpitrain/comm/mpi_communicator.hpp"
#include "test_util.hpp"

namespace mpitrain::test {
namespace {

using namespace std::chrono_literals;

struct PathConfig {
  const char* name;
  CommOptions opts;
};

std::vector<PathConfig> paths() {
  CommOptions small_ring;  // 4 KiB chunks in a 16 KiB ring: every size below wraps the ring
  small_ring.staging_bytes = 16 << 10;
  small_ring.pipeline_chunk_bytes = 4 << 10;
  small_ring.small_bytes = 256;
  CommOptions chunked;
  chunked.user_path = UserBufferPath::ChunkedMpi;
  chunked.mpi_chunk_bytes = 8 << 10;
  std::vector<PathConfig> v = {{"default", {}}, {"small-ring", small_ring}, {"chunked-mpi", chunked}};
  for (auto& p : v) p.opts.timeout = 60s;
  return v;
}

const size_t kSizes[] = {0, 1, 3, 7, 1001, 4099, 70001};

TEST(Collectives, AllreduceEveryPathDtypeOpSize) {
  for (const auto& path : paths()) {
    MpiCommunicator comm(MPI_COMM_WORLD, path.opts);
    const int rank = comm.rank(), n = comm.size();
    for (DType t : kAllTypes)
      for (ReduceOp op : kAllOps) {
        if ((t == DType::Int32 || t == DType::Int64) && op == ReduceOp::Avg) continue;
        for (size_t count : kSizes)
          for (bool in_place : {true, false}) {
            auto send = filled(t, count, rank, op);
            const auto original = send;
            std::vector<char> out(send.size());
            void* recv = in_place ? send.data() : out.data();
            comm.allreduce(send.data(), recv, int64_t(count), t, op);
            const int64_t bad = first_mismatch(recv, t, count, n, op);
            ASSERT_EQ(bad, -1) << path.name << " " << dtype_name(t) << " " << reduce_op_name(op) << " count=" << count
                               << (in_place ? " in place" : " out of place") << " element " << bad << " = "
                               << get(recv, t, size_t(std::max<int64_t>(bad, 0))) << ", want "
                               << reduce_ref(n, size_t(std::max<int64_t>(bad, 0)), op);
            if (!in_place) ASSERT_EQ(send, original) << "out-of-place allreduce modified its input";
          }
      }
  }
}

TEST(Collectives, AllreduceLargeCrossesManyChunks) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const size_t count = (size_t(3) << 20) + 5;  // 12 MiB of fp32: many laps of the staging ring
  for (DType t : {DType::Float32, DType::BFloat16}) {
    auto buf = filled(t, count, comm.rank(), ReduceOp::Sum);
    comm.allreduce(buf.data(), buf.data(), int64_t(count), t, ReduceOp::Sum);
    EXPECT_EQ(first_mismatch(buf.data(), t, count, comm.size(), ReduceOp::Sum), -1) << dtype_name(t);
  }
}

TEST(Collectives, ZeroCopySharedBuffer) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const size_t offset_elems = 24, max_count = 70001;
  SharedBuffer sb = comm.allocate_shared((max_count + offset_elems) * 8);
  ASSERT_TRUE(bool(sb));
  for (DType t : kAllTypes)
    for (ReduceOp op : kAllOps) {
      if ((t == DType::Int32 || t == DType::Int64) && op == ReduceOp::Avg) continue;
      for (size_t count : {size_t(1), size_t(5), size_t(4099), max_count}) {
        char* p = sb.as<char>() + offset_elems * dtype_size(t);
        for (size_t i = 0; i < count; ++i) put(p, t, i, value(comm.rank(), i, op));
        comm.allreduce(p, p, int64_t(count), t, op);
        const int64_t bad = first_mismatch(p, t, count, comm.size(), op);
        ASSERT_EQ(bad, -1) << "zero-copy " << dtype_name(t) << " " << reduce_op_name(op) << " count=" << count;
      }
    }
}

// bf16/fp16 sums must accumulate in fp32 and round once: with rank 0 holding 256 (bf16) or 2048
// (fp16) and every other rank 1, pairwise rounding would stay at 256/2048.
TEST(Collectives, HalfSumsAccumulateInFloat32) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  for (auto [t, big] : {std::pair{DType::BFloat16, 256.0}, std::pair{DType::Float16, 2048.0}})
    for (size_t count : {size_t(1), size_t(50000)}) {
      std::vector<char> buf(count * 2);
      for (size_t i = 0; i < count; ++i) put(buf.data(), t, i, comm.rank() == 0 ? big : 1.0);
      comm.allreduce(buf.data(), buf.data(), int64_t(count), t, ReduceOp::Sum);
      std::vector<char> want(8);
      put(want.data(), t, 0, big + comm.size() - 1);  // exact sum, rounded once
      for (size_t i = 0; i < count; ++i)
        ASSERT_EQ(get(buf.data(), t, i), get(want.data(), t, 0)) << dtype_name(t) << " count " << count << " i " << i;
    }
}

TEST(Collectives, NonBlockingOutOfOrderWaits) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size();
  std::vector<std::vector<char>> bufs;
  std::vector<Work> works;
  const size_t sizes[] = {1, 100000, 3, 250000};
  for (size_t s : sizes) bufs.push_back(filled(DType::Float32, s, comm.rank(), ReduceOp::Sum));
  std::vector<int64_t> root_data(10, comm.rank() == 1 % n ? 42 : 0);
  for (size_t k = 0; k < 4; ++k) {
    works.push_back(comm.iallreduce(bufs[k].data(), bufs[k].data(), int64_t(sizes[k]), DType::Float32, ReduceOp::Sum));
    if (k == 1) works.push_back(comm.ibroadcast(root_data.data(), 10, DType::Int64, 1 % n));
  }
  for (auto it = works.rbegin(); it != works.rend(); ++it) it->wait();
  for (auto& w : works) EXPECT_TRUE(w.completed());
  for (size_t k = 0; k < 4; ++k)
    EXPECT_EQ(first_mismatch(bufs[k].data(), DType::Float32, sizes[k], n, ReduceOp::Sum), -1) << "op " << k;
  for (int64_t v : root_data) EXPECT_EQ(v, 42);
  // test() drives completion without blocking.
  auto more = filled(DType::Float64, 5000, comm.rank(), ReduceOp::Max);
  Work w = comm.iallreduce(more.data(), more.data(), 5000, DType::Float64, ReduceOp::Max);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!w.test()) ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test() never completed";
  EXPECT_EQ(first_mismatch(more.data(), DType::Float64, 5000, n, ReduceOp::Max), -1);
}

TEST(Collectives, BroadcastEveryRootDtypeSize) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  for (int root = 0; root < comm.size(); ++root)
    for (DType t : kAllTypes)
      for (size_t count : {size_t(0), size_t(1), size_t(1001)}) {
        auto buf = filled(t, count, comm.rank(), ReduceOp::Sum);
        comm.broadcast(buf.data(), int64_t(count), t, root);
        auto want = filled(t, count, root, ReduceOp::Sum);
        ASSERT_EQ(std::memcmp(buf.data(), want.data(), count * dtype_size(t)), 0)
            << "root " << root << " " << dtype_name(t) << " count " << count;
      }
}

TEST(Collectives, AllgatherEqualSizesAndInPlace) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size(), me = comm.rank();
  for (DType t : kAllTypes)
    for (size_t count : {size_t(0), size_t(1), size_t(777)})
      for (bool in_place : {false, true}) {
        const size_t es = dtype_size(t);
        std::vector<char> out(count * es * size_t(n) + 1);
        auto mine = filled(t, count, me, ReduceOp::Sum);
        const void* send = mine.data();
        if (in_place) {
          std::memcpy(out.data() + size_t(me) * count * es, mine.data(), count * es);
          send = out.data() + size_t(me) * count * es;
        }
        comm.allgather(send, out.data(), int64_t(count), t);
        for (int r = 0; r < n; ++r) {
          auto want = filled(t, count, r, ReduceOp::Sum);
          ASSERT_EQ(std::memcmp(out.data() + size_t(r) * count * es, want.data(), count * es), 0)
              << dtype_name(t) << " count " << count << " block " << r << (in_place ? " in place" : "");
        }
      }
}

TEST(Collectives, AllgatherVariableSizesIncludingEmpty) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size(), me = comm.rank();
  std::vector<int64_t> counts(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) counts[size_t(r)] = r == 1 ? 0 : 3 * r + 1;  // rank 1 sends nothing
  int64_t total = 0;
  for (auto c : counts) total += c;
  for (DType t : kAllTypes) {
    auto mine = filled(t, size_t(counts[size_t(me)]), me, ReduceOp::Min);
    std::vector<char> out(size_t(total) * dtype_size(t) + 1);
    comm.allgatherv(mine.data(), out.data(), counts, t);
    size_t off = 0;
    for (int r = 0; r < n; ++r) {
      auto want = filled(t, size_t(counts[size_t(r)]), r, ReduceOp::Min);
      ASSERT_EQ(std::memcmp(out.data() + off, want.data(), size_t(counts[size_t(r)]) * dtype_size(t)), 0)
          << dtype_name(t) << " block of rank " << r;
      off += size_t(counts[size_t(r)]) * dtype_size(t);
    }
  }
}

TEST(Collectives, ReduceScatterEveryDtypeOp) {
  for (const auto& path : paths()) {
    MpiCommunicator comm(MPI_COMM_WORLD, path.opts);
    const int n = comm.size(), me = comm.rank();
    for (DType t : kAllTypes)
      for (ReduceOp op : kAllOps) {
        if ((t == DType::Int32 || t == DType::Int64) && op == ReduceOp::Avg) continue;
        for (size_t rc : {size_t(0), size_t(1), size_t(5), size_t(1001)}) {
          auto send = filled(t, rc * size_t(n), me, op);
          std::vector<char> recv(rc * dtype_size(t) + 1);
          comm.reduce_scatter(send.data(), recv.data(), int64_t(rc), t, op);
          // Block `me` of the reference = elements [me*rc, (me+1)*rc) of the full reduction.
          std::vector<char> full(rc * size_t(n) * dtype_size(t) + 1);
          for (size_t i = 0; i < rc * size_t(n); ++i) put(full.data(), t, i, reduce_ref(n, i, op));
          for (size_t i = 0; i < rc; ++i) {
            std::vector<char> w(8);
            put(w.data(), t, 0, get(full.data(), t, size_t(me) * rc + i));
            ASSERT_EQ(get(recv.data(), t, i), get(w.data(), t, 0))
                << path.name << " " << dtype_name(t) << " " << reduce_op_name(op) << " rc=" << rc << " i=" << i;
          }
        }
      }
  }
}

// Reference for reduce_scatter: block `me` of the full reduction of every rank's `filled` input.
void expect_reduce_scatter_block(const char* recv, DType t, ReduceOp op, size_t rc, int n, int me,
                                 const std::string& what) {
  for (size_t i = 0; i < rc; ++i) {
    std::vector<char> w(8);
    put(w.data(), t, 0, reduce_ref(n, size_t(me) * rc + i, op));
    ASSERT_EQ(get(recv, t, i), get(w.data(), t, 0)) << what << " " << dtype_name(t) << " " << reduce_op_name(op)
                                                    << " rc=" << rc << " i=" << i;
  }
}

// Blocks large enough to wrap the staging ring many times (native shared-memory path).
TEST(Collectives, ReduceScatterLargeWrapsTheRing) {
  for (const auto& path : paths()) {
    MpiCommunicator comm(MPI_COMM_WORLD, path.opts);
    const int n = comm.size(), me = comm.rank();
    for (DType t : {DType::Float32, DType::BFloat16, DType::Float64})
      for (size_t rc : {size_t(4099), size_t(70001)}) {
        auto send = filled(t, rc * size_t(n), me, ReduceOp::Avg);
        std::vector<char> recv(rc * dtype_size(t) + 1);
        comm.reduce_scatter(send.data(), recv.data(), int64_t(rc), t, ReduceOp::Avg);
        expect_reduce_scatter_block(recv.data(), t, ReduceOp::Avg, rc, n, me, path.name);
      }
  }
}

// Input in a SharedBuffer: zero-copy on one node, into private memory and in place.
TEST(Collectives, ReduceScatterFromSharedBuffer) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size(), me = comm.rank();
  const size_t offset_elems = 16, max_rc = 20001;
  SharedBuffer sb = comm.allocate_shared((max_rc * size_t(n) + offset_elems) * 8);
  for (DType t : kAllTypes)
    for (ReduceOp op : kAllOps) {
      if ((t == DType::Int32 || t == DType::Int64) && op == ReduceOp::Avg) continue;
      for (size_t rc : {size_t(1), size_t(33), max_rc})
        for (bool in_place : {false, true}) {
          const size_t es = dtype_size(t);
          char* in = sb.as<char>() + offset_elems * es;
          auto mine = filled(t, rc * size_t(n), me, op);
          std::memcpy(in, mine.data(), rc * size_t(n) * es);
          std::vector<char> priv(rc * es + 1);
          char* out = in_place ? in + size_t(me) * rc * es : priv.data();
          comm.reduce_scatter(in, out, int64_t(rc), t, op);
          expect_reduce_scatter_block(out, t, op, rc, n, me, in_place ? "shared in place" : "shared");
        }
    }
}

// Output in a SharedBuffer: on one node each rank copies its peers' blocks out of their slots.
TEST(Collectives, AllgatherIntoSharedBuffer) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  const int n = comm.size(), me = comm.rank();
  const size_t max_count = 50001;
  SharedBuffer sb = comm.allocate_shared(max_count * size_t(n) * 8 + 64);
  for (int round = 0; round < 2; ++round)  // the second round overwrites what the first gathered
    for (DType t : {DType::Float32, DType::BFloat16, DType::Int64})
      for (size_t count : {size_t(0), size_t(3), max_count})
        for (bool in_place : {false, true}) {
          const size_t es = dtype_size(t);
          char* out = sb.as<char>() + 64;
          auto mine = filled(t, count, me + round, ReduceOp::Sum);
          const void* send = mine.data();
          if (in_place) {
            std::memcpy(out + size_t(me) * count * es, mine.data(), count * es);
            send = out + size_t(me) * count * es;
          }
          comm.allgather(send, out, int64_t(count), t);
          for (int r = 0; r < n; ++r) {
            auto want = filled(t, count, r + round, ReduceOp::Sum);
            ASSERT_EQ(std::memcmp(out + size_t(r) * count * es, want.data(), count * es), 0)
                << dtype_name(t) << " count " << count << " block " << r << (in_place ? " in place" : "");
          }
        }
}

TEST(Collectives, BarrierWaitsForTheLastArrival) {
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  for (int round = 0; round < 3; ++round) {
    const int late = round % comm.size();
    if (comm.rank() == late) std::this_thread::sleep_for(100ms);
    // CLOCK_MONOTONIC is one clock for every process of the machine (MPI_Wtime is per process).
    auto now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    const double entered = now();
    comm.barrier();
    const double left = now();
    std::vector<double> entries(size_t(comm.size()));
    comm.allgather(&entered, entries.data(), 1, DType::Float64);
    EXPECT_GE(left + 1e-4, *std::max_element(entries.begin(), entries.end())) << "left the barrier before rank "
                                                                             << late << " entered it";
  }
}

TEST(Collectives, NodeTopologyMatchesHostsOrSimulation) {
  const char* env = std::getenv("MPITRAIN_RANKS_PER_NODE");
  MpiCommunicator comm(MPI_COMM_WORLD, {});
  if (env) {
    const int k = std::atoi(env);
    EXPECT_EQ(comm.node_count(), (comm.size() + k - 1) / k);
    EXPECT_EQ(comm.local_rank(), comm.rank() % k);
    return;
  }
  // Real nodes: as many as distinct host names among the ranks.
  char host[64] = {0};
  gethostname(host, sizeof host - 1);
  std::vector<char> all(size_t(64 * comm.size()));
  comm.allgather(host, all.data(), 16, DType::Int32);
  std::set<std::string> hosts;
  for (int r = 0; r < comm.size(); ++r) hosts.insert(std::string(all.data() + 64 * r));
  EXPECT_EQ(comm.node_count(), int(hosts.size()));
  EXPECT_EQ(comm.local_size() * comm.node_count(), comm.size()) << "ranks spread evenly in these tests";
}

}  // namespace
}  // namespace mpitrain::test
