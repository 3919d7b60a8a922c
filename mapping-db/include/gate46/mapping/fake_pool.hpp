// A pool of fake addresses and where a name is placed in it. Pure: no store, no I/O.
//
// Usable addresses: an IPv4 pool shorter than /31 never hands out its first (network) and last
// (broadcast) address; /31, /32, /127 and /128 pools, and every other IPv6 pool, use every
// address. Usable addresses are numbered 0..size()-1 in address order.
//
// Placement: a name starts at index SipHash-2-4(key, lower-cased wire name) and probes upwards
// (wrapping) to the first free address. So the same key places a name at the same address on
// every gateway and after a lost store, as long as that address was free: always in practice in
// the IPv6 pool (2^80 addresses by default), and in the small IPv4 pool while it is sparse (with
// 131,070 addresses, a name's first choice is taken by another name with probability
// used/size).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"

namespace gate46::mapping {

__extension__ using pool_index = unsigned __int128;

// The 16-byte key of the placement hash (pools.key_file).
using pool_key = std::array<std::uint8_t, 16>;

class fake_pool {
 public:
  explicit fake_pool(const cidr& prefix);

  [[nodiscard]] const cidr& prefix() const noexcept { return prefix_; }
  [[nodiscard]] ip_family family() const noexcept { return prefix_.family(); }
  // Number of usable addresses (at most 2^128 - 1 is never reached: pools are at least /1).
  [[nodiscard]] pool_index size() const noexcept { return size_; }
  // True for usable addresses of this pool (not the reserved first/last of IPv4 pools).
  [[nodiscard]] bool contains(const ip_address& address) const noexcept;

  // Precondition: index < size().
  [[nodiscard]] ip_address address_at(pool_index index) const noexcept;
  // Precondition: contains(address).
  [[nodiscard]] pool_index index_of(const ip_address& address) const noexcept;

  // Where probing for `name` starts.
  [[nodiscard]] pool_index start_index(const pool_key& key, const dns_name& name) const noexcept;
  // The next index in probe order (wraps to 0).
  [[nodiscard]] pool_index next_index(pool_index index) const noexcept { return index + 1 == size_ ? 0 : index + 1; }

 private:
  cidr prefix_;
  pool_index first_;  // offset of index 0 from the network address
  pool_index size_;
};

}  // namespace gate46::mapping
