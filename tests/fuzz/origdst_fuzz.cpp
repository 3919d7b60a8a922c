// The UDP original-destination decoder on arbitrary control buffers. Every cmsg_len comes from
// the buffer, so each is checked before use; nothing may be read outside it. A decoded endpoint
// must be one that the buffer really carries in a form of its family: some control message
// header (at a CMSG_ALIGN boundary) must be IP_ORIGDSTADDR with that IPv4 address and port, or
// IPV6_ORIGDSTADDR with that address (an IPv4 result from the IPv6 form only if v4-mapped).
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "gate46/tproxy/transparent.hpp"

namespace {

// Whether a header at offset carries `decoded` in its own form.
bool carries(std::span<const std::byte> control, std::size_t offset, const gate46::endpoint& decoded) {
  cmsghdr header{};
  std::memcpy(&header, control.data() + offset, sizeof header);
  const std::size_t available = control.size() - offset;
  if (header.cmsg_len > available) {
    return false;
  }
  const auto* payload = control.data() + offset + CMSG_LEN(0);
  if (header.cmsg_level == SOL_IP && header.cmsg_type == IP_ORIGDSTADDR &&
      header.cmsg_len >= CMSG_LEN(sizeof(sockaddr_in))) {
    sockaddr_in sin{};
    std::memcpy(&sin, payload, sizeof sin);
    const auto octets = decoded.address.v4_bytes();
    return decoded.address.is_v4() && sin.sin_family == AF_INET && ntohs(sin.sin_port) == decoded.port &&
           std::memcmp(&sin.sin_addr, octets.data(), octets.size()) == 0;
  }
  if (header.cmsg_level == SOL_IPV6 && header.cmsg_type == IPV6_ORIGDSTADDR &&
      header.cmsg_len >= CMSG_LEN(sizeof(sockaddr_in6))) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, payload, sizeof sin6);
    // ip_address keeps IPv4 v4-mapped, so the 16 bytes are the same either way; an IPv4 result
    // therefore came from a v4-mapped sin6_addr.
    return sin6.sin6_family == AF_INET6 && ntohs(sin6.sin6_port) == decoded.port &&
           std::memcmp(&sin6.sin6_addr, decoded.address.v6_bytes().data(), 16) == 0;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> control{reinterpret_cast<const std::byte*>(data), size};
  const auto decoded = gate46::tproxy::original_destination_from_cmsgs(control);
  if (!decoded) {
    return 0;
  }
  bool found = false;
  for (std::size_t offset = 0; !found && size - offset >= sizeof(cmsghdr); offset += CMSG_ALIGN(1)) {
    found = carries(control, offset, *decoded);
  }
  if (!found) {
    std::abort();  // decoded an endpoint the buffer does not carry in its family's form
  }
  return 0;
}
