// SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929) as a codec without
// I/O: parsers that read a client's bytes as they arrive (any split, one byte at a time
// included) and builders for the server's replies. The server session is a thin loop around
// these; every parser is fuzzed.
//
// A parser returns one of:
//   need_more            the bytes so far are a valid prefix: read more and call again
//   parsed<T>{value, n}  a whole message, the first n bytes of the input
//   malformed{reply}     not a valid message: answer `reply` (when the protocol has one) and close
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"

namespace gate46::gateway::socks5 {

using byte_view = std::span<const std::uint8_t>;
using bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t version = 5;
inline constexpr std::uint8_t auth_version = 1;  // RFC 1929's sub-negotiation version

enum class method : std::uint8_t {
  no_auth = 0x00,
  gssapi = 0x01,
  username_password = 0x02,
  none_acceptable = 0xff,
};

enum class command : std::uint8_t {
  connect = 1,
  bind = 2,
  udp_associate = 3,
};

// RFC 1928 §6.
enum class reply_code : std::uint8_t {
  succeeded = 0x00,
  general_failure = 0x01,
  not_allowed = 0x02,
  network_unreachable = 0x03,
  host_unreachable = 0x04,
  connection_refused = 0x05,
  ttl_expired = 0x06,  // also: the connection attempt timed out
  command_not_supported = 0x07,
  address_type_not_supported = 0x08,
};

enum class address_type : std::uint8_t {
  ipv4 = 0x01,
  domain = 0x03,
  ipv6 = 0x04,
};

struct need_more {};
template <typename T>
struct parsed {
  T value;
  std::size_t consumed = 0;
};
struct malformed {
  // The reply the protocol gives for it, if any (an unknown address type is 08 in a request;
  // a bad greeting has no reply but the close).
  std::optional<reply_code> reply;
  std::string why;  // for the log
};
template <typename T>
using parse_result = std::variant<need_more, parsed<T>, malformed>;

// ---- method negotiation -------------------------------------------------------------------------

struct greeting {
  std::vector<std::uint8_t> methods;  // as offered, unknown ones included
};
// VER(5) NMETHODS(1..255) METHODS. NMETHODS 0 is malformed: the client offers nothing.
parse_result<greeting> parse_greeting(byte_view in);

// The method to select: username/password when the client's network requires it and the
// client offers it; no authentication when allowed and offered; else none_acceptable (0xFF).
method choose_method(const greeting& g, bool password_required);
bytes make_method_selection(method m);

// ---- RFC 1929 -----------------------------------------------------------------------------------

struct credentials {
  std::string username;  // 1..255 bytes, no NUL
  std::string password;  // 1..255 bytes, no NUL
};
// VER(1) ULEN UNAME PLEN PASSWD. Empty fields and NUL bytes are malformed.
parse_result<credentials> parse_credentials(byte_view in);
// VER(1) STATUS (0 success; anything else failure, and the server closes).
bytes make_auth_status(bool success);

// ---- requests -----------------------------------------------------------------------------------

// Where a request points: an address, or a domain name the gateway resolves itself.
struct target {
  std::variant<ip_address, dns_name> host;
  std::uint16_t port = 0;
  [[nodiscard]] std::string to_string() const;
};

struct request {
  std::uint8_t command = 0;  // the raw byte: an unknown command is answered 07, not dropped
  target destination;
};
// VER(5) CMD RSV(0) ATYP DST.ADDR DST.PORT. An unknown ATYP is malformed with reply 08; a
// domain of 0 bytes, with a NUL, or not a valid name is malformed with reply 01 (general
// failure: RFC 1928 has no better code); a wrong version is malformed without a reply.
parse_result<request> parse_request(byte_view in);

// VER(5) REP RSV(0) ATYP BND.ADDR BND.PORT; `bound` is the outgoing connection's local
// endpoint (IPv4 in its 4-byte form). Failure replies carry 0.0.0.0:0.
bytes make_reply(reply_code code, const endpoint& bound);
bytes make_failure_reply(reply_code code);

// ---- UDP ASSOCIATE datagrams (RFC 1928 §7) -------------------------------------------------------

struct udp_header {
  std::uint8_t fragment = 0;  // FRAG: 0 is a whole datagram; the gateway drops fragments
  target destination;
  std::size_t payload_offset = 0;  // where DATA starts in the datagram
};

// RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA: a whole datagram, so a short one is malformed (the
// string says why; a UDP datagram has no reply, it is dropped). An unknown ATYP or a bad domain
// is malformed too.
std::variant<udp_header, std::string> parse_udp_header(byte_view datagram);
// The header in front of a datagram relayed to the client: FRAG 0 and `source`, the destination
// the client used (its name or fake address, so that the client can match the reply). A name
// goes as the bytes of its labels, as the client wrote it; nothing for one DOMAINNAME cannot
// carry (over 255 bytes, or a dot, backslash or NUL inside a label).
std::optional<bytes> make_udp_header(const target& source);

// The reply code for a connect() errno (ECONNREFUSED -> 05, ENETUNREACH -> 03, EHOSTUNREACH
// -> 04, ETIMEDOUT -> 06, anything else -> 01).
reply_code reply_for_errno(int error) noexcept;

}  // namespace gate46::gateway::socks5
