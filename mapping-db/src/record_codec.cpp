#include "gate46/mapping/record_codec.hpp"

#include <algorithm>
#include <limits>

namespace gate46::mapping::codec {
namespace {

constexpr std::uint8_t flag_pinned = 1;
constexpr std::uint8_t flag_v4 = 2;
constexpr std::uint8_t flag_v6 = 4;
constexpr std::uint8_t known_flags = flag_pinned | flag_v4 | flag_v6;

void put_u64(bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::uint64_t get_u64(byte_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    v = (v << 8) | in[i];
  }
  return v;
}

void put_i64(bytes& out, std::int64_t v) {
  put_u64(out, static_cast<std::uint64_t>(v));
}
std::int64_t get_i64(byte_view in) {
  return static_cast<std::int64_t>(get_u64(in));
}

// Times a time_point can hold: system_clock counts nanoseconds in 64 bits, about +-292 years.
// A stored value outside that did not come from the encoder: the record is rejected.
constexpr std::int64_t max_millis = std::numeric_limits<std::int64_t>::max() / 1'000'000;

std::optional<time_point> checked_time(std::int64_t ms) {
  if (ms > max_millis || ms < -max_millis) {
    return std::nullopt;
  }
  return from_millis(ms);
}

void put_bytes(bytes& out, std::span<const std::uint8_t> b) {
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace

std::int64_t to_millis(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

time_point from_millis(std::int64_t ms) noexcept {
  return time_point{std::chrono::duration_cast<time_point::duration>(std::chrono::milliseconds{ms})};
}

bytes encode_name_value(const mapping& m) {
  bytes out;
  out.reserve(name_value_size);
  out.push_back(static_cast<char>(record_version));
  const std::uint8_t flags = (m.pinned ? flag_pinned : 0) | (m.v4 ? flag_v4 : 0) | (m.v6 ? flag_v6 : 0);
  out.push_back(static_cast<char>(flags));
  const std::array<std::uint8_t, 4> v4 = m.v4 ? m.v4->v4_bytes() : std::array<std::uint8_t, 4>{};
  put_bytes(out, v4);
  const ip_address::bytes_type v6 = m.v6 ? m.v6->v6_bytes() : ip_address::bytes_type{};
  put_bytes(out, v6);
  put_i64(out, to_millis(m.created));
  put_i64(out, to_millis(m.last_used));
  put_i64(out, to_millis(m.expiry));
  put_i64(out, to_millis(m.held_until));
  return out;
}

std::optional<mapping> decode_name_value(const dns_name& name, byte_view value) {
  if (value.size() != name_value_size || value[0] != record_version || (value[1] & ~known_flags) != 0) {
    return std::nullopt;
  }
  const std::uint8_t flags = value[1];
  mapping m{name, std::nullopt, std::nullopt, {}, {}, {}, {}, (flags & flag_pinned) != 0};
  if ((flags & flag_v4) != 0) {
    m.v4 = ip_address::from_v4({value[2], value[3], value[4], value[5]});
  }
  if ((flags & flag_v6) != 0) {
    ip_address::bytes_type v6{};
    std::copy_n(value.begin() + 6, 16, v6.begin());
    const auto address = ip_address::from_v6(v6);
    if (address.is_v4()) {
      return std::nullopt;  // a v4-mapped address is never an IPv6 pool address
    }
    m.v6 = address;
  }
  if (!m.v4 && !m.v6) {
    return std::nullopt;  // a mapping without an address is removed, never stored
  }
  const auto created = checked_time(get_i64(value.subspan(22, 8)));
  const auto last_used = checked_time(get_i64(value.subspan(30, 8)));
  const auto expiry = checked_time(get_i64(value.subspan(38, 8)));
  const auto held_until = checked_time(get_i64(value.subspan(46, 8)));
  if (!created || !last_used || !expiry || !held_until) {
    return std::nullopt;
  }
  m.created = *created;
  m.last_used = *last_used;
  m.expiry = *expiry;
  m.held_until = *held_until;
  return m;
}

bytes encode_address_key(const ip_address& address) {
  bytes out;
  put_bytes(out, address.v6_bytes());
  return out;
}

std::optional<ip_address> decode_address_key(byte_view key) {
  if (key.size() != 16) {
    return std::nullopt;
  }
  ip_address::bytes_type b{};
  std::copy(key.begin(), key.end(), b.begin());
  return ip_address::from_v6(b);
}

bytes encode_address_value(const address_entry& entry) {
  bytes out;
  out.push_back(static_cast<char>(record_version));
  out.push_back(static_cast<char>(entry.state));
  put_i64(out, to_millis(entry.until));
  if (entry.name) {
    put_bytes(out, entry.name->wire());
  }
  return out;
}

std::optional<address_entry> decode_address_value(byte_view value) {
  if (value.size() < 10 || value[0] != record_version || value[1] > 1) {
    return std::nullopt;
  }
  address_entry entry;
  entry.state = static_cast<address_entry::kind>(value[1]);
  const auto until = checked_time(get_i64(value.subspan(2, 8)));
  if (!until) {
    return std::nullopt;
  }
  entry.until = *until;
  const auto name_bytes = value.subspan(10);
  if (entry.state == address_entry::kind::mapped) {
    entry.name = dns_name::from_wire(name_bytes);
    if (!entry.name) {
      return std::nullopt;
    }
  } else if (!name_bytes.empty()) {
    return std::nullopt;
  }
  return entry;
}

bytes encode_lru_key(const ip_address& address, time_point last_used) {
  bytes out;
  out.push_back(address.is_v4() ? 4 : 6);
  // Offset binary keeps the byte order equal to the time order, also before 1970.
  put_u64(out, static_cast<std::uint64_t>(to_millis(last_used)) ^ (std::uint64_t{1} << 63));
  put_bytes(out, address.v6_bytes());
  return out;
}

std::optional<lru_key> decode_lru_key(byte_view key) {
  if (key.size() != 25 || (key[0] != 4 && key[0] != 6)) {
    return std::nullopt;
  }
  const auto address = decode_address_key(key.subspan(9));
  if (!address || address->is_v4() != (key[0] == 4)) {
    return std::nullopt;
  }
  const auto last_used = checked_time(static_cast<std::int64_t>(get_u64(key.subspan(1, 8)) ^ (std::uint64_t{1} << 63)));
  if (!last_used) {
    return std::nullopt;
  }
  return lru_key{*address, *last_used};
}

bytes lru_range_start(ip_family family) {
  return bytes(1, family == ip_family::v4 ? 4 : 6);
}

bytes encode_u64(std::uint64_t v) {
  bytes out;
  put_u64(out, v);
  return out;
}

std::optional<std::uint64_t> decode_u64(byte_view value) {
  if (value.size() != 8) {
    return std::nullopt;
  }
  return get_u64(value);
}

}  // namespace gate46::mapping::codec
