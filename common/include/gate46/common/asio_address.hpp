// Conversions between gate46's address values and Asio's, for the I/O shells. IPv4 endpoints
// become IPv4 Asio endpoints (not v4-mapped IPv6): sockets are opened in the address's family.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include "gate46/common/address.hpp"

namespace gate46 {

inline boost::asio::ip::address to_asio(const ip_address& a) {
  if (a.is_v4()) {
    return boost::asio::ip::address_v4{a.v4_bytes()};
  }
  return boost::asio::ip::address_v6{a.v6_bytes()};
}

// v4-mapped IPv6 addresses (a dual-stack socket's IPv4 peers) become the IPv4 address.
inline ip_address from_asio(const boost::asio::ip::address& a) {
  if (a.is_v4()) {
    return ip_address::from_v4(a.to_v4().to_bytes());
  }
  return ip_address::from_v6(a.to_v6().to_bytes());
}

template <typename Protocol>
typename Protocol::endpoint to_asio_endpoint(const endpoint& e) {
  return {to_asio(e.address), e.port};
}

template <typename AsioEndpoint>
endpoint from_asio_endpoint(const AsioEndpoint& e) {
  return {from_asio(e.address()), e.port()};
}

}  // namespace gate46
