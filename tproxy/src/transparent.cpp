#include "gate46/tproxy/transparent.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/system/system_error.hpp>

#include "gate46/common/asio_address.hpp"

namespace gate46::tproxy {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

template <int Level, int Name>
using flag = asio::detail::socket_option::boolean<Level, Name>;

using ipv6_transparent = flag<SOL_IPV6, IPV6_TRANSPARENT>;
using reuse_port_option = flag<SOL_SOCKET, SO_REUSEPORT>;
using ipv4_transparent = flag<SOL_IP, IP_TRANSPARENT>;
using ipv6_recv_origdstaddr = flag<SOL_IPV6, IPV6_RECVORIGDSTADDR>;
using ipv4_recv_origdstaddr = flag<SOL_IP, IP_RECVORIGDSTADDR>;

[[noreturn]] void fail(const error_code& ec, const std::string& step, const std::string& where) {
  std::string what = step + " (" + where + ")";
  if (ec == boost::system::errc::operation_not_permitted || ec == boost::system::errc::permission_denied) {
    what += ": transparent sockets need CAP_NET_ADMIN";
  }
  throw boost::system::system_error(ec, what);
}

// Runs one setup step; on failure throws with the step's name and the socket's purpose.
template <typename Step>
void step(const std::string& name, const std::string& where, Step&& run) {
  error_code ec;
  run(ec);
  if (ec) {
    fail(ec, name, where);
  }
}

// Opens, configures and binds a dual-stack transparent socket (acceptor or datagram socket) on
// [::]:port.
template <typename Socket>
void open_dual_stack(Socket& socket, std::uint16_t port, const std::string& where, bool reuse_port = false) {
  using protocol = typename Socket::protocol_type;
  step("open AF_INET6 socket", where, [&](error_code& ec) { socket.open(protocol::v6(), ec); });
  step("IPV6_V6ONLY=0", where, [&](error_code& ec) { socket.set_option(asio::ip::v6_only{false}, ec); });
  step("SO_REUSEADDR", where, [&](error_code& ec) { socket.set_option(asio::socket_base::reuse_address{true}, ec); });
  if (reuse_port) {
    step("SO_REUSEPORT", where, [&](error_code& ec) { socket.set_option(reuse_port_option{true}, ec); });
  }
  // Also makes the IPv4 side transparent: IP_TRANSPARENT is the same per-socket flag.
  step("IPV6_TRANSPARENT", where, [&](error_code& ec) { socket.set_option(ipv6_transparent{true}, ec); });
  step("bind", where, [&](error_code& ec) {
    socket.bind(typename protocol::endpoint{asio::ip::address_v6::any(), port}, ec);
  });
}

// The fixed-size prefix of a cmsghdr and the step between headers, as CMSG_LEN(0) and
// CMSG_ALIGN define them for this ABI.
constexpr std::size_t cmsg_align(std::size_t length) {
  return (length + sizeof(std::size_t) - 1) & ~(sizeof(std::size_t) - 1);
}
constexpr std::size_t cmsg_header_size = cmsg_align(sizeof(cmsghdr));
static_assert(cmsg_header_size == CMSG_LEN(0));
static_assert(cmsg_align(1) == CMSG_ALIGN(1) && cmsg_align(sizeof(sockaddr_in6)) == CMSG_ALIGN(sizeof(sockaddr_in6)));

std::optional<endpoint> from_sockaddr_in(std::span<const std::byte> bytes) {
  sockaddr_in sin{};
  if (bytes.size() < sizeof sin) {
    return std::nullopt;
  }
  std::memcpy(&sin, bytes.data(), sizeof sin);
  if (sin.sin_family != AF_INET) {
    return std::nullopt;
  }
  std::array<std::uint8_t, 4> octets{};
  std::memcpy(octets.data(), &sin.sin_addr, octets.size());
  return endpoint{ip_address::from_v4(octets), ntohs(sin.sin_port)};
}

std::optional<endpoint> from_sockaddr_in6(std::span<const std::byte> bytes) {
  sockaddr_in6 sin6{};
  if (bytes.size() < sizeof sin6) {
    return std::nullopt;
  }
  std::memcpy(&sin6, bytes.data(), sizeof sin6);
  if (sin6.sin6_family != AF_INET6) {
    return std::nullopt;
  }
  ip_address::bytes_type address{};
  std::memcpy(address.data(), &sin6.sin6_addr, address.size());
  return endpoint{ip_address::from_v6(address), ntohs(sin6.sin6_port)};
}

}  // namespace

tcp::acceptor open_transparent_tcp(const asio::any_io_executor& executor, std::uint16_t port, bool reuse_port) {
  const std::string where = "transparent TCP listener on [::]:" + std::to_string(port);
  tcp::acceptor acceptor{executor};
  open_dual_stack(acceptor, port, where, reuse_port);
  step("listen", where, [&](error_code& ec) { acceptor.listen(asio::socket_base::max_listen_connections, ec); });
  return acceptor;
}

udp::socket open_transparent_udp(const asio::any_io_executor& executor, std::uint16_t port, bool reuse_port) {
  const std::string where = "transparent UDP listener on [::]:" + std::to_string(port);
  udp::socket socket{executor};
  open_dual_stack(socket, port, where, reuse_port);
  step("IPV6_RECVORIGDSTADDR", where, [&](error_code& ec) { socket.set_option(ipv6_recv_origdstaddr{true}, ec); });
  // Without it IPv4 datagrams on this dual-stack socket arrive with no original destination.
  step("IP_RECVORIGDSTADDR", where, [&](error_code& ec) { socket.set_option(ipv4_recv_origdstaddr{true}, ec); });
  return socket;
}

udp::socket open_transparent_udp_from(const asio::any_io_executor& executor, const endpoint& local) {
  const std::string where = "transparent UDP socket from " + local.to_string();
  const auto at = to_asio_endpoint<udp>(local);
  udp::socket socket{executor};
  step("open socket", where, [&](error_code& ec) { socket.open(at.protocol(), ec); });
  step("SO_REUSEADDR", where, [&](error_code& ec) { socket.set_option(asio::socket_base::reuse_address{true}, ec); });
  if (local.address.is_v4()) {
    step("IP_TRANSPARENT", where, [&](error_code& ec) { socket.set_option(ipv4_transparent{true}, ec); });
  } else {
    step("IPV6_TRANSPARENT", where, [&](error_code& ec) { socket.set_option(ipv6_transparent{true}, ec); });
  }
  step("bind", where, [&](error_code& ec) { socket.bind(at, ec); });
  return socket;
}

endpoint original_destination(const tcp::socket& socket) {
  return from_asio_endpoint(socket.local_endpoint());
}

std::optional<endpoint> original_destination_from_cmsgs(std::span<const std::byte> control) {
  std::optional<endpoint> found;
  std::size_t offset = 0;
  // As CMSG_NXTHDR: a header starts only where a whole cmsghdr fits; fewer bytes left over
  // are padding.
  while (control.size() - offset >= sizeof(cmsghdr)) {
    cmsghdr header{};
    std::memcpy(&header, control.data() + offset, sizeof header);
    if (header.cmsg_len < cmsg_header_size || header.cmsg_len > control.size() - offset) {
      return std::nullopt;  // shorter than its own header, or truncated (MSG_CTRUNC)
    }
    const auto payload = control.subspan(offset + cmsg_header_size, header.cmsg_len - cmsg_header_size);
    std::optional<endpoint> decoded;
    bool is_origdst = false;
    if (header.cmsg_level == SOL_IP && header.cmsg_type == IP_ORIGDSTADDR) {
      is_origdst = true;
      decoded = from_sockaddr_in(payload);
    } else if (header.cmsg_level == SOL_IPV6 && header.cmsg_type == IPV6_ORIGDSTADDR) {
      is_origdst = true;
      decoded = from_sockaddr_in6(payload);
    }
    if (is_origdst) {
      if (!decoded || (found && *found != *decoded)) {
        return std::nullopt;
      }
      found = decoded;
    }
    // header.cmsg_len <= control.size() - offset, so this cannot overflow; it may step past
    // the end, which ends the walk.
    const auto step_size = cmsg_align(header.cmsg_len);
    if (step_size >= control.size() - offset) {
      break;
    }
    offset += step_size;
  }
  return found;
}

received_datagram recv_with_original_destination(udp::socket& socket, const asio::mutable_buffer& buffer,
                                                 error_code& ec) {
  received_datagram out;
  sockaddr_storage source{};
  // Room for both origdst forms and a few other control messages the socket may have enabled.
  alignas(cmsghdr) std::array<std::byte, 256> control{};
  iovec iov{.iov_base = buffer.data(), .iov_len = buffer.size()};
  msghdr message{};
  message.msg_name = &source;
  message.msg_namelen = sizeof source;
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();

  ssize_t received = 0;
  do {
    received = ::recvmsg(socket.native_handle(), &message, MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    // EAGAIN is EWOULDBLOCK here: an empty socket compares equal to asio::error::would_block.
    ec = error_code{errno, asio::error::get_system_category()};
    return out;
  }
  ec.clear();
  out.size = static_cast<std::size_t>(received);
  out.truncated = (message.msg_flags & MSG_TRUNC) != 0;
  const std::span<const std::byte> name{reinterpret_cast<const std::byte*>(&source), message.msg_namelen};
  if (auto from = source.ss_family == AF_INET6 ? from_sockaddr_in6(name) : from_sockaddr_in(name)) {
    out.source = *from;
  }
  out.original_destination =
      original_destination_from_cmsgs(std::span<const std::byte>{control.data(), message.msg_controllen});
  return out;
}

}  // namespace gate46::tproxy
