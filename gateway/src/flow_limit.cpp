#include "gate46/gateway/flow_limit.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace gate46::gateway {

bool flow_limit::try_acquire() noexcept {
  auto used = in_use_.load(std::memory_order_relaxed);
  do {
    if (used >= max_.load(std::memory_order_relaxed)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!in_use_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
  return true;
}

flow_slot& flow_slot::operator=(flow_slot&& other) noexcept {
  if (this != &other) {
    if (limit_ != nullptr) {
      limit_->release();
    }
    limit_ = other.take();
  }
  return *this;
}

flow_slot::~flow_slot() {
  if (limit_ != nullptr) {
    limit_->release();
  }
}

flow_limit* flow_slot::take() noexcept {
  return std::exchange(limit_, nullptr);
}

std::uint64_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return 1024;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      limit = raised;
    }
  }
  return limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max() : limit.rlim_cur;
}

unsigned default_max_flows(std::uint64_t open_files, unsigned threads, std::size_t pipes_per_thread) {
  // Listeners (DNS, SOCKS, relay per thread and address), the store, netlink, epoll, logs, and
  // connections being set up (Happy Eyeballs may hold a few sockets per flow for a moment).
  constexpr std::uint64_t base_reserve = 256;
  const std::uint64_t reserved = base_reserve + std::uint64_t{threads} * (pipes_per_thread * 2 + 32);
  if (open_files <= reserved + 2) {
    return 1;
  }
  return static_cast<unsigned>(
      std::min<std::uint64_t>((open_files - reserved) / 2, std::numeric_limits<unsigned>::max()));
}

}  // namespace gate46::gateway
