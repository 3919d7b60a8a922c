#include "gate46/common/address.hpp"

#include <gtest/gtest.h>

#include <unordered_set>

namespace gate46 {
namespace {

ip_address addr(std::string_view text) {
  auto parsed = ip_address::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(ip_address{});
}

TEST(ip_address, parses_both_families) {
  EXPECT_TRUE(addr("192.0.2.1").is_v4());
  EXPECT_EQ(addr("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_TRUE(addr("2001:db8::1").is_v6());
  EXPECT_EQ(addr("2001:DB8:0:0::1").to_string(), "2001:db8::1");  // RFC 5952 canonical form
}

TEST(ip_address, v4_mapped_is_the_ipv4_address) {
  EXPECT_EQ(addr("::ffff:198.18.0.1"), addr("198.18.0.1"));
  EXPECT_TRUE(addr("::ffff:198.18.0.1").is_v4());
  EXPECT_EQ(addr("::ffff:198.18.0.1").to_string(), "198.18.0.1");
  EXPECT_EQ(std::hash<ip_address>{}(addr("::ffff:192.0.2.7")), std::hash<ip_address>{}(addr("192.0.2.7")));
  // IPv4-compatible (deprecated ::a.b.c.d) is an IPv6 address, not the IPv4 one.
  EXPECT_NE(addr("::192.0.2.1"), addr("192.0.2.1"));
}

TEST(ip_address, rejects_garbage) {
  for (const char* bad : {"", "192.0.2", "192.0.2.256", "192.0.2.1 ", " 192.0.2.1", "2001:db8::1%eth0", "1::2::3",
                          "example.com", "192.0.2.1/24", "0x7f.1", "01.2.3.4x"}) {
    EXPECT_FALSE(ip_address::parse(bad)) << bad;
  }
  EXPECT_FALSE(ip_address::parse(std::string(100, '1')));
}

TEST(ip_address, classifies) {
  EXPECT_TRUE(addr("0.0.0.0").is_unspecified());
  EXPECT_TRUE(addr("::").is_unspecified());
  EXPECT_FALSE(addr("0.0.0.1").is_unspecified());
  EXPECT_TRUE(addr("127.1.2.3").is_loopback());
  EXPECT_TRUE(addr("::1").is_loopback());
  EXPECT_FALSE(addr("::2").is_loopback());
  EXPECT_EQ(addr("198.18.0.1").v4_host_order(), 0xC6120001U);
  EXPECT_EQ(ip_address::from_v4(0xC6120001U), addr("198.18.0.1"));
}

TEST(ip_address, orders_and_hashes_as_a_value) {
  EXPECT_LT(addr("192.0.2.1"), addr("192.0.2.2"));
  std::unordered_set<ip_address> set{addr("192.0.2.1"), addr("::ffff:192.0.2.1"), addr("2001:db8::1")};
  EXPECT_EQ(set.size(), 2U);
}

TEST(endpoint, parses_with_and_without_port) {
  EXPECT_EQ(endpoint::parse("192.0.2.1:53"), (endpoint{addr("192.0.2.1"), 53}));
  EXPECT_EQ(endpoint::parse("[2001:db8::1]:5353"), (endpoint{addr("2001:db8::1"), 5353}));
  EXPECT_EQ(endpoint::parse("[::ffff:192.0.2.1]:53"), std::nullopt);  // brackets are for IPv6
  EXPECT_EQ(endpoint::parse("192.0.2.1", 53), (endpoint{addr("192.0.2.1"), 53}));
  EXPECT_EQ(endpoint::parse("2001:db8::1", 53), (endpoint{addr("2001:db8::1"), 53}));
  EXPECT_EQ(endpoint::parse("[2001:db8::1]", 53), (endpoint{addr("2001:db8::1"), 53}));
  EXPECT_EQ(endpoint::parse("192.0.2.1"), std::nullopt);  // no port and no default
  for (const char* bad : {"192.0.2.1:", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:5x", "[2001:db8::1]x",
                          "[2001:db8::1", "[]:53", ":53"}) {
    EXPECT_EQ(endpoint::parse(bad, 53), std::nullopt) << bad;
  }
  EXPECT_EQ(endpoint::parse("[2001:db8::1]:53")->to_string(), "[2001:db8::1]:53");
  EXPECT_EQ(endpoint::parse("192.0.2.1:53")->to_string(), "192.0.2.1:53");
}

TEST(cidr, parses_and_contains) {
  const auto pool = *cidr::parse("198.18.0.0/15");
  EXPECT_EQ(pool.prefix_length(), 15U);
  EXPECT_TRUE(pool.contains(addr("198.18.0.1")));
  EXPECT_TRUE(pool.contains(addr("198.19.255.255")));
  EXPECT_TRUE(pool.contains(addr("::ffff:198.19.1.1")));
  EXPECT_FALSE(pool.contains(addr("198.20.0.0")));
  EXPECT_FALSE(pool.contains(addr("198.17.255.255")));
  EXPECT_EQ(pool.last(), addr("198.19.255.255"));

  const auto pool6 = *cidr::parse("2001:2::/48");
  EXPECT_TRUE(pool6.contains(addr("2001:2:0:ffff::1")));
  EXPECT_FALSE(pool6.contains(addr("2001:2:1::1")));
  EXPECT_EQ(pool6.last(), addr("2001:2:0:ffff:ffff:ffff:ffff:ffff"));
  // An IPv6 prefix never contains an IPv4 address, whatever the bytes say.
  EXPECT_FALSE(cidr::parse("::/0")->contains(addr("192.0.2.1")));
  EXPECT_TRUE(cidr::parse("0.0.0.0/0")->contains(addr("192.0.2.1")));
  EXPECT_FALSE(cidr::parse("0.0.0.0/0")->contains(addr("2001:db8::1")));
}

TEST(cidr, bare_address_is_a_host_prefix) {
  EXPECT_EQ(cidr::parse("192.0.2.7")->prefix_length(), 32U);
  EXPECT_EQ(cidr::parse("2001:db8::7")->prefix_length(), 128U);
  EXPECT_EQ(cidr::parse("::ffff:192.0.2.0/24")->to_string(), "192.0.2.0/24");
}

TEST(cidr, reports_why_it_rejects) {
  cidr::parse_error error{};
  EXPECT_FALSE(cidr::parse("192.0.2.1/24", &error));
  EXPECT_EQ(error, cidr::parse_error::host_bits_set);
  EXPECT_FALSE(cidr::parse("192.0.2.0/33", &error));
  EXPECT_EQ(error, cidr::parse_error::bad_prefix_length);
  EXPECT_FALSE(cidr::parse("2001:db8::/129", &error));
  EXPECT_EQ(error, cidr::parse_error::bad_prefix_length);
  EXPECT_FALSE(cidr::parse("192.0.2.0/", &error));
  EXPECT_EQ(error, cidr::parse_error::bad_prefix_length);
  EXPECT_FALSE(cidr::parse("192.0.2.0/2x", &error));
  EXPECT_EQ(error, cidr::parse_error::bad_prefix_length);
  EXPECT_FALSE(cidr::parse("192.0.2/24", &error));
  EXPECT_EQ(error, cidr::parse_error::syntax);
}

TEST(cidr, constructor_clears_host_bits) {
  const cidr c{addr("2001:db8:1234:5678::1"), 33};
  EXPECT_EQ(c.to_string(), "2001:db8::/33");
  EXPECT_EQ(cidr(addr("192.0.2.255"), 31).to_string(), "192.0.2.254/31");
  EXPECT_EQ(cidr(addr("192.0.2.255"), 0).to_string(), "0.0.0.0/0");
}

}  // namespace
}  // namespace gate46
