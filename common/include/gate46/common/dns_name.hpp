// A domain name as a value: its wire format (RFC 1035 §3.1), lower-cased (ASCII only, as DNS
// compares names), so that equal names are equal bytes. The mapping store keys on these bytes
// and hashes them for placement; the DNS proxy builds them from query packets; the CLI and the
// SOCKS server from text.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace gate46 {

class dns_name {
 public:
  static constexpr std::size_t max_wire_length = 255;

  // The root name (".").
  dns_name() : wire_(1, '\0') {}

  // Presentation form: "Example.COM", "example.com." (both absolute), "a\.b.example",
  // "\065bc.example" (RFC 1035 §5.1 escapes). Rejects empty labels, labels over 63 bytes,
  // names over 255 bytes in wire form.
  static std::optional<dns_name> parse(std::string_view text);
  // Uncompressed wire form, exactly one name, ending in the root label.
  static std::optional<dns_name> from_wire(std::span<const std::uint8_t> wire);

  // Lower-cased wire bytes.
  [[nodiscard]] std::span<const std::uint8_t> wire() const noexcept {
    return {reinterpret_cast<const std::uint8_t*>(wire_.data()), wire_.size()};
  }
  [[nodiscard]] std::string_view wire_view() const noexcept { return wire_; }
  // Absolute presentation form with a trailing dot, non-printable bytes and dots inside labels
  // escaped: parse(to_string()) == *this.
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] bool is_root() const noexcept { return wire_.size() == 1; }
  // True if this name equals `suffix` or lies below it.
  [[nodiscard]] bool is_subdomain_of(const dns_name& suffix) const noexcept;

  friend bool operator==(const dns_name&, const dns_name&) = default;
  friend auto operator<=>(const dns_name&, const dns_name&) = default;

 private:
  explicit dns_name(std::string wire) : wire_{std::move(wire)} {}
  std::string wire_;
};

}  // namespace gate46
