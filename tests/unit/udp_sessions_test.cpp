// The pure parts of the transparent UDP relay: session keys, idle timeouts, the target choice
// and the session limits.
#include <chrono>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/gateway/udp_sessions.hpp"

namespace {

using namespace gate46;
using namespace gate46::gateway;
using std::chrono::seconds;

ip_address addr(const char* text) {
  return *ip_address::parse(text);
}
endpoint ep(const char* text, std::uint16_t port) {
  return endpoint{addr(text), port};
}

TEST(udp_flow_key, a_session_is_one_client_port_to_one_destination_port) {
  const udp_flow_key a{ep("192.0.2.2", 40000), ep("198.18.0.5", 53)};
  const udp_flow_key_hash hash;
  EXPECT_EQ(a, (udp_flow_key{ep("192.0.2.2", 40000), ep("198.18.0.5", 53)}));
  EXPECT_EQ(hash(a), hash(udp_flow_key{ep("192.0.2.2", 40000), ep("198.18.0.5", 53)}));
  // Another source port, another destination port, another fake address: other sessions.
  EXPECT_NE(a, (udp_flow_key{ep("192.0.2.2", 40001), ep("198.18.0.5", 53)}));
  EXPECT_NE(a, (udp_flow_key{ep("192.0.2.2", 40000), ep("198.18.0.5", 54)}));
  EXPECT_NE(a, (udp_flow_key{ep("192.0.2.2", 40000), ep("198.18.0.6", 53)}));
  // Swapping the two ends is not the same key (nor, in practice, the same hash).
  EXPECT_NE(hash(a), hash(udp_flow_key{a.destination, a.client}));
  // A v4-mapped client is the IPv4 client (one address type for both families).
  EXPECT_EQ(a, (udp_flow_key{ep("::ffff:192.0.2.2", 40000), ep("::ffff:198.18.0.5", 53)}));
}

TEST(udp_flow_key, hashes_spread_over_many_source_ports) {
  const udp_flow_key_hash hash;
  std::unordered_set<std::size_t> seen;
  for (std::uint16_t port = 10000; port < 10200; ++port) {
    seen.insert(hash(udp_flow_key{ep("2001:db8:1::2", port), ep("2001:2::7", 7)}));
  }
  EXPECT_EQ(seen.size(), 200U);
}

TEST(udp_idle_timeout_for, port_53_gets_the_dns_timeout_every_other_port_the_general_one) {
  EXPECT_EQ(udp_idle_timeout_for(53, seconds{60}, seconds{10}), seconds{10});
  EXPECT_EQ(udp_idle_timeout_for(443, seconds{60}, seconds{10}), seconds{60});
  EXPECT_EQ(udp_idle_timeout_for(5353, seconds{60}, seconds{10}), seconds{60});
  EXPECT_EQ(udp_idle_timeout_for(0, seconds{60}, seconds{10}), seconds{60});
}

TEST(pick_udp_target, the_preferred_family_first_then_the_other_then_none) {
  const std::vector<ip_address> v6{addr("2001:db8:2::2"), addr("2001:db8:2::3")};
  const std::vector<ip_address> v4{addr("203.0.113.2")};
  const std::vector<ip_address> none;
  EXPECT_EQ(pick_udp_target(v6, v4, ip_family::v6), addr("2001:db8:2::2"));
  EXPECT_EQ(pick_udp_target(v6, v4, ip_family::v4), addr("203.0.113.2"));
  EXPECT_EQ(pick_udp_target(v6, none, ip_family::v4), addr("2001:db8:2::2"));
  EXPECT_EQ(pick_udp_target(none, v4, ip_family::v6), addr("203.0.113.2"));
  EXPECT_EQ(pick_udp_target(none, none, ip_family::v6), std::nullopt);
}

TEST(udp_session_limits, a_client_gets_per_client_sessions_and_then_is_refused_until_one_ends) {
  udp_session_limits limits;
  const auto client = addr("192.0.2.2");
  EXPECT_EQ(limits.admit(client, 2, 100), udp_admission::admitted);
  EXPECT_EQ(limits.admit(client, 2, 100), udp_admission::admitted);
  EXPECT_EQ(limits.admit(client, 2, 100), udp_admission::per_client_limit);
  EXPECT_EQ(limits.of(client), 2U);
  EXPECT_EQ(limits.total(), 2U);
  // Another client is not affected.
  EXPECT_EQ(limits.admit(addr("2001:db8:1::2"), 2, 100), udp_admission::admitted);
  limits.release(client);
  EXPECT_EQ(limits.admit(client, 2, 100), udp_admission::admitted);
  EXPECT_EQ(limits.total(), 3U);
}

TEST(udp_session_limits, the_total_limit_refuses_everyone_and_is_checked_first) {
  udp_session_limits limits;
  EXPECT_EQ(limits.admit(addr("192.0.2.2"), 10, 2), udp_admission::admitted);
  EXPECT_EQ(limits.admit(addr("192.0.2.3"), 10, 2), udp_admission::admitted);
  EXPECT_EQ(limits.admit(addr("192.0.2.4"), 10, 2), udp_admission::total_limit);
  EXPECT_EQ(limits.admit(addr("192.0.2.2"), 1, 2), udp_admission::total_limit);
  EXPECT_EQ(limits.of(addr("192.0.2.4")), 0U);
  limits.release(addr("192.0.2.3"));
  EXPECT_EQ(limits.admit(addr("192.0.2.4"), 10, 2), udp_admission::admitted);
}

TEST(udp_session_limits, a_lowered_limit_applies_to_new_sessions_only_and_no_empty_entry_stays) {
  udp_session_limits limits;
  const auto client = addr("192.0.2.2");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(limits.admit(client, 4, 100), udp_admission::admitted);
  }
  // Reloaded with 1 per client: the three live on, a fourth is refused...
  EXPECT_EQ(limits.admit(client, 1, 100), udp_admission::per_client_limit);
  limits.release(client);
  limits.release(client);
  EXPECT_EQ(limits.admit(client, 1, 100), udp_admission::per_client_limit);
  // ...until the client is under the new limit.
  limits.release(client);
  EXPECT_EQ(limits.clients(), 0U);
  EXPECT_EQ(limits.admit(client, 1, 100), udp_admission::admitted);
  // A limit of 0 refuses everything and records nothing.
  EXPECT_EQ(limits.admit(addr("192.0.2.9"), 0, 100), udp_admission::per_client_limit);
  EXPECT_EQ(limits.clients(), 1U);
}

TEST(udp_session_limits_death, releasing_a_session_never_admitted_aborts) {
  EXPECT_DEATH(
      {
        udp_session_limits limits;
        limits.release(addr("192.0.2.2"));
      },
      "");
}

}  // namespace
