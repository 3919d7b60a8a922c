// The capture rules as generated text (nft input syntax) and the policy-routing netlink
// messages, without a kernel.
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "gate46/tproxy/routing.hpp"
#include "gate46/tproxy/ruleset.hpp"

namespace {

using namespace gate46;
using namespace gate46::tproxy;

ruleset_settings lan(std::vector<std::string> interfaces) {
  ruleset_settings s;
  s.lan_interfaces = std::move(interfaces);
  return s;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n    " + line + "\n") != std::string::npos;
}

TEST(tproxy_ruleset, captures_tcp_and_udp_to_both_pools_on_the_lan_interfaces) {
  const auto t = make_table(lan({"lan0", "wlan0"}));
  EXPECT_TRUE(t.starts_with("table inet gate46 {\n")) << t;
  EXPECT_NE(t.find("elements = { 198.18.0.0/15 }"), std::string::npos) << t;
  EXPECT_NE(t.find("elements = { 2001:2::/48 }"), std::string::npos) << t;
  EXPECT_TRUE(has_line(t,
                       "iifname { \"lan0\", \"wlan0\" } ip daddr @fake4 meta l4proto { tcp, udp } tproxy ip to :7046 "
                       "meta mark set meta mark & 0xffffff00 | 0x46 accept"))
      << t;
  EXPECT_TRUE(has_line(t,
                       "iifname { \"lan0\", \"wlan0\" } ip6 daddr @fake6 meta l4proto { tcp, udp } tproxy ip6 to :7046 "
                       "meta mark set meta mark & 0xffffff00 | 0x46 accept"))
      << t;
  EXPECT_TRUE(has_line(t, "type filter hook prerouting priority mangle; policy accept;")) << t;
}

TEST(tproxy_ruleset, other_pools_and_port) {
  auto s = lan({"lan0"});
  s.pool_v4 = *cidr::parse("198.51.100.0/24");
  s.pool_v6 = *cidr::parse("2001:db8:46::/64");
  s.tproxy_port = 9000;
  const auto t = make_table(s);
  EXPECT_NE(t.find("elements = { 198.51.100.0/24 }"), std::string::npos) << t;
  EXPECT_NE(t.find("elements = { 2001:db8:46::/64 }"), std::string::npos) << t;
  EXPECT_NE(t.find("tproxy ip to :9000 "), std::string::npos) << t;
  EXPECT_NE(t.find("tproxy ip6 to :9000 "), std::string::npos) << t;
  EXPECT_TRUE(has_line(t, "meta l4proto { tcp, udp } th dport 9000 meta mark & 0xff != 0x46 drop")) << t;
}

TEST(tproxy_ruleset, the_mark_is_set_and_matched_under_the_mask_only) {
  auto s = lan({"lan0"});
  s.mark = 0x4600;
  s.mark_mask = 0xff00;
  s.bypass_mark = 0x4700;
  const auto t = make_table(s);
  EXPECT_NE(t.find("meta mark set meta mark & 0xffff00ff | 0x4600 accept"), std::string::npos) << t;
  EXPECT_TRUE(has_line(t, "meta mark & 0xff00 == 0x4700 return")) << t;
  EXPECT_TRUE(has_line(t, "meta l4proto { tcp, udp } th dport 7046 meta mark & 0xff00 != 0x4600 drop")) << t;
}

TEST(tproxy_ruleset, bypass_comes_before_the_capture) {
  const auto t = make_table(lan({"lan0"}));
  const auto bypass = t.find("== 0x47 return");
  ASSERT_NE(bypass, std::string::npos) << t;
  EXPECT_LT(bypass, t.find("tproxy ip to"));
}

TEST(tproxy_ruleset, dns_capture_only_when_asked_and_never_for_pools_or_upstreams) {
  auto s = lan({"lan0"});
  EXPECT_EQ(make_table(s).find("chain dns"), std::string::npos);
  s.capture_dns = true;
  s.dns_port = 5353;
  s.dns_upstreams = {*ip_address::parse("192.0.2.53"), *ip_address::parse("2001:db8::53")};
  const auto t = make_table(s);
  EXPECT_TRUE(has_line(t, "type nat hook prerouting priority dstnat; policy accept;")) << t;
  EXPECT_TRUE(has_line(t,
                       "iifname { \"lan0\" } ip daddr != @fake4 ip saddr != { 192.0.2.53 } meta l4proto { tcp, udp } "
                       "th dport 53 redirect to :5353"))
      << t;
  EXPECT_TRUE(has_line(t,
                       "iifname { \"lan0\" } ip6 daddr != @fake6 ip6 saddr != { 2001:db8::53 } meta l4proto { tcp, "
                       "udp } th dport 53 redirect to :5353"))
      << t;
  s.dns_upstreams.clear();
  const auto without = make_table(s);
  EXPECT_TRUE(has_line(
      without, "iifname { \"lan0\" } ip daddr != @fake4 meta l4proto { tcp, udp } th dport 53 redirect to :5353"))
      << without;
}

TEST(tproxy_ruleset, apply_replaces_the_table_in_one_transaction_and_remove_touches_nothing_else) {
  const auto s = lan({"lan0"});
  const auto apply = make_apply_script(s);
  EXPECT_TRUE(apply.starts_with("table inet gate46 {}\ndelete table inet gate46\ntable inet gate46 {\n")) << apply;
  EXPECT_EQ(make_remove_script(), "table inet gate46 {}\ndelete table inet gate46\n");
}

TEST(tproxy_ruleset, refuses_interface_names_nft_cannot_quote) {
  EXPECT_THROW((void)make_table(lan({"lan\"0"})), std::invalid_argument);
  EXPECT_THROW((void)make_table(lan({"lan\\0"})), std::invalid_argument);
  EXPECT_THROW((void)make_table(lan({""})), std::invalid_argument);
  EXPECT_THROW((void)make_table(lan({})), std::invalid_argument);
  EXPECT_NO_THROW((void)make_table(lan({"br-lan.10"})));
}

TEST(tproxy_ruleset, settings_come_from_the_configuration) {
  config cfg;
  cfg.lan.interfaces = {"lan0"};
  cfg.tproxy.port = 7100;
  cfg.tproxy.capture_dns = true;
  cfg.dns.listen = {*endpoint::parse("192.0.2.1:5300")};
  cfg.dns.upstreams = {*endpoint::parse("203.0.113.53:53")};
  const auto s = ruleset_settings_of(cfg);
  EXPECT_EQ(s.tproxy_port, 7100);
  EXPECT_EQ(s.dns_port, 5300);
  ASSERT_EQ(s.dns_upstreams.size(), 1U);
  EXPECT_EQ(s.dns_upstreams[0].to_string(), "203.0.113.53");
  EXPECT_EQ(ruleset_settings_of(config{}).dns_port, 53);
}

// ---- policy routing messages -------------------------------------------------------------------

struct attribute {
  std::uint16_t type;
  std::uint32_t value;
};

template <typename Fixed>
std::vector<attribute> attributes_of(const std::vector<std::uint8_t>& m, Fixed& fixed, nlmsghdr& h) {
  std::memcpy(&h, m.data(), sizeof h);
  std::memcpy(&fixed, m.data() + NLMSG_HDRLEN, sizeof fixed);
  std::vector<attribute> out;
  for (std::size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof fixed); at + sizeof(rtattr) <= m.size();) {
    rtattr a{};
    std::memcpy(&a, m.data() + at, sizeof a);
    attribute x{a.rta_type, 0};
    std::memcpy(&x.value, m.data() + at + RTA_LENGTH(0), sizeof x.value);
    out.push_back(x);
    at += RTA_ALIGN(a.rta_len);
  }
  return out;
}

std::uint32_t value_of(const std::vector<attribute>& as, std::uint16_t type) {
  for (const auto& a : as) {
    if (a.type == type) {
      return a.value;
    }
  }
  ADD_FAILURE() << "no attribute " << type;
  return 0;
}

TEST(tproxy_routing, rule_message_is_fwmark_under_mask_to_the_table_at_the_priority) {
  const routing_settings s{0x4600, 0xff00, 146, 470};
  for (const auto family : {ip_family::v4, ip_family::v6}) {
    const auto m = rule_message(netlink_op::add, family, s, 7);
    fib_rule_hdr rule{};
    nlmsghdr h{};
    const auto as = attributes_of(m, rule, h);
    EXPECT_EQ(h.nlmsg_len, m.size());
    EXPECT_EQ(h.nlmsg_type, RTM_NEWRULE);
    EXPECT_EQ(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    EXPECT_EQ(h.nlmsg_seq, 7U);
    EXPECT_EQ(rule.family, family == ip_family::v4 ? AF_INET : AF_INET6);
    EXPECT_EQ(rule.action, FR_ACT_TO_TBL);
    EXPECT_EQ(value_of(as, FRA_FWMARK), 0x4600U);
    EXPECT_EQ(value_of(as, FRA_FWMASK), 0xff00U);
    EXPECT_EQ(value_of(as, FRA_TABLE), 146U);
    EXPECT_EQ(value_of(as, FRA_PRIORITY), 470U);
  }
  nlmsghdr h{};
  const auto del = rule_message(netlink_op::remove, ip_family::v4, s, 8);
  std::memcpy(&h, del.data(), sizeof h);
  EXPECT_EQ(h.nlmsg_type, RTM_DELRULE);
  EXPECT_EQ(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
}

TEST(tproxy_routing, the_ipv4_source_check_rule_sends_loopback_lookups_of_the_mark_to_main) {
  const routing_settings s{0x4600, 0xff00, 146, 470};
  const auto m = source_check_rule_message(netlink_op::add, s, 9);
  fib_rule_hdr rule{};
  nlmsghdr h{};
  const auto as = attributes_of(m, rule, h);
  EXPECT_EQ(h.nlmsg_len, m.size());
  EXPECT_EQ(h.nlmsg_type, RTM_NEWRULE);
  EXPECT_EQ(rule.family, AF_INET);
  EXPECT_EQ(rule.action, FR_ACT_TO_TBL);
  EXPECT_EQ(rule.table, RT_TABLE_MAIN);
  EXPECT_EQ(value_of(as, FRA_FWMARK), 0x4600U);
  EXPECT_EQ(value_of(as, FRA_FWMASK), 0xff00U);
  EXPECT_EQ(value_of(as, FRA_TABLE), static_cast<std::uint32_t>(RT_TABLE_MAIN));
  // Just before the capture rule, so the reverse lookup never reaches it.
  EXPECT_EQ(value_of(as, FRA_PRIORITY), 469U);
  // FRA_IFNAME "lo" with its NUL, padded to four bytes.
  const std::string message(m.begin(), m.end());
  EXPECT_NE(message.find(std::string{"lo\0", 3}), std::string::npos);
  const auto del = source_check_rule_message(netlink_op::remove, s, 10);
  std::memcpy(&h, del.data(), sizeof h);
  EXPECT_EQ(h.nlmsg_type, RTM_DELRULE);
}

TEST(tproxy_routing, route_message_is_local_default_via_loopback_in_the_table) {
  const routing_settings s{0x46, 0xff, 1000, 460};  // a table above 255 goes in RTA_TABLE only
  const auto m = route_message(netlink_op::add, ip_family::v6, s, 1, 3);
  rtmsg route{};
  nlmsghdr h{};
  const auto as = attributes_of(m, route, h);
  EXPECT_EQ(h.nlmsg_type, RTM_NEWROUTE);
  EXPECT_EQ(route.rtm_family, AF_INET6);
  EXPECT_EQ(route.rtm_dst_len, 0);
  EXPECT_EQ(route.rtm_type, RTN_LOCAL);
  EXPECT_EQ(route.rtm_scope, RT_SCOPE_HOST);
  EXPECT_EQ(route.rtm_table, RT_TABLE_UNSPEC);
  EXPECT_EQ(value_of(as, RTA_TABLE), 1000U);
  EXPECT_EQ(value_of(as, RTA_OIF), 1U);
}

}  // namespace
