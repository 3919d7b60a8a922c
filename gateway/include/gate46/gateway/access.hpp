// Who may use the gateway and where it may connect: pure rules, evaluated per connection by
// the SOCKS server and the transparent relay.
//
// - client_policy: [[gateway.socks_network]], the first network that holds the client decides
//   whether it needs a password; a client in none is refused (never an open proxy).
// - destination_policy: gateway.deny plus the gateway's own addresses (from the address
//   watcher) and, whatever gateway.deny says, loopback and "this host" (0.0.0.0/8, ::) of both
//   families: no way to reach the box itself; and the fake pools: a fake address is never a destination in itself; the
//   caller maps it back to its name (or refuses it when unmapped). Addresses are compared in normalised form, so
//   ::ffff:127.0.0.1 is 127.0.0.1.
#pragma once

#include <mutex>
#include <optional>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/config.hpp"

namespace gate46::gateway {

enum class client_access : std::uint8_t { refused, no_auth, password };

class client_policy {
 public:
  explicit client_policy(std::vector<socks_network> networks) : networks_{std::move(networks)} {}
  [[nodiscard]] client_access check(const ip_address& client) const;

 private:
  std::vector<socks_network> networks_;
};

enum class destination_verdict : std::uint8_t {
  allowed,
  denied,    // gateway.deny or one of the gateway's own addresses: SOCKS reply 02
  fake_pool  // one of our fake addresses: map it back to its name, or refuse it (02)
};

// Thread-safe: the SOCKS sessions check while the address watcher updates the own addresses.
class destination_policy {
 public:
  destination_policy(std::vector<cidr> deny, cidr pool_v4, cidr pool_v6);

  [[nodiscard]] destination_verdict check(const ip_address& destination) const;
  void set_own_addresses(std::vector<ip_address> own);
  void set_deny(std::vector<cidr> deny);  // gateway.deny on SIGHUP

 private:
  mutable std::mutex mutex_;
  std::vector<cidr> deny_;
  std::vector<ip_address> own_;
  cidr pool_v4_;
  cidr pool_v6_;
};

}  // namespace gate46::gateway
