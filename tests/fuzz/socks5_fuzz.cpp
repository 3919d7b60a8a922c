// The SOCKS5 codec's three parsers (greeting, RFC 1929 credentials, request) on arbitrary client
// bytes. Each parser reads a stream as it arrives, so for every parser:
//   - every prefix up to the first non-need_more result is need_more, and the whole input gives
//     that same result (more bytes never change a decided message);
//   - a parsed message consumed 1..size bytes, its bytes alone parse identically, and its value
//     agrees with the bytes it came from (lengths, no NUL, ranges);
//   - a malformed greeting or credentials message has no SOCKS reply; a malformed request's
//     reply is 01, 08 or none (wrong version).
// Builders and to_string run on every parsed value. The same input is also read as a UDP
// ASSOCIATE datagram (see fuzz_udp_datagram). Any violation aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <variant>

#include "gate46/gateway/socks5.hpp"

namespace socks5 = gate46::gateway::socks5;

namespace {

void check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

bool same(const socks5::greeting& a, const socks5::greeting& b) {
  return a.methods == b.methods;
}
bool same(const socks5::credentials& a, const socks5::credentials& b) {
  return a.username == b.username && a.password == b.password;
}
bool same(const socks5::request& a, const socks5::request& b) {
  return a.command == b.command && a.destination.host == b.destination.host && a.destination.port == b.destination.port;
}

template <typename T>
bool same_result(const socks5::parse_result<T>& a, const socks5::parse_result<T>& b) {
  if (a.index() != b.index()) {
    return false;
  }
  if (const auto* pa = std::get_if<socks5::parsed<T>>(&a)) {
    const auto& pb = std::get<socks5::parsed<T>>(b);
    return pa->consumed == pb.consumed && same(pa->value, pb.value);
  }
  if (const auto* ma = std::get_if<socks5::malformed>(&a)) {
    return ma->reply == std::get<socks5::malformed>(b).reply;
  }
  return true;
}

// The stream invariants; returns the result on the whole input.
template <typename T>
socks5::parse_result<T> check_stream(socks5::parse_result<T> (*parse)(socks5::byte_view), socks5::byte_view in) {
  // Walk the prefixes until the parser decides (a SOCKS message is at most 2 + 255 + 255 + 1
  // bytes, so this is bounded by the message, not the input).
  std::size_t decided_at = 0;
  auto decided = parse(in.first(0));
  check(std::holds_alternative<socks5::need_more>(decided));  // nothing is decided on no bytes
  while (std::holds_alternative<socks5::need_more>(decided) && decided_at < in.size()) {
    ++decided_at;
    decided = parse(in.first(decided_at));
  }
  auto whole = parse(in);
  check(same_result(decided, whole));
  if (const auto* p = std::get_if<socks5::parsed<T>>(&whole)) {
    check(p->consumed > 0 && p->consumed <= in.size());
    check(p->consumed == decided_at);  // every strict prefix of the message was need_more
    check(same_result(parse(in.first(p->consumed)), whole));
  }
  return whole;
}

bool has_nul(const std::string& text) {
  return text.find('\0') != std::string::npos;
}

void fuzz_greeting(socks5::byte_view in) {
  const auto result = check_stream(&socks5::parse_greeting, in);
  if (const auto* m = std::get_if<socks5::malformed>(&result)) {
    check(!m->reply);
    return;
  }
  const auto* p = std::get_if<socks5::parsed<socks5::greeting>>(&result);
  if (p == nullptr) {
    return;
  }
  const auto& methods = p->value.methods;
  check(in[0] == socks5::version && !methods.empty() && methods.size() == in[1]);
  check(p->consumed == 2 + methods.size() && std::equal(methods.begin(), methods.end(), in.begin() + 2));
  for (const bool password_required : {false, true}) {
    const auto chosen = socks5::choose_method(p->value, password_required);
    const auto offered = [&](socks5::method m) {
      return std::find(methods.begin(), methods.end(), static_cast<std::uint8_t>(m)) != methods.end();
    };
    // Only a method the client offered, and only the one the network allows.
    check(chosen == socks5::method::none_acceptable ||
          (chosen == socks5::method::username_password && password_required && offered(chosen)) ||
          (chosen == socks5::method::no_auth && !password_required && offered(chosen)));
    const auto selection = socks5::make_method_selection(chosen);
    check(selection.size() == 2 && selection[0] == socks5::version);
  }
}

void fuzz_credentials(socks5::byte_view in) {
  const auto result = check_stream(&socks5::parse_credentials, in);
  if (const auto* m = std::get_if<socks5::malformed>(&result)) {
    check(!m->reply);
    return;
  }
  const auto* p = std::get_if<socks5::parsed<socks5::credentials>>(&result);
  if (p == nullptr) {
    return;
  }
  const auto& c = p->value;
  check(in[0] == socks5::auth_version);
  check(!c.username.empty() && c.username.size() <= 255 && !has_nul(c.username));
  check(!c.password.empty() && c.password.size() <= 255 && !has_nul(c.password));
  check(p->consumed == 3 + c.username.size() + c.password.size());
  check(in[1] == c.username.size() && in[2 + c.username.size()] == c.password.size());
}

void fuzz_request(socks5::byte_view in) {
  const auto result = check_stream(&socks5::parse_request, in);
  if (const auto* m = std::get_if<socks5::malformed>(&result)) {
    check(!m->reply || *m->reply == socks5::reply_code::general_failure ||
          *m->reply == socks5::reply_code::address_type_not_supported);
    check(m->reply.has_value() == (in[0] == socks5::version));  // no reply exactly for a wrong version
    return;
  }
  const auto* p = std::get_if<socks5::parsed<socks5::request>>(&result);
  if (p == nullptr) {
    return;
  }
  const auto& r = p->value;
  check(in[0] == socks5::version && r.command == in[1]);
  const auto atyp = static_cast<socks5::address_type>(in[3]);
  std::size_t address_length = 0;
  if (const auto* address = std::get_if<gate46::ip_address>(&r.destination.host)) {
    check(atyp == socks5::address_type::ipv4 || atyp == socks5::address_type::ipv6);
    address_length = atyp == socks5::address_type::ipv4 ? 4 : 16;
    check(atyp == socks5::address_type::ipv6 || address->is_v4());
    const auto reply = socks5::make_reply(socks5::reply_code::succeeded, {*address, r.destination.port});
    check(reply.size() == (address->is_v4() ? 10U : 22U));
  } else {
    const auto& name = std::get<gate46::dns_name>(r.destination.host);
    check(atyp == socks5::address_type::domain && in[4] > 0);
    address_length = 1 + in[4];
    const auto text = in.subspan(5, in[4]);
    check(std::find(text.begin(), text.end(), std::uint8_t{0}) == text.end());
    check(name.wire().size() <= gate46::dns_name::max_wire_length);
  }
  check(p->consumed == 4 + address_length + 2);
  check(r.destination.port == ((in[4 + address_length] << 8) | in[5 + address_length]));
  check(!r.destination.to_string().empty());
}

// A UDP ASSOCIATE datagram (RFC 1928 §7): the header of a whole datagram parses or is refused
// with a reason; a parsed one agrees with its bytes, and the header built for its destination
// parses back to the same destination.
void fuzz_udp_datagram(socks5::byte_view in) {
  const auto result = socks5::parse_udp_header(in);
  if (const auto* why = std::get_if<std::string>(&result)) {
    check(!why->empty());
    return;
  }
  const auto& h = std::get<socks5::udp_header>(result);
  check(h.fragment == in[2]);
  check(h.payload_offset > 3 && h.payload_offset <= in.size());
  // The header alone is the same header: the payload never changes how it reads.
  const auto alone = socks5::parse_udp_header(in.first(h.payload_offset));
  check(std::holds_alternative<socks5::udp_header>(alone) &&
        std::get<socks5::udp_header>(alone).payload_offset == h.payload_offset);
  // A request with the same address part parses to the same target.
  socks5::bytes as_request{socks5::version, 3, 0};
  as_request.insert(as_request.end(), in.begin() + 3, in.begin() + static_cast<std::ptrdiff_t>(h.payload_offset));
  const auto request = socks5::parse_request(as_request);
  const auto* r = std::get_if<socks5::parsed<socks5::request>>(&request);
  check(r != nullptr && r->value.destination.to_string() == h.destination.to_string());
  if (const auto header = socks5::make_udp_header(h.destination)) {
    const auto back = socks5::parse_udp_header(*header);
    check(std::holds_alternative<socks5::udp_header>(back));
    const auto& b = std::get<socks5::udp_header>(back);
    check(b.fragment == 0 && b.payload_offset == header->size());
    check(b.destination.to_string() == h.destination.to_string());
  } else {
    check(std::holds_alternative<gate46::dns_name>(h.destination.host));  // only a name can be too long
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const socks5::byte_view in{data, size};
  fuzz_greeting(in);
  fuzz_credentials(in);
  fuzz_request(in);
  fuzz_udp_datagram(in);
  // A whole session's client side in one input: a greeting, then what follows it.
  const auto greeting = socks5::parse_greeting(in);
  if (const auto* p = std::get_if<socks5::parsed<socks5::greeting>>(&greeting)) {
    const auto rest = in.subspan(p->consumed);
    fuzz_credentials(rest);
    fuzz_request(rest);
    const auto credentials = socks5::parse_credentials(rest);
    if (const auto* c = std::get_if<socks5::parsed<socks5::credentials>>(&credentials)) {
      fuzz_request(rest.subspan(c->consumed));
    }
  }
  return 0;
}
