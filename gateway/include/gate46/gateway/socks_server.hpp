// The SOCKS5 server (RFC 1928, RFC 1929): RFC 3089's gateway for socksified clients. It
// terminates the client's connection in the client's family and opens the destination's in
// the destination's family, by name when the client gives one (DNS delegation: the gateway
// resolves, both families), then relays the two.
//
// Per connection: client network check ([[gateway.socks_network]]), method negotiation,
// username/password against [[gateway.user]] argon2id hashes (verified on a bounded pool), the
// request (CONNECT; BIND and UDP ASSOCIATE answer 07 until their issue), the destination
// checks (access.hpp: deny list, the box itself, fake addresses mapped back to their names),
// Happy Eyeballs (connector.hpp), the reply, the relay (relay.hpp). Every connection takes a
// place in gateway.max_flows (flow_limit.hpp) at accept, or is reset.
//
// Thread-safety: listen(), close(), reconfigure() and stop() belong to the daemon's control
// thread; counters() may be called from any thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/component.hpp"
#include "gate46/common/config.hpp"
#include "gate46/common/worker_pool.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/flow_limit.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::gateway {

struct socks_settings {
  std::vector<socks_network> networks;
  std::vector<socks_user> users;
  std::vector<cidr> deny;
  cidr pool_v4{*ip_address::parse("198.18.0.0"), 15};
  cidr pool_v6{*ip_address::parse("2001:2::"), 48};
  connect_settings connect;
  std::chrono::seconds idle_timeout{3600};
  std::chrono::seconds handshake_timeout{10};  // greeting to request, per connection
  std::chrono::seconds bind_timeout{60};       // a BIND's wait for its peer
  std::chrono::seconds hold_ttl{60};           // dns.fake_ttl: the lease a flow renews
  std::chrono::seconds hold_refresh{60};       // pools.hold_refresh
};
socks_settings socks_settings_of(const config& cfg);

class socks_server {
 public:
  socks_server(worker_pool& workers, dns::resolver& resolver, mapping::mapping_store& store, flow_limit& flows,
               socks_settings settings);
  socks_server(const socks_server&) = delete;
  socks_server& operator=(const socks_server&) = delete;
  ~socks_server();

  // Throws boost::system::system_error if it cannot bind.
  void listen(const endpoint& at);
  void close(const endpoint& at);
  [[nodiscard]] std::vector<endpoint> endpoints() const;
  // The live keys: users, networks, deny list, timeouts, Happy Eyeballs settings.
  void reconfigure(socks_settings settings);
  // Stops accepting; flows carry on until `deadline`, then the rest are closed. Completes when
  // none is left.
  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline);
  [[nodiscard]] std::vector<counter> counters() const;
  // The flows being relayed now, oldest first. Any thread.
  [[nodiscard]] std::vector<live_flow> flows() const;

  struct state;

 private:
  struct listener;
  worker_pool& workers_;
  std::shared_ptr<state> state_;
  std::map<endpoint, std::vector<std::shared_ptr<listener>>> listeners_;
};

// The `socks` component: socks_server on gateway.socks_listen, or by default port 1080 on the
// loopback addresses and on every address of lan.interfaces as the address watcher reports
// them.
std::unique_ptr<component> make_socks_component(const component_context& context, dns::resolver& resolver,
                                                mapping::mapping_store& store, flow_limit& flows);

// An argon2id hash for [[gateway.user]] (gate46ctl passwd).
std::string hash_password(const std::string& password);

}  // namespace gate46::gateway
