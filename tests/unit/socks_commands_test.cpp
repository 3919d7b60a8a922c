// The pure rules of SOCKS5 UDP ASSOCIATE and BIND: the association's client, which endpoints
// may answer and with which header, the route cache, and where a BIND listens.
#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/gateway/socks_commands.hpp"

namespace {

using namespace gate46;
using namespace gate46::gateway;
using std::chrono::seconds;
using steady = std::chrono::steady_clock;

ip_address addr(const char* text) {
  return *ip_address::parse(text);
}
endpoint ep(const char* text, std::uint16_t port) {
  return endpoint{addr(text), port};
}
socks5::target at(const char* address, std::uint16_t port) {
  return socks5::target{addr(address), port};
}
socks5::target named(const char* name, std::uint16_t port) {
  return socks5::target{*dns_name::parse(name), port};
}

// ---- association_client ----------------------------------------------------------------------

TEST(association_client, a_requested_port_fixes_the_client_address_at_once) {
  association_client client{addr("192.0.2.2"), at("192.0.2.2", 40000)};
  EXPECT_EQ(client.address(), ep("192.0.2.2", 40000));
  EXPECT_FALSE(client.admit(ep("192.0.2.2", 40001)));
  EXPECT_TRUE(client.admit(ep("192.0.2.2", 40000)));
}

TEST(association_client, the_ip_is_always_the_control_connections_peer) {
  // A request naming another host does not hand the relay port to that host.
  association_client client{addr("192.0.2.2"), at("203.0.113.9", 40000)};
  EXPECT_EQ(client.address(), ep("192.0.2.2", 40000));
  EXPECT_FALSE(client.admit(ep("203.0.113.9", 40000)));
  EXPECT_TRUE(client.admit(ep("192.0.2.2", 40000)));
}

TEST(association_client, port_zero_an_unspecified_address_or_a_name_is_learnt_from_the_first_datagram) {
  for (const auto& requested : {at("192.0.2.2", 0), at("0.0.0.0", 40000), at("::", 0), named("0", 0)}) {
    association_client client{addr("192.0.2.2"), requested};
    EXPECT_EQ(client.address(), std::nullopt) << requested.to_string();
    // Another host first: refused, and it fixes nothing.
    EXPECT_FALSE(client.admit(ep("192.0.2.3", 5000)));
    EXPECT_EQ(client.address(), std::nullopt);
    EXPECT_TRUE(client.admit(ep("192.0.2.2", 41000)));
    EXPECT_EQ(client.address(), ep("192.0.2.2", 41000));
    // From then on only that port.
    EXPECT_FALSE(client.admit(ep("192.0.2.2", 41001)));
    EXPECT_TRUE(client.admit(ep("192.0.2.2", 41000)));
  }
}

TEST(association_client, an_ipv6_client) {
  association_client client{addr("2001:db8:1::2"), at("::", 0)};
  EXPECT_FALSE(client.admit(ep("2001:db8:1::3", 7000)));
  EXPECT_TRUE(client.admit(ep("2001:db8:1::2", 7000)));
  EXPECT_EQ(client.address(), ep("2001:db8:1::2", 7000));
}

// ---- reply_routes ------------------------------------------------------------------------------

TEST(reply_routes, only_endpoints_the_client_sent_to_answer_with_the_destination_it_used) {
  reply_routes routes{8};
  EXPECT_EQ(routes.header_for(ep("2001:db8:2::2", 53)), nullptr);
  // Sent to a name that went to 2001:db8:2::2: the reply's header names the name.
  ASSERT_TRUE(routes.remember(ep("2001:db8:2::2", 53), named("v6only.gate46.test", 53)));
  const auto* header = routes.header_for(ep("2001:db8:2::2", 53));
  ASSERT_NE(header, nullptr);
  EXPECT_EQ(*header, *socks5::make_udp_header(named("v6only.gate46.test", 53)));
  // Another port of the same host, or the same port of another: strangers.
  EXPECT_EQ(routes.header_for(ep("2001:db8:2::2", 54)), nullptr);
  EXPECT_EQ(routes.header_for(ep("2001:db8:2::3", 53)), nullptr);
  // A fake address the client used is what its replies carry.
  ASSERT_TRUE(routes.remember(ep("203.0.113.2", 7), at("198.18.0.9", 7)));
  EXPECT_EQ(*routes.header_for(ep("203.0.113.2", 7)), *socks5::make_udp_header(at("198.18.0.9", 7)));
}

TEST(reply_routes, the_latest_name_for_an_endpoint_wins) {
  reply_routes routes{8};
  routes.remember(ep("203.0.113.2", 53), named("a.gate46.test", 53));
  routes.remember(ep("203.0.113.2", 53), at("198.18.0.4", 53));
  EXPECT_EQ(*routes.header_for(ep("203.0.113.2", 53)), *socks5::make_udp_header(at("198.18.0.4", 53)));
  EXPECT_EQ(routes.size(), 1U);
}

TEST(reply_routes, past_its_capacity_the_least_recently_used_endpoint_is_forgotten) {
  reply_routes routes{2};
  routes.remember(ep("203.0.113.1", 1), at("203.0.113.1", 1));
  routes.remember(ep("203.0.113.2", 2), at("203.0.113.2", 2));
  // Used again: now the most recent.
  routes.remember(ep("203.0.113.1", 1), at("203.0.113.1", 1));
  routes.remember(ep("203.0.113.3", 3), at("203.0.113.3", 3));
  EXPECT_EQ(routes.size(), 2U);
  EXPECT_NE(routes.header_for(ep("203.0.113.1", 1)), nullptr);
  EXPECT_EQ(routes.header_for(ep("203.0.113.2", 2)), nullptr);
  EXPECT_NE(routes.header_for(ep("203.0.113.3", 3)), nullptr);
}

TEST(reply_routes, a_destination_no_header_can_carry_is_not_remembered) {
  reply_routes routes{4};
  // A label holding a dot has no DOMAINNAME form.
  const auto odd = dns_name::parse("a\\.b.gate46.test");
  ASSERT_TRUE(odd.has_value());
  EXPECT_FALSE(routes.remember(ep("203.0.113.2", 53), socks5::target{*odd, 53}));
  EXPECT_EQ(routes.header_for(ep("203.0.113.2", 53)), nullptr);
  EXPECT_FALSE(reply_routes{0}.remember(ep("203.0.113.2", 53), at("203.0.113.2", 53)));
}

// ---- udp_route_cache ---------------------------------------------------------------------------

TEST(udp_route_cache, a_route_is_reused_for_its_lifetime_then_resolved_again) {
  udp_route_cache cache{4, seconds{30}};
  const auto t0 = steady::time_point{} + seconds{1000};
  const udp_route route{ep("2001:db8:2::2", 53), addr("198.18.0.7")};
  cache.store(named("v6only.gate46.test", 53), route, t0);
  const auto found = cache.find(named("v6only.gate46.test", 53), t0 + seconds{29});
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->real, route.real);
  EXPECT_EQ(found->fake, route.fake);
  EXPECT_FALSE(cache.find(named("v6only.gate46.test", 53), t0 + seconds{30}).has_value());
  // The port is part of the destination.
  EXPECT_FALSE(cache.find(named("v6only.gate46.test", 54), t0).has_value());
}

TEST(udp_route_cache, when_full_the_entry_expiring_first_makes_room) {
  udp_route_cache cache{2, seconds{30}};
  const auto t0 = steady::time_point{} + seconds{1000};
  cache.store(at("203.0.113.1", 1), {ep("203.0.113.1", 1), {}}, t0);
  cache.store(at("203.0.113.2", 2), {ep("203.0.113.2", 2), {}}, t0 + seconds{5});
  cache.store(at("203.0.113.3", 3), {ep("203.0.113.3", 3), {}}, t0 + seconds{6});
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_FALSE(cache.find(at("203.0.113.1", 1), t0 + seconds{6}).has_value());
  EXPECT_TRUE(cache.find(at("203.0.113.2", 2), t0 + seconds{6}).has_value());
  EXPECT_TRUE(cache.find(at("203.0.113.3", 3), t0 + seconds{6}).has_value());
}

// ---- BIND --------------------------------------------------------------------------------------

TEST(bind_reference, the_primary_connections_server_decides_the_family) {
  const std::vector<ip_address> v6{addr("2001:db8:2::2")};
  const std::vector<ip_address> v4{addr("203.0.113.2")};
  // The client's FTP control connection went over IPv4, though IPv6 is preferred.
  const std::vector<ip_address> primaries{addr("203.0.113.2")};
  EXPECT_EQ(bind_reference(v6, v4, primaries, ip_family::v6), addr("203.0.113.2"));
  // Flows to other hosts do not count; newest first.
  const std::vector<ip_address> others{addr("203.0.113.77"), addr("2001:db8:2::2"), addr("203.0.113.2")};
  EXPECT_EQ(bind_reference(v6, v4, others, ip_family::v4), addr("2001:db8:2::2"));
  // No primary connection: the preferred family.
  EXPECT_EQ(bind_reference(v6, v4, {}, ip_family::v6), addr("2001:db8:2::2"));
  EXPECT_EQ(bind_reference(v6, v4, {}, ip_family::v4), addr("203.0.113.2"));
  EXPECT_EQ(bind_reference({}, v4, {}, ip_family::v6), addr("203.0.113.2"));
  EXPECT_EQ(bind_reference({}, {}, primaries, ip_family::v6), std::nullopt);
}

TEST(bind_peer_expected, only_the_named_peer_unless_none_was_named) {
  const std::vector<ip_address> expected{addr("2001:db8:2::2"), addr("203.0.113.2")};
  EXPECT_TRUE(bind_peer_expected(expected, addr("203.0.113.2")));
  EXPECT_TRUE(bind_peer_expected(expected, addr("2001:db8:2::2")));
  EXPECT_FALSE(bind_peer_expected(expected, addr("203.0.113.3")));
  EXPECT_FALSE(bind_peer_expected(expected, addr("192.0.2.2")));
  EXPECT_TRUE(bind_peer_expected({}, addr("192.0.2.2")));
}

}  // namespace
