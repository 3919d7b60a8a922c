#include "gate46/common/worker_pool.hpp"

#include <cstdlib>
#include <exception>

#include "gate46/common/log.hpp"

namespace gate46 {

worker_pool::worker_pool(unsigned threads) {
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<worker>());
  }
}

worker_pool::~worker_pool() {
  stop();
}

void worker_pool::start() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto& w = *workers_[i];
    w.thread = std::thread{[&w, i] {
      try {
        w.context.run();
      } catch (const std::exception& e) {
        logger("daemon")->critical("worker {}: unhandled exception: {}", i, e.what());
        std::abort();
      }
    }};
  }
}

void worker_pool::stop() {
  for (auto& w : workers_) {
    w->guard.reset();
    w->context.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
}

boost::asio::io_context& worker_pool::next() noexcept {
  return workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()]->context;
}

}  // namespace gate46
