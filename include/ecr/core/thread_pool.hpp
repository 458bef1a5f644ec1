// ecr::ThreadPool: runs the chunks of a loop on a fixed set of threads (the caller is one of
// them). Ops split their work into chunks whose boundaries depend only on the problem's shape,
// never on the number of threads, so every result is bit-identical whatever the thread count.
// One pool may be shared by models that several host threads use at once: concurrent
// parallel_for calls queue up and every caller works on its own loop until it is done.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ecr {

class ThreadPool {
 public:
  // The most threads a pool may have (the `--threads` options of `ecr` share the bound).
  static constexpr int kMaxThreads = 1024;

  // `threads` counts the calling thread; 0 means one per hardware thread (at most kMaxThreads).
  // ConfigError above kMaxThreads; IoError when the system refuses to start a thread (the
  // threads already started are stopped first).
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const noexcept { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) once for each i in [0, count), in any order, on any of the pool's threads, and
  // returns when all calls have finished. If calls throw, the exception of the lowest i is
  // rethrown here: the one a plain loop would have met first, whatever the scheduling. A call
  // may itself call parallel_for on the same pool (its caller works on the inner loop).
  void parallel_for(std::size_t count, const std::function<void(std::size_t)>& fn);

  // The process-wide pool with one thread per hardware thread, made on first use.
  static std::shared_ptr<ThreadPool> shared_default();

 private:
  struct Loop;
  void work();
  void stop() noexcept;
  static void run_chunks(Loop& loop);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Loop>> loops_;
  bool stopping_ = false;
};

}  // namespace ecr
