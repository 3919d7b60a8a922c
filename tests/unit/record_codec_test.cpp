#include "gate46/mapping/record_codec.hpp"

#include <gtest/gtest.h>

namespace gate46::mapping::codec {
namespace {

using namespace std::string_literals;

byte_view view(const bytes& b) {
  return {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
}

mapping sample() {
  return mapping{*dns_name::parse("v6only.example"), *ip_address::parse("198.18.0.7"),
                 *ip_address::parse("2001:2::7"),    from_millis(1'700'000'000'000),
                 from_millis(1'700'000'001'000),     from_millis(1'700'000'061'000),
                 from_millis(1'700'000'121'000),     true};
}

TEST(record_codec, name_value_layout) {
  const auto encoded = encode_name_value(sample());
  ASSERT_EQ(encoded.size(), name_value_size);
  EXPECT_EQ(encoded[0], 1);                                 // version
  EXPECT_EQ(encoded[1], 1 | 2 | 4);                         // pinned, has v4, has v6
  EXPECT_EQ(encoded.substr(2, 4), "\xc6\x12\x00\x07"s);     // 198.18.0.7
  EXPECT_EQ(static_cast<unsigned char>(encoded[6]), 0x20);  // 2001:2::7 starts 20 01
  // created: 1'700'000'000'000 ms = 0x0000018BCFE56800, big-endian
  EXPECT_EQ(encoded.substr(22, 8), std::string("\x00\x00\x01\x8b\xcf\xe5\x68\x00", 8));
  EXPECT_EQ(decode_name_value(sample().name, view(encoded)), sample());
}

TEST(record_codec, name_value_rejects_what_it_did_not_write) {
  auto encoded = encode_name_value(sample());
  EXPECT_FALSE(decode_name_value(sample().name, view(encoded.substr(0, 53))));
  EXPECT_FALSE(decode_name_value(sample().name, view(encoded + "x")));
  auto bad_version = encoded;
  bad_version[0] = 2;
  EXPECT_FALSE(decode_name_value(sample().name, view(bad_version)));
  auto bad_flags = encoded;
  bad_flags[1] = 8;
  EXPECT_FALSE(decode_name_value(sample().name, view(bad_flags)));
  auto no_address = encoded;
  no_address[1] = 1;
  EXPECT_FALSE(decode_name_value(sample().name, view(no_address)));
  auto mapped_v6 = encode_name_value(sample());
  mapped_v6.replace(6, 16, std::string("\0\0\0\0\0\0\0\0\0\0\xff\xff\xc6\x12\0\x01", 16));
  EXPECT_FALSE(decode_name_value(sample().name, view(mapped_v6)));
}

TEST(record_codec, address_entries) {
  const address_entry mapped{address_entry::kind::mapped, {}, *dns_name::parse("a.example")};
  const auto encoded = encode_address_value(mapped);
  EXPECT_EQ(encoded.substr(10), std::string("\x01"
                                            "a"
                                            "\x07"
                                            "example"
                                            "\x00",
                                            11));
  EXPECT_EQ(decode_address_value(view(encoded)), mapped);

  const address_entry quarantined{address_entry::kind::quarantined, from_millis(42), std::nullopt};
  EXPECT_EQ(decode_address_value(view(encode_address_value(quarantined))), quarantined);

  EXPECT_FALSE(decode_address_value(view(encoded.substr(0, 9))));
  EXPECT_FALSE(decode_address_value(view(encoded.substr(0, encoded.size() - 1))));  // name without root
  EXPECT_FALSE(decode_address_value(view(encode_address_value(quarantined) + "x")));
  auto bad_kind = encoded;
  bad_kind[1] = 2;
  EXPECT_FALSE(decode_address_value(view(bad_kind)));

  const auto a = *ip_address::parse("198.18.0.7");
  EXPECT_EQ(decode_address_key(view(encode_address_key(a))), a);
  EXPECT_FALSE(decode_address_key(view("short"s)));
}

TEST(record_codec, lru_keys_sort_by_family_then_time) {
  const auto a = *ip_address::parse("198.18.0.9");
  const auto b = *ip_address::parse("198.18.0.1");
  const auto v6 = *ip_address::parse("2001:2::1");
  const auto early = encode_lru_key(a, from_millis(1000));
  const auto late = encode_lru_key(b, from_millis(2000));
  const auto before_epoch = encode_lru_key(b, from_millis(-5));
  EXPECT_LT(early, late);
  EXPECT_LT(before_epoch, early);
  EXPECT_LT(late, encode_lru_key(v6, from_millis(0)));
  EXPECT_LE(lru_range_start(ip_family::v4), before_epoch);
  const auto decoded = decode_lru_key(view(late));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->address, b);
  EXPECT_EQ(decoded->last_used, from_millis(2000));
  auto wrong_family = late;
  wrong_family[0] = 6;
  EXPECT_FALSE(decode_lru_key(view(wrong_family)));
}

}  // namespace
}  // namespace gate46::mapping::codec
