// The transparent-socket helpers: the pure original-destination decoder over hand-built control
// buffers (x86-64 little-endian cmsghdr: 8-byte cmsg_len, 4-byte level, 4-byte type), then the
// real sockets on loopback in both families (no nft rules: without TPROXY the original
// destination is simply the address connected to). Opening a transparent socket needs
// CAP_NET_ADMIN, so those tests skip unless root.
#include "gate46/tproxy/transparent.hpp"

#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/testing/privileges.hpp"

namespace gate46::tproxy {
namespace {

static_assert(std::endian::native == std::endian::little, "the literals below are little-endian");
static_assert(sizeof(cmsghdr) == 16, "the literals below are x86-64 / LP64 cmsghdr");

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using bytes = std::vector<std::byte>;

bytes b(std::initializer_list<int> values) {
  bytes out;
  for (const int v : values) {
    out.push_back(static_cast<std::byte>(v));
  }
  return out;
}

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

ip_address addr(std::string_view text) {
  const auto parsed = ip_address::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(ip_address{});
}

// SOL_IP/IP_ORIGDSTADDR carrying 198.18.0.7:443, as an IPv4 datagram brings it.
bytes v4_origdst() {
  return b({
      0x20, 0,    0, 0, 0, 0, 0, 0,  // cmsg_len 32 (CMSG_LEN(sizeof(sockaddr_in)))
      0x00, 0,    0, 0,              // cmsg_level SOL_IP (0)
      0x14, 0,    0, 0,              // cmsg_type IP_ORIGDSTADDR (20)
      0x02, 0x00,                    // sin_family AF_INET
      0x01, 0xbb,                    // sin_port 443
      198,  18,   0, 7,              // sin_addr
      0,    0,    0, 0, 0, 0, 0, 0,  // sin_zero
  });
}

// SOL_IPV6/IPV6_ORIGDSTADDR carrying [2001:db8::7]:53, padded to CMSG_SPACE.
bytes v6_origdst(std::initializer_list<int> address = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}) {
  return cat({
      b({
          0x2c, 0,    0, 0, 0, 0, 0, 0,  // cmsg_len 44 (CMSG_LEN(sizeof(sockaddr_in6)))
          0x29, 0,    0, 0,              // cmsg_level SOL_IPV6 (41)
          0x4a, 0,    0, 0,              // cmsg_type IPV6_ORIGDSTADDR (74)
          0x0a, 0x00,                    // sin6_family AF_INET6
          0x00, 0x35,                    // sin6_port 53
          0,    0,    0, 0,              // sin6_flowinfo
      }),
      b(address),       // sin6_addr
      b({0, 0, 0, 0}),  // sin6_scope_id
      b({0, 0, 0, 0}),  // padding to CMSG_SPACE (48)
  });
}

// SOL_IP/IP_TOS with a one-byte payload: cmsg_len 17, so the next header is 24 bytes on.
bytes ip_tos() {
  return b({
      0x11, 0, 0, 0, 0, 0, 0, 0,  // cmsg_len 17
      0x00, 0, 0, 0,              // cmsg_level SOL_IP
      0x01, 0, 0, 0,              // cmsg_type IP_TOS (1)
      0x10,                       // tos
      0,    0, 0, 0, 0, 0, 0,     // padding to CMSG_ALIGN(17) = 24
  });
}

std::optional<endpoint> decode(const bytes& control) {
  return original_destination_from_cmsgs(control);
}

TEST(OriginalDestinationFromCmsgs, Ipv4FormIsAPlainSockaddrIn) {
  const auto decoded = decode(v4_origdst());
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, (endpoint{addr("198.18.0.7"), 443}));
  EXPECT_TRUE(decoded->address.is_v4());
}

TEST(OriginalDestinationFromCmsgs, Ipv6Form) {
  const auto decoded = decode(v6_origdst());
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, (endpoint{addr("2001:db8::7"), 53}));
  EXPECT_TRUE(decoded->address.is_v6());
}

TEST(OriginalDestinationFromCmsgs, Ipv6FormWithV4MappedAddressBecomesIpv4) {
  const auto decoded = decode(v6_origdst({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 9}));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, (endpoint{ip_address::from_v4({198, 18, 0, 9}), 53}));
  EXPECT_TRUE(decoded->address.is_v4());
}

TEST(OriginalDestinationFromCmsgs, Ipv6FormWithoutTrailingPaddingIsAccepted) {
  auto control = v6_origdst();
  control.resize(44);  // ends exactly at cmsg_len
  EXPECT_EQ(decode(control), (endpoint{addr("2001:db8::7"), 53}));
}

TEST(OriginalDestinationFromCmsgs, RightMessageSecondAfterAnUnalignedOne) {
  EXPECT_EQ(decode(cat({ip_tos(), v4_origdst()})), (endpoint{addr("198.18.0.7"), 443}));
  EXPECT_EQ(decode(cat({ip_tos(), v6_origdst()})), (endpoint{addr("2001:db8::7"), 53}));
}

TEST(OriginalDestinationFromCmsgs, RightMessageFirstThenOthers) {
  EXPECT_EQ(decode(cat({v4_origdst(), ip_tos()})), (endpoint{addr("198.18.0.7"), 443}));
}

TEST(OriginalDestinationFromCmsgs, EmptyBufferHasNone) {
  EXPECT_EQ(decode({}), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, OnlyOtherMessagesHaveNone) {
  EXPECT_EQ(decode(ip_tos()), std::nullopt);
  EXPECT_EQ(decode(cat({ip_tos(), ip_tos()})), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, TrailingBytesShorterThanAHeaderAreIgnored) {
  const auto control = cat({v4_origdst(), b({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})});
  EXPECT_EQ(decode(control), (endpoint{addr("198.18.0.7"), 443}));
  EXPECT_EQ(decode(b({0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), std::nullopt);  // 12 bytes only
}

TEST(OriginalDestinationFromCmsgs, TruncatedMessageIsRejected) {
  auto control = v4_origdst();
  control.resize(28);  // cmsg_len 32 says more than the buffer holds (MSG_CTRUNC)
  EXPECT_EQ(decode(control), std::nullopt);
  auto later = cat({ip_tos(), v6_origdst()});
  later.resize(later.size() - 8);  // cmsg_len 44 reaches past the end
  EXPECT_EQ(decode(later), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, PayloadShorterThanItsSockaddrIsRejected) {
  auto control = v4_origdst();
  control[0] = std::byte{0x18};  // cmsg_len 24: 8 bytes of sockaddr_in, which needs 16
  EXPECT_EQ(decode(control), std::nullopt);
  auto v6 = v6_origdst();
  v6[0] = std::byte{0x20};  // cmsg_len 32: 16 bytes of sockaddr_in6, which needs 28
  EXPECT_EQ(decode(v6), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, LengthShorterThanTheHeaderIsRejected) {
  for (const int length : {0, 1, 15}) {
    auto control = cat({v4_origdst(), v4_origdst()});
    control[32] = static_cast<std::byte>(length);  // the second header's cmsg_len
    EXPECT_EQ(decode(control), std::nullopt) << length;
  }
}

TEST(OriginalDestinationFromCmsgs, HugeLengthIsRejected) {
  auto control = v4_origdst();
  std::fill(control.begin(), control.begin() + 8, std::byte{0xff});  // cmsg_len SIZE_MAX
  EXPECT_EQ(decode(control), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, WrongLevelOrTypeIsNotAnOriginalDestination) {
  auto level_v6 = v4_origdst();
  level_v6[8] = std::byte{0x29};  // SOL_IPV6 with IP_ORIGDSTADDR's number
  EXPECT_EQ(decode(level_v6), std::nullopt);
  auto type_v6 = v4_origdst();
  type_v6[12] = std::byte{0x4a};  // SOL_IP with IPV6_ORIGDSTADDR's number
  EXPECT_EQ(decode(type_v6), std::nullopt);
  auto other_type = v6_origdst();
  other_type[12] = std::byte{0x32};  // SOL_IPV6/IPV6_PKTINFO (50)
  EXPECT_EQ(decode(other_type), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, AddressFamilyMustMatchTheForm) {
  auto v4 = v4_origdst();
  v4[16] = std::byte{0x0a};  // sin_family AF_INET6 in the IPv4 form
  EXPECT_EQ(decode(v4), std::nullopt);
  auto v6 = v6_origdst();
  v6[16] = std::byte{0x02};  // sin6_family AF_INET in the IPv6 form
  EXPECT_EQ(decode(v6), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, TwoAgreeingMessagesAreOneAnswerTwoDisagreeingAreNone) {
  EXPECT_EQ(decode(cat({v4_origdst(), v4_origdst()})), (endpoint{addr("198.18.0.7"), 443}));
  EXPECT_EQ(decode(cat({v4_origdst(), v6_origdst()})), std::nullopt);
}

TEST(OriginalDestinationFromCmsgs, AgreesWithBuffersBuiltByTheLibcMacros) {
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(1) + CMSG_SPACE(sizeof(sockaddr_in6))> buffer{};
  msghdr message{};
  message.msg_control = buffer.data();
  message.msg_controllen = buffer.size();
  cmsghdr* first = CMSG_FIRSTHDR(&message);
  ASSERT_NE(first, nullptr);
  first->cmsg_len = CMSG_LEN(1);
  first->cmsg_level = SOL_IPV6;
  first->cmsg_type = IPV6_HOPLIMIT;
  cmsghdr* second = CMSG_NXTHDR(&message, first);
  ASSERT_NE(second, nullptr);
  second->cmsg_len = CMSG_LEN(sizeof(sockaddr_in6));
  second->cmsg_level = SOL_IPV6;
  second->cmsg_type = IPV6_ORIGDSTADDR;
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(8443);
  const auto expected = addr("2001:2::1234");
  std::memcpy(&sin6.sin6_addr, expected.v6_bytes().data(), 16);
  std::memcpy(CMSG_DATA(second), &sin6, sizeof sin6);
  EXPECT_EQ(original_destination_from_cmsgs(buffer), (endpoint{expected, 8443}));
}

// --- real sockets on loopback, both families -------------------------------------------------

// In a child process: drops every capability (root included), tries to open a listener and
// exits 0 if that failed with EPERM and a message naming the option and CAP_NET_ADMIN.
[[noreturn]] void open_without_capabilities() {
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  std::array<__user_cap_data_struct, 2> data{};
  if (::syscall(SYS_capset, &header, data.data()) != 0) {
    std::_Exit(2);
  }
  asio::io_context context;
  try {
    (void)open_transparent_tcp(context.get_executor(), 0);
  } catch (const boost::system::system_error& e) {
    const std::string what = e.what();
    const bool clear = e.code() == boost::system::errc::operation_not_permitted &&
                       what.find("CAP_NET_ADMIN") != std::string::npos &&
                       what.find("IPV6_TRANSPARENT") != std::string::npos;
    std::_Exit(clear ? 0 : 3);
  }
  std::_Exit(4);
}

TEST(TransparentSockets, WithoutCapNetAdminTheErrorSaysSo) {
  GATE46_SKIP_UNLESS_ROOT();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(open_without_capabilities(), ::testing::ExitedWithCode(0), "");
}

class TransparentLoopback : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { GATE46_SKIP_UNLESS_ROOT(); }

  [[nodiscard]] ip_address loopback() const { return addr(GetParam()); }

  asio::io_context context_;
};

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &length), 0) << level << "/" << name;
  return value;
}

// Waits (at most 5 s) until the socket has something to read.
bool readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 5000) == 1 && (p.revents & POLLIN) != 0;
}

TEST(TransparentSockets, ListenersAreDualStackAndTransparentForBothFamilies) {
  GATE46_SKIP_UNLESS_ROOT();
  asio::io_context context;
  auto acceptor = open_transparent_tcp(context.get_executor(), 0);
  auto socket = open_transparent_udp(context.get_executor(), 0);
  EXPECT_TRUE(acceptor.local_endpoint().address().is_v6());
  EXPECT_TRUE(acceptor.local_endpoint().address().is_unspecified());
  EXPECT_NE(acceptor.local_endpoint().port(), 0);
  for (const int fd : {acceptor.native_handle(), socket.native_handle()}) {
    EXPECT_EQ(int_option(fd, SOL_IPV6, IPV6_V6ONLY), 0);
    EXPECT_EQ(int_option(fd, SOL_IPV6, IPV6_TRANSPARENT), 1);
    EXPECT_EQ(int_option(fd, SOL_IP, IP_TRANSPARENT), 1);  // the same flag, so IPv4 is covered
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEADDR), 1);
  }
  EXPECT_EQ(int_option(socket.native_handle(), SOL_IPV6, IPV6_RECVORIGDSTADDR), 1);
  EXPECT_EQ(int_option(socket.native_handle(), SOL_IP, IP_RECVORIGDSTADDR), 1);
}

TEST(TransparentSockets, BindingATakenPortFailsWithTheStepAndPortInTheMessage) {
  GATE46_SKIP_UNLESS_ROOT();
  asio::io_context context;
  tcp::acceptor taken{context, tcp::endpoint{tcp::v6(), 0}};  // no SO_REUSEADDR: the port stays taken
  const auto port = taken.local_endpoint().port();
  try {
    (void)open_transparent_tcp(context.get_executor(), port);
    FAIL() << "bound a taken port";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), boost::system::errc::address_in_use);
    EXPECT_NE(std::string{e.what()}.find("bind"), std::string::npos) << e.what();
    EXPECT_NE(std::string{e.what()}.find(std::to_string(port)), std::string::npos) << e.what();
  }
}

TEST(TransparentSockets, EmptyUdpSocketSaysWouldBlock) {
  GATE46_SKIP_UNLESS_ROOT();
  asio::io_context context;
  auto socket = open_transparent_udp(context.get_executor(), 0);
  std::array<std::byte, 16> buffer{};
  boost::system::error_code ec;
  (void)recv_with_original_destination(socket, asio::buffer(buffer), ec);
  EXPECT_EQ(ec, asio::error::would_block);
}

TEST_P(TransparentLoopback, TcpOriginalDestinationIsTheAddressConnectedTo) {
  auto acceptor = open_transparent_tcp(context_.get_executor(), 0);
  const endpoint target{loopback(), acceptor.local_endpoint().port()};
  tcp::socket client{context_};
  client.connect(to_asio_endpoint<tcp>(target));  // loopback: the handshake completes here
  tcp::socket accepted{context_};
  acceptor.accept(accepted);

  const auto destination = original_destination(accepted);
  EXPECT_EQ(destination, target);
  EXPECT_EQ(destination.address.family(), loopback().family());
  EXPECT_EQ(from_asio_endpoint(accepted.remote_endpoint()), from_asio_endpoint(client.local_endpoint()));
}

TEST_P(TransparentLoopback, UdpDatagramCarriesItsOriginalDestination) {
  auto socket = open_transparent_udp(context_.get_executor(), 0);
  const endpoint target{loopback(), socket.local_endpoint().port()};
  const auto to = to_asio_endpoint<udp>(target);
  udp::socket client{context_, udp::endpoint{to_asio(loopback()), 0}};
  const std::string payload = "where to?";
  client.send_to(asio::buffer(payload), to);

  ASSERT_TRUE(readable(socket.native_handle()));
  std::array<char, 64> buffer{};
  boost::system::error_code ec;
  const auto d = recv_with_original_destination(socket, asio::buffer(buffer), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(std::string(buffer.data(), d.size), payload);
  EXPECT_FALSE(d.truncated);
  EXPECT_EQ(d.source, from_asio_endpoint(client.local_endpoint()));
  EXPECT_EQ(d.source.address.family(), loopback().family());
  ASSERT_TRUE(d.original_destination) << "no original destination for " << GetParam();
  EXPECT_EQ(*d.original_destination, target);
  EXPECT_EQ(d.original_destination->address.family(), loopback().family());
}

TEST_P(TransparentLoopback, LongDatagramIsReportedTruncated) {
  auto socket = open_transparent_udp(context_.get_executor(), 0);
  const auto to = to_asio_endpoint<udp>(endpoint{loopback(), socket.local_endpoint().port()});
  udp::socket client{context_, udp::endpoint{to_asio(loopback()), 0}};
  const std::string payload(100, 'x');
  client.send_to(asio::buffer(payload), to);

  ASSERT_TRUE(readable(socket.native_handle()));
  std::array<char, 10> buffer{};
  boost::system::error_code ec;
  const auto d = recv_with_original_destination(socket, asio::buffer(buffer), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(d.size, buffer.size());
  EXPECT_TRUE(d.truncated);
  EXPECT_TRUE(d.original_destination);
}

// A reply socket bound to an address this host does not have (a fake address) sends from it.
TEST_P(TransparentLoopback, ReplySocketSendsFromANonLocalAddress) {
  const auto fake = loopback().is_v4() ? addr("198.18.0.7") : addr("2001:db8::7");
  auto first = open_transparent_udp_from(context_.get_executor(), endpoint{fake, 0});
  const endpoint from{fake, first.local_endpoint().port()};
  EXPECT_EQ(from_asio_endpoint(first.local_endpoint()).address, fake);
  // A second reply socket for another client of the same fake address:port.
  auto second = open_transparent_udp_from(context_.get_executor(), from);

  udp::socket client{context_, udp::endpoint{to_asio(loopback()), 0}};
  const std::string payload = "reply";
  second.send_to(asio::buffer(payload), client.local_endpoint());

  ASSERT_TRUE(readable(client.native_handle()));
  std::array<char, 64> buffer{};
  udp::endpoint sender;
  const auto size = client.receive_from(asio::buffer(buffer), sender);
  EXPECT_EQ(std::string(buffer.data(), size), payload);
  EXPECT_EQ(from_asio_endpoint(sender), from);
}

INSTANTIATE_TEST_SUITE_P(BothFamilies, TransparentLoopback, ::testing::Values("127.0.0.1", "::1"),
                         [](const ::testing::TestParamInfo<const char*>& param_info) {
                           return std::string{param_info.param} == "::1" ? "ipv6" : "ipv4";
                         });

}  // namespace
}  // namespace gate46::tproxy
