// Transparent sockets for TPROXY: one dual-stack listener per protocol that receives the
// captured flows of both families, the original destination of each flow, and UDP sockets that
// send replies from that original (fake) destination.
//
// Kernel facts these helpers rely on (Linux, checked on 6.x):
// - One AF_INET6 socket with IPV6_V6ONLY=0 and IPV6_TRANSPARENT receives TPROXY'd IPv4 and IPv6
//   flows. IPV6_TRANSPARENT and IP_TRANSPARENT set the same per-socket flag, so the IPv4 side
//   needs nothing more. Setting it needs CAP_NET_ADMIN (or CAP_NET_RAW).
// - TCP: the accepted socket's local address (getsockname) is the original destination; IPv4
//   flows show it v4-mapped (::ffff:198.18.x.y).
// - UDP: the original destination comes as ancillary data, and only when asked for in the
//   datagram's own family: IPv6 datagrams carry SOL_IPV6/IPV6_ORIGDSTADDR (a sockaddr_in6) when
//   IPV6_RECVORIGDSTADDR is set; IPv4 datagrams on the same dual-stack socket carry
//   SOL_IP/IP_ORIGDSTADDR (a plain sockaddr_in) only when IP_RECVORIGDSTADDR is set too, and
//   nothing at all otherwise. open_transparent_udp sets both.
//
// Thread-safety: the functions hold no state; a socket is used as Asio allows (one thread or
// strand at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/system/error_code.hpp>

#include "gate46/common/address.hpp"

namespace gate46::tproxy {

// A listening TCP acceptor on [::]:port (port 0: the kernel picks one; read local_endpoint()):
// AF_INET6, IPV6_V6ONLY=0, IPV6_TRANSPARENT, SO_REUSEADDR. Accepts TPROXY'd connections of
// both families; original_destination() of each accepted socket says where the client aimed.
// Throws boost::system::system_error naming the step that failed; EPERM says CAP_NET_ADMIN is
// needed. With reuse_port (SO_REUSEPORT), several such listeners share the port and the kernel
// spreads new connections over them (TPROXY's listener lookup honours reuseport groups), one
// listener per worker thread.
boost::asio::ip::tcp::acceptor open_transparent_tcp(const boost::asio::any_io_executor& executor, std::uint16_t port,
                                                    bool reuse_port = false);

// A UDP socket on [::]:port, set up like open_transparent_tcp plus IPV6_RECVORIGDSTADDR and
// IP_RECVORIGDSTADDR, so every datagram of either family carries its original destination.
// Read it with recv_with_original_destination (a plain receive_from loses that destination).
// With reuse_port (SO_REUSEPORT), several such sockets share the port, one per worker thread:
// the kernel hashes each datagram's 4-tuple to one of them (TPROXY's socket lookup honours
// reuseport groups), so the datagrams of one flow keep reaching the same socket.
boost::asio::ip::udp::socket open_transparent_udp(const boost::asio::any_io_executor& executor, std::uint16_t port,
                                                  bool reuse_port = false);

// A UDP socket bound to a non-local address:port (the original destination of a captured
// datagram), in that address's family, with IP(V6)_TRANSPARENT and SO_REUSEADDR: replies sent
// on it reach the client from the address it wrote to. Several such sockets may share one
// address:port. Left unconnected it receives nothing of the captured flow (TPROXY delivers to
// the listener); if connected to the client, TPROXY's established-socket lookup delivers that
// client's later datagrams to it instead of to the listener. Throws like open_transparent_tcp.
boost::asio::ip::udp::socket open_transparent_udp_from(const boost::asio::any_io_executor& executor,
                                                       const endpoint& local);

// Where an accepted TCP connection was going: the socket's local address (getsockname), IPv4
// in gate46's v4 form. On a TPROXY'd connection that is the original destination. Throws
// boost::system::system_error if the socket has no local address (closed).
endpoint original_destination(const boost::asio::ip::tcp::socket& socket);

// Decodes the original destination from a recvmsg control buffer (msg_control, msg_controllen
// bytes): the one SOL_IP/IP_ORIGDSTADDR (sockaddr_in) or SOL_IPV6/IPV6_ORIGDSTADDR
// (sockaddr_in6, v4-mapped becomes IPv4) among the control messages; others are skipped.
// Walks the buffer as CMSG_FIRSTHDR/CMSG_NXTHDR do (cmsghdr headers, CMSG_ALIGN steps), but
// checks every length against the span and never reads outside it. nullopt when there is no
// such message, when a header or payload is truncated or malformed, when the payload's
// address family does not match its form, or when two such messages disagree. Pure.
std::optional<endpoint> original_destination_from_cmsgs(std::span<const std::byte> control);

struct received_datagram {
  std::size_t size = 0;  // bytes written to the buffer
  endpoint source;       // the client, IPv4 in gate46's v4 form
  // Where the client sent it; nullopt if the kernel attached none (the socket lacks the
  // RECVORIGDSTADDR options, or the control buffer was truncated).
  std::optional<endpoint> original_destination;
  bool truncated = false;  // MSG_TRUNC: the datagram was longer than the buffer; the rest is lost
};

// Receives one datagram with recvmsg(MSG_DONTWAIT), whatever the socket's blocking mode: never
// blocks. When the socket is empty, ec is boost::asio::error::would_block (try_again); wait for
// readiness and call again:
//
//   for (;;) {
//     boost::system::error_code ec;
//     const auto d = recv_with_original_destination(socket, boost::asio::buffer(buf), ec);
//     if (ec == boost::asio::error::would_block) {
//       co_await socket.async_wait(udp::socket::wait_read, use_tuple);  // then check its ec
//       continue;
//     }
//     if (ec) { ...log, decide... }
//     ...use d.source, d.original_destination, buf[0, d.size)...
//   }
//
// Other errors (an ICMP error queued on the socket, a closed socket) come back in ec too.
received_datagram recv_with_original_destination(boost::asio::ip::udp::socket& socket,
                                                 const boost::asio::mutable_buffer& buffer,
                                                 boost::system::error_code& ec);

}  // namespace gate46::tproxy
