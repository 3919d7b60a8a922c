// Relays bytes between two connected TCP sockets, both ways at once, until both directions
// have ended: a FIN one way is passed on with shutdown(SHUT_WR) while the other way keeps
// flowing; a reset or error on either side ends both. gateway.tcp_idle_timeout without a byte
// either way ends both too. Buffered (64 KiB per direction); zero-copy splicing comes with the
// transparent relay.
#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace gate46::gateway {

struct relay_result {
  std::uint64_t client_to_target = 0;  // bytes
  std::uint64_t target_to_client = 0;
  bool idle_timeout = false;  // ended by gateway.tcp_idle_timeout
  bool reset = false;         // ended by an error or reset on either side
};

// Sets TCP_NODELAY and keepalive on both sockets, relays, and closes both when done.
boost::asio::awaitable<relay_result> relay(boost::asio::ip::tcp::socket& client, boost::asio::ip::tcp::socket& target,
                                           std::chrono::steady_clock::duration idle_timeout);

}  // namespace gate46::gateway
