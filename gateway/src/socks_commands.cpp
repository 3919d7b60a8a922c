#include "gate46/gateway/socks_commands.hpp"

#include <algorithm>

#include "gate46/gateway/udp_sessions.hpp"

namespace gate46::gateway {

association_client::association_client(const ip_address& control_peer, const socks5::target& requested)
    : ip_{control_peer} {
  const auto* address = std::get_if<ip_address>(&requested.host);
  if (address != nullptr && !address->is_unspecified() && requested.port != 0) {
    port_ = requested.port;
  }
}

bool association_client::admit(const endpoint& from) {
  if (from.address != ip_) {
    return false;
  }
  if (!port_) {
    port_ = from.port;
  }
  return from.port == *port_;
}

std::optional<endpoint> association_client::address() const {
  if (!port_) {
    return std::nullopt;
  }
  return endpoint{ip_, *port_};
}

bool reply_routes::remember(const endpoint& real, const socks5::target& as_written) {
  auto header = socks5::make_udp_header(as_written);
  if (!header) {
    return false;
  }
  if (const auto it = headers_.find(real); it != headers_.end()) {
    // The latest name the client used for this endpoint is the one it waits for.
    it->second.header = std::move(*header);
    by_use_.splice(by_use_.begin(), by_use_, it->second.use);
    return true;
  }
  if (capacity_ == 0) {
    return false;
  }
  if (headers_.size() >= capacity_) {
    headers_.erase(by_use_.back());
    by_use_.pop_back();
  }
  by_use_.push_front(real);
  headers_.emplace(real, entry{std::move(*header), by_use_.begin()});
  return true;
}

const socks5::bytes* reply_routes::header_for(const endpoint& real) const {
  const auto it = headers_.find(real);
  return it == headers_.end() ? nullptr : &it->second.header;
}

std::optional<udp_route> udp_route_cache::find(const socks5::target& destination, time_point now) const {
  const auto it = routes_.find(destination.to_string());
  if (it == routes_.end() || now >= it->second.expires) {
    return std::nullopt;
  }
  return it->second.route;
}

void udp_route_cache::store(const socks5::target& destination, const udp_route& route, time_point now) {
  if (capacity_ == 0) {
    return;
  }
  auto key = destination.to_string();
  if (!routes_.contains(key) && routes_.size() >= capacity_) {
    const auto first_to_expire = std::min_element(routes_.begin(), routes_.end(), [](const auto& a, const auto& b) {
      return a.second.expires < b.second.expires;
    });
    routes_.erase(first_to_expire);
  }
  routes_.insert_or_assign(std::move(key), entry{route, now + lifetime_});
}

std::optional<ip_address> bind_reference(std::span<const ip_address> v6, std::span<const ip_address> v4,
                                         std::span<const ip_address> primary_targets, ip_family prefer) {
  for (const auto& target : primary_targets) {
    const auto& family = target.is_v4() ? v4 : v6;
    if (std::find(family.begin(), family.end(), target) != family.end()) {
      return target;
    }
  }
  return pick_udp_target(v6, v4, prefer);
}

bool bind_peer_expected(std::span<const ip_address> expected, const ip_address& peer) {
  return expected.empty() || std::find(expected.begin(), expected.end(), peer) != expected.end();
}

}  // namespace gate46::gateway
