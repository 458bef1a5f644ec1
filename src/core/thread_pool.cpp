#include "ecr/core/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <system_error>

#include "ecr/core/error.hpp"

namespace ecr {

// One parallel_for call: chunks are claimed from `next`; the caller waits for `done`.
struct ThreadPool::Loop {
  const std::function<void(std::size_t)>* fn = nullptr;
  std::size_t count = 0;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;
  std::size_t error_index = 0;  // of `error`: the lowest that threw
};

ThreadPool::ThreadPool(int threads) {
  if (threads > kMaxThreads)
    fail<ConfigError>("thread pool: {} threads asked for, at most {} are allowed", threads, kMaxThreads);
  if (threads <= 0) threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned{kMaxThreads}));
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  try {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
  } catch (const std::exception& e) {  // std::system_error, or bad_alloc for its state
    // The destructor will not run: stop and join the workers that did start, or their
    // condition variable would be destroyed under them.
    stop();
    fail<IoError>("thread pool: the system refused to start thread {} of {} ({}); ask for fewer threads",
                  workers_.size() + 2, threads, e.what());
  }
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

std::shared_ptr<ThreadPool> ThreadPool::shared_default() {
  static const std::shared_ptr<ThreadPool> pool = std::make_shared<ThreadPool>(0);
  return pool;
}

void ThreadPool::run_chunks(Loop& loop) {
  for (std::size_t i; (i = loop.next.fetch_add(1)) < loop.count;) {
    try {
      (*loop.fn)(i);
    } catch (...) {
      std::lock_guard lock(loop.mutex);
      if (!loop.error || i < loop.error_index) {
        loop.error = std::current_exception();
        loop.error_index = i;
      }
    }
    if (loop.done.fetch_add(1) + 1 == loop.count) {
      std::lock_guard lock(loop.mutex);
      loop.finished.notify_all();
    }
  }
}

void ThreadPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !loops_.empty(); });
    if (stopping_) return;
    std::shared_ptr<Loop> loop = loops_.front();
    if (loop->next.load() >= loop->count) {
      loops_.pop_front();  // every chunk is claimed; its caller waits for the stragglers
      continue;
    }
    lock.unlock();
    run_chunks(*loop);
    lock.lock();
  }
}

void ThreadPool::parallel_for(std::size_t count, const std::function<void(std::size_t)>& fn) {
  if (count == 0) return;
  if (workers_.empty() || count == 1) {
    for (std::size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  auto loop = std::make_shared<Loop>();
  loop->fn = &fn;
  loop->count = count;
  {
    std::lock_guard lock(mutex_);
    loops_.push_back(loop);
  }
  if (count - 1 >= workers_.size())
    wake_.notify_all();
  else
    for (std::size_t i = 0; i + 1 < count; ++i) wake_.notify_one();

  run_chunks(*loop);
  {
    std::unique_lock lock(loop->mutex);
    loop->finished.wait(lock, [&] { return loop->done.load() == count; });
  }
  {
    std::lock_guard lock(mutex_);
    auto it = std::find(loops_.begin(), loops_.end(), loop);
    if (it != loops_.end()) loops_.erase(it);
  }
  if (loop->error) std::rethrow_exception(loop->error);
}

}  // namespace ecr
