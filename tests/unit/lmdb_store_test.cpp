// The LMDB mapping store in one process, on a file in a temporary directory, with a hand-driven
// clock: placement, leases, holds, recycling order, pins, quarantine, pool changes, map-full.
// Several processes at once and crashes are covered by tests/integration/store_process_test.
#include "gate46/mapping/lmdb_store.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "gate46/testing/manual_clock.hpp"
#include "gate46/testing/temp_dir.hpp"

namespace gate46::mapping {
namespace {

using namespace std::chrono_literals;

constexpr pool_key key{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

dns_name name(std::string_view text) {
  return *dns_name::parse(text);
}
ip_address addr(std::string_view text) {
  return *ip_address::parse(text);
}

class lmdb_store_test : public ::testing::Test {
 protected:
  std::unique_ptr<mapping_store> open(std::string_view v4 = "198.18.0.0/15", std::string_view v6 = "2001:2::/48",
                                      std::uint64_t map_size = std::uint64_t{64} << 20) {
    return open_with(options(v4, v6, map_size));
  }
  std::unique_ptr<mapping_store> open_with(const lmdb_store_options& o) { return open_lmdb_store(o); }
  lmdb_store_options options(std::string_view v4 = "198.18.0.0/15", std::string_view v6 = "2001:2::/48",
                             std::uint64_t map_size = std::uint64_t{64} << 20) {
    lmdb_store_options o;
    o.path = dir_ / "mappings.mdb";
    o.map_size = map_size;
    o.pool_v4 = *cidr::parse(v4);
    o.pool_v6 = *cidr::parse(v6);
    o.key = key;
    o.lease_grace = 100s;
    o.hold_refresh = 10s;
    o.wall_clock = &clock_;
    return o;
  }

  mapping allocate(mapping_store& s, std::string_view n, ip_family f = ip_family::v4, std::chrono::seconds ttl = 60s) {
    auto r = s.allocate_blocking(name(n), f, ttl);
    EXPECT_TRUE(r) << n << ": " << r.error().message();
    return r ? *r : mapping{};
  }

  testing::temp_dir dir_{"gate46-store-test"};
  testing::manual_clock clock_;
};

TEST_F(lmdb_store_test, a_name_keeps_its_addresses) {
  auto s = open();
  const auto first = allocate(*s, "v6only.example");
  ASSERT_TRUE(first.v4);
  EXPECT_FALSE(first.v6);
  EXPECT_TRUE(cidr::parse("198.18.0.0/15")->contains(*first.v4));
  // Its first choice in an empty pool is where its hash points.
  const fake_pool p{*cidr::parse("198.18.0.0/15")};
  EXPECT_EQ(*first.v4, p.address_at(p.start_index(key, name("v6only.example"))));

  clock_.advance(5s);
  const auto again = allocate(*s, "V6ONLY.example.");
  EXPECT_EQ(again.v4, first.v4);
  EXPECT_EQ(again.created, first.created);
  EXPECT_EQ(again.last_used, first.last_used + 5s);
  EXPECT_EQ(again.expiry, clock_.now() + 60s + 100s);

  const auto both = allocate(*s, "v6only.example", ip_family::v6);
  EXPECT_EQ(both.v4, first.v4);
  ASSERT_TRUE(both.v6);
  EXPECT_TRUE(cidr::parse("2001:2::/48")->contains(*both.v6));

  EXPECT_EQ(s->find(*first.v4)->name, name("v6only.example"));
  EXPECT_EQ(s->find(*both.v6)->name, name("v6only.example"));
  EXPECT_EQ(s->find(name("v6only.example"))->v6, both.v6);
  EXPECT_FALSE(s->find(p.address_at(p.next_index(p.index_of(*first.v4)))));
  EXPECT_FALSE(s->find(name("other.example")));
}

TEST_F(lmdb_store_test, mappings_survive_a_reopen) {
  mapping before;
  {
    auto s = open();
    before = allocate(*s, "persist.example", ip_family::v6);
  }
  auto s = open();
  EXPECT_EQ(s->find(*before.v6), before);
}

TEST_F(lmdb_store_test, a_lease_is_never_shortened) {
  auto s = open();
  const auto long_lease = allocate(*s, "a.example", ip_family::v4, 600s);
  const auto short_query = allocate(*s, "a.example", ip_family::v4, 1s);
  EXPECT_EQ(short_query.expiry, long_lease.expiry);
}

TEST_F(lmdb_store_test, small_pools_use_every_address_and_then_refuse) {
  for (const auto& [v4, count] :
       std::vector<std::pair<std::string, int>>{{"198.18.0.0/30", 2}, {"198.18.0.4/31", 2}, {"198.18.0.9/32", 1}}) {
    testing::temp_dir dir{"gate46-store-small"};
    dir_ = std::move(dir);
    auto s = open(v4);
    std::set<ip_address> seen;
    for (int i = 0; i < count; ++i) {
      seen.insert(*allocate(*s, "n" + std::to_string(i) + ".example").v4);
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(count)) << v4;
    const auto refused = s->allocate_blocking(name("one-more.example"), ip_family::v4, 60s);
    ASSERT_FALSE(refused) << v4;
    EXPECT_EQ(refused.error(), store_errc::pool_exhausted);
    EXPECT_EQ(s->stats().v4.allocation_failures, 1U);
  }
  testing::temp_dir dir{"gate46-store-small6"};
  dir_ = std::move(dir);
  auto s = open("198.18.0.0/15", "2001:2::/127");
  const auto a = allocate(*s, "a.example", ip_family::v6);
  const auto b = allocate(*s, "b.example", ip_family::v6);
  EXPECT_EQ((std::set<ip_address>{*a.v6, *b.v6}), (std::set<ip_address>{addr("2001:2::"), addr("2001:2::1")}));
  EXPECT_EQ(s->allocate_blocking(name("c.example"), ip_family::v6, 60s).error(), store_errc::pool_exhausted);
}

TEST_F(lmdb_store_test, recycles_the_least_recently_used_expired_mapping) {
  auto s = open("198.18.0.0/30");  // two usable addresses
  const auto a = allocate(*s, "a.example");
  clock_.advance(1s);
  const auto b = allocate(*s, "b.example");
  clock_.advance(1s);
  allocate(*s, "a.example");  // a is now the more recently used

  // Both leases (60 s + 100 s grace) still run: nothing may be recycled.
  EXPECT_EQ(s->allocate_blocking(name("c.example"), ip_family::v4, 60s).error(), store_errc::pool_exhausted);

  clock_.advance(200s);
  const auto c = allocate(*s, "c.example");
  EXPECT_EQ(c.v4, b.v4);  // b was used least recently
  EXPECT_FALSE(s->find(name("b.example")));
  EXPECT_EQ(s->find(*a.v4)->name, name("a.example"));
  EXPECT_EQ(s->find(*c.v4)->name, name("c.example"));
  EXPECT_EQ(s->stats().v4.recycled, 1U);
}

TEST_F(lmdb_store_test, held_and_pinned_mappings_are_never_recycled) {
  auto s = open("198.18.0.0/30");
  const auto held = allocate(*s, "held.example");
  ASSERT_TRUE(s->add(name("pinned.example"), std::nullopt, std::nullopt, true));
  s->sync();
  clock_.advance(1000s);   // every lease has expired
  s->hold(*held.v4, 60s);  // a flow starts: lease renewed, held for 2 x 10 s
  s->sync();
  EXPECT_EQ(s->allocate_blocking(name("new.example"), ip_family::v4, 60s).error(), store_errc::pool_exhausted);
  const auto after_hold = s->find(*held.v4);
  ASSERT_TRUE(after_hold);
  EXPECT_EQ(after_hold->held_until, clock_.now() + 20s);
  EXPECT_EQ(after_hold->expiry, clock_.now() + 60s + 100s);

  // The hold lapses (no renewal: the flow's process died) and the lease runs out.
  clock_.advance(200s);
  const auto taken = allocate(*s, "new.example");
  EXPECT_EQ(taken.v4, held.v4);
  EXPECT_TRUE(s->find(name("pinned.example")));
}

TEST_F(lmdb_store_test, an_unflushed_hold_of_this_process_also_protects) {
  auto s = open("198.18.0.0/32");
  const auto a = allocate(*s, "a.example");
  s->sync();
  clock_.advance(1000s);
  s->hold(*a.v4, 60s);  // not written yet
  EXPECT_EQ(s->allocate_blocking(name("b.example"), ip_family::v4, 60s).error(), store_errc::pool_exhausted);
}

TEST_F(lmdb_store_test, delete_refuses_held_and_quarantines_live_addresses) {
  auto s = open("198.18.0.0/30");
  const auto a = allocate(*s, "a.example");
  s->hold(*a.v4, 60s);
  s->sync();
  const auto refused = s->remove(name("a.example"), false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), store_errc::held);

  ASSERT_TRUE(s->remove(*a.v4, true));
  EXPECT_FALSE(s->find(name("a.example")));
  EXPECT_EQ(s->stats().quarantined, 1U);
  // While quarantined, the address goes to nobody: the second address is used, then none.
  const auto b = allocate(*s, "b.example", ip_family::v4, 600s);
  EXPECT_NE(b.v4, a.v4);
  EXPECT_EQ(s->allocate_blocking(name("c.example"), ip_family::v4, 60s).error(), store_errc::pool_exhausted);
  // Once the hold and the lease have passed, it is free again (b's lease still runs).
  clock_.advance(161s);
  EXPECT_EQ(allocate(*s, "c.example").v4, a.v4);
  EXPECT_EQ(s->stats().quarantined, 0U);
}

TEST_F(lmdb_store_test, remove_and_lookup_errors) {
  auto s = open();
  EXPECT_EQ(s->remove(name("nothing.example"), false).error(), store_errc::not_found);
  EXPECT_EQ(s->remove(addr("192.0.2.1"), false).error(), store_errc::outside_pools);
  EXPECT_EQ(s->add(name("x.example"), addr("192.0.2.1"), std::nullopt, false).error(), store_errc::outside_pools);
}

TEST_F(lmdb_store_test, add_places_or_takes_given_addresses) {
  auto s = open();
  const auto both = s->add(name("both.example"), std::nullopt, std::nullopt, false);
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->v4 && both->v6);
  const auto fixed = s->add(name("fixed.example"), addr("198.18.1.1"), addr("2001:2::1:1"), true);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->v4, addr("198.18.1.1"));
  EXPECT_TRUE(fixed->pinned);
  EXPECT_EQ(s->find(addr("2001:2::1:1"))->name, name("fixed.example"));
  EXPECT_EQ(s->add(name("thief.example"), addr("198.18.1.1"), std::nullopt, false).error(), store_errc::address_taken);
  ASSERT_TRUE(s->set_pinned(name("fixed.example"), false));
  EXPECT_FALSE(s->find(name("fixed.example"))->pinned);
}

TEST_F(lmdb_store_test, list_flush_and_stats) {
  auto s = open();
  allocate(*s, "a.example");
  allocate(*s, "b.example", ip_family::v6);
  ASSERT_TRUE(s->add(name("p.example"), std::nullopt, std::nullopt, true));
  EXPECT_EQ(s->list({}).size(), 3U);
  EXPECT_EQ(s->list({ip_family::v6, false}).size(), 2U);
  EXPECT_TRUE(s->list({std::nullopt, true}).empty());

  clock_.advance(1000s);
  EXPECT_EQ(s->list({std::nullopt, true}).size(), 2U);  // the pinned one never expires
  const auto st = s->stats();
  EXPECT_EQ(st.mappings, 3U);
  EXPECT_EQ(st.v4.used, 2U);
  EXPECT_EQ(st.v6.used, 2U);
  EXPECT_EQ(st.v4.pinned, 1U);
  EXPECT_EQ(st.v4.eligible, 1U);
  EXPECT_EQ(st.v4.size, 131070U);
  EXPECT_GT(st.bytes_on_disk, 0U);

  EXPECT_EQ(*s->flush(true), 2U);
  EXPECT_EQ(s->list({}).size(), 1U);
  EXPECT_EQ(s->stats().quarantined, 0U);  // expired leases need no quarantine
}

TEST_F(lmdb_store_test, pool_change_drops_unpinned_and_refuses_pinned_outside) {
  {
    auto s = open("198.18.0.0/24");
    allocate(*s, "a.example");
    allocate(*s, "a.example", ip_family::v6);
    ASSERT_TRUE(s->add(name("kept.example"), addr("198.18.0.9"), std::nullopt, false));
  }
  {
    // The v4 pool moves: a.example keeps its IPv6 half, kept.example goes.
    auto s = open("198.18.1.0/24");
    EXPECT_FALSE(s->find(name("kept.example")));
    const auto a = s->find(name("a.example"));
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->v4);
    EXPECT_TRUE(a->v6);
    EXPECT_EQ(s->stats().v4.used, 0U);
    ASSERT_TRUE(s->add(name("pinned.example"), addr("198.18.1.5"), std::nullopt, true));
  }
  try {
    auto s = open("198.18.2.0/24");
    FAIL() << "opened with a pinned mapping outside the pools";
  } catch (const store_open_error& e) {
    EXPECT_NE(std::string{e.what()}.find("pinned.example."), std::string::npos) << e.what();
  }
  EXPECT_TRUE(open("198.18.1.0/24")->find(name("pinned.example")));
}

TEST_F(lmdb_store_test, no_key_no_new_addresses) {
  lmdb_store_options o;
  o.path = dir_ / "mappings.mdb";
  o.wall_clock = &clock_;
  auto s = open_lmdb_store(o);
  EXPECT_EQ(s->allocate_blocking(name("a.example"), ip_family::v4, 60s).error(), store_errc::no_pool_key);
  EXPECT_TRUE(s->add(name("a.example"), addr("198.18.0.1"), std::nullopt, false));
}

TEST_F(lmdb_store_test, a_full_store_keeps_serving_lookups) {
  auto s = open("198.18.0.0/15", "2001:2::/48", std::uint64_t{256} << 10);
  std::vector<mapping> placed;
  std::error_code failure;
  for (int i = 0; i < 100000 && !failure; ++i) {
    auto r = s->allocate_blocking(name("n" + std::to_string(i) + ".example"), ip_family::v6, 60s);
    if (r) {
      placed.push_back(*r);
    } else {
      failure = r.error();
    }
  }
  EXPECT_EQ(failure, store_errc::store_full);
  ASSERT_FALSE(placed.empty());
  EXPECT_EQ(s->find(*placed.front().v6), placed.front());
  // A name that already has its address is still answered (unrenewed).
  EXPECT_EQ(s->allocate_blocking(placed.back().name, ip_family::v6, 60s)->v6, placed.back().v6);
}

TEST_F(lmdb_store_test, concurrent_coroutines_share_commits) {
  auto s = open();
  boost::asio::io_context io;
  std::vector<mapping> done;
  for (int i = 0; i < 64; ++i) {
    boost::asio::co_spawn(
        io,
        [&, i]() -> boost::asio::awaitable<void> {
          auto r = co_await s->allocate(name("c" + std::to_string(i) + ".example"),
                                        i % 2 == 0 ? ip_family::v4 : ip_family::v6, 60s);
          EXPECT_TRUE(r);
          if (r) {
            // Committed before completion: the lookup sees it.
            EXPECT_EQ(s->find(*r->address(i % 2 == 0 ? ip_family::v4 : ip_family::v6)), *r);
            done.push_back(*r);
          }
        },
        boost::asio::detached);
  }
  io.run_for(10s);
  ASSERT_EQ(done.size(), 64U);
  std::set<ip_address> addresses;
  for (const auto& m : done) {
    addresses.insert(m.v4 ? *m.v4 : *m.v6);
  }
  EXPECT_EQ(addresses.size(), 64U);
}

TEST_F(lmdb_store_test, opening_can_refuse_to_create_or_to_change_pools) {
  auto no_create = options();
  no_create.create_if_missing = false;
  EXPECT_THROW(open_with(no_create), store_missing);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "mappings.mdb"));
  {
    auto s = open("198.18.0.0/24");
    allocate(*s, "a.example");
  }
  auto other_pools = options("198.18.1.0/24");
  other_pools.on_pool_change = lmdb_store_options::pool_change::refuse;
  try {
    open_with(other_pools);
    FAIL() << "opened with other pools";
  } catch (const pool_change_refused& e) {
    EXPECT_NE(std::string{e.what()}.find("198.18.0.0/24"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(open("198.18.0.0/24")->find(name("a.example")));  // nothing was dropped
}

TEST_F(lmdb_store_test, get_tells_errors_apart) {
  auto s = open();
  const auto a = allocate(*s, "a.example");
  EXPECT_EQ(*s->get(name("a.example")), a);
  EXPECT_EQ(*s->get(*a.v4), a);
  EXPECT_EQ(s->get(name("b.example")).error(), store_errc::not_found);
  EXPECT_EQ(s->get(addr("198.18.3.3")).error(), store_errc::not_found);
  EXPECT_EQ(s->get(addr("192.0.2.1")).error(), store_errc::outside_pools);
}

TEST_F(lmdb_store_test, failed_admin_placements_are_counted) {
  auto s = open("198.18.0.0/32");
  ASSERT_TRUE(s->add(name("a.example"), std::nullopt, std::nullopt, false));
  EXPECT_EQ(s->add(name("b.example"), std::nullopt, std::nullopt, false).error(), store_errc::pool_exhausted);
  EXPECT_EQ(s->allocate_blocking(name("c.example"), ip_family::v4, 60s).error(), store_errc::pool_exhausted);
  EXPECT_EQ(s->stats().v4.allocation_failures, 2U);
}

TEST_F(lmdb_store_test, the_first_hold_is_written_at_once) {
  auto o = options();
  o.sync_interval = 3600s;  // no tick during the test: only the urgent path can write it
  auto s = open_with(o);
  const auto a = allocate(*s, "a.example");
  s->hold(*a.v4, 60s);
  bool written = false;
  for (int i = 0; i < 500 && !written; ++i) {
    written = s->find(*a.v4)->held_until == clock_.now() + 20s;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(written);
  // A renewal in the same interval waits for the tick.
  clock_.advance(5s);
  s->hold(*a.v4, 60s);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(s->find(*a.v4)->held_until, clock_.now() - 5s + 20s);
  s->sync();
  EXPECT_EQ(s->find(*a.v4)->held_until, clock_.now() + 20s);
}

TEST(pool_key, keygen_and_load) {
  testing::temp_dir dir{"gate46-key-test"};
  const auto path = dir.path() / "pool.key";
  write_pool_key(path, false);
  const auto first = load_pool_key(path);
  EXPECT_EQ(std::filesystem::file_size(path), 16U);
  EXPECT_THROW(write_pool_key(path, false), pool_key_exists);
  EXPECT_EQ(load_pool_key(path), first);  // refused: unchanged
  write_pool_key(path, true);
  EXPECT_NE(load_pool_key(path), first);
  dir.write_file("short.key", "0123456789");
  EXPECT_THROW((void)load_pool_key(dir.path() / "short.key"), std::runtime_error);
  EXPECT_THROW((void)load_pool_key(dir.path() / "missing.key"), std::runtime_error);
}

}  // namespace
}  // namespace gate46::mapping
