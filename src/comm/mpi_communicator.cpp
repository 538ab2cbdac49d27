#include "mpitrain/comm/mpi_communicator.hpp"

#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "mpi_tasks.hpp"
#include "scatter_gather_tasks.hpp"
#include "task_queue.hpp"

namespace mpitrain {

using detail::CallInfo;
using detail::CollectiveKind;
using detail::Task;

namespace {

// CPUs of the node (not this process's affinity mask: launchers bind each rank to one core, and
// ranks <= CPUs of the node means every rank has a core of its own to spin on).
int node_cpus() { return int(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))); }

void require(bool ok, const std::string& msg) {
  if (!ok) throw ArgumentError(msg);
}

}  // namespace

struct MpiCommunicator::Impl {
  detail::MpiContext ctx;
  detail::TaskQueue tasks{ctx};                             // in-order collectives and the waiting policy
  std::vector<std::shared_ptr<detail::ShmRegion>> regions;  // SharedBuffers, in creation order

  bool shm_ok() const { return ctx.nodes == 1 || ctx.hierarchical; }

  // The SharedBuffer region holding [p, p+bytes) in this rank's slot, if any.
  detail::ShmRegion* shared_region(const void* p, size_t bytes, size_t* offset) const {
    if (bytes == 0) return nullptr;
    for (auto& r : regions)
      if (r->contains(ctx.local_rank, p, bytes, offset)) return r.get();
    return nullptr;
  }

  std::unique_ptr<Task> make_allreduce(const CallInfo& info, const void* send, void* recv) {
    const size_t bytes = size_t(info.count) * dtype_size(info.dtype);
    size_t off = 0;
    // Zero-copy needs in-place use and node-local shared memory; otherwise memory is memory and
    // the ordinary paths below handle it.
    if (send == recv && shm_ok())
      if (detail::ShmRegion* r = shared_region(recv, bytes, &off))
        return std::make_unique<detail::PipelinedAllreduceTask>(ctx, info, nullptr, recv, *r, off);
    if (!shm_ok() || ctx.opts.user_path == UserBufferPath::ChunkedMpi)
      return std::make_unique<detail::ChunkedMpiAllreduceTask>(ctx, info, send, recv);
    if (bytes <= ctx.opts.small_bytes) return std::make_unique<detail::SmallAllreduceTask>(ctx, info, send, recv);
    return std::make_unique<detail::PipelinedAllreduceTask>(ctx, info, send, recv, *ctx.staging, 0);
  }

  void validate_reduction(const char* what, int64_t count, const void* send, const void* recv, DType dtype,
                          ReduceOp op) const {
    tasks.check_usable();
    require(count >= 0, std::string(what) + ": negative count " + std::to_string(count));
    require(count == 0 || (send && recv), std::string(what) + ": null buffer with count " + std::to_string(count));
    check_reduction_supported(dtype, op);
  }

  void validate_mpi_count(const char* what, int64_t count) const {
    require(count <= INT_MAX, std::string(what) + ": count " + std::to_string(count) +
                                  " exceeds one MPI call's limit of 2^31-1 elements");
  }
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, CommOptions options, MpiTopologyOptions topo)
    : Communicator(options.timeout), impl_(std::make_unique<Impl>()) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    throw CommError("MpiCommunicator: MPI is not initialised (construct mpitrain::Runtime or call MPI_Init_thread first)");
  require(options.timeout.count() > 0, "CommOptions: timeout must be positive");
  require(options.liveness_timeout.count() == 0 || options.liveness_timeout.count() >= 1000,
          "CommOptions: liveness_timeout must be 0 (off) or at least 1 s (heartbeats come every 250 ms)");
  require(options.mpi_chunk_bytes >= 64, "CommOptions: mpi_chunk_bytes must be at least 64");
  require(options.pipeline_chunk_bytes >= 64, "CommOptions: pipeline_chunk_bytes must be at least 64");
  require(options.staging_bytes >= 2 * options.pipeline_chunk_bytes,
          "CommOptions: staging_bytes must hold at least two pipeline chunks");
  if (const char* env = std::getenv("MPITRAIN_RANKS_PER_NODE")) topo.ranks_per_node = std::atoi(env);

  auto& c = impl_->ctx;
  c.opts = options;
  detail::check_mpi(MPI_Comm_dup(comm, &c.world), "MPI_Comm_dup");
  MPI_Comm_rank(c.world, &c.rank);
  MPI_Comm_size(c.world, &c.size);
  if (topo.ranks_per_node > 0)
    detail::check_mpi(MPI_Comm_split(c.world, c.rank / topo.ranks_per_node, c.rank, &c.node), "MPI_Comm_split");
  else
    detail::check_mpi(MPI_Comm_split_type(c.world, MPI_COMM_TYPE_SHARED, c.rank, MPI_INFO_NULL, &c.node),
                      "MPI_Comm_split_type");
  MPI_Comm_rank(c.node, &c.local_rank);
  MPI_Comm_size(c.node, &c.local_size);

  int leader = c.local_rank == 0, minmax[2] = {c.local_size, -c.local_size};
  MPI_Allreduce(&leader, &c.nodes, 1, MPI_INT, MPI_SUM, c.world);
  MPI_Allreduce(MPI_IN_PLACE, minmax, 2, MPI_INT, MPI_MAX, c.world);
  c.hierarchical = c.nodes > 1 && minmax[0] == -minmax[1];
  if (c.hierarchical)
    detail::check_mpi(MPI_Comm_split(c.world, c.local_rank, c.rank, &c.cross), "MPI_Comm_split (cross-node)");

  if (options.verify_mpi_calls) detail::check_mpi(MPI_Comm_dup(c.world, &c.check), "MPI_Comm_dup (call checks)");

  std::vector<int> world_ranks(size_t(c.local_size));
  MPI_Allgather(&c.rank, 1, MPI_INT, world_ranks.data(), 1, MPI_INT, c.node);
  c.chan = std::make_unique<detail::ShmChannel>(c.node, options.small_bytes, std::move(world_ranks));
  c.staging = std::make_unique<detail::ShmRegion>(c.node, options.staging_bytes);
  impl_->tasks.set_oversubscribed(c.local_size > node_cpus());
}

MpiCommunicator::~MpiCommunicator() {
  auto& im = *impl_;
  // Finish what the user issued but never waited for (their buffers are still alive by contract).
  im.tasks.finish(timeout(), std::chrono::seconds(1));
  im.regions.clear();  // collective frees, same order on every rank
  im.ctx.staging.reset();
  im.ctx.chan.reset();
  for (MPI_Comm* cm : {&im.ctx.check, &im.ctx.cross, &im.ctx.node, &im.ctx.world})
    if (*cm != MPI_COMM_NULL) MPI_Comm_free(cm);
}

int MpiCommunicator::rank() const { return impl_->ctx.rank; }
int MpiCommunicator::size() const { return impl_->ctx.size; }
int MpiCommunicator::local_rank() const { return impl_->ctx.local_rank; }
int MpiCommunicator::local_size() const { return impl_->ctx.local_size; }
int MpiCommunicator::node_count() const { return impl_->ctx.nodes; }
const CommOptions& MpiCommunicator::options() const { return impl_->ctx.opts; }
MPI_Comm MpiCommunicator::mpi_comm() const { return impl_->ctx.world; }

bool MpiCommunicator::test_task(Task& task) {
  impl_->tasks.check_usable();
  impl_->tasks.progress();
  return task.done();
}

void MpiCommunicator::wait_task(Task& task) {
  impl_->tasks.check_usable();
  impl_->tasks.wait(task, timeout());
}

Work MpiCommunicator::iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
  impl_->validate_reduction("allreduce", count, send, recv, dtype, op);
  CallInfo info = impl_->tasks.next_call(CollectiveKind::Allreduce, count, dtype, op);
  std::shared_ptr<Task> t = impl_->make_allreduce(info, send, recv);
  impl_->tasks.push(t);
  return make_work(std::move(t));
}

void MpiCommunicator::allreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
  auto& im = *impl_;
  im.validate_reduction("allreduce", count, send, recv, dtype, op);
  const size_t bytes = size_t(count) * dtype_size(dtype);
  size_t off = 0;
  // Latency path: one node, nothing queued, small, not in a SharedBuffer -> run on the stack with
  // no allocation. (Across nodes a timed-out task may leave an MPI request behind, which must
  // outlive this frame: those go through the queue.)
  if (im.tasks.empty() && im.ctx.nodes == 1 && im.ctx.opts.user_path != UserBufferPath::ChunkedMpi &&
      bytes <= im.ctx.opts.small_bytes && !(send == recv && im.shared_region(recv, bytes, &off))) {
    detail::SmallAllreduceTask t(im.ctx, im.tasks.next_call(CollectiveKind::Allreduce, count, dtype, op), send, recv);
    im.tasks.wait_unqueued(t, timeout());
    return;
  }
  iallreduce(send, recv, count, dtype, op).wait();
}

Work MpiCommunicator::ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) {
  auto& im = *impl_;
  im.validate_reduction("reduce_scatter", recv_count, send, recv, dtype, op);
  im.validate_mpi_count("reduce_scatter", recv_count);
  CallInfo info = im.tasks.next_call(CollectiveKind::ReduceScatter, recv_count, dtype, op);
  std::shared_ptr<Task> t;
  if (im.ctx.nodes > 1 || im.ctx.opts.user_path == UserBufferPath::ChunkedMpi) {
    t = std::make_shared<detail::MpiReduceScatterTask>(im.ctx, info, send, recv);
  } else {
    // Zero-copy when the whole input sits in a SharedBuffer (at the same offset on every rank).
    const size_t bytes = size_t(recv_count) * dtype_size(dtype) * size_t(im.ctx.size);
    size_t off = 0;
    detail::ShmRegion* r = im.shared_region(send, bytes, &off);
    t = std::make_shared<detail::ShmReduceScatterTask>(im.ctx, info, send, recv, r ? *r : *im.ctx.staging, off,
                                                       r != nullptr);
  }
  im.tasks.push(t);
  return make_work(std::move(t));
}

Work MpiCommunicator::ibarrier() {
  auto& im = *impl_;
  im.tasks.check_usable();
  CallInfo info = im.tasks.next_call(CollectiveKind::Barrier, 0, DType::Float32);
  std::shared_ptr<Task> t;
  if (im.shm_ok()) {
    t = std::make_shared<detail::SmallAllreduceTask>(im.ctx, info, nullptr, nullptr);
  } else {
    MPI_Comm world = im.ctx.world;
    t = std::make_shared<detail::MpiRequestTask>(im.ctx, info, [world](MPI_Request* req, const int*) {
      detail::check_mpi(MPI_Ibarrier(world, req), "MPI_Ibarrier");
    });
  }
  im.tasks.push(t);
  return make_work(std::move(t));
}

Work MpiCommunicator::ibroadcast(void* buf, int64_t count, DType dtype, int root) {
  auto& im = *impl_;
  im.tasks.check_usable();
  require(count >= 0, "broadcast: negative count " + std::to_string(count));
  require(count == 0 || buf, "broadcast: null buffer with count " + std::to_string(count));
  require(root >= 0 && root < im.ctx.size,
          "broadcast: root " + std::to_string(root) + " outside [0, " + std::to_string(im.ctx.size) + ")");
  im.validate_mpi_count("broadcast", count);
  dtype_size(dtype);
  MPI_Comm world = im.ctx.world;
  auto t = std::make_shared<detail::MpiRequestTask>(
      im.ctx, im.tasks.next_call(CollectiveKind::Broadcast, count, dtype, ReduceOp::Sum, root),
      [=](MPI_Request* req, const int*) {
        detail::check_mpi(MPI_Ibcast(buf, int(count), detail::mpi_type(dtype), root, world, req), "MPI_Ibcast");
      });
  im.tasks.push(t);
  return make_work(std::move(t));
}

Work MpiCommunicator::iallgather(const void* send, void* recv, int64_t count, DType dtype) {
  auto& im = *impl_;
  im.tasks.check_usable();
  require(count >= 0, "allgather: negative count " + std::to_string(count));
  require(count == 0 || (send && recv), "allgather: null buffer with count " + std::to_string(count));
  im.validate_mpi_count("allgather", count * im.ctx.size);
  const size_t bytes = size_t(count) * dtype_size(dtype);
  CallInfo info = im.tasks.next_call(CollectiveKind::Allgather, count, dtype);
  size_t off = 0;
  if (im.ctx.nodes == 1)  // into a SharedBuffer: straight out of the peers' slots
    if (detail::ShmRegion* r = im.shared_region(recv, bytes * size_t(im.ctx.size), &off)) {
      std::shared_ptr<Task> t = std::make_shared<detail::ShmAllgatherTask>(im.ctx, info, send, recv, *r, off);
      im.tasks.push(t);
      return make_work(std::move(t));
    }
  // In place: `send` is this rank's block of `recv`.
  const void* s = send == static_cast<char*>(recv) + bytes * size_t(im.ctx.rank) && count ? MPI_IN_PLACE : send;
  MPI_Datatype ty = detail::mpi_type(dtype);
  MPI_Comm world = im.ctx.world;
  auto t = std::make_shared<detail::MpiRequestTask>(im.ctx, info, [=](MPI_Request* req, const int*) {
    detail::check_mpi(MPI_Iallgather(s, int(count), ty, recv, int(count), ty, world, req), "MPI_Iallgather");
  });
  im.tasks.push(t);
  return make_work(std::move(t));
}

Work MpiCommunicator::iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts, DType dtype) {
  auto& im = *impl_;
  im.tasks.check_usable();
  const int n = im.ctx.size;
  require(int(counts.size()) == n, "allgatherv: counts has " + std::to_string(counts.size()) +
                                       " entries, the world has " + std::to_string(n) + " ranks");
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    require(counts[r] >= 0, "allgatherv: negative count " + std::to_string(counts[r]) + " for rank " + std::to_string(r));
    total += counts[r];
  }
  im.validate_mpi_count("allgatherv", total);
  const int64_t mine = counts[size_t(im.ctx.rank)];
  require(mine == 0 || send, "allgatherv: null send buffer with count " + std::to_string(mine));
  require(total == 0 || recv, "allgatherv: null receive buffer for " + std::to_string(total) + " elements");
  std::vector<int> args(size_t(2 * n));  // counts, then displacements
  int64_t displ = 0, my_displ = 0;
  for (int r = 0; r < n; ++r) {
    args[size_t(r)] = int(counts[size_t(r)]);
    args[size_t(n + r)] = int(displ);
    if (r == im.ctx.rank) my_displ = displ;
    displ += counts[size_t(r)];
  }
  MPI_Datatype ty = detail::mpi_type(dtype);
  const void* s = mine && send == static_cast<char*>(recv) + size_t(my_displ) * dtype_size(dtype) ? MPI_IN_PLACE : send;
  MPI_Comm world = im.ctx.world;
  // Ranks must agree on every count, not just their own: check the total and a hash of them all.
  auto t = std::make_shared<detail::MpiRequestTask>(
      im.ctx, im.tasks.next_call(CollectiveKind::Allgatherv, mine, dtype),
      [=](MPI_Request* req, const int* a) {
        detail::check_mpi(MPI_Iallgatherv(s, int(mine), ty, recv, a, a + n, ty, world, req), "MPI_Iallgatherv");
      },
      std::move(args), total, detail::counts_hash(counts));
  im.tasks.push(t);
  return make_work(std::move(t));
}

SharedBuffer MpiCommunicator::allocate_shared(size_t bytes) {
  auto& im = *impl_;
  im.tasks.check_usable();
  // Every rank must ask for the same size: the window's layout depends on it.
  int64_t mm[2] = {int64_t(bytes), -int64_t(bytes)};
  allreduce(mm, mm, 2, DType::Int64, ReduceOp::Max);
  if (mm[0] != -mm[1])
    throw ArgumentError("allocate_shared: ranks asked for different sizes (" + std::to_string(-mm[1]) + " to " +
                        std::to_string(mm[0]) + " bytes)");
  auto region = std::make_shared<detail::ShmRegion>(im.ctx.node, bytes);
  im.regions.push_back(region);
  return SharedBuffer(region, region->slot(im.ctx.local_rank), bytes);
}

}  // namespace mpitrain
