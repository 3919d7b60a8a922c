// The store's on-disk byte encodings: explicit, versioned, big-endian, never raw structs.
// Decoders take bytes read from a file another process (or an older version) wrote, so they
// check every length and value and return nullopt on anything unexpected. Pure functions.
//
//   names   key: lower-cased wire name
//           value: version=1 | flags (1 pinned, 2 has v4, 4 has v6) | v4[4] | v6[16]
//                  | created | last_used | expiry | held_until         (times: i64 ms since epoch)
//   addrs   key: address[16] (IPv4 as ::ffff:a.b.c.d)
//           value: version=1 | kind (0 mapped, 1 quarantined) | until (i64 ms) | name wire bytes
//                  (mapped: the name; quarantined: empty, until = end of quarantine)
//   lru     key: family (4 or 6) | last_used (u64 ms) | address[16]; value empty
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "gate46/common/address.hpp"
#include "gate46/mapping/mapping.hpp"

namespace gate46::mapping::codec {

using bytes = std::string;  // LMDB values are copied out into these
using byte_view = std::span<const std::uint8_t>;

constexpr std::uint8_t record_version = 1;
constexpr std::size_t name_value_size = 54;

// names: the value for a mapping (its name is the key).
bytes encode_name_value(const mapping& m);
// `name` is the decoded key. nullopt: wrong size, version, flags, or an address of the wrong form.
std::optional<mapping> decode_name_value(const dns_name& name, byte_view value);

// addrs
struct address_entry {
  enum class kind : std::uint8_t { mapped = 0, quarantined = 1 };
  kind state = kind::mapped;
  time_point until;              // quarantined: until then
  std::optional<dns_name> name;  // mapped: the owner
  friend bool operator==(const address_entry&, const address_entry&) = default;
};
bytes encode_address_key(const ip_address& address);
std::optional<ip_address> decode_address_key(byte_view key);
bytes encode_address_value(const address_entry& entry);
std::optional<address_entry> decode_address_value(byte_view value);

// lru: ordered by family, then last use, then address.
bytes encode_lru_key(const ip_address& address, time_point last_used);
struct lru_key {
  ip_address address;
  time_point last_used;
};
std::optional<lru_key> decode_lru_key(byte_view key);
// The smallest key of a family's range (for a cursor's MDB_SET_RANGE).
bytes lru_range_start(ip_family family);

// Times are stored in whole milliseconds.
std::int64_t to_millis(time_point t) noexcept;
time_point from_millis(std::int64_t ms) noexcept;

// u64 counters in the meta table.
bytes encode_u64(std::uint64_t v);
std::optional<std::uint64_t> decode_u64(byte_view value);

}  // namespace gate46::mapping::codec
