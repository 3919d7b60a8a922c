#include "gate46/mapping/fake_pool.hpp"

#include <gtest/gtest.h>

#include <set>

namespace gate46::mapping {
namespace {

fake_pool pool(std::string_view text) {
  return fake_pool{*cidr::parse(text)};
}
ip_address addr(std::string_view text) {
  return *ip_address::parse(text);
}
constexpr pool_key key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

TEST(fake_pool, ipv4_pools_skip_network_and_broadcast) {
  const auto p = pool("198.18.0.0/15");
  EXPECT_EQ(p.size(), pool_index{131070});
  EXPECT_EQ(p.address_at(0), addr("198.18.0.1"));
  EXPECT_EQ(p.address_at(131069), addr("198.19.255.254"));
  EXPECT_FALSE(p.contains(addr("198.18.0.0")));
  EXPECT_FALSE(p.contains(addr("198.19.255.255")));
  EXPECT_TRUE(p.contains(addr("198.18.255.255")));  // inside the /15, not its edge
  EXPECT_EQ(p.index_of(addr("198.19.0.0")), pool_index{65535});

  const auto p30 = pool("198.18.0.0/30");
  EXPECT_EQ(p30.size(), pool_index{2});
  EXPECT_EQ(p30.address_at(0), addr("198.18.0.1"));
  EXPECT_EQ(p30.address_at(1), addr("198.18.0.2"));
}

TEST(fake_pool, point_to_point_and_host_pools_use_every_address) {
  const auto p31 = pool("198.18.0.0/31");
  EXPECT_EQ(p31.size(), pool_index{2});
  EXPECT_EQ(p31.address_at(0), addr("198.18.0.0"));
  EXPECT_EQ(p31.address_at(1), addr("198.18.0.1"));
  const auto p32 = pool("198.18.0.7/32");
  EXPECT_EQ(p32.size(), pool_index{1});
  EXPECT_EQ(p32.address_at(0), addr("198.18.0.7"));
  EXPECT_TRUE(p32.contains(addr("198.18.0.7")));
  const auto p127 = pool("2001:2::/127");
  EXPECT_EQ(p127.size(), pool_index{2});
  EXPECT_EQ(p127.address_at(0), addr("2001:2::"));
  EXPECT_EQ(p127.address_at(1), addr("2001:2::1"));
  const auto p128 = pool("2001:2::5/128");
  EXPECT_EQ(p128.size(), pool_index{1});
  EXPECT_EQ(p128.address_at(0), addr("2001:2::5"));
}

TEST(fake_pool, ipv6_pools_use_every_address) {
  const auto p = pool("2001:2::/48");
  EXPECT_EQ(p.size(), pool_index{1} << 80);
  EXPECT_EQ(p.address_at(0), addr("2001:2::"));
  EXPECT_EQ(p.address_at(p.size() - 1), addr("2001:2:0:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_TRUE(p.contains(addr("2001:2::")));
  EXPECT_FALSE(p.contains(addr("2001:2:1::")));
  EXPECT_FALSE(p.contains(addr("198.18.0.1")));
}

TEST(fake_pool, placement_is_keyed_stable_and_in_range) {
  const auto p = pool("198.18.0.0/15");
  const auto name = *dns_name::parse("v6only.example");
  const auto start = p.start_index(key, name);
  EXPECT_LT(start, p.size());
  EXPECT_EQ(start, p.start_index(key, *dns_name::parse("V6ONLY.example.")));  // case-insensitive
  pool_key other = key;
  other[0] ^= 1;
  EXPECT_NE(start, p.start_index(other, name));

  // Names spread: 1000 names over 131070 addresses collide rarely.
  std::set<pool_index> starts;
  for (int i = 0; i < 1000; ++i) {
    starts.insert(p.start_index(key, *dns_name::parse("host" + std::to_string(i) + ".example")));
  }
  EXPECT_GT(starts.size(), 990U);

  // In a /48 the hash lands across the whole pool, not only its first /64.
  const auto p6 = pool("2001:2::/48");
  std::set<std::uint16_t> subnets;
  for (int i = 0; i < 64; ++i) {
    const auto index = p6.start_index(key, *dns_name::parse("n" + std::to_string(i) + ".example"));
    ASSERT_LT(index, p6.size());
    subnets.insert(static_cast<std::uint16_t>(index >> 64));
  }
  EXPECT_GT(subnets.size(), 32U);
}

TEST(fake_pool, probing_wraps) {
  const auto p = pool("198.18.0.0/30");
  EXPECT_EQ(p.next_index(0), pool_index{1});
  EXPECT_EQ(p.next_index(1), pool_index{0});
}

}  // namespace
}  // namespace gate46::mapping
