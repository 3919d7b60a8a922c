#include "gate46/mapping/fake_pool.hpp"

#include <sodium.h>

#include <cassert>

namespace gate46::mapping {
namespace {

pool_index to_index(const ip_address::bytes_type& bytes) noexcept {
  pool_index v = 0;
  for (auto b : bytes) {
    v = (v << 8) | b;
  }
  return v;
}

ip_address::bytes_type from_index(pool_index v) noexcept {
  ip_address::bytes_type bytes{};
  for (int i = 15; i >= 0; --i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return bytes;
}

unsigned host_bits(const cidr& prefix) noexcept {
  return (prefix.family() == ip_family::v4 ? 32U : 128U) - prefix.prefix_length();
}

}  // namespace

fake_pool::fake_pool(const cidr& prefix) : prefix_{prefix}, first_{0} {
  const unsigned bits = host_bits(prefix);
  // 2^128 does not fit: a ::/0 "pool" is rejected by the config long before (it overlaps
  // everything), so clamp instead of overflowing.
  const pool_index total = bits >= 128 ? ~pool_index{0} : (pool_index{1} << bits);
  if (prefix.family() == ip_family::v4 && bits >= 2) {
    first_ = 1;
    size_ = total - 2;
  } else {
    size_ = total;
  }
}

bool fake_pool::contains(const ip_address& address) const noexcept {
  if (!prefix_.contains(address)) {
    return false;
  }
  const pool_index offset = to_index(address.v6_bytes()) - to_index(prefix_.network().v6_bytes());
  return offset >= first_ && offset - first_ < size_;
}

ip_address fake_pool::address_at(pool_index index) const noexcept {
  assert(index < size_);
  return ip_address::from_v6(from_index(to_index(prefix_.network().v6_bytes()) + first_ + index));
}

pool_index fake_pool::index_of(const ip_address& address) const noexcept {
  assert(contains(address));
  return to_index(address.v6_bytes()) - to_index(prefix_.network().v6_bytes()) - first_;
}

pool_index fake_pool::start_index(const pool_key& key, const dns_name& name) const noexcept {
  std::array<unsigned char, crypto_shorthash_BYTES> digest{};
  const auto wire = name.wire();
  crypto_shorthash(digest.data(), wire.data(), wire.size(), key.data());
  std::uint64_t hash = 0;
  for (auto b : digest) {
    hash = (hash << 8) | b;
  }
  // Pools larger than 2^64 (IPv6 shorter than /64): spread the 64 hash bits over the top of
  // the host part, so names land all over the pool, not only in its first /64.
  const unsigned bits = host_bits(prefix_);
  if (bits > 64 && prefix_.family() == ip_family::v6) {
    return pool_index{hash} << (bits - 64);
  }
  return pool_index{hash} % size_;
}

}  // namespace gate46::mapping
