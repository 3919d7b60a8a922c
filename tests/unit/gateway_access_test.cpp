// Who may use the SOCKS server and where the gateway may connect.
#include <gtest/gtest.h>

#include "gate46/gateway/access.hpp"

namespace {

using namespace gate46;
using namespace gate46::gateway;

ip_address addr(const char* text) {
  return *ip_address::parse(text);
}
cidr net(const char* text) {
  return *cidr::parse(text);
}

TEST(client_policy, the_first_network_holding_the_client_decides_and_others_are_refused) {
  const client_policy p{{{net("192.0.2.128/25"), socks_auth::password},
                         {net("192.0.2.0/24"), socks_auth::none},
                         {net("2001:db8:1::/64"), socks_auth::password}}};
  EXPECT_EQ(p.check(addr("192.0.2.200")), client_access::password);
  EXPECT_EQ(p.check(addr("192.0.2.10")), client_access::no_auth);
  EXPECT_EQ(p.check(addr("2001:db8:1::5")), client_access::password);
  EXPECT_EQ(p.check(addr("198.51.100.1")), client_access::refused);
  EXPECT_EQ(p.check(addr("::ffff:192.0.2.10")), client_access::no_auth);  // v4-mapped is IPv4
  EXPECT_EQ(client_policy{{}}.check(addr("192.0.2.10")), client_access::refused);
}

TEST(client_policy, the_loaded_defaults_are_the_lan_and_loopback_without_a_password) {
  config cfg;
  cfg.lan.networks = {net("192.0.2.0/24")};
  cfg.gateway.socks_networks = {{net("192.0.2.0/24"), socks_auth::none},
                                {net("127.0.0.0/8"), socks_auth::none},
                                {net("::1/128"), socks_auth::none}};
  const client_policy p{cfg.gateway.socks_networks};
  EXPECT_EQ(p.check(addr("127.0.0.1")), client_access::no_auth);
  EXPECT_EQ(p.check(addr("::1")), client_access::no_auth);
  EXPECT_EQ(p.check(addr("203.0.113.9")), client_access::refused);
}

TEST(destination_policy, deny_list_own_addresses_and_pools) {
  destination_policy p{gateway_config::default_deny(), net("198.18.0.0/15"), net("2001:2::/48")};
  for (const char* denied : {"127.0.0.1", "::1", "0.0.0.0", "169.254.1.1", "224.0.0.1", "255.255.255.255", "fe80::1",
                             "ff02::1", "::", "::ffff:127.0.0.1"}) {
    EXPECT_EQ(p.check(addr(denied)), destination_verdict::denied) << denied;
  }
  for (const char* allowed : {"203.0.113.10", "2001:db8:2::10", "192.0.2.1"}) {
    EXPECT_EQ(p.check(addr(allowed)), destination_verdict::allowed) << allowed;
  }
  EXPECT_EQ(p.check(addr("198.18.0.5")), destination_verdict::fake_pool);
  EXPECT_EQ(p.check(addr("::ffff:198.19.1.1")), destination_verdict::fake_pool);
  EXPECT_EQ(p.check(addr("2001:2::5")), destination_verdict::fake_pool);

  p.set_own_addresses({addr("192.0.2.1"), addr("2001:db8:1::1")});
  EXPECT_EQ(p.check(addr("192.0.2.1")), destination_verdict::denied);
  EXPECT_EQ(p.check(addr("2001:db8:1::1")), destination_verdict::denied);
  EXPECT_EQ(p.check(addr("192.0.2.2")), destination_verdict::allowed);

  p.set_deny({net("203.0.113.0/24")});
  EXPECT_EQ(p.check(addr("203.0.113.10")), destination_verdict::denied);
  EXPECT_EQ(p.check(addr("169.254.1.1")), destination_verdict::allowed);  // the operator replaced the list
  // but the box itself stays out of reach whatever the list says
  for (const char* self : {"127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1"}) {
    EXPECT_EQ(p.check(addr(self)), destination_verdict::denied) << self;
  }
}

}  // namespace
