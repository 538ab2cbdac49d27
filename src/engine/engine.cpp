#include "mpitrain/engine/engine.hpp"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>

#include <cstring>

#include "engine_impl.hpp"
#include "mpitrain/comm/agreement.hpp"
#include "mpitrain/comm/tensor_collectives.hpp"

namespace mpitrain {

namespace {
using detail::Clock;

std::shared_ptr<Engine::Handle::State> new_state(int members = 1) {
  auto s = std::make_shared<Engine::Handle::State>();
  s->remaining = members;
  return s;
}

void check_tensor(const std::string& name, const at::Tensor& t, const char* what) {
  if (name.empty()) throw ArgumentError(std::string("engine: ") + what + " with an empty name");
  if (!t.defined()) throw ArgumentError("engine: tensor '" + name + "' is undefined");
  if (!t.is_contiguous()) throw ArgumentError("engine: tensor '" + name + "' is not contiguous (call .contiguous())");
  if (!t.is_cpu() && !t.is_cuda())
    throw ArgumentError("engine: tensor '" + name + "' is on " + t.device().str() + " (cpu or cuda only)");
}

detail::Request request_for(detail::OpType type, const std::string& name, const at::Tensor& t) {
  detail::Request r;
  r.type = type;
  r.name = name;
  r.dtype = to_dtype(t.scalar_type());  // ArgumentError naming an unsupported dtype
  r.shape = t.sizes().vec();
  r.device = t.is_cuda() ? int32_t(t.device().index()) : -1;
  return r;
}
}  // namespace

// ---- Handle ----

void Engine::Handle::wait() {
  if (!state_) return;
  std::unique_lock<std::mutex> lock(state_->m);
  state_->cv.wait(lock, [&] { return state_->done; });
  if (state_->error) std::rethrow_exception(state_->error);
}

bool Engine::Handle::done() const {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->m);
  return state_->done;
}

at::Tensor Engine::Handle::output() const {
  if (!state_) return {};
  std::lock_guard<std::mutex> lock(state_->m);
  return state_->output;
}

int64_t Engine::Handle::value() const {
  if (!state_) return 0;
  std::lock_guard<std::mutex> lock(state_->m);
  return state_->value;
}

// ---- construction ----

Engine::Engine(Communicator& comm, EngineOptions options)
    : comm_(comm), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  options_.validate();
  if (options_.mode == EngineMode::Fifo) {
    impl_->thread = std::thread([this] { impl_->fifo_loop(comm_); });
    return;
  }
  // Collective: every rank builds its coordinator (a timeline file may fail to open on one).
  std::exception_ptr error;
  try {
    impl_->coordinator = std::make_unique<detail::Coordinator>(comm_, options_, impl_->counters, [im = impl_.get()](const std::vector<std::string>& names) {
      std::lock_guard<std::mutex> lock(im->m);
      for (const auto& name : names) im->in_flight.erase(name);
    });
  } catch (...) {
    error = std::current_exception();
  }
  agree_on_failure(comm_, error);
  impl_->thread = std::thread([this] { impl_->coordinated_loop(comm_, options_); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(impl_->m);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

EngineStats Engine::stats() const {
  const auto& c = impl_->counters;
  EngineStats s;
  s.cycles = c.cycles;
  s.negotiations = c.negotiations;
  s.cache_hits = c.cache_hits;
  s.cache_misses = c.cache_misses;
  s.tensors = c.tensors;
  s.collectives = c.collectives;
  s.fused_bytes = c.fused_bytes;
  return s;
}

// ---- FIFO operations ----

Engine::Handle Engine::enqueue(std::function<void(Communicator&)> op) {
  Handle h;
  h.state_ = new_state();
  {
    std::lock_guard<std::mutex> lock(impl_->m);
    if (impl_->failed) {
      h.state_->error = impl_->failed;
      h.state_->done = true;
      return h;
    }
    impl_->fifo.push_back({std::move(op), h.state_});
  }
  impl_->cv.notify_all();
  return h;
}

Engine::Handle Engine::allreduce(void* buf, int64_t count, DType dtype, ReduceOp op) {
  return enqueue([=](Communicator& c) { c.allreduce(buf, buf, count, dtype, op); });
}

void Engine::synchronize() { enqueue([](Communicator&) {}).wait(); }

at::Tensor Engine::shared_tensor(const std::vector<int64_t>& shape, c10::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ArgumentError("engine: shared_tensor with a negative dimension");
    numel *= d;
  }
  const size_t bytes = std::max<size_t>(64, size_t(numel) * c10::elementSize(dtype));
  auto holder = std::make_shared<SharedBuffer>();
  enqueue([&](Communicator& c) {
    try {
      *holder = c.allocate_shared(bytes);
    } catch (const CommError&) {  // no shared window (NCCL only): private memory below
    }
  }).wait();
  const c10::TensorOptions opts = c10::TensorOptions().dtype(dtype);
  if (!*holder) return at::zeros(shape, opts);
  std::memset(holder->data(), 0, bytes);
  return at::from_blob(holder->data(), shape, [holder](void*) {}, opts);
}

// ---- named collectives ----

Engine::Handle Engine::submit(std::vector<detail::Entry> entries) {
  if (options_.mode != EngineMode::Coordinated)
    throw ArgumentError("engine: named collectives need EngineMode::Coordinated (this engine runs FIFO only)");
  Handle h;
  h.state_ = new_state(int(entries.size()));
  {
    std::lock_guard<std::mutex> lock(impl_->m);
    if (impl_->failed) {
      h.state_->error = impl_->failed;
      h.state_->done = true;
      return h;
    }
    for (auto& e : entries)
      if (e.req.type != detail::OpType::Join && impl_->in_flight.count(e.req.name))
        throw ArgumentError("engine: tensor '" + e.req.name +
                            "' is already in flight on this rank (a name is unique until its handle completes)");
    for (auto& e : entries) {
      if (e.req.type != detail::OpType::Join) impl_->in_flight.insert(e.req.name);
      e.state = h.state_;
      e.submitted = Clock::now();
      impl_->incoming.push_back(std::move(e));
    }
  }
  impl_->cv.notify_all();
  return h;
}

Engine::Handle Engine::allreduce_async(const std::string& name, at::Tensor tensor, ReduceOp op, ScaleFactors scale) {
  return grouped_submit({name}, {std::move(tensor)}, op, scale, false);
}

Engine::Handle Engine::grouped_allreduce_async(const std::vector<std::string>& names,
                                               const std::vector<at::Tensor>& tensors, ReduceOp op, ScaleFactors scale) {
  return grouped_submit(names, tensors, op, scale, true);
}

Engine::Handle Engine::grouped_submit(const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors,
                                      ReduceOp op, ScaleFactors scale, bool grouped) {
  if (names.size() != tensors.size())
    throw ArgumentError("engine: grouped allreduce with " + std::to_string(names.size()) + " names and " +
                        std::to_string(tensors.size()) + " tensors");
  if (names.empty()) throw ArgumentError("engine: grouped allreduce of no tensors");
  if ((scale.prescale != 1.0 || scale.postscale != 1.0) && op != ReduceOp::Sum && op != ReduceOp::Avg)
    throw ArgumentError(std::string("engine: prescale/postscale apply to sum and avg, not ") + reduce_op_name(op));
  std::vector<detail::Entry> entries;
  for (size_t i = 0; i < names.size(); ++i) {
    check_tensor(names[i], tensors[i], "allreduce");
    for (size_t k = 0; k < i; ++k)
      if (names[k] == names[i]) throw ArgumentError("engine: grouped allreduce names '" + names[i] + "' twice");
    detail::Entry e;
    e.req = request_for(detail::OpType::Allreduce, names[i], tensors[i]);
    check_reduction_supported(e.req.dtype, op);
    e.req.op = op;
    e.req.prescale = scale.prescale;
    e.req.postscale = scale.postscale;
    if (grouped) {
      e.req.group = names[0];
      e.req.group_size = int32_t(names.size());
    }
    e.tensor = tensors[i];
    entries.push_back(std::move(e));
  }
  return submit(std::move(entries));
}

Engine::Handle Engine::allgather_async(const std::string& name, at::Tensor tensor) {
  check_tensor(name, tensor, "allgather");
  if (tensor.dim() == 0) throw ArgumentError("engine: allgather of '" + name + "' needs at least one dimension");
  detail::Entry e;
  e.req = request_for(detail::OpType::Allgather, name, tensor);
  e.tensor = std::move(tensor);
  std::vector<detail::Entry> one;
  one.push_back(std::move(e));
  return submit(std::move(one));
}

Engine::Handle Engine::broadcast_async(const std::string& name, at::Tensor tensor, int root) {
  check_tensor(name, tensor, "broadcast");
  if (root < 0 || root >= comm_.size())
    throw ArgumentError("engine: broadcast of '" + name + "' from root " + std::to_string(root) + ", not a rank of " +
                        std::to_string(comm_.size()));
  detail::Entry e;
  e.req = request_for(detail::OpType::Broadcast, name, tensor);
  e.req.root = root;
  e.tensor = std::move(tensor);
  std::vector<detail::Entry> one;
  one.push_back(std::move(e));
  return submit(std::move(one));
}

Engine::Handle Engine::join_async() {
  detail::Entry e;
  e.req.type = detail::OpType::Join;
  e.req.name = "join";
  std::vector<detail::Entry> one;
  one.push_back(std::move(e));
  return submit(std::move(one));
}

void Engine::allreduce(const std::string& name, at::Tensor tensor, ReduceOp op, ScaleFactors scale) {
  allreduce_async(name, std::move(tensor), op, scale).wait();
}

at::Tensor Engine::allgather(const std::string& name, at::Tensor tensor) {
  Handle h = allgather_async(name, std::move(tensor));
  h.wait();
  return h.output();
}

void Engine::broadcast(const std::string& name, at::Tensor tensor, int root) {
  broadcast_async(name, std::move(tensor), root).wait();
}

int Engine::join() {
  Handle h = join_async();
  h.wait();
  return int(h.value());
}

}  // namespace mpitrain
