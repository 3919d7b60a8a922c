// SvcParams (RFC 9460 §2.2) walked and edited: which address hints they hold, and the same
// parameters without them, every other key kept byte for byte and in order.
#include "gate46/dns/svcb.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace gate46::dns {
namespace {

using bytes = std::vector<std::uint8_t>;

// key (u16), length (u16), value
bytes kv(std::uint16_t key, const bytes& value) {
  bytes out{static_cast<std::uint8_t>(key >> 8), static_cast<std::uint8_t>(key),
            static_cast<std::uint8_t>(value.size() >> 8), static_cast<std::uint8_t>(value.size())};
  out.insert(out.end(), value.begin(), value.end());
  return out;
}
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

bytes alpn() {  // key 1: "h2", "http/1.1"
  return kv(1, {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'});
}
bytes no_default_alpn() {  // key 2: empty value
  return kv(2, {});
}
bytes port() {  // key 3: 443
  return kv(3, {0x01, 0xbb});
}
bytes v4hint() {  // key 4: two addresses
  return kv(4, {192, 0, 2, 1, 192, 0, 2, 2});
}
bytes ech() {  // key 5: opaque
  return kv(5, {0x00, 0x08, 0xfe, 0x0d, 0x00, 0x04, 1, 2, 3, 4});
}
bytes v6hint() {  // key 6
  return kv(6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}
bytes private_key() {  // key65280 (private use)
  return kv(65280, {'x'});
}

TEST(svcb, hints_in_reports_each_family) {
  const auto none = hints_in(cat({alpn(), port(), ech()}));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->v4);
  EXPECT_FALSE(none->v6);
  const auto v4 = hints_in(cat({alpn(), v4hint()}));
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->v4);
  EXPECT_FALSE(v4->v6);
  const auto v6 = hints_in(cat({v6hint(), private_key()}));
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->v4);
  EXPECT_TRUE(v6->v6);
  const auto both = hints_in(cat({alpn(), port(), v4hint(), ech(), v6hint()}));
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->v4);
  EXPECT_TRUE(both->v6);
  const auto empty = hints_in({});  // AliasMode: no parameters at all
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->v4);
  EXPECT_FALSE(empty->v6);
}

TEST(svcb, strip_keeps_every_other_key_in_order) {
  const auto input = cat({alpn(), no_default_alpn(), port(), v4hint(), ech(), v6hint(), private_key()});
  const auto both = strip_address_hints(input, true, true);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->removed, 2U);
  EXPECT_EQ(both->params, cat({alpn(), no_default_alpn(), port(), ech(), private_key()}));

  const auto v4_only = strip_address_hints(input, true, false);
  ASSERT_TRUE(v4_only);
  EXPECT_EQ(v4_only->removed, 1U);
  EXPECT_EQ(v4_only->params, cat({alpn(), no_default_alpn(), port(), ech(), v6hint(), private_key()}));

  const auto v6_only = strip_address_hints(input, false, true);
  ASSERT_TRUE(v6_only);
  EXPECT_EQ(v6_only->removed, 1U);
  EXPECT_EQ(v6_only->params, cat({alpn(), no_default_alpn(), port(), v4hint(), ech(), private_key()}));

  const auto nothing = strip_address_hints(input, false, false);
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->removed, 0U);
  EXPECT_EQ(nothing->params, input);

  // Asked to strip what is not there: unchanged.
  const auto absent = strip_address_hints(cat({alpn(), port()}), true, true);
  ASSERT_TRUE(absent);
  EXPECT_EQ(absent->removed, 0U);
  EXPECT_EQ(absent->params, cat({alpn(), port()}));

  // Only hints: nothing left.
  const auto only_hints = strip_address_hints(cat({v4hint(), v6hint()}), true, true);
  ASSERT_TRUE(only_hints);
  EXPECT_EQ(only_hints->removed, 2U);
  EXPECT_TRUE(only_hints->params.empty());
}

TEST(svcb, mandatory_list_is_edited_and_dropped_when_empty) {
  // mandatory = alpn(), ipv4hint, ipv6hint
  const auto input = cat({kv(0, {0, 1, 0, 4, 0, 6}), alpn(), v4hint(), v6hint()});
  const auto v4 = strip_address_hints(input, true, false);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->params, cat({kv(0, {0, 1, 0, 6}), alpn(), v6hint()}));
  const auto both = strip_address_hints(input, true, true);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->params, cat({kv(0, {0, 1}), alpn()}));
  EXPECT_EQ(both->removed, 2U);  // the mandatory entries are not counted as hints

  // mandatory = ipv4hint only: the list goes with it.
  const auto only = strip_address_hints(cat({kv(0, {0, 4}), alpn(), v4hint()}), true, true);
  ASSERT_TRUE(only);
  EXPECT_EQ(only->params, alpn());
  EXPECT_EQ(only->removed, 1U);

  // Not stripping: the list stays as it was.
  const auto kept = strip_address_hints(input, false, false);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->params, input);
}

TEST(svcb, malformed_params_are_rejected) {
  const std::vector<bytes> malformed{
      {0x00},                                  // truncated key
      {0x00, 0x01, 0x00},                      // truncated length
      cat({alpn(), {0x00, 0x03}}),             // a whole parameter, then a truncated header
      {0x00, 0x03, 0x00, 0x02, 0x01},          // value shorter than its length
      {0x00, 0x04, 0xff, 0xff, 192, 0, 2, 1},  // length past the end
      cat({port(), alpn()}),                   // keys decreasing
      cat({alpn(), alpn()}),                   // key repeated
      cat({v6hint(), v4hint()}),               // hints out of order
  };
  for (const auto& m : malformed) {
    EXPECT_FALSE(hints_in(m)) << "size " << m.size();
    EXPECT_FALSE(strip_address_hints(m, true, true)) << "size " << m.size();
    EXPECT_FALSE(strip_address_hints(m, false, false)) << "size " << m.size();
  }
  // A mandatory list of odd length cannot be edited.
  EXPECT_FALSE(strip_address_hints(cat({kv(0, {0, 1, 0}), alpn(), v4hint()}), true, true));
}

TEST(svcb, keys_above_the_hints_and_large_values_survive) {
  bytes big(1000, 0xab);
  const auto input = cat({v4hint(), kv(7, {'/', 'q'}), kv(8, big), private_key()});
  const auto out = strip_address_hints(input, true, true);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->params, cat({kv(7, {'/', 'q'}), kv(8, big), private_key()}));
}

}  // namespace
}  // namespace gate46::dns
