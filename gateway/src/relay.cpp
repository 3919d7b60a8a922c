#include "gate46/gateway/relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

std::atomic<std::size_t> pipe_limit{64};
std::atomic<std::uint64_t> spliced_total{0};
std::atomic<std::uint64_t> buffered_total{0};
std::atomic<std::uint64_t> fallback_total{0};
std::atomic<std::uint64_t> pipes_open_total{0};
std::atomic<std::uint64_t> pipes_in_use_total{0};

// Reads (and the writes they need) one direction may do before it lets other flows on its
// thread run: a 10 Gbit/s flow must not starve the rest of the thread's flows.
constexpr int rounds_per_turn = 16;
// A direction copies small messages and splices bulk: a request or reply of a few hundred bytes
// costs less as a recv() and a send() than as two splice() calls and a pipe taken and given
// back, while bulk data is never copied. (Skipping the read that says EAGAIN after a short one
// is not safe: a FIN queued behind the data raised no edge of its own.) A copy that fills the whole buffer
// switches the direction to splicing; a splice that moves less than this switches it back.
constexpr std::size_t small_read_bytes = std::size_t{16} * 1024;
// Idle buffers a thread keeps for the next copied read.
constexpr std::size_t idle_buffers_per_thread = 8;

struct pipe_pair {
  int read = -1;
  int write = -1;
};

void close_pipe(const pipe_pair& p) {
  ::close(p.read);
  ::close(p.write);
  pipes_open_total.fetch_sub(1, std::memory_order_relaxed);
}

// This thread's pipes. A pipe goes back into the pool only empty: one that still holds bytes
// of an ended flow is closed instead, so no byte ever reaches another flow.
class pipe_pool {
 public:
  pipe_pool() = default;
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;
  ~pipe_pool() {
    for (const auto& p : idle_) {
      close_pipe(p);
    }
  }

  std::optional<pipe_pair> acquire() {
    if (!idle_.empty()) {
      const auto p = idle_.back();
      idle_.pop_back();
      ++in_use_;
      pipes_in_use_total.fetch_add(1, std::memory_order_relaxed);
      return p;
    }
    if (in_use_ >= pipe_limit.load(std::memory_order_relaxed)) {
      return std::nullopt;
    }
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_NONBLOCK | O_CLOEXEC) != 0) {
      return std::nullopt;  // out of descriptors: the caller copies instead
    }
    // A bigger pipe moves more per splice() pair; the kernel may refuse (pipe-user-pages), and
    // the default 64 KiB still works.
    ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(relay_pipe_bytes));
    pipes_open_total.fetch_add(1, std::memory_order_relaxed);
    ++in_use_;
    pipes_in_use_total.fetch_add(1, std::memory_order_relaxed);
    return pipe_pair{fds[0], fds[1]};
  }

  void release(const pipe_pair& p) {
    --in_use_;
    pipes_in_use_total.fetch_sub(1, std::memory_order_relaxed);
    if (idle_.size() + in_use_ >= pipe_limit.load(std::memory_order_relaxed)) {
      close_pipe(p);  // the limit was lowered
      return;
    }
    idle_.push_back(p);
  }

  void discard(const pipe_pair& p) {
    --in_use_;
    pipes_in_use_total.fetch_sub(1, std::memory_order_relaxed);
    close_pipe(p);
  }

 private:
  std::vector<pipe_pair> idle_;
  std::size_t in_use_ = 0;
};

using buffer_ptr = std::unique_ptr<std::byte[]>;

class buffer_pool {
 public:
  buffer_ptr acquire() {
    if (!idle_.empty()) {
      auto b = std::move(idle_.back());
      idle_.pop_back();
      return b;
    }
    return std::make_unique_for_overwrite<std::byte[]>(relay_buffer_bytes);
  }
  void release(buffer_ptr b) {
    if (idle_.size() < idle_buffers_per_thread) {
      idle_.push_back(std::move(b));
    }
  }

 private:
  std::vector<buffer_ptr> idle_;
};

thread_local pipe_pool thread_pipes;
thread_local buffer_pool thread_buffers;

// splice() into a socket whose peer has gone raises SIGPIPE (there is no MSG_NOSIGNAL for
// it); the error is handled where it is returned, so the signal must not kill the process.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

void tune(tcp::socket& s) {
  boost::system::error_code ignored;
  s.set_option(tcp::no_delay{true}, ignored);
  s.set_option(asio::socket_base::keep_alive{true}, ignored);
  s.non_blocking(true, ignored);  // splice() blocks on a blocking socket whatever its flags say
}

// What a read or write did: bytes moved, or nothing yet (would block), or the end.
struct io_result {
  enum class kind : std::uint8_t { moved, would_block, interrupted, eof, error } what;
  std::size_t bytes = 0;
  int error = 0;
};

io_result from_syscall(ssize_t n) {
  if (n > 0) {
    return {io_result::kind::moved, static_cast<std::size_t>(n)};
  }
  if (n == 0) {
    return {io_result::kind::eof};
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    return {io_result::kind::would_block};
  }
  if (errno == EINTR) {
    return {io_result::kind::interrupted};  // try again at once: waiting could miss the edge
  }
  return {io_result::kind::error, 0, errno};
}

class flow final : public relay_flow, public std::enable_shared_from_this<flow> {
 public:
  flow(tcp::socket client, tcp::socket target, relay_settings settings, relay_done done)
      : sockets_{std::move(client), std::move(target)},
        timer_{sockets_[0].get_executor()},
        settings_{std::move(settings)},
        done_{std::move(done)} {
    directions_[0].from = &sockets_[0];
    directions_[0].to = &sockets_[1];
    directions_[1].from = &sockets_[1];
    directions_[1].to = &sockets_[0];
  }

  void start() {
    tune(sockets_[0]);
    tune(sockets_[1]);
    last_activity_ = clock_type::now();
    next_keepalive_ = last_activity_ + settings_.keepalive_interval;
    arm_timer();
    // Bytes may already be waiting (the client's request arrived with the handshake): the
    // edge-triggered reactor would not report them, so each direction reads first.
    pump(0);
    pump(1);
  }

  void abort() override {
    asio::post(timer_.get_executor(), [self = shared_from_this()] { self->end(ending::aborted); });
  }

  [[nodiscard]] relay_progress progress() const noexcept override {
    return {directions_[0].bytes.load(std::memory_order_relaxed), directions_[1].bytes.load(std::memory_order_relaxed)};
  }

 private:
  enum class ending : std::uint8_t { normal, reset, idle, aborted };

  struct direction {
    tcp::socket* from = nullptr;
    tcp::socket* to = nullptr;
    // Written only by the flow's thread; read by progress() from the control thread.
    std::atomic<std::uint64_t> bytes{0};
    std::optional<pipe_pair> pipe;
    buffer_ptr buffer;
    std::size_t held = 0;    // read, not yet written
    std::size_t offset = 0;  // into buffer: where the unwritten bytes start
    bool splice_ok = true;
    bool bulk = false;  // splicing (else copying small messages)
    bool done = false;
  };

  // Moves what is readable, until the kernel says wait, the direction ends, or its turn is up.
  void pump(int d) {
    auto& dir = directions_[d];
    if (finished_ || dir.done) {
      return;
    }
    for (int round = 0; round < rounds_per_turn; ++round) {
      if (dir.held > 0) {
        const auto w = write_out(dir);
        if (w.what == io_result::kind::would_block) {
          wait(d, tcp::socket::wait_write);
          return;
        }
        if (w.what == io_result::kind::interrupted) {
          continue;
        }
        if (w.what != io_result::kind::moved) {
          end(ending::reset);
          return;
        }
        dir.held -= w.bytes;
        dir.bytes.store(dir.bytes.load(std::memory_order_relaxed) + w.bytes, std::memory_order_relaxed);
        if (dir.held > 0) {
          continue;
        }
        give_back(dir);
      }
      const auto r = read_in(dir);
      if (r.what == io_result::kind::would_block) {
        give_back(dir);  // idle: hold nothing while waiting
        wait(d, tcp::socket::wait_read);
        return;
      }
      if (r.what == io_result::kind::interrupted) {
        continue;
      }
      if (r.what == io_result::kind::eof) {
        give_back(dir);
        half_close(d);
        return;
      }
      if (r.what == io_result::kind::error) {
        end(ending::reset);
        return;
      }
      dir.held = r.bytes;
      dir.offset = 0;
      last_activity_ = clock_type::now();
    }
    asio::post(timer_.get_executor(), [self = shared_from_this(), d] { self->pump(d); });
  }

  io_result read_in(direction& dir) {
    if (!dir.pipe && !dir.buffer) {
      if (dir.bulk && dir.splice_ok) {
        dir.pipe = thread_pipes.acquire();
        if (!dir.pipe && pipe_limit.load(std::memory_order_relaxed) > 0) {
          fallback_total.fetch_add(1, std::memory_order_relaxed);
          ++pipe_fallbacks_;
        }
      }
      if (!dir.pipe) {
        dir.buffer = thread_buffers.acquire();
      }
    }
    const int from = dir.from->native_handle();
    if (dir.pipe) {
      const auto n =
          ::splice(from, nullptr, dir.pipe->write, nullptr, relay_pipe_bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0 && errno == EINVAL) {
        // This socket cannot splice (a protocol without splice_read): copy from now on.
        dir.splice_ok = false;
        thread_pipes.release(*dir.pipe);
        dir.pipe.reset();
        dir.buffer = thread_buffers.acquire();
      } else {
        if (n > 0 && static_cast<std::size_t>(n) < small_read_bytes) {
          dir.bulk = false;  // the next read copies
        }
        return from_syscall(n);
      }
    }
    const auto n = ::recv(from, dir.buffer.get(), relay_buffer_bytes, MSG_DONTWAIT);
    if (n > 0) {
      dir.bulk = static_cast<std::size_t>(n) == relay_buffer_bytes;
    }
    return from_syscall(n);
  }

  io_result write_out(direction& dir) {
    const int to = dir.to->native_handle();
    if (dir.pipe) {
      const auto result =
          from_syscall(::splice(dir.pipe->read, nullptr, to, nullptr, dir.held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
      if (result.what == io_result::kind::moved) {
        spliced_total.fetch_add(result.bytes, std::memory_order_relaxed);
        spliced_bytes_ += result.bytes;
      }
      return result;
    }
    const auto result = from_syscall(::send(to, dir.buffer.get() + dir.offset, dir.held, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (result.what == io_result::kind::moved) {
      dir.offset += result.bytes;
      buffered_total.fetch_add(result.bytes, std::memory_order_relaxed);
      buffered_bytes_ += result.bytes;
    } else if (result.what == io_result::kind::eof) {
      return {io_result::kind::would_block};  // send() of a non-empty buffer never returns 0
    }
    return result;
  }

  // Returns what the direction holds; only when it holds no unwritten bytes.
  static void give_back(direction& dir) {
    if (dir.pipe) {
      thread_pipes.release(*dir.pipe);
      dir.pipe.reset();
    }
    if (dir.buffer) {
      thread_buffers.release(std::move(dir.buffer));
    }
    dir.held = 0;
    dir.offset = 0;
  }

  void wait(int d, tcp::socket::wait_type what) {
    auto& socket = what == tcp::socket::wait_read ? *directions_[d].from : *directions_[d].to;
    socket.async_wait(what, [self = shared_from_this(), d](const boost::system::error_code&) {
      // An error shows in the next read or write; a cancelled wait finds the flow finished.
      self->pump(d);
    });
  }

  void half_close(int d) {
    auto& dir = directions_[d];
    dir.done = true;
    boost::system::error_code ignored;
    dir.to->shutdown(tcp::socket::shutdown_send, ignored);
    if (directions_[0].done && directions_[1].done) {
      end(ending::normal);
    }
  }

  void arm_timer() {
    auto at = last_activity_ + settings_.idle_timeout;
    if (settings_.keepalive) {
      at = std::min(at, next_keepalive_);
    }
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->finished_) {
        return;
      }
      self->on_timer();
    });
  }

  void on_timer() {
    const auto now = clock_type::now();
    if (now >= last_activity_ + settings_.idle_timeout) {
      end(ending::idle);
      return;
    }
    if (settings_.keepalive && now >= next_keepalive_) {
      settings_.keepalive();
      next_keepalive_ = now + settings_.keepalive_interval;
    }
    arm_timer();
  }

  void end(ending how) {
    if (finished_) {
      return;
    }
    finished_ = true;
    for (auto& dir : directions_) {
      if (dir.pipe) {
        if (dir.held > 0) {
          thread_pipes.discard(*dir.pipe);  // bytes nobody will read
          dir.pipe.reset();
        }
      }
      give_back(dir);
    }
    boost::system::error_code ignored;
    timer_.cancel();
    for (auto& s : sockets_) {
      if (how == ending::reset) {
        // The flow is broken: reset the other side too, as an end-to-end connection would have.
        s.set_option(asio::socket_base::linger{true, 0}, ignored);
      }
      s.close(ignored);
    }
    relay_result result;
    result.client_to_target = directions_[0].bytes.load(std::memory_order_relaxed);
    result.target_to_client = directions_[1].bytes.load(std::memory_order_relaxed);
    result.reset = how == ending::reset;
    result.idle_timeout = how == ending::idle;
    result.aborted = how == ending::aborted;
    result.spliced_bytes = spliced_bytes_;
    result.buffered_bytes = buffered_bytes_;
    result.pipe_fallbacks = pipe_fallbacks_;
    auto done = std::move(done_);
    settings_.keepalive = nullptr;
    if (done) {
      done(result);
    }
  }

  std::array<tcp::socket, 2> sockets_;
  std::array<direction, 2> directions_;
  asio::steady_timer timer_;
  relay_settings settings_;
  relay_done done_;
  clock_type::time_point last_activity_;
  clock_type::time_point next_keepalive_;
  std::uint64_t spliced_bytes_ = 0;
  std::uint64_t buffered_bytes_ = 0;
  std::uint64_t pipe_fallbacks_ = 0;
  bool finished_ = false;
};

}  // namespace

std::shared_ptr<relay_flow> start_relay(tcp::socket client, tcp::socket target, relay_settings settings,
                                        relay_done done) {
  ignore_sigpipe_once();
  auto f = std::make_shared<flow>(std::move(client), std::move(target), std::move(settings), std::move(done));
  f->start();
  return f;
}

void set_pipes_per_thread(std::size_t pipes) {
  pipe_limit.store(pipes, std::memory_order_relaxed);
}

std::size_t pipes_per_thread() noexcept {
  return pipe_limit.load(std::memory_order_relaxed);
}

relay_statistics relay_stats() noexcept {
  return {spliced_total.load(std::memory_order_relaxed), buffered_total.load(std::memory_order_relaxed),
          fallback_total.load(std::memory_order_relaxed), pipes_open_total.load(std::memory_order_relaxed),
          pipes_in_use_total.load(std::memory_order_relaxed)};
}

}  // namespace gate46::gateway
