// gateway.max_flows: the flows the gateway carries at once: TCP (SOCKS and transparent), transparent
// UDP sessions, and SOCKS UDP associations (two places each: they hold four descriptors).
// A flow costs two descriptors (relay.hpp), so the limit is what keeps the daemon inside its
// open-file limit: past it, a new connection is refused at once (reset, counted) instead of
// failing somewhere later with EMFILE.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gate46::gateway {

class flow_limit {
 public:
  explicit flow_limit(unsigned max) : max_{max} {}
  flow_limit(const flow_limit&) = delete;
  flow_limit& operator=(const flow_limit&) = delete;

  // Takes a place; false (and counted as refused) when all are taken.
  bool try_acquire() noexcept;
  // Gives a place back. Precondition: one was taken.
  void release() noexcept { in_use_.fetch_sub(1, std::memory_order_relaxed); }

  void set_max(unsigned max) noexcept { max_.store(max, std::memory_order_relaxed); }
  [[nodiscard]] unsigned max() const noexcept { return max_.load(std::memory_order_relaxed); }
  [[nodiscard]] unsigned in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  std::atomic<unsigned> max_;
  std::atomic<unsigned> in_use_{0};
  std::atomic<std::uint64_t> refused_{0};
};

// A place held by a scope (a connection being set up); released when the scope ends unless
// handed to a flow with take().
class flow_slot {
 public:
  flow_slot() = default;
  explicit flow_slot(flow_limit& limit) : limit_{&limit} {}
  flow_slot(flow_slot&& other) noexcept : limit_{other.take()} {}
  flow_slot& operator=(flow_slot&& other) noexcept;
  flow_slot(const flow_slot&) = delete;
  flow_slot& operator=(const flow_slot&) = delete;
  ~flow_slot();

  // The limit to release() later, and this slot no longer releases it.
  flow_limit* take() noexcept;
  explicit operator bool() const noexcept { return limit_ != nullptr; }

 private:
  flow_limit* limit_ = nullptr;
};

// Raises the open-file soft limit to the hard limit (a router's default soft limit of 1024
// would cap the gateway at a few hundred flows). Returns the soft limit now in force.
std::uint64_t raise_open_file_limit();

// gateway.max_flows when the configuration leaves it unset: two descriptors per flow out of
// the open-file limit, after what the rest of the daemon may hold (listeners, the store, the
// DNS sockets, and every relay pipe of every worker thread).
unsigned default_max_flows(std::uint64_t open_files, unsigned threads, std::size_t pipes_per_thread);

}  // namespace gate46::gateway
