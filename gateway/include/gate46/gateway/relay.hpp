// The one relay engine for every TCP flow the gateway carries (SOCKS CONNECT and the transparent
// path): bytes both ways between two connected sockets until both directions have ended.
//
// - Zero copy: each direction moves data socket -> pipe -> socket with splice(2), so payload
//   never enters user space. Where splicing is not possible (no pipe free in this thread's pool,
//   or a socket that refuses splice) the direction copies through a user-space buffer instead.
// - An idle flow holds no pipe and no buffer: a direction takes a pipe (or buffer) only when its
//   source is readable, and gives it back as soon as what it read has been written. Pipes come
//   from a per-thread pool (set_pipes_per_thread), so a flow costs its two sockets and nothing
//   else in descriptors.
// - Ends: a FIN one way is passed on with shutdown(SHUT_WR) while the other way keeps flowing;
//   a reset or error on either side ends both, and the other side is reset too (SO_LINGER 0),
//   as it would have been without a gateway in between; gateway.tcp_idle_timeout without a
//   byte either way ends both.
//
// The engine is readiness-driven (epoll via Asio, edge-triggered): a direction waits for
// readiness only after the kernel said EAGAIN, and yields to other flows after a bounded amount
// of work, so one fast flow cannot starve the others on its thread.
//
// Thread-safety: a flow runs on the executor of its client socket (both sockets must share
// it). relay_flow::abort() may be called from any thread. The statistics are process-wide.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

namespace gate46::gateway {

struct relay_result {
  std::uint64_t client_to_target = 0;  // bytes
  std::uint64_t target_to_client = 0;
  bool idle_timeout = false;  // ended by the idle timeout
  bool reset = false;         // ended by an error or reset on either side
  bool aborted = false;       // ended by relay_flow::abort() (shutdown)
  // How the bytes went: spliced_bytes + buffered_bytes = both directions' bytes.
  std::uint64_t spliced_bytes = 0;
  std::uint64_t buffered_bytes = 0;
  std::uint64_t pipe_fallbacks = 0;  // reads that found no free pipe and used a buffer
};

struct relay_settings {
  std::chrono::steady_clock::duration idle_timeout = std::chrono::hours{1};
  // Called on the flow's executor every keepalive_interval while the flow lives, idle or not
  // (the transparent path renews its fake address's hold with it). Empty: never.
  std::function<void()> keepalive;
  std::chrono::steady_clock::duration keepalive_interval = std::chrono::minutes{1};
};

// The bytes a flow has delivered so far, each way.
struct relay_progress {
  std::uint64_t client_to_target = 0;
  std::uint64_t target_to_client = 0;
};

// A running flow, for watching it and shutting it down from outside.
class relay_flow {
 public:
  relay_flow() = default;
  relay_flow(const relay_flow&) = delete;
  relay_flow& operator=(const relay_flow&) = delete;
  virtual ~relay_flow() = default;
  // Ends the flow (both sockets closed) on its executor; the completion runs with aborted set.
  // Harmless after the flow has ended.
  virtual void abort() = 0;
  // Any thread; a recent value (the flow's thread may be moving bytes meanwhile).
  [[nodiscard]] virtual relay_progress progress() const noexcept = 0;
};

using relay_done = std::function<void(const relay_result&)>;

// Sets TCP_NODELAY, keepalive and O_NONBLOCK on both sockets and relays them until both
// directions have ended; then closes both and calls `done` once, on the flow's executor. The
// flow keeps itself alive; the handle only allows abort().
std::shared_ptr<relay_flow> start_relay(boost::asio::ip::tcp::socket client, boost::asio::ip::tcp::socket target,
                                        relay_settings settings, relay_done done);

// The most pipes one thread keeps, in use and idle together (each is two descriptors). A
// direction that finds none free copies through a buffer instead (counted in pipe_fallbacks).
// 0 turns splicing off. Takes effect for pipes taken after the call. Default 64.
void set_pipes_per_thread(std::size_t pipes);
[[nodiscard]] std::size_t pipes_per_thread() noexcept;

// The bytes a pipe holds (F_SETPIPE_SZ; the kernel rounds up to pages). Default 256 KiB.
inline constexpr std::size_t relay_pipe_bytes = std::size_t{256} * 1024;
// One buffered read or write at most.
inline constexpr std::size_t relay_buffer_bytes = std::size_t{64} * 1024;

// Process-wide, over every flow since start.
struct relay_statistics {
  std::uint64_t spliced_bytes = 0;   // moved by splice()
  std::uint64_t buffered_bytes = 0;  // copied through a buffer
  std::uint64_t pipe_fallbacks = 0;  // reads that found no free pipe and used a buffer
  std::uint64_t pipes_open = 0;      // pipes open now, all threads (in use or idle in a pool)
  std::uint64_t pipes_in_use = 0;    // of those, holding a flow's bytes now
};
[[nodiscard]] relay_statistics relay_stats() noexcept;

}  // namespace gate46::gateway
