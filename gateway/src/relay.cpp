#include "gate46/gateway/relay.hpp"

#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace gate46::gateway {
namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t buffer_size = std::size_t{64} * 1024;

struct activity {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  bool reset = false;
};

// One direction: until EOF (passed on as a half-close) or an error (which ends the relay).
asio::awaitable<void> pump(tcp::socket& from, tcp::socket& to, std::uint64_t& counter, activity& a) {
  // On the heap, not in the coroutine frame: asio recycles small frames only, and g++ 12 warns
  // (wrongly) about the aligned allocation it uses for large ones.
  std::vector<std::uint8_t> buffer(buffer_size);
  for (;;) {
    auto [read_error, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
    if (n > 0) {
      a.last = std::chrono::steady_clock::now();
      auto [write_error, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_tuple);
      counter += written;
      if (write_error) {
        a.reset = true;
        break;
      }
    }
    if (read_error == asio::error::eof) {
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    if (read_error) {
      a.reset = a.reset || read_error != asio::error::operation_aborted;
      break;
    }
  }
  // An error ends both directions: closing wakes the other pump.
  boost::system::error_code ignored;
  from.close(ignored);
  to.close(ignored);
}

asio::awaitable<bool> idle_watch(activity& a, std::chrono::steady_clock::duration idle_timeout) {
  asio::steady_timer timer{co_await asio::this_coro::executor};
  for (;;) {
    timer.expires_at(a.last + idle_timeout);
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec == asio::error::operation_aborted) {
      co_return false;  // the relay ended first and cancelled the watch
    }
    if (std::chrono::steady_clock::now() >= a.last + idle_timeout) {
      co_return true;
    }
  }
}

void tune(tcp::socket& s) {
  boost::system::error_code ignored;
  s.set_option(tcp::no_delay{true}, ignored);
  s.set_option(asio::socket_base::keep_alive{true}, ignored);
}

}  // namespace

asio::awaitable<relay_result> relay(tcp::socket& client, tcp::socket& target,
                                    std::chrono::steady_clock::duration idle_timeout) {
  tune(client);
  tune(target);
  relay_result result;
  activity a;
  auto outcome = co_await (
      (pump(client, target, result.client_to_target, a) && pump(target, client, result.target_to_client, a)) ||
      idle_watch(a, idle_timeout));
  result.idle_timeout = outcome.index() == 1 && std::get<1>(outcome);
  result.reset = a.reset;
  boost::system::error_code ignored;
  client.close(ignored);
  target.close(ignored);
  co_return result;
}

}  // namespace gate46::gateway
