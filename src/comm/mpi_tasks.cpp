#include "mpi_tasks.hpp"

#include <algorithm>
#include <cstring>

#include "reduce_kernels.hpp"

namespace mpitrain::detail {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int32: return MPI_INT32_T;
    case DType::Int64: return MPI_INT64_T;
    case DType::UInt8: return MPI_UINT8_T;
    case DType::BFloat16:
    case DType::Float16: return MPI_UINT16_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg: return MPI_SUM;
    case ReduceOp::Min: return MPI_MIN;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Prod: return MPI_PROD;
  }
  return MPI_OP_NULL;
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw CommError(std::string(what) + " failed: " + std::string(msg, size_t(len)));
}

namespace {
bool test(MPI_Request& req, const char* what) {
  int flag = 0;
  check_mpi(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), what);
  return flag != 0;
}
}  // namespace

// ---------------------------------------------------------------- cross-node agreement
void AgreementCheck::start(const MpiContext& ctx, const CallInfo& info, std::string local_error) {
  if (ctx.cross == MPI_COMM_NULL) {
    if (!local_error.empty()) throw CommError(local_error);
    return;
  }
  local_error_ = std::move(local_error);
  const int64_t d[3] = {int64_t(info.kind) | int64_t(info.dtype) << 8 | int64_t(info.op) << 16 |
                            int64_t(info.root + 1) << 24,
                        info.count, int64_t(info.seq)};
  for (int i = 0; i < 3; ++i) {
    words_[i] = d[i];
    words_[i + 3] = -d[i];
  }
  if (!local_error_.empty()) words_[5] += 1;  // makes max != -min everywhere: peers see a disagreement
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, words_, 6, MPI_INT64_T, MPI_MAX, ctx.cross, &req_),
            "MPI_Iallreduce (cross-node agreement)");
}

bool AgreementCheck::done(const MpiContext& ctx, const CallInfo& info) {
  if (req_ == MPI_REQUEST_NULL) return true;
  if (!test(req_, "MPI_Iallreduce (cross-node agreement)")) return false;
  if (!local_error_.empty()) throw CommError(local_error_);
  for (int i = 0; i < 3; ++i)
    if (words_[i] != -words_[i + 3])
      throw CommError("ranks disagree on a collective: rank " + std::to_string(ctx.rank) + " called " +
                      info.describe() + " but a rank on another node called a different collective, count, "
                      "dtype or op");
  return true;
}

bool AgreementCheck::drain() { return req_ == MPI_REQUEST_NULL || test(req_, "MPI_Iallreduce (cross-node agreement)"); }

namespace {
bool drain_request(MPI_Request& req) { return req == MPI_REQUEST_NULL || test(req, "MPI request"); }
}  // namespace

bool SmallAllreduceTask::drain() { return check_.drain() && drain_request(req_); }
bool PipelinedAllreduceTask::drain() { return check_.drain() && drain_request(req_); }
bool ChunkedMpiAllreduceTask::drain() {
  if (!issued_) return check_.drain();
  int flag = 1;
  if (!reqs_.empty()) check_mpi(MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Iallreduce");
  return flag != 0;
}

// ---------------------------------------------------------------- small
bool SmallAllreduceTask::progress() {
  ShmChannel& ch = *ctx_.chan;
  const CallInfo& in = info();
  const size_t bytes = size_t(in.count) * dtype_size(in.dtype);
  switch (phase_) {
    case 0:
      idx_ = ch.begin(in);
      if (bytes) std::memcpy(ch.payload(ch.local_rank(), idx_), send_, bytes);
      ch.signal();
      target_ = ch.counter();
      phase_ = 1;
      [[fallthrough]];
    case 1:
      if (!ch.all_reached(target_)) return false;
      check_.start(ctx_, in, ch.peer_mismatch(idx_, in));
      phase_ = 3;
      [[fallthrough]];
    case 3: {
      if (!check_.done(ctx_, in)) return false;
      const int n = ch.local_size();
      ctx_.srcs.resize(size_t(n));
      for (int r = 0; r < n; ++r) ctx_.srcs[size_t(r)] = ch.payload(r, idx_);
      if (ctx_.cross == MPI_COMM_NULL) {
        if (in.count) reduce_fused(in.dtype, in.op, ctx_.srcs.data(), n, &recv_, 1, size_t(in.count), ctx_.size);
        return true;
      }
      if (in.count == 0) {  // a barrier: MPI may complete a 0-element allreduce without talking
        check_mpi(MPI_Ibarrier(ctx_.cross, &req_), "MPI_Ibarrier (across nodes)");
        phase_ = 2;
        return false;
      }
      const DType acc = accum_dtype(in.dtype);
      acc_.resize(size_t(in.count) * dtype_size(acc));
      reduce_to_accum(in.dtype, in.op, ctx_.srcs.data(), n, acc_.data(), size_t(in.count));
      check_mpi(MPI_Iallreduce(MPI_IN_PLACE, acc_.data(), int(in.count), mpi_type(acc), mpi_op(in.op),
                               ctx_.cross, &req_),
                "MPI_Iallreduce (across nodes)");
      phase_ = 2;
      [[fallthrough]];
    }
    case 2:
      if (!test(req_, "MPI_Iallreduce (across nodes)")) return false;
      if (in.count) store_from_accum(in.dtype, in.op, acc_.data(), &recv_, 1, size_t(in.count), ctx_.size);
      return true;
  }
  return true;
}

std::string SmallAllreduceTask::waiting_for() const {
  if (phase_ == 3) return "the agreement check with other nodes has not completed";
  if (phase_ == 1) {
    std::string b = ctx_.chan->behind(target_);
    if (!b.empty()) return "rank(s) " + b + " of this node have not reached it";
  }
  if (phase_ == 2) return "the MPI exchange with other nodes has not completed";
  return {};
}

// ---------------------------------------------------------------- pipelined / zero-copy
PipelinedAllreduceTask::PipelinedAllreduceTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv,
                                               ShmRegion& region, size_t offset)
    : Task(info), ctx_(ctx), send_(static_cast<const char*>(send)), recv_(static_cast<char*>(recv)),
      region_(region), offset_(offset), esize_(dtype_size(info.dtype)) {
  const size_t count = size_t(info.count);
  if (send_ == nullptr) {  // zero-copy: the data already sits in the slots, one chunk
    chunk_ = std::max<size_t>(count, 1);
    ring_ = 1;
  } else {
    // One node: small chunks pipeline copy-in against reduction. Several nodes: each chunk's
    // slice crosses the network in one MPI call, so chunks are larger.
    const size_t chunk_bytes = ctx.cross == MPI_COMM_NULL ? ctx.opts.pipeline_chunk_bytes : region.slot_bytes() / 2;
    chunk_ = std::max<size_t>(1, chunk_bytes / esize_);
    ring_ = std::max<size_t>(2, region.slot_bytes() / (chunk_ * esize_));
  }
  nchunks_ = (count + chunk_ - 1) / chunk_;
}

size_t PipelinedAllreduceTask::chunk_offset(uint64_t k) const {
  return send_ ? size_t(k % ring_) * chunk_ * esize_ : offset_ + size_t(k) * chunk_ * esize_;
}
size_t PipelinedAllreduceTask::chunk_elems(uint64_t k) const {
  return std::min(chunk_, size_t(info().count) - size_t(k) * chunk_);
}
void PipelinedAllreduceTask::copy_out(uint64_t k) {
  if (send_) copy_cached(recv_ + k * chunk_ * esize_, region_.slot(ctx_.chan->local_rank()) + chunk_offset(k), chunk_elems(k) * esize_);
}

// Each rank reduces one cache-line aligned slice of the chunk over every slot and writes the
// result into that slice of every slot.
bool PipelinedAllreduceTask::reduce_chunk() {
  ShmChannel& ch = *ctx_.chan;
  const CallInfo& in = info();
  const int n = ch.local_size();
  if (req_ == MPI_REQUEST_NULL) {
    const size_t c = chunk_elems(k_), unit = std::max<size_t>(1, 64 / esize_);
    const size_t units = (c + unit - 1) / unit, r = size_t(ch.local_rank());
    slice_begin_ = std::min(c, units * r / size_t(n) * unit);
    slice_len_ = std::min(c, units * (r + 1) / size_t(n) * unit) - slice_begin_;
    ctx_.srcs.resize(size_t(n));
    ctx_.dsts.resize(size_t(n));
    for (int j = 0; j < n; ++j) {
      char* p = region_.slot(j) + chunk_offset(k_) + slice_begin_ * esize_;
      ctx_.srcs[size_t(j)] = p;
      ctx_.dsts[size_t(j)] = p;
    }
    if (ctx_.cross == MPI_COMM_NULL) {
      if (slice_len_) reduce_fused(in.dtype, in.op, ctx_.srcs.data(), n, ctx_.dsts.data(), n, slice_len_, ctx_.size);
      return true;
    }
    const DType acc = accum_dtype(in.dtype);
    acc_.resize(slice_len_ * dtype_size(acc));
    if (slice_len_) reduce_to_accum(in.dtype, in.op, ctx_.srcs.data(), n, acc_.data(), slice_len_);
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, acc_.data(), int(slice_len_), mpi_type(acc), mpi_op(in.op), ctx_.cross,
                             &req_),
              "MPI_Iallreduce (across nodes)");
  }
  if (!test(req_, "MPI_Iallreduce (across nodes)")) return false;
  if (slice_len_) store_from_accum(in.dtype, in.op, acc_.data(), ctx_.dsts.data(), n, slice_len_, ctx_.size);
  return true;
}

// Phases per chunk k: copy-in + signal (counter base+2k+1), wait for all, reduce own slice +
// signal (base+2k+2), then wait for everyone's reduction of chunk k-1 and copy it out. With a
// ring of >= 2 chunks, the wait on k-1 also guarantees nobody still touches the slot position
// chunk k+1 will overwrite.
bool PipelinedAllreduceTask::progress() {
  ShmChannel& ch = *ctx_.chan;
  enum { Start, CopyIn, WaitIn, Reduce, WaitPrev, Final };
  for (;;) {
    switch (phase_) {
      case Start:
        idx_ = ch.begin(info());
        base_ = ch.counter();
        if (nchunks_ == 0) return true;  // not reached: count 0 takes the small path
        phase_ = CopyIn;
        break;
      case CopyIn:
        if (send_)
          copy_cached(region_.slot(ch.local_rank()) + chunk_offset(k_), send_ + k_ * chunk_ * esize_,
                      chunk_elems(k_) * esize_);
        ch.signal();
        phase_ = WaitIn;
        break;
      case WaitIn:
        waiting_ = base_ + 2 * k_ + 1;
        if (!ch.all_reached(waiting_)) return false;
        if (k_ == 0) check_.start(ctx_, info(), ch.peer_mismatch(idx_, info()));
        phase_ = Reduce;
        break;
      case Reduce:
        if (!check_.done(ctx_, info())) return false;
        if (!reduce_chunk()) return false;
        ch.signal();
        phase_ = WaitPrev;
        break;
      case WaitPrev:
        if (k_ > 0) {
          waiting_ = base_ + 2 * k_;
          if (!ch.all_reached(waiting_)) return false;
          copy_out(k_ - 1);
        }
        phase_ = ++k_ < nchunks_ ? CopyIn : Final;
        break;
      case Final:
        waiting_ = base_ + 2 * nchunks_;
        if (!ch.all_reached(waiting_)) return false;
        copy_out(nchunks_ - 1);
        return true;
    }
  }
}

std::string PipelinedAllreduceTask::waiting_for() const {
  if (check_.pending()) return "the agreement check with other nodes has not completed";
  if (req_ != MPI_REQUEST_NULL) return "the MPI exchange with other nodes has not completed";
  std::string b = ctx_.chan->behind(waiting_);
  return b.empty() ? std::string() : "rank(s) " + b + " of this node have not reached it";
}

// ---------------------------------------------------------------- chunked MPI
ChunkedMpiAllreduceTask::ChunkedMpiAllreduceTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv)
    : Task(info), ctx_(ctx), recv_(recv) {
  const size_t count = size_t(info.count);
  const DType acc = accum_dtype(info.dtype);
  if (acc != info.dtype) {
    wide_.resize(count * dtype_size(acc));
    reduce_to_accum(info.dtype, ReduceOp::Sum, &send, 1, wide_.data(), count);  // one source: a conversion
    buf_ = wide_.data();
  } else {
    if (send != recv) std::memcpy(recv, send, count * dtype_size(info.dtype));
    buf_ = recv;
  }
  check_.start(ctx.check, info, info.count);
}

bool ChunkedMpiAllreduceTask::issue() {
  if (issued_) return true;
  if (!check_.done()) return false;
  const CallInfo& in = info();
  const size_t count = size_t(in.count);
  const DType acc = accum_dtype(in.dtype);
  const size_t esize = dtype_size(acc);
  const size_t chunk = std::max<size_t>(1, ctx_.opts.mpi_chunk_bytes / esize);
  for (size_t off = 0; off < count; off += chunk) {
    MPI_Request r;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(buf_) + off * esize, int(std::min(chunk, count - off)),
                             mpi_type(acc), mpi_op(in.op), ctx_.world, &r),
              "MPI_Iallreduce");
    reqs_.push_back(r);
  }
  issued_ = true;
  return true;
}

bool ChunkedMpiAllreduceTask::progress() {
  if (!issue()) return false;
  if (!reqs_.empty()) {
    int flag = 0;
    check_mpi(MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Iallreduce");
    if (!flag) return false;
    reqs_.clear();
  }
  const CallInfo& in = info();
  if (buf_ != recv_ || in.op == ReduceOp::Avg)  // convert back and/or divide
    store_from_accum(in.dtype, in.op, buf_, &recv_, 1, size_t(in.count), ctx_.size);
  return true;
}

// ---------------------------------------------------------------- plain MPI requests
MpiRequestTask::~MpiRequestTask() {
  // An abandoned request (poisoned communicator) is left to MPI: freeing an active collective
  // request is erroneous, and its peer may still complete it.
}

MpiRequestTask::MpiRequestTask(const MpiContext& ctx, const CallInfo& info, Start start, std::vector<int> args,
                               int64_t check_count, uint64_t check_extra)
    : Task(info), args_(std::move(args)), start_(std::move(start)) {
  check_.start(ctx.check, info, check_count < 0 ? info.count : check_count, check_extra);
}

bool MpiRequestTask::issue() {
  if (issued_) return true;
  if (!check_.done()) return false;
  start_(&req_, args_.data());
  start_ = nullptr;
  issued_ = true;
  return true;
}

bool MpiRequestTask::progress() { return issue() && test(req_, collective_name(info().kind)); }

bool MpiRequestTask::drain() { return issued_ ? test(req_, "MPI request") : check_.drain(); }

}  // namespace mpitrain::detail
