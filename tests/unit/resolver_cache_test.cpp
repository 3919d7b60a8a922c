// answer_cache: real upstream answers kept for their TTL (positive, and negative per RFC 2308),
// aged in whole seconds, bounded with least-recently-used eviction, never holding what must not
// be cached (TTL zero), and safe from several threads. Time is passed in, so nothing sleeps.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/dns/message.hpp"
#include "gate46/dns/resolver.hpp"

namespace gate46::dns {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

question q_of(std::string_view name, std::uint16_t type = rr_type::a, std::uint16_t qclass = class_in) {
  return question{*dns_name::parse(name), type, qclass};
}

// An answer as the resolver would cache it; the cache only looks at cache_ttl, `marker` tells
// answers apart.
std::shared_ptr<const answer> answer_with_ttl(std::chrono::seconds ttl, std::uint8_t marker = 0) {
  auto a = std::make_shared<answer>();
  a->wire = {marker};
  a->cache_ttl = ttl;
  return a;
}

constexpr steady_clock::time_point t0 = steady_clock::time_point{} + 1000h;

TEST(resolver_cache, misses_when_empty) {
  answer_cache cache{16};
  EXPECT_FALSE(cache.get(q_of("www.gate46.test"), t0).has_value());
  EXPECT_EQ(cache.size(), 0U);
}

TEST(resolver_cache, returns_the_stored_answer_with_age_zero_at_once) {
  answer_cache cache{16};
  const auto a = answer_with_ttl(300s, 7);
  cache.put(q_of("www.gate46.test"), a, t0);
  const auto hit = cache.get(q_of("www.gate46.test"), t0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->a, a);  // the same shared answer, not a copy
  EXPECT_EQ(hit->age, 0s);
  EXPECT_EQ(cache.size(), 1U);
}

TEST(resolver_cache, age_is_whole_seconds_since_stored) {
  answer_cache cache{16};
  cache.put(q_of("www.gate46.test"), answer_with_ttl(300s), t0);
  EXPECT_EQ(cache.get(q_of("www.gate46.test"), t0 + 999ms)->age, 0s);
  EXPECT_EQ(cache.get(q_of("www.gate46.test"), t0 + 7900ms)->age, 7s);  // rounded down: TTLs never grow
  EXPECT_EQ(cache.get(q_of("www.gate46.test"), t0 + 299s)->age, 299s);
}

TEST(resolver_cache, expires_exactly_at_the_ttl_and_forgets_the_entry) {
  answer_cache cache{16};
  cache.put(q_of("www.gate46.test"), answer_with_ttl(10s), t0);
  EXPECT_TRUE(cache.get(q_of("www.gate46.test"), t0 + 10s - 1ms).has_value());
  EXPECT_FALSE(cache.get(q_of("www.gate46.test"), t0 + 10s).has_value());
  EXPECT_EQ(cache.size(), 0U) << "an expired entry found by get() is removed";
  // And it stays gone even if asked about "earlier" again.
  EXPECT_FALSE(cache.get(q_of("www.gate46.test"), t0).has_value());
}

TEST(resolver_cache, zero_ttl_is_not_cached) {
  answer_cache cache{16};
  cache.put(q_of("zero.gate46.test"), answer_with_ttl(0s), t0);
  EXPECT_EQ(cache.size(), 0U);
  EXPECT_FALSE(cache.get(q_of("zero.gate46.test"), t0).has_value());
}

TEST(resolver_cache, zero_ttl_does_not_replace_a_live_entry) {
  // Putting an uncacheable answer is ignored altogether: the earlier answer stays.
  answer_cache cache{16};
  const auto first = answer_with_ttl(60s, 1);
  cache.put(q_of("www.gate46.test"), first, t0);
  cache.put(q_of("www.gate46.test"), answer_with_ttl(0s, 2), t0 + 1s);
  const auto hit = cache.get(q_of("www.gate46.test"), t0 + 2s);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->a, first);
}

TEST(resolver_cache, a_new_answer_replaces_the_old_one_and_restarts_its_age) {
  answer_cache cache{16};
  cache.put(q_of("www.gate46.test"), answer_with_ttl(10s, 1), t0);
  const auto second = answer_with_ttl(10s, 2);
  cache.put(q_of("www.gate46.test"), second, t0 + 8s);
  EXPECT_EQ(cache.size(), 1U);
  const auto hit = cache.get(q_of("www.gate46.test"), t0 + 12s);  // past the first one's expiry
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->a, second);
  EXPECT_EQ(hit->age, 4s);
}

TEST(resolver_cache, keys_on_name_ignoring_case_and_on_type_and_class) {
  answer_cache cache{16};
  const auto a = answer_with_ttl(60s, 1);
  const auto aaaa = answer_with_ttl(60s, 2);
  cache.put(q_of("www.gate46.test", rr_type::a), a, t0);
  cache.put(q_of("www.gate46.test", rr_type::aaaa), aaaa, t0);
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_EQ(cache.get(q_of("WwW.GaTe46.TeSt", rr_type::a), t0)->a, a);
  EXPECT_EQ(cache.get(q_of("www.gate46.test.", rr_type::aaaa), t0)->a, aaaa);
  EXPECT_FALSE(cache.get(q_of("www.gate46.test", rr_type::txt), t0).has_value());
  EXPECT_FALSE(cache.get(q_of("www.gate46.test", rr_type::a, 3 /* CH */), t0).has_value());
  EXPECT_FALSE(cache.get(q_of("ww.gate46.test", rr_type::a), t0).has_value());
  EXPECT_FALSE(cache.get(q_of("www.gate46.test.example", rr_type::a), t0).has_value());
}

TEST(resolver_cache, holds_at_most_its_bound) {
  answer_cache cache{3};
  for (int i = 0; i < 10; ++i) {
    cache.put(q_of("n" + std::to_string(i) + ".gate46.test"), answer_with_ttl(60s), t0);
    EXPECT_LE(cache.size(), 3U);
  }
  EXPECT_EQ(cache.size(), 3U);
  // The last three stay.
  for (int i = 7; i < 10; ++i) {
    EXPECT_TRUE(cache.get(q_of("n" + std::to_string(i) + ".gate46.test"), t0).has_value()) << i;
  }
  EXPECT_FALSE(cache.get(q_of("n6.gate46.test"), t0).has_value());
}

// Recency counts to within 5 s (an entry moves to the front at most that often): the steps
// here are wider than that.
TEST(resolver_cache, evicts_the_least_recently_used_not_the_oldest) {
  answer_cache cache{3};
  cache.put(q_of("a.gate46.test"), answer_with_ttl(60s), t0);
  cache.put(q_of("b.gate46.test"), answer_with_ttl(60s), t0 + 6s);
  cache.put(q_of("c.gate46.test"), answer_with_ttl(60s), t0 + 12s);
  ASSERT_TRUE(cache.get(q_of("a.gate46.test"), t0 + 18s).has_value());  // a is now the most recent
  cache.put(q_of("d.gate46.test"), answer_with_ttl(60s), t0 + 24s);     // evicts b
  EXPECT_EQ(cache.size(), 3U);
  EXPECT_TRUE(cache.get(q_of("a.gate46.test"), t0 + 30s).has_value());
  EXPECT_FALSE(cache.get(q_of("b.gate46.test"), t0 + 30s).has_value());
  EXPECT_TRUE(cache.get(q_of("c.gate46.test"), t0 + 30s).has_value());
  EXPECT_TRUE(cache.get(q_of("d.gate46.test"), t0 + 30s).has_value());
}

TEST(resolver_cache, a_hit_within_seconds_of_the_last_move_keeps_the_order) {
  answer_cache cache{2};
  cache.put(q_of("a.gate46.test"), answer_with_ttl(60s), t0);
  cache.put(q_of("b.gate46.test"), answer_with_ttl(60s), t0);
  ASSERT_TRUE(cache.get(q_of("a.gate46.test"), t0 + 1s).has_value());  // too soon to move: a stays last
  cache.put(q_of("c.gate46.test"), answer_with_ttl(60s), t0 + 2s);     // evicts a
  EXPECT_FALSE(cache.get(q_of("a.gate46.test"), t0 + 3s).has_value());
  EXPECT_TRUE(cache.get(q_of("b.gate46.test"), t0 + 3s).has_value());
}

TEST(resolver_cache, replacing_an_entry_does_not_evict_another) {
  answer_cache cache{2};
  cache.put(q_of("a.gate46.test"), answer_with_ttl(60s), t0);
  cache.put(q_of("b.gate46.test"), answer_with_ttl(60s), t0);
  cache.put(q_of("a.gate46.test"), answer_with_ttl(60s), t0 + 1s);
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_TRUE(cache.get(q_of("a.gate46.test"), t0 + 2s).has_value());
  EXPECT_TRUE(cache.get(q_of("b.gate46.test"), t0 + 2s).has_value());
}

// ---- with answers as accept_upstream_answer makes them -------------------------------------

// Header, then the question www.gate46.test/A/IN, as an upstream would send it.
bytes upstream_answer(std::uint16_t id, std::uint8_t rcode_value, std::initializer_list<std::uint8_t> sections,
                      std::uint16_t ancount, std::uint16_t nscount) {
  bytes out{static_cast<std::uint8_t>(id >> 8),
            static_cast<std::uint8_t>(id),  // ID
            0x81,
            static_cast<std::uint8_t>(0x80 | rcode_value),  // QR RD, RA + rcode
            0x00,
            0x01,  // QDCOUNT 1
            static_cast<std::uint8_t>(ancount >> 8),
            static_cast<std::uint8_t>(ancount),
            static_cast<std::uint8_t>(nscount >> 8),
            static_cast<std::uint8_t>(nscount),
            0x00,
            0x00,  // ARCOUNT 0
            3,
            'w',
            'w',
            'w',
            6,
            'g',
            'a',
            't',
            'e',
            '4',
            '6',
            4,
            't',
            'e',
            's',
            't',
            0,
            0x00,
            0x01,
            0x00,
            0x01};  // QTYPE A, QCLASS IN
  out.insert(out.end(), sections);
  return out;
}

TEST(resolver_cache, caches_a_positive_answer_for_its_smallest_ttl) {
  // Two A records, TTLs 300 and 45: cached for 45 s.
  const auto wire = upstream_answer(0x1234, 0, {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01,  // www (pointer), A, IN
                                                0x00, 0x00, 0x01, 0x2c,              // TTL 300
                                                0x00, 0x04, 203,  0,    113,  20,    // RDLENGTH 4, address
                                                0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01,  // www, A, IN
                                                0x00, 0x00, 0x00, 0x2d,              // TTL 45
                                                0x00, 0x04, 203,  0,    113,  21},
                                    2, 0);
  const auto q = q_of("www.gate46.test");
  auto accepted = accept_upstream_answer(wire, 0x1234, q);
  ASSERT_TRUE(accepted.has_value());
  answer_cache cache{16};
  cache.put(q, std::make_shared<const answer>(std::move(*accepted)), t0);
  EXPECT_TRUE(cache.get(q, t0 + 44s).has_value());
  EXPECT_FALSE(cache.get(q, t0 + 45s).has_value());
}

TEST(resolver_cache, caches_nxdomain_for_the_negative_ttl_of_rfc_2308) {
  // NXDOMAIN with the zone's SOA in authority: SOA TTL 300, MINIMUM 60 -> min(300, 60) = 60 s.
  const auto wire = upstream_answer(0x4321, 3, {0xc0, 0x10, 0x00, 0x06, 0x00, 0x01,  // gate46.test (pointer), SOA, IN
                                                0x00, 0x00, 0x01, 0x2c,              // TTL 300
                                                0x00, 0x1e,                          // RDLENGTH 30
                                                2,    'n',  's',  0xc0, 0x10,        // MNAME ns.gate46.test
                                                2,    'h',  'm',  0xc0, 0x10,        // RNAME hm.gate46.test
                                                0x00, 0x00, 0x00, 0x01,              // SERIAL
                                                0x00, 0x00, 0x0e, 0x10,              // REFRESH
                                                0x00, 0x00, 0x02, 0x58,              // RETRY
                                                0x00, 0x01, 0x51, 0x80,              // EXPIRE
                                                0x00, 0x00, 0x00, 0x3c},             // MINIMUM 60
                                    0, 1);
  const auto q = q_of("www.gate46.test");
  auto accepted = accept_upstream_answer(wire, 0x4321, q);
  ASSERT_TRUE(accepted.has_value());
  EXPECT_EQ(accepted->code, rcode::nxdomain);
  answer_cache cache{16};
  cache.put(q, std::make_shared<const answer>(std::move(*accepted)), t0);
  const auto hit = cache.get(q, t0 + 59s);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->a->code, rcode::nxdomain);
  EXPECT_FALSE(cache.get(q, t0 + 60s).has_value());
}

TEST(resolver_cache, does_not_cache_servfail_or_a_negative_answer_without_soa) {
  const auto q = q_of("www.gate46.test");
  answer_cache cache{16};
  auto servfail = accept_upstream_answer(upstream_answer(1, 2, {}, 0, 0), 1, q);
  ASSERT_TRUE(servfail.has_value());
  cache.put(q, std::make_shared<const answer>(std::move(*servfail)), t0);
  EXPECT_EQ(cache.size(), 0U);
  auto bare_nxdomain = accept_upstream_answer(upstream_answer(2, 3, {}, 0, 0), 2, q);
  ASSERT_TRUE(bare_nxdomain.has_value());
  cache.put(q, std::make_shared<const answer>(std::move(*bare_nxdomain)), t0);
  EXPECT_EQ(cache.size(), 0U);
}

TEST(resolver_cache, is_safe_from_several_threads_and_stays_bounded) {
  // Four threads get and put 20 shared names (hits) plus a stream of names of their own that
  // overflow the bound (evictions); under the sanitizer build a race would show.
  answer_cache cache{32};
  std::atomic<unsigned> hits{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (unsigned i = 0; i < 2000; ++i) {
        const auto now = t0 + std::chrono::milliseconds{i};
        const auto q = q_of("n" + std::to_string(i % 20) + ".gate46.test");
        if (cache.get(q, now)) {
          ++hits;
        } else {
          cache.put(q, answer_with_ttl(60s), now);
        }
        if (i % 10 == 0) {
          cache.put(q_of("t" + std::to_string(t) + "-" + std::to_string(i) + ".gate46.test"), answer_with_ttl(60s),
                    now);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_LE(cache.size(), 32U);
  EXPECT_GT(hits.load(), 0U);
}

}  // namespace
}  // namespace gate46::dns
