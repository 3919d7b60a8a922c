#include "gate46/gateway/access.hpp"

#include <algorithm>
#include <array>

namespace gate46::gateway {

client_access client_policy::check(const ip_address& client) const {
  for (const auto& n : networks_) {
    if (n.network.contains(client)) {
      return n.auth == socks_auth::password ? client_access::password : client_access::no_auth;
    }
  }
  return client_access::refused;
}

destination_policy::destination_policy(std::vector<cidr> deny, cidr pool_v4, cidr pool_v6)
    : deny_{std::move(deny)}, pool_v4_{pool_v4}, pool_v6_{pool_v6} {}

namespace {

// The box itself, whatever gateway.deny says: loopback and "this host" of both families.
bool is_this_host(const ip_address& a) {
  static const std::array<cidr, 4> always{*cidr::parse("127.0.0.0/8"), *cidr::parse("0.0.0.0/8"),
                                          *cidr::parse("::1/128"), *cidr::parse("::/128")};
  return std::any_of(always.begin(), always.end(), [&](const cidr& c) { return c.contains(a); });
}

}  // namespace

destination_verdict destination_policy::check(const ip_address& destination) const {
  // ip_address holds IPv4 in one form only (v4-mapped inside), so a v4-mapped IPv6
  // destination is already the IPv4 address here.
  if (pool_v4_.contains(destination) || pool_v6_.contains(destination)) {
    return destination_verdict::fake_pool;
  }
  if (is_this_host(destination)) {
    return destination_verdict::denied;
  }
  const std::lock_guard lock{mutex_};
  const bool denied = std::any_of(deny_.begin(), deny_.end(), [&](const cidr& c) { return c.contains(destination); }) ||
                      std::find(own_.begin(), own_.end(), destination) != own_.end();
  return denied ? destination_verdict::denied : destination_verdict::allowed;
}

void destination_policy::set_own_addresses(std::vector<ip_address> own) {
  const std::lock_guard lock{mutex_};
  own_ = std::move(own);
}

void destination_policy::set_deny(std::vector<cidr> deny) {
  const std::lock_guard lock{mutex_};
  deny_ = std::move(deny);
}

}  // namespace gate46::gateway
