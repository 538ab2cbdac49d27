#include "mpitrain/comm/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <climits>
#include <cstdio>
#include <deque>
#include <thread>

#include "nccl_tasks.hpp"
#include "task.hpp"

namespace mpitrain {

using detail::CallInfo;
using detail::CollectiveKind;
using detail::cuda_error;
using detail::DeviceGuard;
using detail::nccl_error;
using detail::nccl_op;
using detail::nccl_type;
using detail::NcclTask;
using detail::Task;

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw ArgumentError(msg);
}

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", double(ms.count()) / 1000.0);
  return buf;
}

// Status of a setup step every rank must agree on before the next collective step: a rank that
// failed alone would otherwise leave its peers blocked in MPI or in NCCL's bootstrap.
struct Agreement {
  bool ok = true;
  int failed_rank = -1;  // lowest failing rank
};

Agreement agree(MPI_Comm comm, int rank, bool ok) {
  int v[2] = {ok ? 1 : 0, ok ? INT_MAX : rank};
  MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MIN, comm);
  return {v[0] == 1, v[1] == INT_MAX ? -1 : v[1]};
}

}  // namespace

struct NcclCommunicator::Impl {
  CommOptions opts;
  MPI_Comm world = MPI_COMM_NULL;  // duplicate of the user's communicator
  int rank = 0, size = 1, local_rank = 0, local_size = 1, device = 0;
  ncclComm_t nccl = nullptr;
  cudaStream_t stream = nullptr;
  int* scratch = nullptr;  // barrier payload (one int on the device)
  bool aborted = false;
  std::deque<std::shared_ptr<Task>> queue;  // issue order == completion order (one stream)
  std::string failed;                       // non-empty once poisoned
  uint64_t seq = 0;

  ~Impl() {
    if (nccl || stream || scratch) {
      DeviceGuard g(device);
      // After an abort NCCL has already released the communicator.
      if (nccl && !aborted) ncclCommDestroy(nccl);
      if (stream) cudaStreamDestroy(stream);
      if (scratch) cudaFree(scratch);
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (world != MPI_COMM_NULL && !finalized) MPI_Comm_free(&world);
  }

  std::string where() const {
    return "rank " + std::to_string(rank) + " (world size " + std::to_string(size) + ")";
  }

  void check_usable() const {
    if (!failed.empty()) throw CommError("communicator unusable after an earlier failure: " + failed);
  }

  // Any failure aborts the NCCL communicator: kernels still in flight stop instead of waiting
  // forever for peers, and the stream becomes usable again for destruction.
  [[noreturn]] void poison(std::string msg) {
    if (nccl && !aborted) {
      ncclCommAbort(nccl);
      aborted = true;
      msg += "; communicator aborted";
    }
    failed = msg;
    queue.clear();  // Work handles still own their tasks; waiting on them throws check_usable's error
    throw CommError(msg);
  }

  CallInfo next_call(CollectiveKind kind, int64_t count, DType dtype, ReduceOp op = ReduceOp::Sum,
                     int root = -1) {
    return CallInfo{kind, seq++, count, dtype, op, root};
  }

  void progress_queue() {
    try {
      while (!queue.empty() && queue.front()->step()) queue.pop_front();
    } catch (const CommError& e) {
      poison(std::string(e.what()) + " [on " + where() + "]");
    }
  }

  // Polls the queue until `t` completes or the deadline expires. Kernels take micro- to
  // milliseconds, so the loop yields first and sleeps briefly later rather than spinning a core.
  void drive(Task& t, std::chrono::milliseconds timeout) {
    progress_queue();
    if (t.done()) return;
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    for (uint32_t spins = 1;; ++spins) {
      progress_queue();
      if (t.done()) return;
      if ((spins & 31) == 0 && clock::now() > deadline) timed_out(t, timeout);
      if (spins < 1024)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  [[noreturn]] void timed_out(Task& awaited, std::chrono::milliseconds timeout) {
    Task& stuck = queue.empty() ? awaited : *queue.front();
    std::string msg = stuck.info().describe() + " on " + where() +
                      " did not complete within the deadline of " + seconds(timeout) + ": " +
                      stuck.waiting_for();
    if (&stuck != &awaited) msg += "; the awaited " + awaited.info().describe() + " is queued behind it";
    poison(msg);
  }

  // NCCL reads and writes device memory only: a host pointer would fault inside the kernel (or
  // hang peers), so reject it before anything is enqueued.
  void require_device(const char* what, const char* arg, const void* p) {
    cudaPointerAttributes a{};
    cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e == cudaErrorInvalidValue) {  // older drivers' answer for unregistered host memory
      cudaGetLastError();
      a.type = cudaMemoryTypeUnregistered;
    } else if (e != cudaSuccess) {
      poison(std::string(what) + ": " + cuda_error("cudaPointerGetAttributes", e) + " [on " + where() + "]");
    }
    if (a.type == cudaMemoryTypeManaged) return;
    if (a.type == cudaMemoryTypeDevice) {
      require(a.device == device, std::string(what) + ": " + arg + " is on CUDA device " +
                                      std::to_string(a.device) + ", this communicator uses device " +
                                      std::to_string(device));
      return;
    }
    throw ArgumentError(std::string(what) + ": " + arg +
                        " is host memory; the NCCL backend takes device buffers");
  }

  void validate_reduction(const char* what, int64_t count, const void* send, const void* recv, DType dtype,
                          ReduceOp op) {
    check_usable();
    require(count >= 0, std::string(what) + ": negative count " + std::to_string(count));
    require(count == 0 || (send && recv),
            std::string(what) + ": null buffer with count " + std::to_string(count));
    check_reduction_supported(dtype, op);
    if (count == 0) return;
    require_device(what, "send buffer", send);
    if (recv != send) require_device(what, "receive buffer", recv);
  }

  // Enqueues `call` (NCCL calls on `stream`) and records the task's event behind it. The event is
  // created first so that a CUDA failure happens before this rank joins the collective.
  template <class Call>
  std::shared_ptr<Task> launch(const CallInfo& info, const char* nccl_call, Call&& call) {
    DeviceGuard g(device);
    std::shared_ptr<NcclTask> t;
    try {
      t = std::make_shared<NcclTask>(info, nccl);
    } catch (const CommError& e) {
      poison(std::string(e.what()) + " [on " + where() + "]");
    }
    ncclResult_t r = call();
    if (r != ncclSuccess)
      poison(info.describe() + ": " + nccl_error(nccl_call, r, nccl) + " [on " + where() + "]");
    cudaError_t e = cudaEventRecord(t->event(), stream);
    if (e != cudaSuccess)
      poison(info.describe() + ": " + cuda_error("cudaEventRecord", e) + " [on " + where() + "]");
    queue.push_back(t);
    return t;
  }
};

NcclCommunicator::NcclCommunicator(MPI_Comm comm, CommOptions options)
    : Communicator(options.timeout), impl_(std::make_unique<Impl>()) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    throw CommError("NcclCommunicator: MPI is not initialised "
                    "(construct mpitrain::Runtime or call MPI_Init_thread first)");
  require(options.timeout.count() > 0, "CommOptions: timeout must be positive");
  auto& im = *impl_;
  im.opts = options;

  // The device check is local and comes first; the ranks then agree, so that one rank without a
  // device makes every rank throw instead of leaving the others blocked in NCCL's bootstrap.
  int devices = 0;
  cudaError_t dev_err = cudaGetDeviceCount(&devices);
  const bool has_device = dev_err == cudaSuccess && devices > 0;
  if (dev_err != cudaSuccess) cudaGetLastError();

  if (MPI_Comm_dup(comm, &im.world) != MPI_SUCCESS) throw CommError("NcclCommunicator: MPI_Comm_dup failed");
  MPI_Comm_rank(im.world, &im.rank);
  MPI_Comm_size(im.world, &im.size);
  const Agreement dev_ok = agree(im.world, im.rank, has_device);
  if (!dev_ok.ok) {
    MPI_Comm_free(&im.world);
    if (!has_device)
      throw CommError(
          std::string("NCCL backend requested but no CUDA device is visible (cudaGetDeviceCount: ") +
          (dev_err == cudaSuccess ? "0 devices" : cudaGetErrorString(dev_err)) +
          "); use the MPI backend for CPU tensors");
    throw CommError("NCCL backend requested but rank " + std::to_string(dev_ok.failed_rank) +
                    " sees no CUDA device; use the MPI backend for CPU tensors");
  }

  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(im.world, MPI_COMM_TYPE_SHARED, im.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &im.local_rank);
  MPI_Comm_size(node, &im.local_size);
  MPI_Comm_free(&node);
  // With one visible device per rank (e.g. Slurm --gpus-per-task=1) this is always device 0.
  im.device = im.local_rank % devices;

  // Local setup, then agreement again before the id broadcast and NCCL's collective init.
  std::string local_err;
  ncclUniqueId id{};
  cudaError_t e = cudaSetDevice(im.device);
  if (e != cudaSuccess)
    local_err = cuda_error(("cudaSetDevice(" + std::to_string(im.device) + ")").c_str(), e);
  if (local_err.empty() &&
      (e = cudaStreamCreateWithFlags(&im.stream, cudaStreamNonBlocking)) != cudaSuccess) {
    im.stream = nullptr;
    local_err = cuda_error("cudaStreamCreateWithFlags", e);
  }
  if (local_err.empty() &&
      (e = cudaMalloc(reinterpret_cast<void**>(&im.scratch), sizeof(int))) != cudaSuccess) {
    im.scratch = nullptr;
    local_err = cuda_error("cudaMalloc", e);
  }
  if (local_err.empty() && (e = cudaMemset(im.scratch, 0, sizeof(int))) != cudaSuccess)
    local_err = cuda_error("cudaMemset", e);
  if (local_err.empty() && im.rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) local_err = nccl_error("ncclGetUniqueId", r, nullptr);
  }
  const Agreement setup_ok = agree(im.world, im.rank, local_err.empty());
  if (!setup_ok.ok) {
    if (!local_err.empty())
      throw CommError("NCCL backend setup failed on " + im.where() + " (device " + std::to_string(im.device) +
                      "): " + local_err);
    throw CommError("NCCL backend setup failed on rank " + std::to_string(setup_ok.failed_rank) +
                    " (seen from " + im.where() + ")");
  }

  MPI_Bcast(&id, int(sizeof id), MPI_BYTE, 0, im.world);
  // A rank failing here alone cannot be agreed on (the others are inside NCCL's bootstrap); NCCL
  // reports the broken bootstrap to them.
  ncclResult_t r = ncclCommInitRank(&im.nccl, im.size, id, im.rank);
  if (r != ncclSuccess) {
    im.nccl = nullptr;
    throw CommError("NCCL backend setup failed on " + im.where() + ": " +
                    nccl_error("ncclCommInitRank", r, nullptr));
  }
}

NcclCommunicator::~NcclCommunicator() {
  auto& im = *impl_;
  // Finish what the user issued but never waited for (their buffers are still alive by contract).
  // Hold the task: the queue may drop the last reference while it is being driven.
  if (im.failed.empty() && !im.queue.empty()) {
    std::shared_ptr<Task> last = im.queue.back();
    try {
      im.drive(*last, timeout());
    } catch (const CommError&) {
    }
  }
}

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::size() const { return impl_->size; }
int NcclCommunicator::local_rank() const { return impl_->local_rank; }
int NcclCommunicator::local_size() const { return impl_->local_size; }
const CommOptions& NcclCommunicator::options() const { return impl_->opts; }
int NcclCommunicator::device() const { return impl_->device; }
CUstream_st* NcclCommunicator::stream() const { return impl_->stream; }
MPI_Comm NcclCommunicator::mpi_comm() const { return impl_->world; }

bool NcclCommunicator::test_task(Task& task) {
  impl_->check_usable();
  impl_->progress_queue();
  return task.done();
}

void NcclCommunicator::wait_task(Task& task) {
  impl_->check_usable();
  impl_->drive(task, timeout());
}

Work NcclCommunicator::iallreduce(const void* send, void* recv, int64_t count, DType dtype, ReduceOp op) {
  auto& im = *impl_;
  im.validate_reduction("allreduce", count, send, recv, dtype, op);
  const ncclDataType_t ty = nccl_type(dtype);
  const ncclRedOp_t nop = nccl_op(op);
  const CallInfo info = im.next_call(CollectiveKind::Allreduce, count, dtype, op);
  return make_work(im.launch(info, "ncclAllReduce", [&] {
    return ncclAllReduce(send, recv, size_t(count), ty, nop, im.nccl, im.stream);
  }));
}

Work NcclCommunicator::ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                       ReduceOp op) {
  auto& im = *impl_;
  im.validate_reduction("reduce_scatter", recv_count, send, recv, dtype, op);
  const ncclDataType_t ty = nccl_type(dtype);
  const ncclRedOp_t nop = nccl_op(op);
  const CallInfo info = im.next_call(CollectiveKind::ReduceScatter, recv_count, dtype, op);
  return make_work(im.launch(info, "ncclReduceScatter", [&] {
    return ncclReduceScatter(send, recv, size_t(recv_count), ty, nop, im.nccl, im.stream);
  }));
}

Work NcclCommunicator::ibroadcast(void* buf, int64_t count, DType dtype, int root) {
  auto& im = *impl_;
  im.check_usable();
  require(count >= 0, "broadcast: negative count " + std::to_string(count));
  require(count == 0 || buf, "broadcast: null buffer with count " + std::to_string(count));
  require(root >= 0 && root < im.size,
          "broadcast: root " + std::to_string(root) + " outside [0, " + std::to_string(im.size) + ")");
  const ncclDataType_t ty = nccl_type(dtype);
  if (count) im.require_device("broadcast", "buffer", buf);
  const CallInfo info = im.next_call(CollectiveKind::Broadcast, count, dtype, ReduceOp::Sum, root);
  return make_work(im.launch(info, "ncclBroadcast", [&] {
    return ncclBroadcast(buf, buf, size_t(count), ty, root, im.nccl, im.stream);
  }));
}

Work NcclCommunicator::iallgather(const void* send, void* recv, int64_t count, DType dtype) {
  auto& im = *impl_;
  im.check_usable();
  require(count >= 0, "allgather: negative count " + std::to_string(count));
  require(count == 0 || (send && recv), "allgather: null buffer with count " + std::to_string(count));
  const ncclDataType_t ty = nccl_type(dtype);
  if (count) {
    im.require_device("allgather", "send buffer", send);
    if (recv != send) im.require_device("allgather", "receive buffer", recv);
  }
  const CallInfo info = im.next_call(CollectiveKind::Allgather, count, dtype);
  // In place (send == this rank's block of recv) is understood by NCCL directly.
  return make_work(im.launch(info, "ncclAllGather", [&] {
    return ncclAllGather(send, recv, size_t(count), ty, im.nccl, im.stream);
  }));
}

Work NcclCommunicator::iallgatherv(const void* send, void* recv, const std::vector<int64_t>& counts,
                                   DType dtype) {
  auto& im = *impl_;
  im.check_usable();
  const int n = im.size;
  require(int(counts.size()) == n, "allgatherv: counts has " + std::to_string(counts.size()) +
                                       " entries, the world has " + std::to_string(n) + " ranks");
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    require(counts[r] >= 0,
            "allgatherv: negative count " + std::to_string(counts[r]) + " for rank " + std::to_string(r));
    total += counts[r];
  }
  const int64_t mine = counts[size_t(im.rank)];
  require(mine == 0 || send, "allgatherv: null send buffer with count " + std::to_string(mine));
  require(total == 0 || recv, "allgatherv: null receive buffer for " + std::to_string(total) + " elements");
  const ncclDataType_t ty = nccl_type(dtype);
  if (mine) im.require_device("allgatherv", "send buffer", send);
  if (total && recv != send) im.require_device("allgatherv", "receive buffer", recv);
  const CallInfo info = im.next_call(CollectiveKind::Allgatherv, mine, dtype);
  const size_t esize = dtype_size(dtype);
  // NCCL has no allgatherv: one broadcast per root into its block, fused into one group. Every
  // rank skips the same empty blocks, since counts are the same everywhere.
  return make_work(im.launch(info, "ncclGroupStart/ncclBroadcast/ncclGroupEnd", [&] {
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) return r;
    size_t displ = 0;
    for (int root = 0; root < n; ++root) {
      const size_t c = size_t(counts[size_t(root)]);
      if (c) {
        void* dst = static_cast<char*>(recv) + displ * esize;
        r = ncclBroadcast(root == im.rank ? send : dst, dst, c, ty, root, im.nccl, im.stream);
        if (r != ncclSuccess) break;
      }
      displ += c;
    }
    const ncclResult_t end = ncclGroupEnd();  // always close the group, even after a failed call
    return r != ncclSuccess ? r : end;
  }));
}

Work NcclCommunicator::ibarrier() {
  auto& im = *impl_;
  im.check_usable();
  const CallInfo info = im.next_call(CollectiveKind::Barrier, 0, DType::Int32);
  // max of zeros keeps the scratch at 0: its value never matters, only that every rank joined.
  return make_work(im.launch(info, "ncclAllReduce", [&] {
    return ncclAllReduce(im.scratch, im.scratch, 1, ncclInt32, ncclMax, im.nccl, im.stream);
  }));
}

SharedBuffer NcclCommunicator::allocate_shared(size_t bytes) {
  impl_->check_usable();
  throw CommError(
      "allocate_shared: the NCCL backend has no node-shared host window; "
      "allocate device memory and reduce it in place");
}

}  // namespace mpitrain
