#include "worker.hpp"

#include "mpitrain/errors.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <mpi.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "channel.hpp"
#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/launch/make_communicator.hpp"
#include "mpitrain/launch/registry.hpp"
#include "mpitrain/launch/stop_request.hpp"
#include "protocol.hpp"

namespace mpitrain::detail {

namespace {

// The worker's side of its link to the driver, on a thread of its own (no MPI), so that it works
// while the training thread is busy in a long step or wedged in a collective: a heartbeat every
// second, the driver's stop message turned into a stop request, and the end of the driver (its
// socket closed) into the end of this process: no worker outlives its driver.
class DriverLink {
 public:
  DriverLink(LineChannel& ch, int rank) : thread_([this, &ch, rank] { run(ch, rank); }) {}
  ~DriverLink() {
    stop_ = true;
    thread_.join();  // within one poll interval
  }

 private:
  void run(LineChannel& ch, int rank) {
    auto next_beat = std::chrono::steady_clock::now();
    while (!stop_) {
      if (std::chrono::steady_clock::now() >= next_beat) {
        if (!ch.send(make_message(MessageType::Heartbeat, rank))) driver_gone(rank);
        next_beat += std::chrono::seconds(1);
      }
      pollfd p{ch.fd(), POLLIN, 0};
      if (!ch.has_pending() && ::poll(&p, 1, 100) <= 0) continue;
      bool eof = false;
      for (const auto& m : ch.receive(&eof)) {
        if (m.value("type", "") == message_type_name(MessageType::Stop)) request_stop(m.value("signal", SIGTERM));
      }
      if (eof) driver_gone(rank);
    }
  }
  [[noreturn]] static void driver_gone(int rank) {
    std::fprintf(stderr, "mpitrain worker rank %d: the driver is gone; exiting\n", rank);
    ::_exit(4);
  }
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// LibTorch's matrix products run in the BLAS, whose thread pool at::set_num_threads does not
// govern: OpenBLAS sizes it from the CPUs it may use, so an unbound spawned worker would run two
// BLAS threads where an mpirun-bound rank runs one (different speed, and different rounding).
// Set it too, when the BLAS is OpenBLAS (looked up at run time: no link dependency).
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

[[noreturn]] void fail(LineChannel& ch, int rank, const std::string& msg, ErrorKind kind = ErrorKind::Exception) {
  // A failure the ranks agreed on names where it began: every rank reports it as that rank's.
  std::string text;
  const int origin = raised_on_rank(msg, &text);
  ch.send(make_message(MessageType::Error, rank,
                       {{"message", text}, {"kind", error_kind_name(kind)}, {"origin", origin >= 0 ? origin : rank}}));
  std::fflush(stdout);
  std::fflush(stderr);
  // No MPI_Finalize: peers may be inside a collective. The driver tears the job down.
  ::_exit(1);
}

}  // namespace

void serve_worker(const std::string& channel_name) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  LineChannel ch;
  try {
    ch = LineChannel::connect(channel_name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpitrain worker rank %d: %s\n", rank, e.what());
    ::_exit(3);
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  ch.send(make_message(MessageType::Hello, rank,
                       {{"protocol", kProtocolVersion}, {"pid", int(::getpid())}, {"host", host}}));
  auto task = ch.receive_one(120000);
  if (!task) fail(ch, rank, "no task from the driver within 120 s");
  try {
    if (read_header(*task).type != MessageType::Task)
      throw Error("protocol error: the driver's first message is " + task->value("type", "") + ", not task");
    check_protocol_version(*task, "the driver");
    const std::string entry = task->at("entry");
    const EntryPoint* fn = find_entry_point(entry);
    if (!fn) fail(ch, rank, "unknown entry point '" + entry + "' in the worker binary");
    at::set_num_threads(std::max(1, task->value("cpus_per_worker", 1)));
    set_blas_threads(std::max(1, task->value("cpus_per_worker", 1)));
    DriverLink link(ch, rank);
    nlohmann::json value;
    double wall = 0;
    {
      CommOptions opts;
      opts.timeout = std::chrono::milliseconds(task->value("comm_timeout_ms", 300000));
      // The driver watches workers' heartbeats itself and names a stopped one first; the
      // Communicator's own check (peers on this node) is the backstop, a little later.
      const int64_t live_ms = task->value("liveness_timeout_ms", int64_t(30000));
      opts.liveness_timeout = std::chrono::milliseconds(live_ms > 0 ? live_ms + 5000 : 0);
      Environment env = detect_environment(MPI_COMM_WORLD, Role::Worker, task->value("use_gpu", false));
      std::unique_ptr<Communicator> comm = make_communicator(MPI_COMM_WORLD, env, opts);
      if (task->value("print_topology", false)) {
        std::string table = topology_table(MPI_COMM_WORLD, env);
        if (rank == 0) ch.send(make_message(MessageType::Log, 0, {{"line", "topology\n" + table}}));
      }
      TaskContext ctx(env, *comm, [&ch](const nlohmann::json& m) { ch.send(m); });
      const auto t0 = std::chrono::steady_clock::now();
      // Report before unwinding: destroying the Communicator is collective and would wait for
      // peers that are themselves waiting for this rank.
      try {
        value = (*fn)(ctx, task->value("payload", nlohmann::json()));
      } catch (const std::exception& e) {
        fail(ch, rank, e.what(), error_kind_of(e));
      } catch (...) {
        fail(ch, rank, "unknown exception");
      }
      wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      comm->barrier();  // every rank finished before anyone reports success
    }
    ch.send(make_message(MessageType::Result, rank, {{"value", rank == 0 ? value : nlohmann::json()}, {"wall", wall}}));
  } catch (const std::exception& e) {  // outside the entry point: task, environment, communicator
    fail(ch, rank, e.what(), error_kind_of(e));
  }
  MPI_Comm parent = MPI_COMM_NULL;
  MPI_Comm_get_parent(&parent);
  if (parent != MPI_COMM_NULL) MPI_Comm_disconnect(&parent);
  MPI_Finalize();
  ch.close();
  std::cout.flush();
  std::fflush(stdout);
  // Skip static destructors of LibTorch & co: nothing of ours needs them, and they cost time.
  ::_exit(0);
}

}  // namespace mpitrain::detail
