// RFC 8305's address order and attempt timing, without sockets.
#include <gtest/gtest.h>

#include "gate46/gateway/happy_eyeballs.hpp"

namespace {

using namespace gate46;
using namespace gate46::gateway;
using namespace std::chrono_literals;

ip_address addr(const char* text) {
  return *ip_address::parse(text);
}

std::vector<std::string> texts(const std::vector<ip_address>& list) {
  std::vector<std::string> out;
  out.reserve(list.size());
  for (const auto& a : list) {
    out.push_back(a.to_string());
  }
  return out;
}

TEST(happy_eyeballs, families_alternate_starting_with_the_preferred_one) {
  const std::vector<ip_address> v6{addr("2001:db8::1"), addr("2001:db8::2"), addr("2001:db8::3")};
  const std::vector<ip_address> v4{addr("192.0.2.1"), addr("192.0.2.2")};
  EXPECT_EQ(texts(interleave_families(v6, v4, ip_family::v6)),
            (std::vector<std::string>{"2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "2001:db8::3"}));
  EXPECT_EQ(texts(interleave_families(v6, v4, ip_family::v4)),
            (std::vector<std::string>{"192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2", "2001:db8::3"}));
}

TEST(happy_eyeballs, one_family_alone_keeps_its_order_and_duplicates_go) {
  const std::vector<ip_address> v4{addr("192.0.2.2"), addr("192.0.2.1"), addr("192.0.2.2")};
  EXPECT_EQ(texts(interleave_families({}, v4, ip_family::v6)), (std::vector<std::string>{"192.0.2.2", "192.0.2.1"}));
  EXPECT_TRUE(interleave_families({}, {}, ip_family::v6).empty());
}

TEST(happy_eyeballs, the_next_attempt_waits_the_delay_unless_the_last_one_failed) {
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_EQ(next_attempt_at(t0, false, 250ms, t0 + 10ms), t0 + 250ms);
  EXPECT_EQ(next_attempt_at(t0, true, 250ms, t0 + 10ms), t0 + 10ms);
  EXPECT_EQ(next_attempt_at(t0, false, 250ms, t0 + 300ms), t0 + 300ms);  // never in the past
}

}  // namespace
