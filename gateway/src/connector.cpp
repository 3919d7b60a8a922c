#include "gate46/gateway/connector.hpp"

#include <sys/socket.h>

#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/gateway/happy_eyeballs.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::tcp;

boost::system::error_code set_bypass_mark(int fd, std::uint32_t mark) noexcept {
  if (mark == 0) {
    return {};
  }
  const int value = static_cast<int>(mark);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &value, sizeof value) != 0) {
    return boost::system::error_code{errno, boost::system::system_category()};
  }
  return {};
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// What the attempts share; they all run on the caller's executor (one thread).
struct race {
  explicit race(const asio::any_io_executor& executor) : wake{executor} {}
  asio::steady_timer wake;  // cancelled whenever an attempt ends
  std::vector<std::shared_ptr<tcp::socket>> sockets;
  std::optional<tcp::socket> winner;
  std::vector<connect_attempt> attempts;
  unsigned running = 0;
};

asio::awaitable<void> attempt(std::shared_ptr<race> r, std::shared_ptr<tcp::socket> socket, endpoint to,
                              std::uint32_t mark) {
  boost::system::error_code ec;
  const auto asio_to = to_asio_endpoint<tcp>(to);
  socket->open(asio_to.protocol(), ec);
  if (!ec) {
    ec = set_bypass_mark(socket->native_handle(), mark);
  }
  if (!ec) {
    std::tie(ec) = co_await socket->async_connect(asio_to, use_tuple);
  }
  --r->running;
  if (!ec && !r->winner) {
    r->winner.emplace(std::move(*socket));
    r->attempts.push_back({to.address, {}});
  } else if (ec != asio::error::operation_aborted || !r->winner) {
    r->attempts.push_back({to.address, ec ? std::error_code{ec.value(), std::system_category()}
                                          : std::make_error_code(std::errc::operation_canceled)});
  }
  r->wake.cancel();
}

}  // namespace

std::string connect_outcome::describe() const {
  std::string out;
  for (const auto& a : attempts) {
    out += (out.empty() ? "" : ", ") + a.address.to_string() + ": " + (a.error ? a.error.message() : "connected");
  }
  return out.empty() ? "no address" : out;
}

asio::awaitable<std::optional<tcp::socket>> direct_connector::connect(std::vector<ip_address> v6,
                                                                      std::vector<ip_address> v4, std::uint16_t port,
                                                                      connect_outcome& outcome) {
  const auto executor = co_await asio::this_coro::executor;
  const auto ordered = interleave_families(v6, v4, settings_.prefer);
  outcome = {};
  if (ordered.empty()) {
    outcome.error = std::make_error_code(std::errc::host_unreachable);
    co_return std::nullopt;
  }
  auto r = std::make_shared<race>(executor);
  const auto deadline = std::chrono::steady_clock::now() + settings_.timeout;
  std::size_t next = 0;
  auto last_start = std::chrono::steady_clock::now();
  std::size_t failures_seen = 0;
  while (!r->winner && std::chrono::steady_clock::now() < deadline) {
    const bool last_failed = r->attempts.size() > failures_seen;
    failures_seen = r->attempts.size();
    if (next < ordered.size()) {
      const auto now = std::chrono::steady_clock::now();
      if (next == 0 ||
          next_attempt_at(last_start, last_failed || r->running == 0, settings_.attempt_delay, now) <= now) {
        auto socket = std::make_shared<tcp::socket>(executor);
        r->sockets.push_back(socket);
        ++r->running;
        last_start = now;
        asio::co_spawn(executor, attempt(r, socket, endpoint{ordered[next++], port}, settings_.bypass_mark),
                       asio::detached);
        continue;
      }
      r->wake.expires_at(std::min(deadline, last_start + settings_.attempt_delay));
    } else if (r->running == 0) {
      break;  // every address tried, every attempt over
    } else {
      r->wake.expires_at(deadline);
    }
    co_await r->wake.async_wait(use_tuple);
  }
  // Close the losers (and everything, on timeout); wait until their coroutines have ended so
  // that none outlives this call's bookkeeping.
  for (auto& s : r->sockets) {
    boost::system::error_code ignored;
    s->close(ignored);
  }
  while (r->running > 0) {
    r->wake.expires_after(std::chrono::seconds{1});
    co_await r->wake.async_wait(use_tuple);
  }
  outcome.attempts = r->attempts;
  if (r->winner) {
    for (const auto& a : outcome.attempts) {
      if (!a.error) {
        outcome.connected = a.address;
      }
    }
    co_return std::move(r->winner);
  }
  // The SOCKS reply follows the preferred family's last attempt (RFC 8305 leaves it open; it is
  // what the client would have seen connecting directly), else the last attempt at all.
  outcome.error = std::make_error_code(std::errc::timed_out);
  for (auto it = outcome.attempts.rbegin(); it != outcome.attempts.rend(); ++it) {
    if (it->address.family() == settings_.prefer && it->error != std::errc::operation_canceled) {
      outcome.error = it->error;
      break;
    }
  }
  if (outcome.error == std::errc::timed_out) {
    for (auto it = outcome.attempts.rbegin(); it != outcome.attempts.rend(); ++it) {
      if (it->error != std::errc::operation_canceled) {
        outcome.error = it->error;
        break;
      }
    }
  }
  co_return std::nullopt;
}

}  // namespace gate46::gateway
