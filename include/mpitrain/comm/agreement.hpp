// Typed cross-rank agreement on top of any Communicator: bytes and strings travel as bytes, and a
// failure on some ranks becomes the same exception type, with the same message, on every rank
// (else the others wait in their next collective until the deadline, and only one rank knows why).
#pragma once
#include <exception>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

/// Collective: `bytes` of rank `root` on every rank (its length first, then the bytes).
void broadcast_bytes(Communicator& comm, std::string& bytes, int root);

/// Collective: every rank's `mine`, in rank order (lengths may differ).
std::vector<std::string> allgather_bytes(Communicator& comm, const std::string& mine);

/// Collective: null when no rank passes a failure; otherwise the failure of the lowest failing
/// rank on every rank: that rank gets its own exception back, the others an exception of the same
/// family (ErrorKind) whose message ends with " (raised on rank r)". Throws only CommError.
std::exception_ptr agreed_failure(Communicator& comm, const std::exception_ptr& mine);

/// The rank named by agreed_failure's " (raised on rank r)" ending of `message`, or -1; `text`
/// (if given) gets the message without it. Lets a reporter name the rank where a failure began.
int raised_on_rank(const std::string& message, std::string* text = nullptr);

/// Collective: rethrows agreed_failure(comm, mine) if there is one.
void agree_on_failure(Communicator& comm, const std::exception_ptr& mine);

}  // namespace mpitrain
