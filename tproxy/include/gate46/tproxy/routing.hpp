// The policy route that delivers captured packets locally, for both families:
//   ip rule add fwmark MARK/MASK lookup TABLE priority PRIORITY
//   ip route add local default dev lo table TABLE
// and, for IPv4, the rule that keeps the reverse-path check of captured packets in the main table:
//   ip rule add fwmark MARK/MASK iif lo lookup main priority PRIORITY-1
// With net.ipv4.conf.*.src_valid_mark = 1 (wg-quick sets it) the kernel validates a packet's
// source with a lookup that carries the packet's mark; without that rule the capture mark would
// send it to TABLE, whose local default route makes every captured source a martian. The
// reverse lookup runs with iif lo; forwarded and captured packets never do, and the gateway's own
// sockets carry the bypass mark, so nothing else matches it. IPv6 has no such check.
// Everything goes through rtnetlink. The message builders are pure (unit tested); add() and remove() send them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/config.hpp"

namespace gate46::tproxy {

struct routing_settings {
  std::uint32_t mark = 0x46;
  std::uint32_t mask = 0xff;
  std::uint32_t table = 46;
  std::uint32_t priority = 460;
  friend bool operator==(const routing_settings&, const routing_settings&) = default;
};
routing_settings routing_settings_of(const config& cfg);

enum class netlink_op : std::uint8_t { add, remove };

// One rtnetlink request each (NLM_F_ACK; add with NLM_F_CREATE | NLM_F_EXCL).
std::vector<std::uint8_t> rule_message(netlink_op op, ip_family family, const routing_settings& s, std::uint32_t seq);
// The IPv4 reverse-path rule above.
std::vector<std::uint8_t> source_check_rule_message(netlink_op op, const routing_settings& s, std::uint32_t seq);
std::vector<std::uint8_t> route_message(netlink_op op, ip_family family, const routing_settings& s,
                                        std::uint32_t loopback_index, std::uint32_t seq);

class routing_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Adds the rule and route for both families; what already exists is left as it is.
// Throws routing_error (EPERM: CAP_NET_ADMIN is needed).
void add_policy_routing(const routing_settings& s);
// Deletes them; what is already gone is no error.
void remove_policy_routing(const routing_settings& s);

}  // namespace gate46::tproxy
