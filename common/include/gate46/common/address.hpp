// Addresses as values: one type for IPv4 and IPv6, one for endpoints, one for CIDR prefixes.
//
// An IPv4 address is stored as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so "198.18.0.1" and
// "::ffff:198.18.0.1" are the same value: a dual-stack socket's v4-mapped peer compares equal
// to the configured IPv4 address, and every caller has one code path for both families.
// All types here are regular (copyable, comparable, hashable) and free of I/O.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace gate46 {

enum class ip_family : std::uint8_t { v4, v6 };

class ip_address {
 public:
  using bytes_type = std::array<std::uint8_t, 16>;

  // The unspecified IPv6 address (::).
  constexpr ip_address() = default;

  static ip_address from_v4(std::array<std::uint8_t, 4> octets);
  static ip_address from_v4(std::uint32_t host_order);
  // A v4-mapped input becomes the IPv4 address it maps.
  static ip_address from_v6(const bytes_type& bytes) { return ip_address{bytes}; }

  // Accepts dotted-quad IPv4 and any RFC 4291 text form of IPv6; no zone ids, no padding.
  static std::optional<ip_address> parse(std::string_view text);

  [[nodiscard]] ip_family family() const noexcept { return is_v4() ? ip_family::v4 : ip_family::v6; }
  [[nodiscard]] bool is_v4() const noexcept;
  [[nodiscard]] bool is_v6() const noexcept { return !is_v4(); }
  [[nodiscard]] bool is_unspecified() const noexcept;  // 0.0.0.0 or ::
  [[nodiscard]] bool is_loopback() const noexcept;     // 127.0.0.0/8 or ::1

  // The 16-byte form (v4-mapped for IPv4).
  [[nodiscard]] const bytes_type& v6_bytes() const noexcept { return bytes_; }
  // Precondition: is_v4().
  [[nodiscard]] std::array<std::uint8_t, 4> v4_bytes() const noexcept;
  [[nodiscard]] std::uint32_t v4_host_order() const noexcept;

  // Canonical text: dotted quad for IPv4, RFC 5952 for IPv6.
  [[nodiscard]] std::string to_string() const;

  friend auto operator<=>(const ip_address&, const ip_address&) = default;
  friend bool operator==(const ip_address&, const ip_address&) = default;

 private:
  constexpr explicit ip_address(const bytes_type& bytes) : bytes_{bytes} {}
  bytes_type bytes_{};
};

struct endpoint {
  ip_address address;
  std::uint16_t port = 0;

  // "192.0.2.1:53", "[2001:db8::1]:53"; without a port only when default_port is given
  // ("192.0.2.1", "2001:db8::1" or "[2001:db8::1]").
  static std::optional<endpoint> parse(std::string_view text, std::optional<std::uint16_t> default_port = std::nullopt);
  // "192.0.2.1:53" or "[2001:db8::1]:53".
  [[nodiscard]] std::string to_string() const;

  friend auto operator<=>(const endpoint&, const endpoint&) = default;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

// A network prefix. The prefix length is in the family's own terms (0-32 for IPv4, 0-128 for
// IPv6); host bits are always zero.
class cidr {
 public:
  enum class parse_error : std::uint8_t { syntax, bad_prefix_length, host_bits_set };

  // Precondition: prefix_length fits the family. Host bits are cleared.
  cidr(ip_address network, unsigned prefix_length);

  // "198.18.0.0/15", "2001:2::/48"; a bare address is a host prefix (/32 or /128).
  // "192.0.2.1/24" is rejected (host_bits_set): configuration must say what it means.
  static std::optional<cidr> parse(std::string_view text, parse_error* error = nullptr);

  [[nodiscard]] const ip_address& network() const noexcept { return network_; }
  [[nodiscard]] unsigned prefix_length() const noexcept { return prefix_length_; }
  [[nodiscard]] ip_family family() const noexcept { return network_.family(); }
  [[nodiscard]] bool contains(const ip_address& address) const noexcept;
  // The last address of the prefix (the IPv4 broadcast address for IPv4 prefixes).
  [[nodiscard]] ip_address last() const noexcept;
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const cidr&, const cidr&) = default;

 private:
  [[nodiscard]] unsigned mapped_prefix_length() const noexcept {
    return network_.is_v4() ? prefix_length_ + 96 : prefix_length_;
  }
  ip_address network_;
  unsigned prefix_length_ = 0;
};

std::string_view to_string(cidr::parse_error error);

}  // namespace gate46

template <>
struct std::hash<gate46::ip_address> {
  std::size_t operator()(const gate46::ip_address& address) const noexcept;
};

template <>
struct std::hash<gate46::endpoint> {
  std::size_t operator()(const gate46::endpoint& endpoint) const noexcept;
};
