#include "mpitrain/data/data_loader.hpp"

#include "mpitrain/errors.hpp"

namespace mpitrain {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DistributedSampler sampler, int64_t batch_size,
                       bool drop_last, int prefetch)
    : dataset_(std::move(dataset)), sampler_(std::move(sampler)), batch_size_(batch_size), drop_last_(drop_last),
      prefetch_(prefetch) {
  if (!dataset_) throw ConfigError("DataLoader: no dataset");
  if (batch_size_ < 1) throw ConfigError("batch size must be at least 1 (got " + std::to_string(batch_size_) + ")");
  if (prefetch_ < 0) throw ConfigError("DataLoader: negative prefetch");
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = sampler_.num_samples();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::unique_ptr<DataLoader::Epoch> DataLoader::epoch(int64_t start) const {
  if (start < 0 || start > batches_per_epoch())
    throw ConfigError("DataLoader: start batch " + std::to_string(start) + " outside the epoch's " +
                      std::to_string(batches_per_epoch()) + " batches");
  return std::unique_ptr<Epoch>(new Epoch(*this, start));
}

DataLoader::Epoch::Epoch(const DataLoader& loader, int64_t start)
    : loader_(loader), indices_(loader.sampler_.indices()), next_produce_(start), next_consume_(start),
      end_(loader.batches_per_epoch()) {
  if (loader_.prefetch_ > 0) thread_ = std::thread([this] { produce(); });
}

DataLoader::Epoch::~Epoch() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Batch DataLoader::Epoch::make(int64_t b) const {
  const size_t first = size_t(b * loader_.batch_size_);
  const size_t last = std::min(indices_.size(), first + size_t(loader_.batch_size_));
  return loader_.dataset_->get(std::vector<int64_t>(indices_.begin() + long(first), indices_.begin() + long(last)));
}

void DataLoader::Epoch::produce() {
  try {
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [this] { return stop_ || int64_t(queue_.size()) < loader_.prefetch_; });
        if (stop_ || next_produce_ >= end_) return;
        b = next_produce_++;
      }
      Batch batch = make(b);  // outside the lock: this is the work that overlaps the step
      {
        std::lock_guard<std::mutex> lock(m_);
        queue_.push_back(std::move(batch));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(m_);
    error_ = std::current_exception();
    cv_.notify_all();
  }
}

std::optional<Batch> DataLoader::Epoch::next() {
  if (next_consume_ >= end_) return std::nullopt;
  if (loader_.prefetch_ == 0) return make(next_consume_++);
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait(lock, [this] { return !queue_.empty() || error_; });
  if (queue_.empty() && error_) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  ++next_consume_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace mpitrain
