// Where a flow goes when it names its destination (a SOCKS domain, or a fake address that
// stands for a name): the name's addresses in both families, each one checked, so that no
// answer can turn the gateway towards itself, loopback, the deny list or its own fake pools.
// Shared by the SOCKS server and the transparent relay.
//
// Thread-safety: is_own_address() may be called from any thread; resolve_destination() runs
// on the caller's executor.
#pragma once

#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/gateway/access.hpp"

namespace gate46::gateway {

struct name_destination {
  std::vector<ip_address> v6;
  std::vector<ip_address> v4;
  bool had_addresses = false;  // the name resolved to something, allowed or not
  [[nodiscard]] bool empty() const noexcept { return v6.empty() && v4.empty(); }
};

// The name's AAAA and A addresses that pass `destinations` and are not this box's own.
boost::asio::awaitable<name_destination> resolve_destination(dns::resolver& resolver,
                                                             const destination_policy& destinations,
                                                             const dns_name& name);

// True when `address` is one of this box's addresses on any interface. Read from the kernel
// (getifaddrs) at most once a second: a new connection per request must not cost a netlink dump.
bool is_own_address(const ip_address& address);

}  // namespace gate46::gateway
