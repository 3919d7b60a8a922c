#include "gate46/common/dns_name.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace gate46 {
namespace {

std::string wire_of(std::string_view text) {
  auto n = dns_name::parse(text);
  EXPECT_TRUE(n) << text;
  return n ? std::string{n->wire_view()} : std::string{};
}

TEST(dns_name, parses_to_lower_cased_wire_form) {
  EXPECT_EQ(wire_of("Example.COM"), std::string("\x07"
                                                "example"
                                                "\x03"
                                                "com"
                                                "\x00",
                                                13));
  EXPECT_EQ(wire_of("example.com."), wire_of("EXAMPLE.com"));
  EXPECT_EQ(wire_of("."), std::string(1, '\0'));
  EXPECT_TRUE(dns_name::parse(".")->is_root());
}

TEST(dns_name, escapes_round_trip) {
  const auto n = *dns_name::parse("a\\.b.ex\\065mple.\\000x");
  EXPECT_EQ(n.wire_view(), std::string("\x03"
                                       "a.b"
                                       "\x07"
                                       "example"
                                       "\x02"
                                       "\x00x"
                                       "\x00",
                                       16));
  EXPECT_EQ(n.to_string(), "a\\.b.example.\\000x.");
  EXPECT_EQ(*dns_name::parse(n.to_string()), n);
}

TEST(dns_name, rejects_malformed_text) {
  for (const char* bad : {"", "..", "a..b", ".a", "a\\", "a\\25", "a\\256", "a\\2x5"}) {
    EXPECT_FALSE(dns_name::parse(bad)) << bad;
  }
  // Built by appending: g++ 12 warns falsely (-Warray-bounds) on some string concatenations.
  const auto labels = [](std::initializer_list<std::size_t> sizes) {
    std::string text;
    for (const auto size : sizes) {
      text.append(size, 'a');
      text.push_back('.');
    }
    return text;
  };
  EXPECT_FALSE(dns_name::parse(labels({64, 7})));
  EXPECT_TRUE(dns_name::parse(labels({63, 7})));
  // 4 labels of 63 bytes = 256 bytes of wire form: one too many.
  EXPECT_FALSE(dns_name::parse(labels({63, 63, 63, 63})));
  EXPECT_TRUE(dns_name::parse(labels({63, 63, 63, 61})));
}

TEST(dns_name, from_wire_checks_every_length) {
  const std::vector<std::uint8_t> good{3, 'W', 'w', 'W', 0};
  EXPECT_EQ(dns_name::from_wire(good)->to_string(), "www.");
  for (const auto& bad : std::vector<std::vector<std::uint8_t>>{
           {}, {3, 'a', 'b'}, {3, 'a', 'b', 'c'}, {1, 'a', 0, 0}, {64}, {0xc0, 0x0c}, {1, 'a', 0, 'x'}}) {
    EXPECT_FALSE(dns_name::from_wire(bad));
  }
}

TEST(dns_name, subdomains) {
  const auto name = *dns_name::parse("www.v6only.example");
  EXPECT_TRUE(name.is_subdomain_of(*dns_name::parse("v6only.example")));
  EXPECT_TRUE(name.is_subdomain_of(*dns_name::parse("EXAMPLE")));
  EXPECT_TRUE(name.is_subdomain_of(name));
  EXPECT_TRUE(name.is_subdomain_of(dns_name{}));
  EXPECT_FALSE(name.is_subdomain_of(*dns_name::parse("only.example")));  // label boundary
  EXPECT_FALSE(name.is_subdomain_of(*dns_name::parse("a.www.v6only.example")));
}

}  // namespace
}  // namespace gate46
