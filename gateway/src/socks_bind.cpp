// SOCKS5 BIND (RFC 1928 §4): for protocols whose server connects back to the client (active
// FTP). The gateway listens where the server will see it as the same host as on the client's
// primary connection: in that connection's family, on the address the route towards the server
// gives (so vsftpd's check that a PORT address equals its control connection's peer passes).
// First reply: that listening address. Second reply: the peer that connected, once it has; only
// the expected peer is taken when the request names one (others are reset, counted), and the wait
// ends after gateway.bind_timeout (reply 06) or when the client closes. Then the two connections
// are relayed like a CONNECT's.
#include <sys/socket.h>

#include <array>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/socks_commands.hpp"
#include "socks_state.hpp"

// g++ 12 warns that Asio's coroutine frame is freed by a mismatched operator delete when it
// inlines the frame's allocation (GCC bug 109224, a false positive: awaitable_frame_base has
// both operators). Seen only in this file's coroutines, at -O1 and -O2.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

namespace {

// Bytes a client may send before its peer has connected; they are passed on once it has.
constexpr std::size_t max_early_bytes = std::size_t{64} * 1024;

// The source address the kernel picks for the gateway's own traffic to `to` (the bypass mark
// routes it like a relayed connection): connecting a UDP socket sends nothing.
std::optional<ip_address> source_address_towards(const asio::any_io_executor& executor, const ip_address& to,
                                                 std::uint32_t mark, error_code& ec) {
  udp::socket probe{executor};
  const auto destination = to_asio_endpoint<udp>(endpoint{to, 9});
  probe.open(destination.protocol(), ec);
  if (!ec) {
    ec = set_bypass_mark(probe.native_handle(), mark);
  }
  if (!ec) {
    probe.connect(destination, ec);
  }
  if (ec) {
    return std::nullopt;
  }
  const auto local = probe.local_endpoint(ec);
  if (ec) {
    return std::nullopt;
  }
  return from_asio_endpoint(local).address;
}

error_code open_listener(tcp::acceptor& acceptor, const ip_address& at, std::uint32_t mark) {
  error_code ec;
  const auto where = to_asio_endpoint<tcp>(endpoint{at, 0});
  acceptor.open(where.protocol(), ec);
  if (!ec && at.is_v6()) {
    acceptor.set_option(asio::ip::v6_only{true}, ec);
  }
  if (!ec) {
    ec = set_bypass_mark(acceptor.native_handle(), mark);
  }
  if (!ec) {
    acceptor.bind(where, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  return ec;
}

asio::awaitable<void> refuse(socks_session& s, socks5::reply_code code) {
  co_await send_message(*s.client, socks5::make_failure_reply(code));
  error_code ignored;
  s.client->close(ignored);
}

struct bound_peer {
  tcp::socket socket;
  std::vector<std::uint8_t> early;  // what the client sent before the peer came
};

// The wait after the first reply: the expected peer (others are reset), the client closing, or
// gateway.bind_timeout, whichever comes first. Nothing when the BIND ends without a peer (the
// client has had its reply, if any).
asio::awaitable<std::optional<bound_peer>> wait_for_peer(socks_session& s, tcp::acceptor& acceptor,
                                                         const std::vector<ip_address>& expected) {
  using namespace asio::experimental::awaitable_operators;
  auto& st = *s.st;
  auto& client = *s.client;
  const auto log = logger("socks");
  const auto what = s.request.destination.to_string();
  asio::steady_timer deadline{acceptor.get_executor()};
  deadline.expires_after(s.settings->bind_timeout);
  std::vector<std::uint8_t> early;
  error_code ec;
  for (;;) {
    std::array<std::uint8_t, 4096> chunk{};
    auto event =
        co_await (acceptor.async_accept(socks_use_tuple) ||
                  client.async_read_some(asio::buffer(chunk), socks_use_tuple) || deadline.async_wait(socks_use_tuple));
    if (event.index() == 2) {
      count(st.bind_timeouts);
      log->info("{}: BIND {}: no connection within {} s", s.peer.to_string(), what, s.settings->bind_timeout.count());
      co_await refuse(s, socks5::reply_code::ttl_expired);
      co_return std::nullopt;
    }
    if (event.index() == 1) {
      const auto [read_ec, n] = std::get<1>(event);
      if (read_ec || early.size() + n > max_early_bytes) {
        client.close(ec);  // the client gave up (or will not wait quietly)
        co_return std::nullopt;
      }
      early.insert(early.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      continue;
    }
    auto& [accept_ec, socket] = std::get<0>(event);
    if (accept_ec) {
      count(st.bind_failures);
      co_await refuse(s, socks5::reply_code::general_failure);
      co_return std::nullopt;
    }
    const auto from = from_asio_endpoint(socket.remote_endpoint(ec));
    if (ec || !bind_peer_expected(expected, from.address)) {
      count(st.bind_unexpected_peers);
      log->info("{}: BIND {}: connection from {} refused: not the expected peer", s.peer.to_string(), what,
                from.to_string());
      socket.set_option(asio::socket_base::linger{true, 0}, ec);
      socket.close(ec);
      continue;
    }
    co_return bound_peer{std::move(socket), std::move(early)};
  }
}

// Who may connect, and where the listener faces.
struct bind_plan {
  std::vector<ip_address> expected;  // empty: anyone may connect
  std::optional<ip_address> fake;    // the client named the peer by this fake address
  std::string name;                  // the name behind it, for `gate46ctl flows`
  std::optional<ip_address> reference;
  ip_address wildcard;  // where to listen with no reference: the requested family's any-address
};

// Nothing when the destination is refused (the client has had its reply).
asio::awaitable<std::optional<bind_plan>> plan_bind(socks_session& s) {
  auto& st = *s.st;
  const auto& destination = s.request.destination;
  bind_plan plan;
  const auto* literal = std::get_if<ip_address>(&destination.host);
  if (literal != nullptr && literal->is_v4()) {
    plan.wildcard = *ip_address::parse("0.0.0.0");
  }
  if (literal != nullptr && literal->is_unspecified()) {
    const auto primaries = st.sessions.targets_of(s.peer.address);
    if (!primaries.empty()) {
      plan.reference = primaries.front();
    }
    co_return plan;
  }
  auto target = co_await resolve_target(s.st, destination);
  if (target.failure) {
    if (*target.failure == socks5::reply_code::not_allowed) {
      count(st.denied_destinations);
    }
    logger("socks")->info("{}: BIND {} refused ({})", s.peer.to_string(), destination.to_string(),
                          static_cast<int>(*target.failure));
    co_await refuse(s, *target.failure);
    co_return std::nullopt;
  }
  plan.reference =
      bind_reference(target.v6, target.v4, st.sessions.targets_of(s.peer.address), s.settings->connect.prefer);
  plan.expected = std::move(target.v6);
  plan.expected.insert(plan.expected.end(), target.v4.begin(), target.v4.end());
  plan.fake = target.fake;
  if (target.fake || std::holds_alternative<dns_name>(destination.host)) {
    plan.name = target.name;
  }
  co_return plan;
}

// The listener, and the address the first reply names.
error_code listen_for(const socks_session& s, const bind_plan& plan, tcp::acceptor& acceptor, endpoint& bound) {
  error_code ec;
  auto at = plan.wildcard;
  if (plan.reference) {
    const auto source =
        source_address_towards(acceptor.get_executor(), *plan.reference, s.settings->connect.bypass_mark, ec);
    if (!source) {
      return ec;
    }
    at = *source;
  }
  ec = open_listener(acceptor, at, s.settings->connect.bypass_mark);
  if (ec) {
    return ec;
  }
  bound = from_asio_endpoint(acceptor.local_endpoint(ec));
  if (!ec && bound.address.is_unspecified()) {
    // A wildcard listener (no expected peer, no primary connection): name the address the
    // client reached, when it is of that family.
    const auto reached = from_asio_endpoint(s.client->local_endpoint(ec)).address;
    if (!ec && reached.family() == bound.address.family()) {
      bound.address = reached;
    }
  }
  return ec;
}

}  // namespace

asio::awaitable<void> serve_bind(socks_session s, flow_slot& slot, session_registry::entry& registration) {
  auto& st = *s.st;
  const auto what = s.request.destination.to_string();
  count(st.binds);
  const auto plan = co_await plan_bind(s);
  if (!plan) {
    co_return;
  }
  tcp::acceptor acceptor{co_await asio::this_coro::executor};
  endpoint bound;
  if (const auto ec = listen_for(s, *plan, acceptor, bound)) {
    count(st.bind_failures);
    logger("socks")->warn("{}: BIND {}: cannot listen: {}", s.peer.to_string(), what, ec.message());
    co_await refuse(s, socks5::reply_for_errno(ec.value()));
    co_return;
  }
  co_await send_message(*s.client, socks5::make_reply(socks5::reply_code::succeeded, bound));
  logger("socks")->debug("{}: BIND {} listening on {}", s.peer.to_string(), what, bound.to_string());

  auto peer = co_await wait_for_peer(s, acceptor, plan->expected);
  if (!peer) {
    co_return;
  }
  error_code ignored;
  acceptor.close(ignored);
  const auto connected = from_asio_endpoint(peer->socket.remote_endpoint(ignored));
  // The client named the peer by its fake address: it knows it by that one.
  const endpoint shown = plan->fake ? endpoint{*plan->fake, connected.port} : connected;
  co_await send_message(*s.client, socks5::make_reply(socks5::reply_code::succeeded, shown));
  if (!peer->early.empty()) {
    co_await asio::async_write(peer->socket, asio::buffer(peer->early), socks_use_tuple);
  }
  logger("socks")->debug("{}: BIND {}: {} connected", s.peer.to_string(), what, connected.to_string());
  start_socks_relay(s, std::move(peer->socket), plan->fake, slot, registration,
                    {s.peer, "bind " + what, plan->name, connected});
}

}  // namespace gate46::gateway
