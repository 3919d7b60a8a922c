#include "gate46/gateway/socks5.hpp"

#include <algorithm>
#include <cerrno>

namespace gate46::gateway::socks5 {
namespace {

std::uint16_t read_u16(byte_view in, std::size_t at) {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

void put_u16(bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

bool has_nul(byte_view text) {
  return std::find(text.begin(), text.end(), std::uint8_t{0}) != text.end();
}

// RFC 1928's DOMAINNAME is text ("example.com"), not a wire-format name. Backslashes are
// refused so that presentation-format escapes cannot smuggle other bytes in.
std::optional<dns_name> domain_of(byte_view text) {
  if (text.empty() || has_nul(text) || std::find(text.begin(), text.end(), '\\') != text.end()) {
    return std::nullopt;
  }
  auto name = dns_name::parse(std::string_view{reinterpret_cast<const char*>(text.data()), text.size()});
  if (name && name->is_root()) {
    return std::nullopt;  // "." names no host
  }
  return name;
}

}  // namespace

std::string target::to_string() const {
  const auto port_text = std::to_string(port);
  if (const auto* address = std::get_if<ip_address>(&host)) {
    return endpoint{*address, port}.to_string();
  }
  return std::get<dns_name>(host).to_string() + ":" + port_text;
}

parse_result<greeting> parse_greeting(byte_view in) {
  if (in.empty()) {
    return need_more{};
  }
  if (in[0] != version) {
    return malformed{std::nullopt, "SOCKS version " + std::to_string(in[0]) + " in the greeting"};
  }
  if (in.size() < 2) {
    return need_more{};
  }
  const std::size_t count = in[1];
  if (count == 0) {
    return malformed{std::nullopt, "the greeting offers no method"};
  }
  if (in.size() < 2 + count) {
    return need_more{};
  }
  greeting g;
  g.methods.assign(in.begin() + 2, in.begin() + 2 + static_cast<std::ptrdiff_t>(count));
  return parsed<greeting>{std::move(g), 2 + count};
}

method choose_method(const greeting& g, bool password_required) {
  const auto offered = [&](method m) {
    return std::find(g.methods.begin(), g.methods.end(), static_cast<std::uint8_t>(m)) != g.methods.end();
  };
  if (password_required) {
    return offered(method::username_password) ? method::username_password : method::none_acceptable;
  }
  return offered(method::no_auth) ? method::no_auth : method::none_acceptable;
}

bytes make_method_selection(method m) {
  return {version, static_cast<std::uint8_t>(m)};
}

parse_result<credentials> parse_credentials(byte_view in) {
  if (in.empty()) {
    return need_more{};
  }
  if (in[0] != auth_version) {
    return malformed{std::nullopt, "username/password sub-negotiation version " + std::to_string(in[0])};
  }
  if (in.size() < 2) {
    return need_more{};
  }
  const std::size_t user_length = in[1];
  if (user_length == 0) {
    return malformed{std::nullopt, "empty username"};
  }
  if (in.size() < 2 + user_length + 1) {
    return need_more{};
  }
  const std::size_t password_length = in[2 + user_length];
  if (password_length == 0) {
    return malformed{std::nullopt, "empty password"};
  }
  const std::size_t total = 2 + user_length + 1 + password_length;
  if (in.size() < total) {
    return need_more{};
  }
  const auto user = in.subspan(2, user_length);
  const auto password = in.subspan(3 + user_length, password_length);
  if (has_nul(user) || has_nul(password)) {
    return malformed{std::nullopt, "NUL byte in the credentials"};
  }
  credentials c{std::string(user.begin(), user.end()), std::string(password.begin(), password.end())};
  return parsed<credentials>{std::move(c), total};
}

bytes make_auth_status(bool success) {
  return {auth_version, static_cast<std::uint8_t>(success ? 0x00 : 0x01)};
}

namespace {

// ATYP DST.ADDR DST.PORT from `at` on: the part a request and a UDP datagram's header share.
parse_result<target> parse_target(byte_view in, std::size_t at) {
  if (in.size() < at + 1) {
    return need_more{};
  }
  const auto type = in[at];
  ++at;
  target t;
  switch (static_cast<address_type>(type)) {
    case address_type::ipv4: {
      if (in.size() < at + 4 + 2) {
        return need_more{};
      }
      t.host = ip_address::from_v4({in[at], in[at + 1], in[at + 2], in[at + 3]});
      at += 4;
      break;
    }
    case address_type::ipv6: {
      if (in.size() < at + 16 + 2) {
        return need_more{};
      }
      ip_address::bytes_type b{};
      std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), 16, b.begin());
      t.host = ip_address::from_v6(b);  // a v4-mapped address becomes IPv4
      at += 16;
      break;
    }
    case address_type::domain: {
      if (in.size() < at + 1) {
        return need_more{};
      }
      const std::size_t length = in[at];
      if (length == 0) {
        return malformed{reply_code::general_failure, "empty domain name"};
      }
      if (in.size() < at + 1 + length + 2) {
        return need_more{};
      }
      auto name = domain_of(in.subspan(at + 1, length));
      if (!name) {
        return malformed{reply_code::general_failure, "invalid domain name"};
      }
      t.host = std::move(*name);
      at += 1 + length;
      break;
    }
    default:
      return malformed{reply_code::address_type_not_supported, "address type " + std::to_string(type)};
  }
  t.port = read_u16(in, at);
  return parsed<target>{std::move(t), at + 2};
}

// A name as DOMAINNAME text ("example.com"): its labels' bytes joined by dots, unescaped, as
// domain_of() reads them. Nothing for a name that text cannot carry (a dot, backslash or NUL
// inside a label; more than 255 bytes).
std::optional<std::string> domain_text(const dns_name& name) {
  std::string text;
  const auto wire = name.wire();
  for (std::size_t at = 0; at < wire.size() && wire[at] != 0; at += 1 + wire[at]) {
    const auto label = wire.subspan(at + 1, wire[at]);
    if (std::any_of(label.begin(), label.end(), [](std::uint8_t b) { return b == '.' || b == '\\' || b == 0; })) {
      return std::nullopt;
    }
    if (!text.empty()) {
      text.push_back('.');
    }
    text.append(label.begin(), label.end());
  }
  if (text.empty() || text.size() > 255) {
    return std::nullopt;
  }
  return text;
}

// ATYP ADDR PORT; IPv4 in its 4-byte form. False (nothing written) for a name DOMAINNAME
// cannot carry.
bool put_target(bytes& out, const target& t) {
  if (const auto* address = std::get_if<ip_address>(&t.host)) {
    if (address->is_v4()) {
      out.push_back(static_cast<std::uint8_t>(address_type::ipv4));
      const auto v4 = address->v4_bytes();
      out.insert(out.end(), v4.begin(), v4.end());
    } else {
      out.push_back(static_cast<std::uint8_t>(address_type::ipv6));
      const auto& v6 = address->v6_bytes();
      out.insert(out.end(), v6.begin(), v6.end());
    }
  } else {
    const auto text = domain_text(std::get<dns_name>(t.host));
    if (!text) {
      return false;
    }
    out.push_back(static_cast<std::uint8_t>(address_type::domain));
    out.push_back(static_cast<std::uint8_t>(text->size()));
    out.insert(out.end(), text->begin(), text->end());
  }
  put_u16(out, t.port);
  return true;
}

}  // namespace

parse_result<request> parse_request(byte_view in) {
  if (in.empty()) {
    return need_more{};
  }
  if (in[0] != version) {
    return malformed{std::nullopt, "SOCKS version " + std::to_string(in[0]) + " in the request"};
  }
  if (in.size() < 4) {
    return need_more{};
  }
  request r;
  r.command = in[1];
  // in[2] is RSV: reserved, ignored as RFC 1928 gives it no meaning.
  auto destination = parse_target(in, 3);
  if (auto* done = std::get_if<parsed<target>>(&destination)) {
    r.destination = std::move(done->value);
    return parsed<request>{std::move(r), done->consumed};
  }
  if (auto* bad = std::get_if<malformed>(&destination)) {
    return std::move(*bad);
  }
  return need_more{};
}

std::variant<udp_header, std::string> parse_udp_header(byte_view datagram) {
  // RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. RSV is ignored, as in a request.
  if (datagram.size() < 3) {
    return std::string{"datagram of " + std::to_string(datagram.size()) + " bytes: no SOCKS5 UDP header"};
  }
  udp_header h;
  h.fragment = datagram[2];
  auto destination = parse_target(datagram, 3);
  if (auto* done = std::get_if<parsed<target>>(&destination)) {
    h.destination = std::move(done->value);
    h.payload_offset = done->consumed;
    return h;
  }
  if (auto* bad = std::get_if<malformed>(&destination)) {
    return std::move(bad->why);
  }
  return std::string{"truncated SOCKS5 UDP header"};
}

std::optional<bytes> make_udp_header(const target& source) {
  bytes out{0x00, 0x00, 0x00};  // RSV, FRAG 0: the gateway never fragments
  if (!put_target(out, source)) {
    return std::nullopt;
  }
  return out;
}

bytes make_reply(reply_code code, const endpoint& bound) {
  bytes out{version, static_cast<std::uint8_t>(code), 0x00};
  put_target(out, target{bound.address, bound.port});
  return out;
}

bytes make_failure_reply(reply_code code) {
  return make_reply(code, endpoint{ip_address::from_v4(0U), 0});
}

reply_code reply_for_errno(int error) noexcept {
  switch (error) {
    case ECONNREFUSED:
      return reply_code::connection_refused;
    case ENETUNREACH:
      return reply_code::network_unreachable;
    case EHOSTUNREACH:
      return reply_code::host_unreachable;
    case ETIMEDOUT:
      return reply_code::ttl_expired;
    default:
      return reply_code::general_failure;
  }
}

}  // namespace gate46::gateway::socks5
