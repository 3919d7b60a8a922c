// SOCKS5 UDP ASSOCIATE (RFC 1928 §7). An association is three UDP sockets and the control
// connection: the relay socket the client sends to (bound to the gateway address the control
// connection reached, so in the client's family), and one upstream socket per family (unbound,
// unconnected, with tproxy.bypass_mark) that sends to targets and receives their replies. It
// ends when the control connection does (RFC 1928: "A UDP association terminates when the TCP
// connection that the UDP ASSOCIATE request arrived on terminates"), or at stop.
//
// Everything runs on the session's executor; the two directions have their own buffers, since
// the client direction awaits name resolution between a receive and its send.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/socks_commands.hpp"
#include "gate46/gateway/udp_sessions.hpp"
#include "socks_state.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::udp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

// The largest UDP payload plus one byte: a datagram that fills the buffer arrived cut short.
constexpr std::size_t datagram_buffer_bytes = std::size_t{64} * 1024 + 1;
// RSV(2) FRAG ATYP, a 255-byte name with its length byte, the port.
constexpr std::size_t max_udp_header_bytes = 2 + 1 + 1 + 1 + 255 + 2;
// Endpoints one association talks to (and may hear from); past it the least recent is forgotten.
constexpr std::size_t routes_per_association = 256;
// How long a resolved destination is reused before the name is resolved again.
constexpr std::chrono::seconds route_lifetime{30};

error_code open_upstream(udp::socket& socket, const udp& protocol, std::uint32_t mark) {
  error_code ec;
  socket.open(protocol, ec);
  if (!ec && protocol == udp::v6()) {
    socket.set_option(asio::ip::v6_only{true}, ec);
  }
  if (!ec) {
    ec = set_bypass_mark(socket.native_handle(), mark);
  }
  if (!ec) {
    socket.non_blocking(true, ec);
  }
  if (ec) {
    error_code ignored;
    socket.close(ignored);
  }
  return ec;
}

class udp_association final : public relay_flow, public std::enable_shared_from_this<udp_association> {
 public:
  udp_association(socks_session s, udp::socket relay)
      : s_{std::move(s)},
        client_{s_.peer.address, s_.request.destination},
        routes_{routes_per_association},
        cache_{routes_per_association, std::min<steady::duration>(route_lifetime, s_.settings->hold_refresh)},
        relay_{std::move(relay)},
        up4_{relay_.get_executor()},
        up6_{relay_.get_executor()},
        from_client_buffer_(datagram_buffer_bytes),
        from_target_buffer_(max_udp_header_bytes + datagram_buffer_bytes) {}

  void abort() override {
    asio::post(relay_.get_executor(), [self = shared_from_this()] { self->close(); });
  }
  [[nodiscard]] relay_progress progress() const noexcept override {
    return {up_.load(std::memory_order_relaxed), down_.load(std::memory_order_relaxed)};
  }

  // Opens the upstream sockets; a family the box cannot use stays closed (its targets are
  // dropped as send errors).
  void open_upstream_sockets() {
    const auto mark = s_.settings->connect.bypass_mark;
    const auto v4 = open_upstream(up4_, udp::v4(), mark);
    const auto v6 = open_upstream(up6_, udp::v6(), mark);
    if (v4 && v6) {
      logger("socks")->warn("{}: UDP ASSOCIATE: no upstream socket: {}", s_.peer.to_string(), v4.message());
    }
  }

  asio::awaitable<void> run() {
    using namespace asio::experimental::awaitable_operators;
    const auto self = shared_from_this();
    co_await (watch_control() || (from_client() && from_target(up4_) && from_target(up6_)));
    close();
  }

 private:
  // RFC 1928 sends nothing more on the control connection; it only says when the association
  // ends. Anything the client writes is read and ignored.
  asio::awaitable<void> watch_control() {
    std::array<std::uint8_t, 512> ignored{};
    for (;;) {
      auto [ec, n] = co_await s_.client->async_read_some(asio::buffer(ignored), socks_use_tuple);
      if (ec) {
        break;
      }
    }
    close();
  }

  asio::awaitable<void> from_client() {
    auto& st = *s_.st;
    udp::endpoint sender;
    while (!ended_) {
      auto [ec, n] = co_await relay_.async_receive_from(asio::buffer(from_client_buffer_), sender, socks_use_tuple);
      if (ec) {
        break;
      }
      const auto from = from_asio_endpoint(sender);
      if (!client_.admit(from)) {
        count(st.udp_foreign_client);
        continue;
      }
      if (n == from_client_buffer_.size()) {
        count(st.udp_truncated);
        continue;
      }
      const std::span<const std::uint8_t> datagram{from_client_buffer_.data(), n};
      auto parsed = socks5::parse_udp_header(datagram);
      if (const auto* why = std::get_if<std::string>(&parsed)) {
        count(st.udp_malformed);
        if (st.udp_log.allow()) {
          logger("socks")->info("{}: UDP datagram dropped: {}", from.to_string(), *why);
        }
        continue;
      }
      auto& header = std::get<socks5::udp_header>(parsed);
      if (header.fragment != 0) {
        count(st.udp_fragments);
        continue;
      }
      const auto route = co_await route_for(header.destination);
      if (ended_) {
        break;
      }
      if (!route) {
        continue;
      }
      send_to_target(*route, header.destination, datagram.subspan(header.payload_offset));
    }
    close();
  }

  void send_to_target(const udp_route& route, const socks5::target& as_written, std::span<const std::uint8_t> payload) {
    auto& st = *s_.st;
    auto& socket = route.real.address.is_v4() ? up4_ : up6_;
    error_code ec;
    if (!socket.is_open()) {
      ec = asio::error::address_family_not_supported;
    } else {
      socket.send_to(asio::buffer(payload.data(), payload.size()), to_asio_endpoint<udp>(route.real), 0, ec);
    }
    if (ec) {
      count(st.udp_send_errors);
      return;
    }
    // Only now may the target answer: before, a datagram from it would be a stranger's.
    routes_.remember(route.real, as_written);
    count(st.udp_to_target);
    count(st.udp_bytes_up, payload.size());
    up_.fetch_add(payload.size(), std::memory_order_relaxed);
  }

  // Where a destination goes after CONNECT's checks (resolve_target: deny list, the box itself, a
  // fake address stands for its name), or nothing (counted).
  asio::awaitable<std::optional<udp_route>> route_for(const socks5::target& destination) {
    auto& st = *s_.st;
    const auto now = steady::now();
    if (auto cached = cache_.find(destination, now)) {
      co_return cached;
    }
    const auto target = co_await resolve_target(s_.st, destination);
    const auto address = pick_udp_target(target.v6, target.v4, s_.settings->connect.prefer);
    if (target.failure || !address) {
      const bool denied = target.failure == socks5::reply_code::not_allowed;
      count(denied ? st.udp_denied : st.udp_unresolved);
      if (st.udp_log.allow()) {
        logger("socks")->info("{}: UDP to {} dropped: {}", s_.peer.to_string(), destination.to_string(),
                              denied ? "not allowed" : "does not resolve");
      }
      co_return std::nullopt;
    }
    if (target.fake) {
      // Held while the association keeps using it: renewed each time the route is.
      st.store.hold(*target.fake, s_.settings->hold_ttl);
    }
    const udp_route route{endpoint{*address, destination.port}, target.fake};
    cache_.store(destination, route, now);
    co_return route;
  }

  asio::awaitable<void> from_target(udp::socket& socket) {
    if (!socket.is_open()) {
      co_return;
    }
    auto& st = *s_.st;
    udp::endpoint sender;
    // Received after room for the longest header, which is then written just in front.
    const auto room = std::span{from_target_buffer_}.subspan(max_udp_header_bytes);
    while (!ended_) {
      auto [ec, n] =
          co_await socket.async_receive_from(asio::buffer(room.data(), room.size()), sender, socks_use_tuple);
      if (ec) {
        break;
      }
      if (n == room.size()) {
        count(st.udp_truncated);
        continue;
      }
      const auto* header = routes_.header_for(from_asio_endpoint(sender));
      const auto client = client_.address();
      if (header == nullptr || !client) {
        count(st.udp_foreign_target);
        continue;
      }
      auto* start = room.data() - header->size();
      std::memcpy(start, header->data(), header->size());
      error_code send_ec;
      relay_.send_to(asio::buffer(start, header->size() + n), to_asio_endpoint<udp>(*client), 0, send_ec);
      if (send_ec) {
        count(st.udp_send_errors);
        continue;
      }
      count(st.udp_to_client);
      count(st.udp_bytes_down, n);
      down_.fetch_add(n, std::memory_order_relaxed);
    }
    close();
  }

  void close() {
    if (ended_) {
      return;
    }
    ended_ = true;
    error_code ignored;
    relay_.close(ignored);
    up4_.close(ignored);
    up6_.close(ignored);
    s_.client->close(ignored);
  }

  socks_session s_;
  association_client client_;
  reply_routes routes_;
  udp_route_cache cache_;
  udp::socket relay_;
  udp::socket up4_;
  udp::socket up6_;
  std::vector<std::uint8_t> from_client_buffer_;
  std::vector<std::uint8_t> from_target_buffer_;
  std::atomic<std::uint64_t> up_{0};
  std::atomic<std::uint64_t> down_{0};
  bool ended_ = false;
};

}  // namespace

asio::awaitable<void> serve_udp_associate(socks_session s) {
  auto& st = *s.st;
  auto& control = *s.client;
  error_code ec;
  // gateway.max_flows budgets two descriptors a flow; an association holds four (the control
  // connection and three UDP sockets), so it takes a second place.
  if (!st.flows.try_acquire()) {
    count(st.refused_max_flows);
    if (st.refusal_log.allow()) {
      logger("socks")->warn("gateway.max_flows ({}) reached: UDP ASSOCIATE refused", st.flows.max());
    }
    co_await send_message(control, socks5::make_failure_reply(socks5::reply_code::general_failure));
    control.close(ec);
    co_return;
  }
  const flow_slot second_place{st.flows};
  // The relay socket faces the client: the gateway address its control connection reached.
  const auto local = control.local_endpoint(ec);
  udp::socket relay{co_await asio::this_coro::executor};
  const udp::endpoint relay_at{local.address(), 0};
  if (!ec) {
    relay.open(relay_at.protocol(), ec);
  }
  if (!ec && relay_at.protocol() == udp::v6()) {
    relay.set_option(asio::ip::v6_only{true}, ec);
  }
  if (!ec) {
    relay.bind(relay_at, ec);
  }
  if (!ec) {
    relay.non_blocking(true, ec);
  }
  if (ec) {
    logger("socks")->warn("{}: UDP ASSOCIATE: no relay socket: {}", s.peer.to_string(), ec.message());
    co_await send_message(control, socks5::make_failure_reply(socks5::reply_code::general_failure));
    control.close(ec);
    co_return;
  }
  const auto bound = from_asio_endpoint(relay.local_endpoint(ec));
  const auto association = std::make_shared<udp_association>(s, std::move(relay));
  association->open_upstream_sockets();
  co_await send_message(control, socks5::make_reply(socks5::reply_code::succeeded, bound));
  count(st.udp_associations);
  logger("socks")->debug("{}: UDP ASSOCIATE on {}", s.peer.to_string(), bound.to_string());
  track_relay(st.sessions, s.id, association,
              {s.peer, "udp associate " + bound.to_string(), std::string{}, endpoint{}});
  co_await association->run();
}

}  // namespace gate46::gateway
