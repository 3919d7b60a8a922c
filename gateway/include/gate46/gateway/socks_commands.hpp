// The pure parts of SOCKS5 UDP ASSOCIATE and BIND (RFC 1928 §4, §7): who may use an
// association's relay port, which target endpoints may answer through it and with which header,
// the association's cache of resolved destinations, and which address a BIND listens towards.
// No sockets, no clock calls: the server passes the time in.
//
// Thread-safety: none of these classes is synchronised; an association or a BIND session owns its
// own and touches them on its executor only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/gateway/socks5.hpp"

namespace gate46::gateway {

// The client of a UDP association. RFC 1928 §7: the relay "MUST drop any datagrams arriving from
// any source IP address other than the one recorded for the particular association". The IP is
// always the control connection's peer (a request naming another host does not let it hand the
// relay to a third party); the port is the request's, or — when the request gives port 0, an
// unspecified address or a name (python3-socks sends the name "0") — the source port of the first
// datagram from that IP.
class association_client {
 public:
  association_client(const ip_address& control_peer, const socks5::target& requested);

  // True for a datagram from the client. The first one from the peer's IP fixes a port the
  // request left open.
  bool admit(const endpoint& from);
  // Where replies go; nullopt until the client's port is known.
  [[nodiscard]] std::optional<endpoint> address() const;

 private:
  ip_address ip_;
  std::optional<std::uint16_t> port_;
};

// The target endpoints of an association that may answer, each with the UDP header its replies
// carry: the destination as the client wrote it (its name, its fake address, or the address),
// so that an IPv4 client can match a reply from an IPv6 target. A datagram from any other
// endpoint is not relayed: the association is not a way in for strangers. Bounded: past
// `capacity` endpoints the one used least recently is forgotten.
class reply_routes {
 public:
  explicit reply_routes(std::size_t capacity) : capacity_{capacity} {}

  // The client sent to `real` naming it `as_written`. False when the destination cannot be
  // written into a reply header (make_udp_header has no form for it).
  bool remember(const endpoint& real, const socks5::target& as_written);
  // The header for a reply from `real`; nullptr when the client never sent there.
  [[nodiscard]] const socks5::bytes* header_for(const endpoint& real) const;
  [[nodiscard]] std::size_t size() const noexcept { return headers_.size(); }

 private:
  struct entry {
    socks5::bytes header;
    std::list<endpoint>::iterator use;
  };
  std::size_t capacity_;
  std::map<endpoint, entry> headers_;
  std::list<endpoint> by_use_;  // most recent first
};

// Where a destination the client wrote goes: the real endpoint, and the fake address it named
// (whose mapping the association holds).
struct udp_route {
  endpoint real;
  std::optional<ip_address> fake;
};

// An association's resolved destinations, so that a stream of datagrams to one name costs one
// resolution per `lifetime`, not one per datagram. Keyed by the destination as written. Bounded:
// when full, the entry that expires first makes room.
class udp_route_cache {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  udp_route_cache(std::size_t capacity, std::chrono::steady_clock::duration lifetime)
      : capacity_{capacity}, lifetime_{lifetime} {}

  [[nodiscard]] std::optional<udp_route> find(const socks5::target& destination, time_point now) const;
  void store(const socks5::target& destination, const udp_route& route, time_point now);
  [[nodiscard]] std::size_t size() const noexcept { return routes_.size(); }

 private:
  struct entry {
    udp_route route;
    time_point expires;
  };
  std::size_t capacity_;
  std::chrono::steady_clock::duration lifetime_;
  std::map<std::string, entry> routes_;
};

// The address a BIND's listener faces: the peer the client expects (the server of its primary
// connection). When one of the client's live flows already goes to one of the destination's
// addresses (`primary_targets`, newest first), that address: the server then sees the same
// gateway address in PORT/EPRT as on its control connection. Else the preferred family's first
// address, as a UDP session chooses. nullopt when both lists are empty.
[[nodiscard]] std::optional<ip_address> bind_reference(std::span<const ip_address> v6, std::span<const ip_address> v4,
                                                       std::span<const ip_address> primary_targets, ip_family prefer);

// Whether a connection to a BIND listener comes from the expected peer: any address when the
// request named none (an empty list), else one of the destination's addresses.
[[nodiscard]] bool bind_peer_expected(std::span<const ip_address> expected, const ip_address& peer);

}  // namespace gate46::gateway
