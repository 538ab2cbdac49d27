#include "mpitrain/comm/agreement.hpp"

#include <cstring>

namespace mpitrain {

void broadcast_bytes(Communicator& comm, std::string& bytes, int root) {
  int64_t len = comm.rank() == root ? int64_t(bytes.size()) : 0;
  comm.broadcast(&len, 1, DType::Int64, root);
  bytes.resize(size_t(len));
  if (len > 0) comm.broadcast(bytes.data(), len, DType::UInt8, root);
}

std::vector<std::string> allgather_bytes(Communicator& comm, const std::string& mine) {
  const int n = comm.size();
  std::vector<int64_t> lens(static_cast<size_t>(n));
  int64_t len = int64_t(mine.size());
  comm.allgather(&len, lens.data(), 1, DType::Int64);
  int64_t total = 0;
  for (int64_t l : lens) total += l;
  std::string all(size_t(total), '\0');
  if (total > 0) comm.allgatherv(mine.data(), all.data(), lens, DType::UInt8);
  std::vector<std::string> out;
  size_t at = 0;
  for (int64_t l : lens) {
    out.push_back(all.substr(at, size_t(l)));
    at += size_t(l);
  }
  return out;
}

namespace {
// A failure as bytes: its ErrorKind (4 bytes, host order: every rank runs the same binary) + message.
std::string encode_failure(const std::exception_ptr& e) {
  ErrorKind kind = ErrorKind::Exception;
  std::string message = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    kind = error_kind_of(x);
    message = x.what();
  } catch (...) {
  }
  std::string out(sizeof(int32_t), '\0');
  const int32_t k = int32_t(kind);
  std::memcpy(out.data(), &k, sizeof k);
  return out + message;
}
}  // namespace

std::exception_ptr agreed_failure(Communicator& comm, const std::exception_ptr& mine) {
  const int rank = comm.rank(), n = comm.size();
  int32_t first = mine ? rank : n;
  comm.allreduce(&first, &first, 1, DType::Int32, ReduceOp::Min);
  if (first == n) return nullptr;
  std::string bytes = rank == first ? encode_failure(mine) : std::string();
  broadcast_bytes(comm, bytes, first);
  if (rank == first) return mine;
  int32_t k = int32_t(ErrorKind::Exception);
  if (bytes.size() >= sizeof k) std::memcpy(&k, bytes.data(), sizeof k);
  const std::string message = bytes.size() >= sizeof k ? bytes.substr(sizeof k) : std::string();
  try {
    throw_error(ErrorKind(k), message + " (raised on rank " + std::to_string(first) + ")");
  } catch (...) {
    return std::current_exception();
  }
}

int raised_on_rank(const std::string& message, std::string* text) {
  static const std::string marker = " (raised on rank ";
  if (text) *text = message;
  const size_t at = message.rfind(marker);
  if (at == std::string::npos || message.empty() || message.back() != ')') return -1;
  const std::string digits = message.substr(at + marker.size(), message.size() - 1 - at - marker.size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  if (text) *text = message.substr(0, at);
  return std::stoi(digits);
}

void agree_on_failure(Communicator& comm, const std::exception_ptr& mine) {
  if (auto e = agreed_failure(comm, mine)) std::rethrow_exception(e);
}

}  // namespace mpitrain
