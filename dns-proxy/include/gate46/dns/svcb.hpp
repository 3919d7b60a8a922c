// SVCB and HTTPS records (RFC 9460) carry address hints a client may connect to without asking
// for A or AAAA: where the policy fakes a family for the target name, those hints would let
// the client go around the gateway. This walks the SvcParams wire format and takes them out,
// keeping every other parameter (alpn, port, ech, ...) byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace gate46::dns {

namespace svc_param {
inline constexpr std::uint16_t mandatory = 0;
inline constexpr std::uint16_t ipv4hint = 4;
inline constexpr std::uint16_t ipv6hint = 6;
}  // namespace svc_param

struct svc_params_edit {
  std::vector<std::uint8_t> params;  // the new SvcParams
  unsigned removed = 0;              // hint parameters taken out
};

// Which hints the SvcParams `params` hold (key 4, key 6); nullopt when they are malformed
// (a truncated key or value, keys not strictly increasing, RFC 9460 §2.2).
struct svc_hints {
  bool v4 = false;
  bool v6 = false;
};
std::optional<svc_hints> hints_in(std::span<const std::uint8_t> params);

// `params` without ipv4hint (when strip_v4) and ipv6hint (when strip_v6); a `mandatory` list
// that named them loses them too, and goes when it is left empty. nullopt when malformed.
std::optional<svc_params_edit> strip_address_hints(std::span<const std::uint8_t> params, bool strip_v4, bool strip_v6);

}  // namespace gate46::dns
