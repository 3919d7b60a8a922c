// The store's on-disk record decoders (record_codec.hpp), fed bytes as another process, an
// older version or a damaged file could have written them. Every decoder either rejects its
// input or returns a value that survives a round trip: encoding it and decoding the result
// gives the same value again.
//
// Input: a selector byte, then the decoder's bytes.
//   0  names value   | key length K | K key bytes (the wire name; the root name if invalid) | value
//   1  addrs key     | bytes
//   2  addrs value   | bytes
//   3  lru key       | bytes
//   4  meta counter  | bytes
//   5  names key     | bytes (dns_name::from_wire, as list() decodes keys)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>

#include "gate46/common/dns_name.hpp"
#include "gate46/mapping/record_codec.hpp"

namespace {

namespace codec = gate46::mapping::codec;

codec::byte_view view(const codec::bytes& b) {
  return {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
}

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "record_codec_fuzz: round trip broken: %s\n", what);
    std::abort();
  }
}

void names_value(codec::byte_view in) {
  if (in.empty()) {
    return;
  }
  const std::size_t key_size = std::min<std::size_t>(in[0], in.size() - 1);
  const auto name = gate46::dns_name::from_wire(in.subspan(1, key_size)).value_or(gate46::dns_name{});
  const auto decoded = codec::decode_name_value(name, in.subspan(1 + key_size));
  if (!decoded) {
    return;
  }
  require(decoded->name == name, "names value: the name");
  const auto encoded = codec::encode_name_value(*decoded);
  require(encoded.size() == codec::name_value_size, "names value: encoded size");
  const auto again = codec::decode_name_value(name, view(encoded));
  require(again.has_value(), "names value: re-encoding rejected");
  require(again->v4 == decoded->v4 && again->v6 == decoded->v6, "names value: addresses");
  require(again->pinned == decoded->pinned, "names value: pinned");
  require(again->created == decoded->created, "names value: created");
  require(again->last_used == decoded->last_used, "names value: last_used");
  require(again->expiry == decoded->expiry, "names value: expiry");
  require(again->held_until == decoded->held_until, "names value: held_until");
  require(*again == *decoded, "names value");
}

void addrs_key(codec::byte_view in) {
  const auto decoded = codec::decode_address_key(in);
  if (!decoded) {
    return;
  }
  const auto again = codec::decode_address_key(view(codec::encode_address_key(*decoded)));
  require(again == decoded, "addrs key");
}

void addrs_value(codec::byte_view in) {
  const auto decoded = codec::decode_address_value(in);
  if (!decoded) {
    return;
  }
  const auto again = codec::decode_address_value(view(codec::encode_address_value(*decoded)));
  require(again.has_value(), "addrs value: re-encoding rejected");
  require(again->state == decoded->state && again->name == decoded->name, "addrs value: kind and name");
  require(again->until == decoded->until, "addrs value: until");
}

void lru_key(codec::byte_view in) {
  const auto decoded = codec::decode_lru_key(in);
  if (!decoded) {
    return;
  }
  const auto again = codec::decode_lru_key(view(codec::encode_lru_key(decoded->address, decoded->last_used)));
  require(again.has_value(), "lru key: re-encoding rejected");
  require(again->address == decoded->address, "lru key: address");
  require(again->last_used == decoded->last_used, "lru key: last_used");
}

void meta_counter(codec::byte_view in) {
  const auto decoded = codec::decode_u64(in);
  if (!decoded) {
    return;
  }
  require(codec::decode_u64(view(codec::encode_u64(*decoded))) == decoded, "meta counter");
}

void names_key(codec::byte_view in) {
  const auto decoded = gate46::dns_name::from_wire(in);
  if (!decoded) {
    return;
  }
  require(gate46::dns_name::from_wire(decoded->wire()) == decoded, "names key");
  require(decoded->wire().size() <= gate46::dns_name::max_wire_length, "names key: length");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const codec::byte_view in{data + 1, size - 1};
  switch (data[0] % 6) {
    case 0:
      names_value(in);
      break;
    case 1:
      addrs_key(in);
      break;
    case 2:
      addrs_value(in);
      break;
    case 3:
      lru_key(in);
      break;
    case 4:
      meta_counter(in);
      break;
    default:
      names_key(in);
      break;
  }
  return 0;
}
