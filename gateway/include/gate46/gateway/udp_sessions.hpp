// The pure parts of the transparent UDP relay: what identifies a session, how long an idle one
// lives, which resolved address it goes to, and the session limits (gateway.udp_sessions_per_client,
// gateway.udp_sessions_max). No sockets, no clock calls.
//
// Thread-safety: udp_flow_key and the functions are values / pure. udp_session_limits is not
// synchronised: its owner guards it (the relay keeps it behind a mutex, shared by the workers,
// since one client's sessions may land on different worker threads).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>

#include "gate46/common/address.hpp"

namespace gate46::gateway {

// A transparent UDP session: one client endpoint talking to one original (fake) destination.
struct udp_flow_key {
  endpoint client;
  endpoint destination;
  friend bool operator==(const udp_flow_key&, const udp_flow_key&) = default;
};

struct udp_flow_key_hash {
  std::size_t operator()(const udp_flow_key& key) const noexcept;
};

// How long a session may stay without a datagram either way: `dns_idle` when the destination
// port is 53 (one query, one answer: such sessions are many and short), `idle` otherwise.
[[nodiscard]] std::chrono::seconds udp_idle_timeout_for(std::uint16_t destination_port, std::chrono::seconds idle,
                                                        std::chrono::seconds dns_idle) noexcept;

// The address a session sends to: the first of the preferred family's addresses, else the first
// of the other family's; nullopt when both lists are empty. UDP has no handshake to race, so
// there is no Happy Eyeballs: the choice is made once per session.
[[nodiscard]] std::optional<ip_address> pick_udp_target(std::span<const ip_address> v6, std::span<const ip_address> v4,
                                                        ip_family prefer);

enum class udp_admission : std::uint8_t {
  admitted,
  per_client_limit,  // the client already has gateway.udp_sessions_per_client sessions
  total_limit,       // gateway.udp_sessions_max sessions exist
};

// Counts live sessions, in total and per client address (every port of one host counts as one
// client). The limits are passed to each admit() so that a reload applies to the next session;
// sessions above a lowered limit are left alone and only make room more slowly.
class udp_session_limits {
 public:
  // Takes a slot for `client` if both limits allow it; release() gives it back.
  udp_admission admit(const ip_address& client, unsigned per_client, unsigned total);
  // Gives back a slot admit() took. Releasing what was never admitted is a broken invariant
  // and aborts.
  void release(const ip_address& client);

  [[nodiscard]] std::size_t total() const noexcept { return total_; }
  [[nodiscard]] unsigned of(const ip_address& client) const;
  // Clients with at least one session (no entry is kept for a client without any).
  [[nodiscard]] std::size_t clients() const noexcept { return per_client_.size(); }

 private:
  std::unordered_map<ip_address, unsigned> per_client_;
  std::size_t total_ = 0;
};

}  // namespace gate46::gateway
