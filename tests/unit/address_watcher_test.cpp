// The pure part of the address watcher: rtnetlink messages decoded from byte literals (captured
// from this kernel, x86-64: native byte order is little-endian), the link/address table, diffs.
#include "gate46/common/address_watcher.hpp"

#include <linux/rtnetlink.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include <gtest/gtest.h>

namespace gate46 {
namespace {

static_assert(std::endian::native == std::endian::little, "the literals below are little-endian");

using bytes = std::vector<std::byte>;

bytes b(std::initializer_list<int> values) {
  bytes out;
  for (const int v : values) {
    out.push_back(static_cast<std::byte>(v));
  }
  return out;
}

ip_address addr(std::string_view text) {
  const auto parsed = ip_address::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(ip_address{});
}

// RTM_NEWADDR for 192.0.2.1/24 on lan0 (index 3), as `ip addr add 192.0.2.1/24 dev lan0` makes it.
bytes ipv4_new() {
  return b({
      0x50, 0x00, 0x00, 0x00,  // nlmsg_len 80
      0x14, 0x00,              // nlmsg_type RTM_NEWADDR (20)
      0x02, 0x00,              // nlmsg_flags NLM_F_MULTI
      0x01, 0x00, 0x00, 0x00,  // nlmsg_seq 1
      0x38, 0x01, 0x00, 0x00,  // nlmsg_pid 312
      0x02,                    // ifa_family AF_INET
      0x18,                    // ifa_prefixlen 24
      0x80,                    // ifa_flags IFA_F_PERMANENT
      0x00,                    // ifa_scope RT_SCOPE_UNIVERSE
      0x03, 0x00, 0x00, 0x00,  // ifa_index 3
      0x08, 0x00, 0x01, 0x00,  // rta_len 8, IFA_ADDRESS
      0xc0, 0x00, 0x02, 0x01,  //   192.0.2.1
      0x08, 0x00, 0x02, 0x00,  // rta_len 8, IFA_LOCAL
      0xc0, 0x00, 0x02, 0x01,  //   192.0.2.1
      0x09, 0x00, 0x03, 0x00,  // rta_len 9, IFA_LABEL
      0x6c, 0x61, 0x6e, 0x30,  //   "lan0"
      0x00, 0x00, 0x00, 0x00,  //   NUL, 3 bytes of padding
      0x08, 0x00, 0x08, 0x00,  // rta_len 8, IFA_FLAGS
      0x80, 0x00, 0x00, 0x00,  //   IFA_F_PERMANENT
      0x14, 0x00, 0x06, 0x00,  // rta_len 20, IFA_CACHEINFO
      0xff, 0xff, 0xff, 0xff,  //   ifa_prefered forever
      0xff, 0xff, 0xff, 0xff,  //   ifa_valid forever
      0xd8, 0x3e, 0x06, 0x00,  //   cstamp
      0xd8, 0x3e, 0x06, 0x00,  //   tstamp
  });
}

// RTM_NEWADDR for 2001:db8:1::1/64 on index 3, added with nodad.
bytes ipv6_new() {
  return b({
      0x48, 0x00, 0x00, 0x00,  // nlmsg_len 72
      0x14, 0x00,              // nlmsg_type RTM_NEWADDR
      0x00, 0x00,              // nlmsg_flags: an event
      0x00, 0x00, 0x00, 0x00,  // nlmsg_seq 0
      0x00, 0x00, 0x00, 0x00,  // nlmsg_pid 0
      0x0a,                    // ifa_family AF_INET6
      0x40,                    // ifa_prefixlen 64
      0x82,                    // ifa_flags IFA_F_PERMANENT | IFA_F_NODAD
      0x00,                    // ifa_scope RT_SCOPE_UNIVERSE
      0x03, 0x00, 0x00, 0x00,  // ifa_index 3
      0x14, 0x00, 0x01, 0x00,  // rta_len 20, IFA_ADDRESS
      0x20, 0x01, 0x0d, 0xb8,  //   2001:db8:1::1
      0x00, 0x01, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x01,  //
      0x14, 0x00, 0x06, 0x00,  // rta_len 20, IFA_CACHEINFO
      0xff, 0xff, 0xff, 0xff,  //   ifa_prefered
      0xff, 0xff, 0xff, 0xff,  //   ifa_valid
      0xd8, 0x3e, 0x06, 0x00,  //   cstamp
      0xd8, 0x3e, 0x06, 0x00,  //   tstamp
      0x08, 0x00, 0x08, 0x00,  // rta_len 8, IFA_FLAGS
      0x82, 0x00, 0x00, 0x00,  //   IFA_F_PERMANENT | IFA_F_NODAD
  });
}
constexpr std::size_t ipv6_ifa_flags_offset = 18;        // the one-byte ifa_flags
constexpr std::size_t ipv6_flags_attribute_offset = 68;  // the u32 in IFA_FLAGS

// RTM_NEWADDR for fe80::1/64, link scope, on lo (index 1).
bytes ipv6_link_local() {
  return b({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x14, 0x00,              // nlmsg_type RTM_NEWADDR
      0x00, 0x00,              // nlmsg_flags
      0x00, 0x00, 0x00, 0x00,  // nlmsg_seq
      0x00, 0x00, 0x00, 0x00,  // nlmsg_pid
      0x0a,                    // ifa_family AF_INET6
      0x40,                    // ifa_prefixlen 64
      0x80,                    // ifa_flags IFA_F_PERMANENT
      0xfd,                    // ifa_scope RT_SCOPE_LINK (253)
      0x01, 0x00, 0x00, 0x00,  // ifa_index 1
      0x14, 0x00, 0x01, 0x00,  // rta_len 20, IFA_ADDRESS
      0xfe, 0x80, 0x00, 0x00,  //   fe80::1
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x01,  //
  });
}

// RTM_NEWLINK for lan0 (index 3), trimmed to the attribute the watcher reads.
bytes link_new() {
  return b({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x10, 0x00,              // nlmsg_type RTM_NEWLINK (16)
      0x00, 0x00,              // nlmsg_flags
      0x00, 0x00, 0x00, 0x00,  // nlmsg_seq
      0x00, 0x00, 0x00, 0x00,  // nlmsg_pid
      0x00,                    // ifi_family AF_UNSPEC
      0x00,                    // padding
      0x01, 0x00,              // ifi_type ARPHRD_ETHER
      0x03, 0x00, 0x00, 0x00,  // ifi_index 3
      0x43, 0x10, 0x00, 0x00,  // ifi_flags UP | BROADCAST | RUNNING | MULTICAST... (0x1043)
      0x00, 0x00, 0x00, 0x00,  // ifi_change
      0x09, 0x00, 0x03, 0x00,  // rta_len 9, IFLA_IFNAME
      0x6c, 0x61, 0x6e, 0x30,  //   "lan0"
      0x00, 0x00, 0x00, 0x00,  //   NUL, padding
  });
}
constexpr std::size_t link_type_offset = 4;
constexpr std::size_t link_family_offset = 16;

bytes with(bytes message, std::size_t offset, std::initializer_list<int> values) {
  for (const int v : values) {
    message.at(offset++) = static_cast<std::byte>(v);
  }
  return message;
}

// ---- Addresses ---------------------------------------------------------------------------------

TEST(address_watcher_decode_address, ipv4_address_with_label_and_flags) {
  const auto m = rtnetlink::decode_address_message(ipv4_new());
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->removed);
  EXPECT_EQ(m->interface_index, 3U);
  EXPECT_EQ(m->address, addr("192.0.2.1"));
  EXPECT_TRUE(m->address.is_v4());
  EXPECT_EQ(m->prefix_length, 24U);
  EXPECT_EQ(m->scope, address_scope::global);
  EXPECT_EQ(m->flags, 0x80U);
  EXPECT_TRUE(m->usable());
}

TEST(address_watcher_decode_address, ipv6_address) {
  const auto m = rtnetlink::decode_address_message(ipv6_new());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->address, addr("2001:db8:1::1"));
  EXPECT_EQ(m->prefix_length, 64U);
  EXPECT_EQ(m->interface_index, 3U);
  EXPECT_TRUE(m->usable());
}

TEST(address_watcher_decode_address, link_local_scope) {
  const auto m = rtnetlink::decode_address_message(ipv6_link_local());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->address, addr("fe80::1"));
  EXPECT_EQ(m->scope, address_scope::link);
  const interface_address a{"lo", 1, m->address, m->prefix_length, m->scope};
  EXPECT_TRUE(a.is_link_local());
  EXPECT_EQ(a.to_string(), "lo fe80::1/64 (link-local)");
  // The range alone is enough too (the kernel gives fe80::/10 link scope anyway).
  EXPECT_TRUE((interface_address{"lan0", 3, addr("fe80::2"), 64, address_scope::global}.is_link_local()));
  EXPECT_TRUE((interface_address{"lan0", 3, addr("169.254.1.1"), 16, address_scope::global}.is_link_local()));
  EXPECT_FALSE((interface_address{"lan0", 3, addr("192.0.2.1"), 24, address_scope::global}.is_link_local()));
  EXPECT_FALSE((interface_address{"lan0", 3, addr("2001:db8::1"), 64, address_scope::global}.is_link_local()));
}

TEST(address_watcher_decode_address, deladdr_is_a_removal) {
  const auto m = rtnetlink::decode_address_message(with(ipv4_new(), 4, {RTM_DELADDR, 0x00}));
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->removed);
  EXPECT_EQ(m->address, addr("192.0.2.1"));
}

TEST(address_watcher_decode_address, tentative_flags_decide_usability) {
  // IFA_FLAGS (u32) wins over the one-byte ifa_flags: set only the attribute.
  const auto flags = [](int value) {
    return rtnetlink::decode_address_message(with(ipv6_new(), ipv6_flags_attribute_offset, {value, 0, 0, 0}));
  };
  const auto tentative = flags(0x40);  // IFA_F_TENTATIVE: DAD still running
  ASSERT_TRUE(tentative);
  EXPECT_EQ(tentative->flags, 0x40U);
  EXPECT_FALSE(tentative->usable());
  const auto optimistic = flags(0x40 | 0x04);  // IFA_F_TENTATIVE | IFA_F_OPTIMISTIC
  ASSERT_TRUE(optimistic);
  EXPECT_TRUE(optimistic->usable());
  const auto failed = flags(0x40 | 0x08);  // IFA_F_TENTATIVE | IFA_F_DADFAILED
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->usable());
  const auto deprecated = flags(0x20);  // IFA_F_DEPRECATED: still bindable
  ASSERT_TRUE(deprecated);
  EXPECT_TRUE(deprecated->usable());
  // Without IFA_FLAGS the one-byte field counts (older kernels): cut the attribute off.
  auto without = with(ipv6_new(), 0, {64, 0, 0, 0});  // nlmsg_len 64: ends before IFA_FLAGS
  without = with(without, ipv6_ifa_flags_offset, {0x40});
  without.resize(64);
  const auto old_style = rtnetlink::decode_address_message(without);
  ASSERT_TRUE(old_style);
  EXPECT_EQ(old_style->flags, 0x40U);
  EXPECT_FALSE(old_style->usable());
}

TEST(address_watcher_decode_address, local_wins_over_peer_address) {
  const bytes point_to_point = b({
      0x28, 0x00, 0x00, 0x00,  // nlmsg_len 40
      0x14, 0x00,              // RTM_NEWADDR
      0x00, 0x00,              // flags
      0x00, 0x00, 0x00, 0x00,  // seq
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x20, 0x80, 0x00,  // AF_INET, /32, IFA_F_PERMANENT, universe
      0x07, 0x00, 0x00, 0x00,  // ifa_index 7
      0x08, 0x00, 0x01, 0x00,  // IFA_ADDRESS: the peer
      0xc0, 0x00, 0x02, 0x02,  //   192.0.2.2
      0x08, 0x00, 0x02, 0x00,  // IFA_LOCAL: ours
      0xc0, 0x00, 0x02, 0x01,  //   192.0.2.1
  });
  const auto m = rtnetlink::decode_address_message(point_to_point);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->address, addr("192.0.2.1"));
  EXPECT_EQ(m->prefix_length, 32U);
}

TEST(address_watcher_decode_address, drops_bad_messages) {
  // Attribute length past the end of the message (IFA_ADDRESS claims 0x30 bytes).
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 24, {0x30, 0x00})));
  // Attribute length shorter than an attribute header.
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 24, {0x03, 0x00})));
  // IPv4 address of 5 bytes (rta_len 9 on IFA_ADDRESS; the rest no longer lines up either).
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 24, {0x09, 0x00})));
  // IPv6 family with the IPv4 message's 4-byte addresses.
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 16, {0x0a})));
  // Prefix longer than the family allows.
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 17, {33})));
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv6_new(), 17, {129})));
  // Other families (AF_PACKET 17) and interface index 0.
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 16, {17})));
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 20, {0, 0, 0, 0})));
  // Not an address message (RTM_NEWLINK).
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 4, {RTM_NEWLINK, 0})));
  // No address attribute at all: cut after the ifaddrmsg.
  auto bare = with(ipv4_new(), 0, {24, 0, 0, 0});
  bare.resize(24);
  EXPECT_FALSE(rtnetlink::decode_address_message(bare));
  // nlmsg_len larger than the bytes there are, and smaller than a header.
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 0, {0x51, 0x00, 0x00, 0x00})));
  EXPECT_FALSE(rtnetlink::decode_address_message(with(ipv4_new(), 0, {0x0f, 0x00, 0x00, 0x00})));
  // An IPv4-mapped IPv6 address cannot be carried with an IPv6 prefix length.
  EXPECT_FALSE(rtnetlink::decode_address_message(
      with(ipv6_new(), 24, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1})));
}

TEST(address_watcher_decode_address, every_truncation_is_safe) {
  // Each prefix of the message, with nlmsg_len made to agree (the worst case: the header is
  // consistent and only the attributes are cut). Under ASan this also proves no read past the end.
  for (std::size_t n = 0; n < ipv4_new().size(); ++n) {
    auto cut = ipv4_new();
    cut.resize(n);
    if (n >= 4) {
      cut = with(cut, 0, {static_cast<int>(n), 0, 0, 0});
    }
    const auto m = rtnetlink::decode_address_message(cut);
    if (m) {
      // Only a cut at an attribute boundary after IFA_ADDRESS decodes, to the same address.
      EXPECT_EQ(m->address, addr("192.0.2.1")) << n;
      EXPECT_TRUE(n == 32 || n == 40 || n == 49 || n == 52 || n == 60) << n;
    }
  }
}

// ---- Links -------------------------------------------------------------------------------------

TEST(address_watcher_decode_link, new_and_deleted_links) {
  const auto created = rtnetlink::decode_link_message(link_new());
  ASSERT_TRUE(created);
  EXPECT_FALSE(created->removed);
  EXPECT_EQ(created->interface_index, 3U);
  EXPECT_EQ(created->name, std::optional<std::string>{"lan0"});
  const auto deleted = rtnetlink::decode_link_message(with(link_new(), link_type_offset, {RTM_DELLINK, 0}));
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(deleted->removed);
  EXPECT_EQ(deleted->interface_index, 3U);
}

TEST(address_watcher_decode_link, bridge_port_messages_are_not_about_the_link) {
  // AF_BRIDGE (7) RTM_DELLINK: a port left a bridge; the link itself stays.
  EXPECT_FALSE(rtnetlink::decode_link_message(
      with(with(link_new(), link_type_offset, {RTM_DELLINK, 0}), link_family_offset, {7})));
}

TEST(address_watcher_decode_link, drops_bad_messages) {
  // Name of 16 characters (IFNAMSIZ is 16 with the NUL): rta_len 21, no room for a NUL.
  bytes long_name = link_new();
  long_name.resize(32);
  long_name = with(long_name, 0, {32 + 20, 0, 0, 0});
  for (const int v : {20, 0, 3, 0}) {  // rta_len 20, IFLA_IFNAME
    long_name.push_back(static_cast<std::byte>(v));
  }
  for (int i = 0; i < 16; ++i) {
    long_name.push_back(static_cast<std::byte>('a'));
  }
  EXPECT_FALSE(rtnetlink::decode_link_message(long_name));
  // Empty name.
  EXPECT_FALSE(rtnetlink::decode_link_message(with(link_new(), 36, {0})));
  // Index 0 and negative.
  EXPECT_FALSE(rtnetlink::decode_link_message(with(link_new(), 20, {0, 0, 0, 0})));
  EXPECT_FALSE(rtnetlink::decode_link_message(with(link_new(), 20, {0xff, 0xff, 0xff, 0xff})));
  // Attribute past the end.
  EXPECT_FALSE(rtnetlink::decode_link_message(with(link_new(), 32, {0x20, 0})));
  // Shorter than an ifinfomsg.
  auto short_link = with(link_new(), 0, {28, 0, 0, 0});
  short_link.resize(28);
  EXPECT_FALSE(rtnetlink::decode_link_message(short_link));
  // A link message without a name is fine (the name is then unknown).
  auto nameless = with(link_new(), 0, {32, 0, 0, 0});
  nameless.resize(32);
  const auto m = rtnetlink::decode_link_message(nameless);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->name);
}

// ---- Framing -----------------------------------------------------------------------------------

TEST(address_watcher_split_datagram, cuts_messages_at_their_aligned_lengths) {
  bytes datagram = link_new();  // 44 bytes
  const auto v4 = ipv4_new();
  datagram.insert(datagram.end(), v4.begin(), v4.end());
  const bytes done = b({
      0x14, 0x00, 0x00, 0x00,  // nlmsg_len 20
      0x03, 0x00,              // NLMSG_DONE
      0x02, 0x00,              // NLM_F_MULTI
      0x01, 0x00, 0x00, 0x00,  // seq 1
      0x38, 0x01, 0x00, 0x00,  // pid 312
      0x00, 0x00, 0x00, 0x00,  // status 0
  });
  datagram.insert(datagram.end(), done.begin(), done.end());
  const auto split = rtnetlink::split_datagram(datagram);
  EXPECT_FALSE(split.malformed);
  ASSERT_EQ(split.messages.size(), 3U);
  EXPECT_EQ(split.messages[0].size(), 44U);
  EXPECT_EQ(split.messages[1].size(), 80U);
  EXPECT_EQ(split.messages[2].size(), 20U);
  EXPECT_TRUE(rtnetlink::decode_link_message(split.messages[0]));
  EXPECT_TRUE(rtnetlink::decode_address_message(split.messages[1]));
  const auto header = rtnetlink::decode_header(split.messages[2]);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->type, NLMSG_DONE);
  EXPECT_EQ(header->sequence, 1U);
  EXPECT_EQ(header->port_id, 312U);
  EXPECT_EQ(rtnetlink::decode_status(split.messages[2]), std::optional<int>{0});
}

TEST(address_watcher_split_datagram, stops_at_a_bad_length) {
  bytes datagram = link_new();
  const auto v4 = ipv4_new();
  datagram.insert(datagram.end(), v4.begin(), v4.end());
  datagram = with(datagram, 44, {0xff, 0x00, 0x00, 0x00});  // the second claims 255 bytes
  auto split = rtnetlink::split_datagram(datagram);
  EXPECT_TRUE(split.malformed);
  EXPECT_EQ(split.messages.size(), 1U);
  // A tail shorter than a header.
  datagram = link_new();
  datagram.resize(datagram.size() + 8);
  split = rtnetlink::split_datagram(datagram);
  EXPECT_TRUE(split.malformed);
  EXPECT_EQ(split.messages.size(), 1U);
  // nlmsg_len 0 (would loop forever if taken at its word).
  split = rtnetlink::split_datagram(with(link_new(), 0, {0, 0, 0, 0}));
  EXPECT_TRUE(split.malformed);
  EXPECT_TRUE(split.messages.empty());
  EXPECT_FALSE(rtnetlink::split_datagram({}).malformed);
}

TEST(address_watcher_decode_status, error_codes) {
  const bytes busy = b({
      0x24, 0x00, 0x00, 0x00,  // nlmsg_len 36
      0x02, 0x00,              // NLMSG_ERROR
      0x00, 0x00,              // flags
      0x05, 0x00, 0x00, 0x00,  // seq 5
      0x38, 0x01, 0x00, 0x00,  // pid 312
      0xf0, 0xff, 0xff, 0xff,  // error -16 (-EBUSY)
      0x18, 0x00, 0x00, 0x00,  // the request's header: nlmsg_len 24
      0x16, 0x00, 0x01, 0x03,  //   RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP
      0x05, 0x00, 0x00, 0x00,  //   seq 5
      0x00, 0x00, 0x00, 0x00,  //   pid 0
  });
  EXPECT_EQ(rtnetlink::decode_status(busy), std::optional<int>{-EBUSY});
  auto truncated = with(busy, 0, {18, 0, 0, 0});
  truncated.resize(18);
  EXPECT_FALSE(rtnetlink::decode_status(truncated));   // an error without its code
  EXPECT_FALSE(rtnetlink::decode_status(ipv4_new()));  // not a status at all
}

TEST(address_watcher_encode_request, link_and_address_dumps) {
  EXPECT_EQ(rtnetlink::encode_dump_request(rtnetlink::dump_kind::addresses, 7),
            b({
                0x18, 0x00, 0x00, 0x00,  // nlmsg_len 24
                0x16, 0x00,              // RTM_GETADDR (22)
                0x01, 0x03,              // NLM_F_REQUEST | NLM_F_DUMP (0x301)
                0x07, 0x00, 0x00, 0x00,  // seq 7
                0x00, 0x00, 0x00, 0x00,  // pid 0
                0x00, 0x00, 0x00, 0x00,  // ifaddrmsg: AF_UNSPEC, every field 0
                0x00, 0x00, 0x00, 0x00,  //
            }));
  const auto links = rtnetlink::encode_dump_request(rtnetlink::dump_kind::links, 8);
  ASSERT_EQ(links.size(), 32U);  // header + ifinfomsg
  const auto header = rtnetlink::decode_header(links);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->type, RTM_GETLINK);
  EXPECT_EQ(header->flags, NLM_F_REQUEST | NLM_F_DUMP);
  EXPECT_EQ(header->sequence, 8U);
}

// ---- The table and its view --------------------------------------------------------------------

rtnetlink::link_message link(unsigned index, std::string name) {
  return {false, index, std::move(name)};
}

rtnetlink::address_message address(unsigned index, std::string_view text, unsigned prefix, std::uint32_t flags = 0x80,
                                   bool removed = false) {
  rtnetlink::address_message m;
  m.removed = removed;
  m.interface_index = index;
  m.address = addr(text);
  m.prefix_length = prefix;
  m.flags = flags;
  return m;
}

interface_address entry(std::string name, unsigned index, std::string_view text, unsigned prefix) {
  return {std::move(name), index, addr(text), prefix, address_scope::global};
}

TEST(address_watcher_table, view_holds_watched_usable_addresses_only) {
  address_table table;
  table.apply(link(3, "lan0"));
  table.apply(link(4, "wan0"));
  table.apply(address(3, "192.0.2.1", 24));
  table.apply(address(3, "2001:db8:1::1", 64));
  table.apply(address(3, "2001:db8:1::9", 64, 0x40));  // tentative
  table.apply(address(4, "198.51.100.1", 24));         // not watched
  table.apply(address(9, "203.0.113.1", 24));          // link not known
  const std::vector<std::string> watched{"lan0", "late0"};
  EXPECT_EQ(table.view(watched),
            (std::vector<interface_address>{entry("lan0", 3, "192.0.2.1", 24), entry("lan0", 3, "2001:db8:1::1", 64)}));
  // DAD done: the same address without IFA_F_TENTATIVE.
  table.apply(address(3, "2001:db8:1::9", 64));
  EXPECT_EQ(table.view(watched).size(), 3U);
  // The unknown link turns out to be a watched one.
  table.apply(link(9, "late0"));
  EXPECT_EQ(table.view(watched).size(), 4U);
  // Removal is by (index, address, prefix); another prefix is another address.
  table.apply(address(3, "192.0.2.1", 25, 0x80, true));
  EXPECT_EQ(table.view(watched).size(), 4U);
  table.apply(address(3, "192.0.2.1", 24, 0x80, true));
  EXPECT_EQ(table.view(watched).size(), 3U);
}

TEST(address_watcher_table, renamed_and_deleted_links) {
  address_table table;
  table.apply(link(5, "tmp0"));
  table.apply(address(5, "192.0.2.60", 24));
  const std::vector<std::string> watched{"lan0"};
  EXPECT_TRUE(table.view(watched).empty());
  table.apply(link(5, "lan0"));  // renamed into the watched name
  EXPECT_EQ(table.view(watched), (std::vector<interface_address>{entry("lan0", 5, "192.0.2.60", 24)}));
  table.apply(rtnetlink::link_message{true, 5, std::nullopt});  // deleted: its addresses go too
  EXPECT_TRUE(table.view(watched).empty());
  EXPECT_EQ(table.address_count(), 0U);
  EXPECT_EQ(table.link_count(), 0U);
  // A new link reusing the name does not inherit anything.
  table.apply(link(6, "lan0"));
  EXPECT_TRUE(table.view(watched).empty());
}

TEST(address_watcher_diff, removals_first_then_additions) {
  const std::vector<interface_address> before{entry("lan0", 3, "192.0.2.1", 24), entry("lan0", 3, "192.0.2.2", 24)};
  const std::vector<interface_address> after{entry("lan0", 3, "192.0.2.2", 24), entry("lan1", 3, "192.0.2.1", 24)};
  const auto changes = diff(before, after);
  ASSERT_EQ(changes.size(), 2U);
  EXPECT_EQ(changes[0], (address_change{address_change::kind::removed, entry("lan0", 3, "192.0.2.1", 24)}));
  EXPECT_EQ(changes[1], (address_change{address_change::kind::added, entry("lan1", 3, "192.0.2.1", 24)}));
  EXPECT_TRUE(diff(after, after).empty());
}

}  // namespace
}  // namespace gate46
