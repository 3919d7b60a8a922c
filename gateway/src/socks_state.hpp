// What the SOCKS server's commands share (private to the gateway library): the server's state,
// the destination checks a request's target goes through, and the commands' entry points.
// CONNECT lives in socks_server.cpp, UDP ASSOCIATE in socks_udp.cpp, BIND in socks_bind.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/log.hpp"
#include "gate46/gateway/access.hpp"
#include "gate46/gateway/socks5.hpp"
#include "gate46/gateway/socks_server.hpp"
#include "session_registry.hpp"

namespace gate46::gateway {

using socks_counter = std::atomic<std::uint64_t>;

struct socks_server::state {
  state(dns::resolver& r, mapping::mapping_store& s, flow_limit& f, socks_settings settings);

  dns::resolver& resolver;
  mapping::mapping_store& store;
  flow_limit& flows;
  session_registry sessions;
  flow_totals totals;
  boost::asio::thread_pool verifier;  // argon2id checks, at most one per core
  destination_policy destinations;

  std::mutex mutex;  // guards current
  std::shared_ptr<const socks_settings> current;

  std::atomic<std::uint64_t> active{0};
  std::atomic<unsigned> pending_verifications{0};
  socks_counter connections{0};
  socks_counter refused_clients{0};
  socks_counter auth_failures{0};
  socks_counter auth_overload{0};
  socks_counter malformed{0};
  socks_counter denied_destinations{0};
  socks_counter connect_failures{0};
  socks_counter relayed{0};
  socks_counter refused_max_flows{0};
  log_throttle refusal_log;

  // UDP ASSOCIATE.
  socks_counter udp_associations{0};
  socks_counter udp_to_target{0};  // datagrams
  socks_counter udp_to_client{0};
  socks_counter udp_bytes_up{0};
  socks_counter udp_bytes_down{0};
  socks_counter udp_foreign_client{0};  // to a relay port from another source than its client
  socks_counter udp_foreign_target{0};  // from an endpoint the client never sent to
  socks_counter udp_fragments{0};       // FRAG != 0: the gateway does not reassemble
  socks_counter udp_malformed{0};
  socks_counter udp_truncated{0};  // longer than a UDP payload can be
  socks_counter udp_denied{0};     // deny list, the box itself, a fake address with no mapping
  socks_counter udp_unresolved{0};
  socks_counter udp_send_errors{0};
  log_throttle udp_log;

  // BIND.
  socks_counter binds{0};
  socks_counter bind_timeouts{0};
  socks_counter bind_unexpected_peers{0};
  socks_counter bind_failures{0};  // no listener could be opened

  std::shared_ptr<const socks_settings> settings() {
    const std::lock_guard lock{mutex};
    return current;
  }
};

using socks_state_ptr = std::shared_ptr<socks_server::state>;

inline constexpr auto socks_use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

inline void count(socks_counter& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

boost::asio::awaitable<void> send_message(boost::asio::ip::tcp::socket& client, const socks5::bytes& message);

// A request's target after every check: the addresses to use, or the reply that refuses it.
struct resolved_target {
  std::vector<ip_address> v6;
  std::vector<ip_address> v4;
  std::optional<ip_address> fake;  // the client named one of our fake addresses
  std::string name;                // for the log
  std::optional<socks5::reply_code> failure;
};
boost::asio::awaitable<resolved_target> resolve_target(const socks_state_ptr& st, const socks5::target& t);

// What a command's session hands on: the flow slot and the registry entry taken at accept.
struct socks_session {
  socks_state_ptr st;
  std::shared_ptr<boost::asio::ip::tcp::socket> client;
  endpoint peer;
  std::shared_ptr<const socks_settings> settings;
  socks5::request request;
  std::uint64_t id = 0;
};

// Relays `client` and `upstream` from now on (CONNECT, and BIND once its peer came): the flow
// takes over the session's slot and registry entry, holds `fake`'s mapping while it lives, and
// is listed with `description`.
void start_socks_relay(const socks_session& s, boost::asio::ip::tcp::socket upstream, std::optional<ip_address> fake,
                       flow_slot& slot, session_registry::entry& registration, flow_description description);

// UDP ASSOCIATE (RFC 1928 §7): answers the request and relays datagrams until the control
// connection ends.
boost::asio::awaitable<void> serve_udp_associate(socks_session s);
// BIND (RFC 1928 §4): the two replies, then the relay to the peer that connected.
boost::asio::awaitable<void> serve_bind(socks_session s, flow_slot& slot, session_registry::entry& registration);

}  // namespace gate46::gateway
