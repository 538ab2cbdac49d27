#include "mpitrain/engine/engine.hpp"

namespace mpitrain {

struct Engine::Handle::State {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

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

Engine::Engine(Communicator& comm) : comm_(comm), thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Engine::Handle Engine::enqueue(std::function<void(Communicator&)> op) {
  Handle h;
  h.state_ = std::make_shared<Handle::State>();
  {
    std::lock_guard<std::mutex> lock(m_);
    queue_.push_back({std::move(op), h.state_});
  }
  cv_.notify_one();
  return h;
}

Engine::Handle Engine::allreduce(void* buf, int64_t count, DType dtype, ReduceOp op) {
  return enqueue([=](Communicator& c) { c.allreduce(buf, buf, count, dtype, op); });
}

void Engine::synchronize() { enqueue([](Communicator&) {}).wait(); }

void Engine::loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop requested and drained
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error = failed_;
    if (!error) {
      try {
        item.op(comm_);
      } catch (...) {
        error = failed_ = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(item.state->m);
      item.state->done = true;
      item.state->error = error;
    }
    item.state->cv.notify_all();
  }
}

}  // namespace mpitrain
