// The transparent relay (component `relay`): the gateway for LAN hosts that know nothing of
// SOCKS. The capture rules (tproxy/) TPROXY their TCP flows (and their UDP datagrams, relayed
// per session by the UDP half, src/transparent_udp.hpp) to fake addresses onto
// tproxy.port; for each one the relay reads where the client aimed (a fake address), finds the
// name that address stands for in the mapping store, resolves the name in both families,
// connects through the same connector as SOCKS (Happy Eyeballs, deny list, bypass mark) and
// relays the two sockets with the shared engine (relay.hpp, splice()).
//
// A connection it cannot carry is reset at once, so a client never hangs on a stale address:
// an unmapped fake address, a name that no longer resolves, a refused destination, a failed
// connect, or gateway.max_flows reached. Each reason is counted.
//
// Listeners: one transparent dual-stack socket per worker thread on the same port
// (SO_REUSEPORT), so accepting spreads over the threads like the flows do.
//
// Thread-safety: start(), reconfigure() and stop() belong to the daemon's control thread;
// counters() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "gate46/common/component.hpp"
#include "gate46/common/config.hpp"
#include "gate46/common/worker_pool.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/flow_limit.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::gateway {

// How listening sockets spread new connections over the worker threads.
enum class accept_mode : std::uint8_t {
  per_thread,  // one SO_REUSEPORT listener per worker: the kernel picks the thread
  single,      // one listener on the first worker, sessions handed out round-robin
};

struct transparent_settings {
  std::uint16_t port = 7046;
  std::vector<cidr> deny;
  cidr pool_v4{*ip_address::parse("198.18.0.0"), 15};
  cidr pool_v6{*ip_address::parse("2001:2::"), 48};
  connect_settings connect;
  std::chrono::seconds idle_timeout{3600};        // gateway.tcp_idle_timeout
  std::chrono::seconds udp_idle_timeout{60};      // gateway.udp_idle_timeout
  std::chrono::seconds udp_dns_idle_timeout{10};  // gateway.udp_dns_idle_timeout (port 53)
  unsigned udp_sessions_per_client = 256;         // gateway.udp_sessions_per_client
  unsigned udp_sessions_max = 4096;               // gateway.udp_sessions_max
  std::chrono::seconds hold_ttl{60};              // dns.fake_ttl: the lease a flow renews
  std::chrono::seconds hold_refresh{60};          // pools.hold_refresh
  accept_mode accepting = accept_mode::per_thread;
};
transparent_settings transparent_settings_of(const config& cfg);

class transparent_udp_relay;

class transparent_relay {
 public:
  transparent_relay(worker_pool& workers, dns::resolver& resolver, mapping::mapping_store& store, flow_limit& flows,
                    transparent_settings settings);
  transparent_relay(const transparent_relay&) = delete;
  transparent_relay& operator=(const transparent_relay&) = delete;
  ~transparent_relay();

  // Opens the listeners on tproxy.port. Throws boost::system::system_error (EPERM: the
  // daemon lacks CAP_NET_ADMIN, which IPV6_TRANSPARENT needs).
  void start();
  // The live keys: deny list, timeouts, Happy Eyeballs settings.
  void reconfigure(transparent_settings settings);
  // Stops accepting; flows carry on until `deadline`, then the rest are closed. Completes when
  // none is left.
  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline);
  [[nodiscard]] std::vector<counter> counters() const;
  // The flows being relayed now, oldest first. Any thread.
  [[nodiscard]] std::vector<live_flow> flows() const;

  struct state;

 private:
  worker_pool& workers_;
  std::shared_ptr<state> state_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::unique_ptr<transparent_udp_relay> udp_;  // the UDP half (transparent_udp.hpp)
};

// The `relay` component. The open-file limit is raised and gateway.max_flows set by the daemon
// (flow_limit is shared with the `socks` component).
std::unique_ptr<component> make_relay_component(const component_context& context, dns::resolver& resolver,
                                                mapping::mapping_store& store, flow_limit& flows);

}  // namespace gate46::gateway
