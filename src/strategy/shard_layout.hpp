// The flat parameter space of the Sharded strategy (ZeRO's partitioning by elements). Parameters
// are grouped into buckets in reverse order (about the order backward produces their gradients),
// each bucket laid out contiguously and padded to a multiple of N, and split into N equal blocks:
// rank r owns block r of every bucket. So every rank owns the same number of elements (1/N of
// the model, plus at most N-1 padding elements per bucket) whatever the tensor sizes, a
// parameter may straddle ranks, and one bucket is exactly one equal-block reduce-scatter or
// allgather. Deterministic: the same on every rank.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace mpitrain::detail {

struct ShardLayout {
  struct Bucket {
    int64_t start = 0;        // first element in the flat space
    int64_t elems = 0;        // real elements (parameters)
    int64_t block = 0;        // elements per rank: ceil(elems / N)
    int64_t owned_start = 0;  // this bucket's block in a rank's owned buffer
    std::vector<size_t> params;
  };
  int world = 1, rank = 0;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // param -> bucket
  std::vector<int64_t> offset;    // param -> first element in the flat space
  std::vector<int64_t> numel;
  int64_t padded_total = 0;  // flat space, padding included
  int64_t owned_total = 0;   // elements each rank owns (sum of blocks)

  /// `numel[i]` elements of `esize` bytes per parameter; bucket caps as DDP's (first, then the rest).
  static ShardLayout build(const std::vector<int64_t>& numel, size_t esize, size_t first_cap_bytes,
                           size_t cap_bytes, int world, int rank) {
    ShardLayout l;
    l.world = world;
    l.rank = rank;
    l.numel = numel;
    l.offset.assign(numel.size(), 0);
    l.bucket_of.assign(numel.size(), 0);
    size_t cap = first_cap_bytes;
    for (size_t k = numel.size(); k-- > 0;) {
      const size_t bytes = size_t(numel[k]) * esize;
      if (l.buckets.empty() || (l.buckets.back().elems > 0 && size_t(l.buckets.back().elems) * esize + bytes > cap)) {
        if (!l.buckets.empty()) cap = cap_bytes;
        l.buckets.emplace_back();
      }
      Bucket& b = l.buckets.back();
      b.params.push_back(k);
      l.bucket_of[k] = l.buckets.size() - 1;
      b.elems += numel[k];
    }
    for (auto& b : l.buckets) {
      b.start = l.padded_total;
      b.block = std::max<int64_t>(1, (b.elems + world - 1) / world);
      b.owned_start = l.owned_total;
      int64_t at = b.start;
      for (size_t k : b.params) {
        l.offset[k] = at;
        at += l.numel[k];
      }
      l.padded_total += b.block * world;
      l.owned_total += b.block;
    }
    return l;
  }

  /// Elements of parameter i that rank r owns, as a flat range [lo, hi) (lo == hi: none).
  std::pair<int64_t, int64_t> overlap(size_t i, int r) const {
    const Bucket& b = buckets[bucket_of[i]];
    const int64_t lo = std::max(offset[i], b.start + r * b.block);
    const int64_t hi = std::min(offset[i] + numel[i], b.start + (r + 1) * b.block);
    return {lo, std::max(lo, hi)};
  }
  /// The rank owning parameter i's first element.
  int first_owner(size_t i) const {
    const Bucket& b = buckets[bucket_of[i]];
    return int((offset[i] - b.start) / b.block);
  }
  /// Where flat element `e` (owned by this rank, in parameter i's bucket) sits in the owned buffer.
  int64_t owned_position(size_t i, int64_t e) const {
    const Bucket& b = buckets[bucket_of[i]];
    return b.owned_start + (e - b.start - rank * b.block);
  }
};

}  // namespace mpitrain::detail
