// The daemon's worker threads: daemon.threads threads, each running its own io_context, so a
// flow's coroutine and its sockets live on one thread and need no locks. Components spread
// their work over the contexts (round-robin or one acceptor per context).
//
// Thread-safety: construction, start() and stop() belong to the daemon's control thread;
// size(), context() and next() may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace gate46 {

class worker_pool {
 public:
  explicit worker_pool(unsigned threads);
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;
  ~worker_pool();  // stop()

  // Starts the threads. An exception escaping a handler is logged and aborts the process:
  // sessions catch their own errors, so one that escapes is a broken invariant.
  void start();
  // Stops the contexts, abandoning whatever is still queued, and joins the threads. Components
  // have drained their work before this (component::stop). Idempotent.
  void stop();

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }
  [[nodiscard]] boost::asio::io_context& context(std::size_t index) { return workers_.at(index)->context; }
  // The next context in round-robin order.
  boost::asio::io_context& next() noexcept;

 private:
  struct worker {
    boost::asio::io_context context{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{context.get_executor()};
    std::thread thread;
  };
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace gate46
