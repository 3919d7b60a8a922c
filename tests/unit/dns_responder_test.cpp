// The delegating responder: the policy's shell, with an in-memory resolver (a zone of A-only,
// AAAA-only and dual-stack names, queries counted) and a real LMDB mapping store in a temporary
// directory, on a hand-driven clock.
#include "gate46/dns/responder.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "dns_test_wire.hpp"
#include "gate46/mapping/lmdb_store.hpp"
#include "gate46/testing/manual_clock.hpp"
#include "gate46/testing/temp_dir.hpp"

namespace gate46::dns {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace test_wire;

constexpr mapping::pool_key key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// Answers from a table of names; names not in it do not exist.
class zone_resolver final : public resolver {
 public:
  struct host {
    std::vector<std::string> v4;
    std::vector<std::string> v6;
  };
  std::map<std::string, host> hosts;  // by lower-case name with the trailing dot
  int queries = 0;

  asio::awaitable<result<timed_answer>> query(question q, query_flags /*flags*/) override {
    ++queries;
    const auto it = hosts.find(q.name.to_string());
    upstream_msg m;
    if (it == hosts.end()) {
      m = nxdomain("example.");
    } else {
      for (const auto& a : q.type == rr_type::a      ? it->second.v4
                           : q.type == rr_type::aaaa ? it->second.v6
                                                     : std::vector<std::string>{}) {
        m.an.push_back(q.type == rr_type::a ? rr_a(it->first, a) : rr_aaaa(it->first, a));
      }
      if (m.an.empty()) {
        m.ns.push_back(rr_soa("example."));
      }
    }
    auto a = accept_upstream_answer(answer_wire(q, m), upstream_id, q);
    if (!a) {
      co_return make_error_code(resolve_errc::servfail);
    }
    co_return timed_answer{std::make_shared<const answer>(std::move(*a)), 0s};
  }

  asio::awaitable<result<std::vector<ip_address>>> resolve(dns_name /*name*/, ip_family /*family*/) override {
    co_return make_error_code(resolve_errc::timeout);
  }
};

template <typename T>
T run(asio::io_context& io, asio::awaitable<T> work) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(work), [&](const std::exception_ptr& e, T value) {
    if (e) {
      std::rethrow_exception(e);
    }
    out = std::move(value);
    io.stop();
  });
  io.restart();
  io.run_for(10s);
  EXPECT_TRUE(out.has_value()) << "did not complete";
  return out ? std::move(*out) : T{};
}

std::uint64_t counter_of(const responder& r, std::string_view counter_name) {
  for (const auto& c : r.counters()) {
    if (c.name == counter_name) {
      return c.value;
    }
  }
  ADD_FAILURE() << "no counter " << counter_name;
  return 0;
}

class dns_responder_test : public ::testing::Test {
 protected:
  dns_responder_test() {
    zone_.hosts["v6only.example."] = {{}, {"2001:db8::6"}};
    zone_.hosts["v4only.example."] = {{"192.0.2.4"}, {}};
    zone_.hosts["dual.example."] = {{"192.0.2.46"}, {"2001:db8::46"}};
    zone_.hosts["empty.example."] = {{}, {}};
  }

  void open(std::string_view v4_pool = "198.18.0.0/15", dns_mode mode = dns_mode::translate) {
    mapping::lmdb_store_options o;
    o.path = dir_ / "mappings.mdb";
    o.map_size = std::uint64_t{16} << 20;
    o.pool_v4 = *cidr::parse(v4_pool);
    o.pool_v6 = *cidr::parse("2001:2::/48");
    o.key = key;
    o.lease_grace = 100s;
    o.hold_refresh = 10s;
    o.wall_clock = &clock_;
    store_ = mapping::open_lmdb_store(o);
    responder_ = std::make_unique<delegating_responder>(zone_, *store_, settings(v4_pool, mode), clock_);
  }

  static policy_settings settings(std::string_view v4_pool, dns_mode mode) {
    policy_settings s;
    s.mode = mode;
    s.fake_ttl = 30s;
    s.pool_v4 = *cidr::parse(v4_pool);
    s.pool_v6 = *cidr::parse("2001:2::/48");
    return s;
  }

  parsed_reply ask(std::string_view qname, std::uint16_t type) {
    const auto q = make_query(qname, type, {.id = 0x5151});
    auto wire = run(io_, responder_->answer(q, 1232));
    auto r = read_reply(wire);
    EXPECT_TRUE(r) << "the reply does not parse";
    EXPECT_TRUE(!r || r->id == 0x5151);
    return r ? *r : parsed_reply{};
  }

  // The one address of an A or AAAA reply.
  static std::optional<ip_address> address_in(const parsed_reply& r) {
    if (r.rcode() != 0 || r.answer.size() != 1) {
      return std::nullopt;
    }
    const auto& d = r.answer[0].rdata;
    if (d.size() == 4) {
      return ip_address::from_v4({d[0], d[1], d[2], d[3]});
    }
    if (d.size() == 16) {
      ip_address::bytes_type b{};
      std::copy(d.begin(), d.end(), b.begin());
      return ip_address::from_v6(b);
    }
    return std::nullopt;
  }

  testing::temp_dir dir_{"gate46-responder-test"};
  testing::manual_clock clock_;
  zone_resolver zone_;
  asio::io_context io_;
  std::unique_ptr<mapping::mapping_store> store_;
  std::unique_ptr<delegating_responder> responder_;
};

TEST_F(dns_responder_test, same_name_same_fake_address_without_a_second_allocation) {
  open();
  const auto first = address_in(ask("v6only.example", rr_type::a));
  ASSERT_TRUE(first);
  EXPECT_TRUE(cidr::parse("198.18.0.0/15")->contains(*first));
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 1U);
  EXPECT_EQ(counter_of(*responder_, "fake_answers"), 1U);
  // The store holds the query name at that address.
  const auto m = store_->find(*first);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name, name("v6only.example"));

  clock_.advance(5s);
  const auto again = address_in(ask("V6ONLY.Example", rr_type::a));
  EXPECT_EQ(again, first);
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 1U);  // the mapping was reused
  EXPECT_EQ(counter_of(*responder_, "fake_answers"), 2U);

  // The other family of the same name is its own address, in the other pool.
  const auto v6 = address_in(ask("v4only.example", rr_type::aaaa));
  ASSERT_TRUE(v6);
  EXPECT_TRUE(cidr::parse("2001:2::/48")->contains(*v6));
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 2U);
}

TEST_F(dns_responder_test, real_addresses_and_nodata_pass_without_mappings) {
  open();
  const auto real = ask("dual.example", rr_type::aaaa);
  EXPECT_EQ(address_in(real), addr("2001:db8::46"));
  const auto nd = ask("empty.example", rr_type::a);
  EXPECT_EQ(nd.rcode(), 0U);
  EXPECT_TRUE(nd.answer.empty());
  const auto nx = ask("missing.example", rr_type::a);
  EXPECT_EQ(nx.rcode(), 3U);
  EXPECT_EQ(counter_of(*responder_, "fake_answers"), 0U);
  EXPECT_EQ(counter_of(*responder_, "forwarded_answers"), 3U);
  EXPECT_TRUE(store_->list({}).empty());
}

TEST_F(dns_responder_test, renewal_extends_the_lease_in_the_store) {
  open();
  const auto fake = address_in(ask("v6only.example", rr_type::a));
  ASSERT_TRUE(fake);
  const auto before = store_->find(*fake);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->expiry, clock_.now() + 30s + 100s);  // fake_ttl + lease_grace

  // Past the first quarter of the grace (the store skips renewing fresher leases).
  clock_.advance(50s);
  EXPECT_EQ(address_in(ask("v6only.example", rr_type::a)), fake);
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 1U);
  store_->sync();
  const auto after = store_->find(*fake);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->expiry, clock_.now() + 30s + 100s);
  EXPECT_EQ(after->expiry, before->expiry + 50s);
  EXPECT_EQ(after->last_used, clock_.now());
}

TEST_F(dns_responder_test, ptr_round_trip_through_the_store) {
  open();
  for (const auto type : {rr_type::a, rr_type::aaaa}) {
    const char* n = type == rr_type::a ? "v6only.example" : "v4only.example";
    const auto fake = address_in(ask(n, type));
    ASSERT_TRUE(fake);
    const auto ptr = ask(reverse_name_of(*fake).to_string(), rr_type::ptr);
    EXPECT_EQ(ptr.rcode(), 0U);
    ASSERT_EQ(ptr.answer.size(), 1U);
    EXPECT_EQ(ptr.answer[0].type, rr_type::ptr);
    EXPECT_EQ(ptr.rdata_name(ptr.answer[0]), std::string{n} + ".");
  }
  EXPECT_EQ(counter_of(*responder_, "reverse_answers"), 2U);
  // An address of the pool nobody holds: NXDOMAIN, answered here.
  const int before = zone_.queries;
  const auto unmapped = ask("1.0.19.198.in-addr.arpa", rr_type::ptr);
  EXPECT_EQ(unmapped.rcode(), 3U);
  EXPECT_EQ(zone_.queries, before);
}

TEST_F(dns_responder_test, full_pool_is_servfail_and_counted) {
  open("198.18.0.0/30");  // two usable addresses
  zone_.hosts["a.example."] = {{}, {"2001:db8::a"}};
  zone_.hosts["b.example."] = {{}, {"2001:db8::b"}};
  zone_.hosts["c.example."] = {{}, {"2001:db8::c"}};
  const auto a = address_in(ask("a.example", rr_type::a));
  const auto b = address_in(ask("b.example", rr_type::a));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(a, b);
  const auto c = ask("c.example", rr_type::a);
  EXPECT_EQ(c.rcode(), 2U);
  EXPECT_TRUE(c.answer.empty());
  EXPECT_EQ(counter_of(*responder_, "pool_exhausted"), 1U);
  EXPECT_EQ(counter_of(*responder_, "store_errors"), 0U);
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 2U);
  // Names that have their address keep it.
  EXPECT_EQ(address_in(ask("a.example", rr_type::a)), a);
}

TEST_F(dns_responder_test, upstream_failure_is_servfail_and_counted) {
  open();
  class failing final : public resolver {
   public:
    asio::awaitable<result<timed_answer>> query(question /*q*/, query_flags /*flags*/) override {
      co_return make_error_code(resolve_errc::timeout);
    }
    asio::awaitable<result<std::vector<ip_address>>> resolve(dns_name /*name*/, ip_family /*family*/) override {
      co_return make_error_code(resolve_errc::timeout);
    }
  } upstream;
  delegating_responder r{upstream, *store_, settings("198.18.0.0/15", dns_mode::translate), clock_};
  const auto wire = run(io_, r.answer(make_query("x.example", rr_type::a), 512));
  const auto reply = read_reply(wire);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->rcode(), 2U);
  EXPECT_EQ(counter_of(r, "servfail_upstream"), 1U);
}

TEST_F(dns_responder_test, reconfigure_changes_the_mode_live) {
  open();
  EXPECT_EQ(address_in(ask("dual.example", rr_type::a)), addr("192.0.2.46"));
  responder_->reconfigure(settings("198.18.0.0/15", dns_mode::all));
  const auto fake = address_in(ask("dual.example", rr_type::a));
  ASSERT_TRUE(fake);
  EXPECT_TRUE(cidr::parse("198.18.0.0/15")->contains(*fake));
  EXPECT_EQ(counter_of(*responder_, "fake_allocations"), 1U);
  auto with_rule = settings("198.18.0.0/15", dns_mode::all);
  with_rule.rules.push_back({"dual.example.", dns_mode::never});
  responder_->reconfigure(with_rule);
  EXPECT_EQ(address_in(ask("dual.example", rr_type::a)), addr("192.0.2.46"));
}

TEST_F(dns_responder_test, any_is_minimal_and_never_asks_upstream) {
  open();
  const auto r = ask("dual.example", type_any);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].type, type_hinfo);
  EXPECT_EQ(zone_.queries, 0);
  EXPECT_EQ(counter_of(*responder_, "any_minimal_answers"), 1U);
}

}  // namespace
}  // namespace gate46::dns
