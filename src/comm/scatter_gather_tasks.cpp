#include "scatter_gather_tasks.hpp"

#include <algorithm>
#include <cstring>

#include "reduce_kernels.hpp"

namespace mpitrain::detail {

namespace {
std::string behind_message(const MpiContext& ctx, uint64_t target) {
  std::string b = ctx.chan->behind(target);
  return b.empty() ? std::string() : "rank(s) " + b + " of this node have not reached it";
}
}  // namespace

// ---------------------------------------------------------------- shared-memory reduce-scatter
ShmReduceScatterTask::ShmReduceScatterTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv,
                                           ShmRegion& region, size_t offset, bool zero_copy)
    : Task(info), ctx_(ctx), send_(static_cast<const char*>(send)), recv_(static_cast<char*>(recv)),
      region_(region), offset_(offset), esize_(dtype_size(info.dtype)), zero_copy_(zero_copy) {
  const size_t count = size_t(info.count), n = size_t(ctx.chan->local_size());
  if (zero_copy_) {
    chunk_ = std::max<size_t>(count, 1);
    ring_ = 1;
  } else {  // a chunk (n sub-chunks of chunk_ elements) is about one pipeline chunk
    chunk_ = std::max<size_t>(1, ctx.opts.pipeline_chunk_bytes / (esize_ * n));
    chunk_ = std::max<size_t>(1, std::min(chunk_, region.slot_bytes() / (2 * n * esize_)));  // ring of >= 2
    ring_ = std::max<size_t>(2, region.slot_bytes() / (chunk_ * n * esize_));
  }
  nchunks_ = (count + chunk_ - 1) / chunk_;
}

size_t ShmReduceScatterTask::position(uint64_t k) const {
  return zero_copy_ ? offset_ : size_t(k % ring_) * chunk_ * size_t(ctx_.chan->local_size()) * esize_;
}
size_t ShmReduceScatterTask::chunk_elems(uint64_t k) const {
  return std::min(chunk_, size_t(info().count) - size_t(k) * chunk_);
}

// Phases per chunk k as in PipelinedAllreduceTask: copy-in + signal (base+2k+1), wait for all,
// reduce this rank's part + signal (base+2k+2), wait until everyone reduced chunk k-1 (its ring
// position is then free for chunk k+1). Nothing to copy out: the reduction writes into `recv`.
bool ShmReduceScatterTask::progress() {
  ShmChannel& ch = *ctx_.chan;
  const CallInfo& in = info();
  const int n = ch.local_size(), me = ch.local_rank();
  const size_t count = size_t(in.count);
  enum { Start, CopyIn, WaitIn, Reduce, WaitPrev, Final };
  for (;;) {
    switch (phase_) {
      case Start:
        idx_ = ch.begin(in);
        base_ = ch.counter();
        phase_ = CopyIn;
        break;
      case CopyIn:
        if (!zero_copy_ && nchunks_) {
          const size_t c = chunk_elems(k_);
          char* dst = region_.slot(me) + position(k_);
          for (int j = 0; j < n; ++j)  // not this rank's own block: only this rank reads it, from `send`
            if (j != me)
              copy_cached(dst + size_t(j) * c * esize_, send_ + (size_t(j) * count + k_ * chunk_) * esize_, c * esize_);
        }
        ch.signal();
        phase_ = WaitIn;
        break;
      case WaitIn:
        waiting_ = base_ + 2 * k_ + 1;
        if (!ch.all_reached(waiting_)) return false;
        if (k_ == 0) {
          std::string mismatch = ch.peer_mismatch(idx_, in);
          if (!mismatch.empty()) throw CommError(mismatch);
        }
        phase_ = Reduce;
        break;
      case Reduce: {
        const size_t c = nchunks_ ? chunk_elems(k_) : 0;
        // Zero-copy: this rank's block sits at offset + me*count in every slot. Copy-in: at
        // position(k) + me*c, sub-chunk `me` of the chunk.
        const size_t at = position(k_) + size_t(me) * (zero_copy_ ? count : c) * esize_;
        ctx_.srcs.resize(size_t(n));
        for (int j = 0; j < n; ++j) ctx_.srcs[size_t(j)] = region_.slot(j) + at;
        if (!zero_copy_) ctx_.srcs[size_t(me)] = send_ + (size_t(me) * count + k_ * chunk_) * esize_;
        void* dst = recv_ + k_ * chunk_ * esize_;
        if (c) reduce_fused(in.dtype, in.op, ctx_.srcs.data(), n, &dst, 1, c, ctx_.size);
        ch.signal();
        phase_ = WaitPrev;
        break;
      }
      case WaitPrev:
        if (k_ > 0) {
          waiting_ = base_ + 2 * k_;
          if (!ch.all_reached(waiting_)) return false;
        }
        phase_ = ++k_ < nchunks_ ? CopyIn : Final;
        break;
      case Final:  // nobody reads this rank's slot (or, zero-copy, its input) any more
        waiting_ = base_ + 2 * std::max<uint64_t>(nchunks_, 1);
        if (!ch.all_reached(waiting_)) return false;
        return true;
    }
  }
}

std::string ShmReduceScatterTask::waiting_for() const { return behind_message(ctx_, waiting_); }

// ---------------------------------------------------------------- shared-memory allgather
bool ShmAllgatherTask::progress() {
  ShmChannel& ch = *ctx_.chan;
  const CallInfo& in = info();
  const int n = ch.local_size(), me = ch.local_rank();
  const size_t block = size_t(in.count) * dtype_size(in.dtype);
  switch (phase_) {
    case 0: {
      idx_ = ch.begin(in);
      char* mine = recv_ + size_t(me) * block;
      if (block && send_ != mine) std::memcpy(mine, send_, block);
      ch.signal();
      waiting_ = ch.counter();
      phase_ = 1;
      [[fallthrough]];
    }
    case 1: {
      if (!ch.all_reached(waiting_)) return false;
      std::string mismatch = ch.peer_mismatch(idx_, in);
      if (!mismatch.empty()) throw CommError(mismatch);
      for (int j = 0; j < n; ++j)
        if (j != me && block) copy_cached(recv_ + size_t(j) * block, region_.slot(j) + offset_ + size_t(j) * block, block);
      ch.signal();
      waiting_ = ch.counter();
      phase_ = 2;
      [[fallthrough]];
    }
    case 2:  // peers have copied this rank's block: the caller may overwrite it
      return ch.all_reached(waiting_);
  }
  return true;
}

std::string ShmAllgatherTask::waiting_for() const { return behind_message(ctx_, waiting_); }

// ---------------------------------------------------------------- MPI reduce-scatter
MpiReduceScatterTask::MpiReduceScatterTask(MpiContext& ctx, const CallInfo& info, const void* send, void* recv)
    : Task(info), ctx_(ctx), recv_(recv) {
  const size_t count = size_t(info.count), total = count * size_t(ctx.size);
  const DType acc = accum_dtype(info.dtype);
  const void* in = send;
  void* out = recv;
  if (acc != info.dtype) {
    wide_in_.resize(total * dtype_size(acc));
    wide_out_.resize(count * dtype_size(acc));
    reduce_to_accum(info.dtype, ReduceOp::Sum, &send, 1, wide_in_.data(), total);  // one source: a conversion
    in = wide_in_.data();
    out = wide_out_.data();
  }
  in_ = in;
  out_ = out;
  check_.start(ctx.check, info, info.count);
}

bool MpiReduceScatterTask::issue() {
  if (issued_) return true;
  if (!check_.done()) return false;
  const CallInfo& in = info();
  check_mpi(MPI_Ireduce_scatter_block(in_, out_, int(in.count), mpi_type(accum_dtype(in.dtype)), mpi_op(in.op),
                                      ctx_.world, &req_),
            "MPI_Ireduce_scatter_block");
  issued_ = true;
  return true;
}

bool MpiReduceScatterTask::progress() {
  if (!issue()) return false;
  int flag = 0;
  check_mpi(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), "MPI_Ireduce_scatter_block");
  if (!flag) return false;
  const CallInfo& in = info();
  if (!wide_out_.empty() || in.op == ReduceOp::Avg)  // convert back and/or divide
    store_from_accum(in.dtype, in.op, wide_out_.empty() ? recv_ : wide_out_.data(), &recv_, 1, size_t(in.count),
                     ctx_.size);
  return true;
}

bool MpiReduceScatterTask::drain() {
  if (!issued_) return check_.drain();
  int flag = 1;
  if (req_ != MPI_REQUEST_NULL) check_mpi(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), "MPI_Ireduce_scatter_block");
  return flag != 0;
}

}  // namespace mpitrain::detail
