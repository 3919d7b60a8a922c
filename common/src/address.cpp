#include "gate46/common/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>

namespace gate46 {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// inet_pton needs a NUL-terminated string; addresses are short, so a stack buffer is enough.
template <int Family, std::size_t Size>
bool parse_with_inet_pton(std::string_view text, std::array<std::uint8_t, Size>& out) {
  std::array<char, INET6_ADDRSTRLEN + 1> buffer{};
  if (text.empty() || text.size() >= buffer.size()) {
    return false;
  }
  std::copy(text.begin(), text.end(), buffer.begin());
  return inet_pton(Family, buffer.data(), out.data()) == 1;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

ip_address ip_address::from_v4(std::array<std::uint8_t, 4> octets) {
  bytes_type bytes{};
  std::copy(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), bytes.begin());
  std::copy(octets.begin(), octets.end(), bytes.begin() + 12);
  return ip_address{bytes};
}

ip_address ip_address::from_v4(std::uint32_t host_order) {
  return from_v4({static_cast<std::uint8_t>(host_order >> 24), static_cast<std::uint8_t>(host_order >> 16),
                  static_cast<std::uint8_t>(host_order >> 8), static_cast<std::uint8_t>(host_order)});
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (std::array<std::uint8_t, 4> v4{}; parse_with_inet_pton<AF_INET>(text, v4)) {
    return from_v4(v4);
  }
  if (bytes_type v6{}; parse_with_inet_pton<AF_INET6>(text, v6)) {
    return from_v6(v6);
  }
  return std::nullopt;
}

bool ip_address::is_v4() const noexcept {
  return std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), bytes_.begin());
}

bool ip_address::is_unspecified() const noexcept {
  const auto* first = is_v4() ? bytes_.begin() + 12 : bytes_.begin();
  return std::all_of(first, bytes_.end(), [](std::uint8_t b) { return b == 0; });
}

bool ip_address::is_loopback() const noexcept {
  if (is_v4()) {
    return bytes_[12] == 127;
  }
  return std::all_of(bytes_.begin(), bytes_.end() - 1, [](std::uint8_t b) { return b == 0; }) && bytes_[15] == 1;
}

std::array<std::uint8_t, 4> ip_address::v4_bytes() const noexcept {
  assert(is_v4());
  return {bytes_[12], bytes_[13], bytes_[14], bytes_[15]};
}

std::uint32_t ip_address::v4_host_order() const noexcept {
  const auto b = v4_bytes();
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

std::string ip_address::to_string() const {
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  if (is_v4()) {
    const auto v4 = v4_bytes();
    inet_ntop(AF_INET, v4.data(), buffer.data(), buffer.size());
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buffer.data(), buffer.size());
  }
  return buffer.data();
}

std::optional<endpoint> endpoint::parse(std::string_view text, std::optional<std::uint16_t> default_port) {
  std::string_view host = text;
  std::optional<std::uint16_t> port = default_port;

  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) {
        return std::nullopt;
      }
      port = parse_port(rest.substr(1));
      if (!port) {
        return std::nullopt;
      }
    }
    // Brackets are for IPv6 only.
    auto address = ip_address::parse(host);
    if (!address || address->is_v4() || !port) {
      return std::nullopt;
    }
    return endpoint{*address, *port};
  }

  // Without brackets, more than one colon means a bare IPv6 address (no port possible).
  const auto colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    port = parse_port(text.substr(colon + 1));
    if (!port) {
      return std::nullopt;
    }
  }
  auto address = ip_address::parse(host);
  if (!address || !port) {
    return std::nullopt;
  }
  return endpoint{*address, *port};
}

std::string endpoint::to_string() const {
  if (address.is_v4()) {
    return address.to_string() + ':' + std::to_string(port);
  }
  return '[' + address.to_string() + "]:" + std::to_string(port);
}

namespace {

// Clears (or tests) the bits of a 16-byte address beyond prefix_length.
ip_address::bytes_type masked(const ip_address::bytes_type& bytes, unsigned prefix_length) {
  ip_address::bytes_type out = bytes;
  for (unsigned i = 0; i < out.size(); ++i) {
    const unsigned bit = i * 8;
    if (bit >= prefix_length) {
      out[i] = 0;
    } else if (prefix_length - bit < 8) {
      out[i] &= static_cast<std::uint8_t>(0xff00U >> (prefix_length - bit));
    }
  }
  return out;
}

}  // namespace

cidr::cidr(ip_address network, unsigned prefix_length)
    : network_{ip_address::from_v6(masked(network.v6_bytes(), network.is_v4() ? prefix_length + 96 : prefix_length))},
      prefix_length_{prefix_length} {
  assert(prefix_length <= (network.is_v4() ? 32U : 128U));
}

std::optional<cidr> cidr::parse(std::string_view text, parse_error* error) {
  auto fail = [error](parse_error e) -> std::optional<cidr> {
    if (error != nullptr) {
      *error = e;
    }
    return std::nullopt;
  };
  const auto slash = text.find('/');
  const auto address = ip_address::parse(text.substr(0, slash));
  if (!address) {
    return fail(parse_error::syntax);
  }
  const unsigned max_length = address->is_v4() ? 32 : 128;
  unsigned length = max_length;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto* end = digits.data() + digits.size();
    auto [ptr, ec] = std::from_chars(digits.data(), end, length);
    if (digits.empty() || ec != std::errc{} || ptr != end || length > max_length) {
      return fail(parse_error::bad_prefix_length);
    }
  }
  cidr result{*address, length};
  if (result.network_ != *address) {
    return fail(parse_error::host_bits_set);
  }
  return result;
}

bool cidr::contains(const ip_address& address) const noexcept {
  // Whole bytes first, then the bits of a partial byte: no copy (this is on the DNS hot path).
  if (address.family() != family()) {
    return false;
  }
  const auto& a = address.v6_bytes();
  const auto& n = network_.v6_bytes();
  const unsigned length = mapped_prefix_length();
  const unsigned whole = length / 8;
  if (std::memcmp(a.data(), n.data(), whole) != 0) {
    return false;
  }
  const unsigned rest = length % 8;
  return rest == 0 || ((a[whole] ^ n[whole]) & static_cast<std::uint8_t>(0xff00U >> rest)) == 0;
}

ip_address cidr::last() const noexcept {
  auto bytes = network_.v6_bytes();
  const unsigned length = mapped_prefix_length();
  for (unsigned i = 0; i < bytes.size(); ++i) {
    const unsigned bit = i * 8;
    if (bit >= length) {
      bytes[i] = 0xff;
    } else if (length - bit < 8) {
      bytes[i] |= static_cast<std::uint8_t>(0xffU >> (length - bit));
    }
  }
  return ip_address::from_v6(bytes);
}

std::string cidr::to_string() const {
  return network_.to_string() + '/' + std::to_string(prefix_length_);
}

std::string_view to_string(cidr::parse_error error) {
  switch (error) {
    case cidr::parse_error::syntax:
      return "not an IPv4 or IPv6 prefix";
    case cidr::parse_error::bad_prefix_length:
      return "bad prefix length";
    case cidr::parse_error::host_bits_set:
      return "host bits set beyond the prefix length";
  }
  return "invalid prefix";
}

}  // namespace gate46

std::size_t std::hash<gate46::ip_address>::operator()(const gate46::ip_address& address) const noexcept {
  // FNV-1a over the 16 bytes: cheap, and these keys are not attacker-chosen in bulk
  // (the mapping store has its own keyed hash).
  std::uint64_t h = 14695981039346656037ULL;
  for (auto b : address.v6_bytes()) {
    h = (h ^ b) * 1099511628211ULL;
  }
  return static_cast<std::size_t>(h);
}

std::size_t std::hash<gate46::endpoint>::operator()(const gate46::endpoint& endpoint) const noexcept {
  return std::hash<gate46::ip_address>{}(endpoint.address) ^ (std::size_t{endpoint.port} * 0x9E3779B97F4A7C15ULL);
}
