#include "gate46/gateway/udp_sessions.hpp"

#include <cstdlib>
#include <functional>

#include "gate46/common/log.hpp"

namespace gate46::gateway {

std::size_t udp_flow_key_hash::operator()(const udp_flow_key& key) const noexcept {
  const std::hash<endpoint> h;
  const auto a = h(key.client);
  // boost::hash_combine's mix: (client, destination) and (destination, client) differ.
  return a ^ (h(key.destination) + 0x9e3779b97f4a7c15ULL + (a << 6U) + (a >> 2U));
}

std::chrono::seconds udp_idle_timeout_for(std::uint16_t destination_port, std::chrono::seconds idle,
                                          std::chrono::seconds dns_idle) noexcept {
  constexpr std::uint16_t dns_port = 53;
  return destination_port == dns_port ? dns_idle : idle;
}

std::optional<ip_address> pick_udp_target(std::span<const ip_address> v6, std::span<const ip_address> v4,
                                          ip_family prefer) {
  const auto first = prefer == ip_family::v6 ? v6 : v4;
  const auto second = prefer == ip_family::v6 ? v4 : v6;
  if (!first.empty()) {
    return first.front();
  }
  if (!second.empty()) {
    return second.front();
  }
  return std::nullopt;
}

udp_admission udp_session_limits::admit(const ip_address& client, unsigned per_client, unsigned total) {
  if (total_ >= total) {
    return udp_admission::total_limit;
  }
  auto& count = per_client_[client];
  if (count >= per_client) {
    if (count == 0) {
      per_client_.erase(client);  // a limit of 0: keep no empty entry
    }
    return udp_admission::per_client_limit;
  }
  ++count;
  ++total_;
  return udp_admission::admitted;
}

void udp_session_limits::release(const ip_address& client) {
  const auto it = per_client_.find(client);
  if (it == per_client_.end() || it->second == 0 || total_ == 0) {
    logger("relay")->critical("udp_session_limits: release of {} without a session", client.to_string());
    std::abort();
  }
  if (--it->second == 0) {
    per_client_.erase(it);
  }
  --total_;
}

unsigned udp_session_limits::of(const ip_address& client) const {
  const auto it = per_client_.find(client);
  return it == per_client_.end() ? 0 : it->second;
}

}  // namespace gate46::gateway
