// The UDP half of the `relay` component: captured datagrams to fake addresses, relayed per
// session (client endpoint, original destination) to the real target in its own family.
//
// One transparent dual-stack UDP socket per worker thread on tproxy.port (SO_REUSEPORT: the
// kernel hashes a flow's 4-tuple to one socket, so a session stays on one worker). The first
// datagram of a session is checked (fake pool, mapping; counted and dropped otherwise) and
// admitted by the session limits; the session then holds the mapping, resolves the name,
// opens an upstream socket in the target's family (SO_MARK tproxy.bypass_mark, connected to
// target:port) and a reply socket bound to the fake address and port, connected to the client:
// replies leave from where the client sent to, and TPROXY delivers the client's later datagrams
// to that connected socket instead of to the listener. Datagrams that arrive while the session
// is set up are queued (at most 32; more are dropped and counted). A session ends after
// gateway.udp_idle_timeout without a datagram either way (udp_dns_idle_timeout for port 53),
// when the client's side reports an ICMP error (it has gone), or at stop. ICMP errors from the
// target (ECONNREFUSED) are counted and the session kept: the client's next datagram may find
// the port open; the idle timeout ends it otherwise.
//
// Thread-safety: start(), reconfigure() and stop() belong to the daemon's control thread;
// append_counters() and flows() may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/component.hpp"
#include "gate46/common/worker_pool.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/gateway/transparent_relay.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::gateway {

class transparent_udp_relay {
 public:
  transparent_udp_relay(worker_pool& workers, dns::resolver& resolver, mapping::mapping_store& store, flow_limit& flows,
                        const transparent_settings& settings);
  transparent_udp_relay(const transparent_udp_relay&) = delete;
  transparent_udp_relay& operator=(const transparent_udp_relay&) = delete;
  ~transparent_udp_relay();

  // Opens one socket per worker on tproxy.port. Throws boost::system::system_error.
  void start();
  void reconfigure(const transparent_settings& settings);
  // Closes the sockets and every session at once: a UDP session has no end of its own that a
  // drain could wait for (only its idle timeout). Completes when none is left.
  boost::asio::awaitable<void> stop();
  // The udp_* counters.
  void append_counters(std::vector<counter>& out) const;
  // The sessions relaying now, oldest first; destination "udp [fake]:port".
  [[nodiscard]] std::vector<live_flow> flows() const;

  struct state;
  struct worker;

 private:
  worker_pool& workers_;
  std::shared_ptr<state> state_;
  std::vector<std::shared_ptr<worker>> sockets_;
};

}  // namespace gate46::gateway
