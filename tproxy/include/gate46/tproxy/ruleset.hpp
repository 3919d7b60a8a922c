// The capture rules, as text for nftables: pure functions of the configuration, so what gate46
// installs is unit tested line by line and `gate46ctl firewall show --dry-run` prints exactly
// what would be applied.
//
// One table, `inet gate46`, owned by gate46 alone:
//   prerouting (filter, priority mangle): LAN TCP/UDP to a fake pool -> TPROXY to tproxy.port,
//     marked with tproxy.mark under tproxy.mark_mask (the other bits of the mark are kept), so
//     the policy route delivers it locally; packets with tproxy.bypass_mark are left alone.
//   dns (nat, priority dstnat), with tproxy.capture_dns: LAN UDP/TCP to port 53 of any address
//     but the fake pools and the configured upstreams -> redirected to the DNS proxy's port;
//     conntrack restores the source of the replies.
//   input (filter): TCP/UDP to tproxy.port without the mark is dropped: the wildcard listener
//     only takes what TPROXY hands it.
//
// Loop analysis. A flow is captured only in prerouting and only when it enters on a LAN
// interface: the gateway's own connections (output path) are never captured, wherever they
// go. The gateway never connects to a fake address (unmapped pool addresses are denied, and
// the DNS policy removes pool addresses from upstream answers), so a mapping cannot point a
// flow back into the pools. The marked packets are routed to `lo` only by the fwmark rule,
// and the gateway's sockets carry tproxy.bypass_mark, which differs from tproxy.mark under the
// mask. With DNS capture, the proxy's queries to its upstreams leave through the output path,
// and an upstream on the LAN is excluded by address, so its own queries are not redirected
// back to the proxy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/config.hpp"

namespace gate46::tproxy {

inline constexpr std::string_view table_family = "inet";
inline constexpr std::string_view table_name = "gate46";

struct ruleset_settings {
  std::vector<std::string> lan_interfaces;
  cidr pool_v4{*ip_address::parse("198.18.0.0"), 15};
  cidr pool_v6{*ip_address::parse("2001:2::"), 48};
  std::uint16_t tproxy_port = 7046;
  std::uint32_t mark = 0x46;
  std::uint32_t mark_mask = 0xff;
  std::uint32_t bypass_mark = 0x47;
  bool capture_dns = false;
  std::uint16_t dns_port = 53;            // where the DNS proxy listens
  std::vector<ip_address> dns_upstreams;  // never redirected: they may sit on the LAN
  friend bool operator==(const ruleset_settings&, const ruleset_settings&) = default;
};

// From [lan], [pools], [tproxy] and [dns] (the DNS port is that of dns.listen's first
// endpoint, 53 by default).
ruleset_settings ruleset_settings_of(const config& cfg);

// The table, in nft's input syntax ("table inet gate46 { ... }").
// Throws std::invalid_argument for an interface name nft could not take literally.
std::string make_table(const ruleset_settings& s);

// One nft transaction that replaces the table atomically: it creates the table if missing,
// deletes it and adds the new one. Applying it twice leaves the same table; if any rule
// fails, nothing changes.
std::string make_apply_script(const ruleset_settings& s);

// One transaction that removes the table if it exists, and nothing else.
std::string make_remove_script();

}  // namespace gate46::tproxy
