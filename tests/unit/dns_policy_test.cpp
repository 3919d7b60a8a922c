// The delegating policy rule by rule: rules and built-in names, reverse names, and
// policy::decide driven step by step with hand-built upstream answers, its replies read back
// byte by byte.
#include "gate46/dns/policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "dns_test_wire.hpp"
#include "gate46/dns/svcb.hpp"

namespace gate46::dns {
namespace {

using namespace std::chrono_literals;
using namespace test_wire;

constexpr std::size_t no_limit = 65535;

policy_settings settings(dns_mode mode = dns_mode::translate, std::vector<dns_rule> rules = {}) {
  policy_settings s;
  s.mode = mode;
  s.rules = std::move(rules);
  s.fake_ttl = 42s;
  return s;
}

question ask(std::string_view n, std::uint16_t type) {
  return {name(n), type, class_in};
}

// What the policy is told while a query runs to its end: upstream answers by question (nullopt:
// the upstream failed), mappings by fake address, and what it asked for, in order.
struct world {
  std::map<std::pair<std::string, std::uint16_t>, std::optional<upstream_msg>> upstream;
  std::vector<std::pair<ip_address, dns_name>> mappings;
  std::vector<question> asked;
  std::vector<ip_address> looked_up;

  void set(std::string_view n, std::uint16_t type, std::optional<upstream_msg> m) {
    upstream[{std::string{name(n).wire_view()}, type}] = std::move(m);
  }
};

// Runs decide() until it answers or asks for an allocation.
decision run(const policy& p, const query& q, world& w, std::size_t limit = no_limit) {
  lookups known;
  for (int step = 0; step < 32; ++step) {
    auto d = p.decide(q, known, limit);
    if (const auto* a = std::get_if<ask_upstream>(&d)) {
      w.asked.push_back(a->q);
      const auto it = w.upstream.find({std::string{a->q.name.wire_view()}, a->q.type});
      if (it == w.upstream.end()) {
        ADD_FAILURE() << "unexpected upstream question " << a->q.name.to_string() << " type " << a->q.type;
        known.add(a->q, std::nullopt);
      } else {
        known.add(a->q, it->second ? answered(a->q, *it->second) : std::nullopt);
      }
      continue;
    }
    if (const auto* f = std::get_if<find_mapping>(&d)) {
      w.looked_up.push_back(f->fake);
      const auto it =
          std::find_if(w.mappings.begin(), w.mappings.end(), [&](const auto& m) { return m.first == f->fake; });
      known.add_mapping(f->fake, it == w.mappings.end() ? std::nullopt : std::optional<dns_name>{it->second});
      continue;
    }
    return d;
  }
  ADD_FAILURE() << "the policy did not finish in 32 steps";
  return send_reply{};
}

// The family an allocate_fake decision asks for, nullopt for any other decision.
std::optional<ip_family> allocated(const decision& d) {
  const auto* a = std::get_if<allocate_fake>(&d);
  return a == nullptr ? std::nullopt : std::optional<ip_family>{a->family};
}

send_reply reply_of(const decision& d) {
  EXPECT_TRUE(std::holds_alternative<send_reply>(d)) << "decision index " << d.index();
  return std::holds_alternative<send_reply>(d) ? std::get<send_reply>(d) : send_reply{};
}

parsed_reply read(const bytes& wire) {
  auto r = read_reply(wire);
  EXPECT_TRUE(r.has_value()) << "the reply does not parse";
  return r ? *r : parsed_reply{};
}

std::vector<std::string> suffixes_of(const std::vector<dns_rule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules) {
    EXPECT_EQ(r.mode, dns_mode::never) << r.suffix;
    out.push_back(r.suffix);
  }
  return out;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- built-in rules -------------------------------------------------------------------------------

TEST(dns_policy_rules, builtin_never_list_for_the_default_pools) {
  const auto s = settings();
  const auto suffixes = suffixes_of(builtin_never_rules(s.pool_v4, s.pool_v6));
  for (const char* expected : {"local.", "home.arpa.", "localhost.", "10.in-addr.arpa.", "168.192.in-addr.arpa.",
                               "16.172.in-addr.arpa.", "20.172.in-addr.arpa.", "31.172.in-addr.arpa.",
                               // the pools' reverse zones
                               "18.198.in-addr.arpa.", "19.198.in-addr.arpa.", "0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa.",
                               // NTP, captive portals, connectivity probes
                               "pool.ntp.org.", "captive.apple.com.", "connectivitycheck.gstatic.com.",
                               "msftconnecttest.com.", "detectportal.firefox.com."}) {
    EXPECT_TRUE(contains(suffixes, expected)) << expected;
  }
  // 172.16.0.0/12 only, and nothing around the pools.
  EXPECT_FALSE(contains(suffixes, "15.172.in-addr.arpa."));
  EXPECT_FALSE(contains(suffixes, "32.172.in-addr.arpa."));
  EXPECT_FALSE(contains(suffixes, "17.198.in-addr.arpa."));
  EXPECT_FALSE(contains(suffixes, "20.198.in-addr.arpa."));
  EXPECT_FALSE(contains(suffixes, "198.in-addr.arpa."));
}

TEST(dns_policy_rules, builtin_reverse_zones_follow_configured_pools) {
  // /10 spans 64 /16 zones; a /46 spans 4 nibble zones.
  const auto suffixes =
      suffixes_of(builtin_never_rules(*cidr::parse("100.64.0.0/10"), *cidr::parse("2001:db8:4::/46")));
  for (int second = 64; second <= 127; ++second) {
    EXPECT_TRUE(contains(suffixes, std::to_string(second) + ".100.in-addr.arpa.")) << second;
  }
  EXPECT_FALSE(contains(suffixes, "63.100.in-addr.arpa."));
  EXPECT_FALSE(contains(suffixes, "128.100.in-addr.arpa."));
  for (const char* nibble : {"4", "5", "6", "7"}) {
    EXPECT_TRUE(contains(suffixes, std::string{nibble} + ".0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.")) << nibble;
  }
  EXPECT_FALSE(contains(suffixes, "8.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."));
  EXPECT_FALSE(contains(suffixes, "18.198.in-addr.arpa."));  // the default pools are not there
  // A host-sized pool is one full reverse name.
  EXPECT_TRUE(contains(suffixes_of(builtin_never_rules(*cidr::parse("192.0.2.7/32"), *cidr::parse("2001:2::/48"))),
                       "7.2.0.192.in-addr.arpa."));
}

TEST(dns_policy_rules, longest_suffix_wins_at_label_boundaries) {
  const std::vector<dns_rule> rules{
      {"example.com.", dns_mode::all}, {"a.example.com.", dns_mode::never}, {"b.a.example.com.", dns_mode::translate}};
  const rule_table t{dns_mode::translate, {}, rules};
  EXPECT_EQ(t.mode_for(name("example.com")), dns_mode::all);
  EXPECT_EQ(t.mode_for(name("www.example.com")), dns_mode::all);
  EXPECT_EQ(t.mode_for(name("a.example.com")), dns_mode::never);
  EXPECT_EQ(t.mode_for(name("x.a.example.com")), dns_mode::never);
  EXPECT_EQ(t.mode_for(name("b.a.example.com")), dns_mode::translate);
  EXPECT_EQ(t.mode_for(name("c.b.a.example.com")), dns_mode::translate);
  EXPECT_EQ(t.mode_for(name("WWW.Example.COM")), dns_mode::all);  // names compare case-insensitively
  // Only whole labels: xexample.com. is not under example.com.
  EXPECT_EQ(t.mode_for(name("xexample.com")), dns_mode::translate);
  EXPECT_EQ(t.mode_for(name("xa.example.com")), dns_mode::all);
  EXPECT_EQ(t.mode_for(name("com")), dns_mode::translate);
}

TEST(dns_policy_rules, operator_rule_beats_builtin_for_the_same_suffix) {
  const std::vector<dns_rule> builtin{{"local.", dns_mode::never}, {"home.arpa.", dns_mode::never}};
  const std::vector<dns_rule> operator_rules{{"local.", dns_mode::all}};
  const rule_table t{dns_mode::translate, builtin, operator_rules};
  EXPECT_EQ(t.mode_for(name("printer.local")), dns_mode::all);
  EXPECT_EQ(t.mode_for(name("printer.home.arpa")), dns_mode::never);
  // And through the policy with the real built-in list.
  const policy p{settings(dns_mode::all, {{"captive.apple.com.", dns_mode::all}})};
  EXPECT_EQ(p.mode_for(name("captive.apple.com")), dns_mode::all);
  EXPECT_EQ(p.mode_for(name("detectportal.firefox.com")), dns_mode::never);
  EXPECT_EQ(p.mode_for(name("nas.local")), dns_mode::never);
  EXPECT_EQ(p.mode_for(name("5.0.18.198.in-addr.arpa")), dns_mode::never);
}

TEST(dns_policy_rules, default_mode_for_names_no_rule_matches) {
  EXPECT_EQ((rule_table{dns_mode::all, {}, {}}.mode_for(name("x.example"))), dns_mode::all);
  EXPECT_EQ((rule_table{dns_mode::translate, {}, {}}.mode_for(name("x.example"))), dns_mode::translate);
  const std::vector<dns_rule> rules{{"other.", dns_mode::never}};
  EXPECT_EQ((rule_table{dns_mode::all, {}, rules}.mode_for(name("x.example"))), dns_mode::all);
  EXPECT_EQ((rule_table{dns_mode::all, {}, rules}.mode_for(name("."))), dns_mode::all);
  // A rule for the root is the fallback of every name.
  const std::vector<dns_rule> root{{".", dns_mode::never}};
  EXPECT_EQ((rule_table{dns_mode::all, {}, root}.mode_for(name("x.example"))), dns_mode::never);
}

// ---- reverse names --------------------------------------------------------------------------------

TEST(dns_policy_reverse_names, read_as_prefixes) {
  EXPECT_EQ(reverse_name_prefix(name("2.0.192.in-addr.arpa")), cidr::parse("192.0.2.0/24"));
  EXPECT_EQ(reverse_name_prefix(name("5.0.18.198.in-addr.arpa")), cidr::parse("198.18.0.5/32"));
  EXPECT_EQ(reverse_name_prefix(name("198.IN-ADDR.ARPA")), cidr::parse("198.0.0.0/8"));
  EXPECT_EQ(reverse_name_prefix(name("in-addr.arpa")), cidr::parse("0.0.0.0/0"));
  EXPECT_EQ(reverse_name_prefix(name("0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa")), cidr::parse("2001:2::/48"));
  EXPECT_EQ(reverse_name_prefix(name("B.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa")), cidr::parse("2001:2:b::/48"));
  EXPECT_EQ(reverse_name_prefix(name("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa")),
            cidr::parse("2001:2::1/128"));
  for (const char* bad :
       {"example.com", "arpa", "256.in-addr.arpa", "01.in-addr.arpa", "x.in-addr.arpa", "1.2.3.4.5.in-addr.arpa",
        "g.ip6.arpa", "10.ip6.arpa", "-1.in-addr.arpa", "1.2.in-addr.example",
        // 33 nibbles
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa",
        // ::ffff:0:0/96 is IPv4, named under in-addr.arpa.
        "f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"}) {
    EXPECT_FALSE(reverse_name_prefix(name(bad))) << bad;
  }
}

TEST(dns_policy_reverse_names, of_host_addresses) {
  EXPECT_EQ(reverse_name_of(addr("198.18.0.5")), name("5.0.18.198.in-addr.arpa"));
  EXPECT_EQ(reverse_name_of(addr("2001:2::ab")),
            name("b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa"));
  for (const char* a : {"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "fe80::1:2"}) {
    EXPECT_EQ(reverse_name_prefix(reverse_name_of(addr(a))), cidr(addr(a), addr(a).is_v4() ? 32U : 128U)) << a;
  }
}

TEST(dns_policy_lookups, remembers_answers_failures_and_mappings) {
  lookups known;
  EXPECT_EQ(known.size(), 0U);
  const auto q = ask("a.example", rr_type::a);
  EXPECT_EQ(known.find(q), nullptr);
  known.add(q, std::nullopt);
  ASSERT_NE(known.find(q), nullptr);
  EXPECT_FALSE(known.find(q)->has_value());
  const auto q6 = ask("a.example", rr_type::aaaa);
  EXPECT_EQ(known.find(q6), nullptr);
  known.add(q6, answered(q6, {0, false, {rr_aaaa("a.example.", "2001:db8::1")}, {}, {}}));
  ASSERT_NE(known.find(q6), nullptr);
  ASSERT_TRUE(known.find(q6)->has_value());
  EXPECT_EQ((*known.find(q6))->a->v6, std::vector<ip_address>{addr("2001:db8::1")});
  EXPECT_EQ(known.find_mapping(addr("198.18.0.1")), nullptr);
  known.add_mapping(addr("198.18.0.1"), name("m.example"));
  known.add_mapping(addr("198.18.0.2"), std::nullopt);
  ASSERT_NE(known.find_mapping(addr("198.18.0.1")), nullptr);
  EXPECT_EQ(*known.find_mapping(addr("198.18.0.1")), name("m.example"));
  ASSERT_NE(known.find_mapping(addr("198.18.0.2")), nullptr);
  EXPECT_FALSE(known.find_mapping(addr("198.18.0.2"))->has_value());
  EXPECT_EQ(known.size(), 4U);
}

// ---- translate mode -------------------------------------------------------------------------------

TEST(dns_policy_translate, real_address_of_the_asked_family_is_forwarded_as_is) {
  const policy p{settings()};
  const auto q = make_query("Www.Example.COM", rr_type::a);
  lookups known;
  auto d = p.decide(q, known, no_limit);
  ASSERT_TRUE(std::holds_alternative<ask_upstream>(d));
  EXPECT_EQ(std::get<ask_upstream>(d).q, ask("www.example.com", rr_type::a));
  known.add(q.q, answered(q.q, {0, false, {rr_a("www.example.com.", "192.0.2.1", 120)}, {}, {}}));
  d = p.decide(q, known, no_limit);
  const auto reply = reply_of(d);
  EXPECT_EQ(reply.kind, reply_kind::forwarded);
  EXPECT_EQ(reply.records_removed, 0U);
  const auto r = read(reply.wire);
  EXPECT_EQ(r.id, 0x1234);
  EXPECT_EQ(r.qname, "Www.Example.COM.");
  EXPECT_EQ(r.rcode(), 0U);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].type, rr_type::a);
  EXPECT_EQ(r.answer[0].rdata, a_rdata("192.0.2.1"));
  EXPECT_EQ(r.answer[0].ttl, 120U);
  EXPECT_EQ(known.size(), 1U);  // the other family was never asked
}

TEST(dns_policy_translate, nodata_with_an_address_of_the_other_family_allocates) {
  const policy p{settings()};
  for (const auto type : {rr_type::a, rr_type::aaaa}) {
    const auto other = type == rr_type::a ? rr_type::aaaa : rr_type::a;
    const auto q = make_query("only.example", type);
    lookups known;
    auto d = p.decide(q, known, no_limit);
    ASSERT_TRUE(std::holds_alternative<ask_upstream>(d));
    known.add(q.q, answered(q.q, nodata("example.")));
    d = p.decide(q, known, no_limit);
    ASSERT_TRUE(std::holds_alternative<ask_upstream>(d));
    const auto other_q = ask("only.example", other);
    EXPECT_EQ(std::get<ask_upstream>(d).q, other_q);
    known.add(other_q, answered(other_q, {0,
                                          false,
                                          {other == rr_type::a ? rr_a("only.example.", "192.0.2.9")
                                                               : rr_aaaa("only.example.", "2001:db8::9")},
                                          {},
                                          {}}));
    d = p.decide(q, known, no_limit);
    ASSERT_TRUE(std::holds_alternative<allocate_fake>(d));
    EXPECT_EQ(std::get<allocate_fake>(d).family, type == rr_type::a ? ip_family::v4 : ip_family::v6);
  }
}

TEST(dns_policy_translate, cname_chain_decides_by_its_end) {
  const policy p{settings()};
  world w;
  // A: a CNAME to a name with only AAAA; the AAAA answer follows the same chain.
  w.set("www.example", rr_type::a,
        upstream_msg{0, false, {rr_cname("www.example.", "host.cdn.example.")}, {rr_soa("cdn.example.")}, {}});
  w.set("www.example", rr_type::aaaa,
        upstream_msg{0,
                     false,
                     {rr_cname("www.example.", "host.cdn.example."), rr_aaaa("host.cdn.example.", "2001:db8::5")},
                     {},
                     {}});
  const auto d = run(p, make_query("www.example", rr_type::a), w);
  ASSERT_TRUE(std::holds_alternative<allocate_fake>(d));
  EXPECT_EQ(std::get<allocate_fake>(d).family, ip_family::v4);
  // An unrelated A record riding along does not make the name IPv4-reachable.
  world w2;
  w2.set("www.example", rr_type::a,
         upstream_msg{
             0, false, {rr_cname("www.example.", "host.cdn.example.")}, {}, {rr_a("other.example.", "192.0.2.3")}});
  w2.set("www.example", rr_type::aaaa, nodata("example."));
  const auto r = reply_of(run(p, make_query("www.example", rr_type::a), w2));
  EXPECT_EQ(r.kind, reply_kind::forwarded);
  EXPECT_EQ(w2.asked.size(), 2U);
}

TEST(dns_policy_translate, nodata_for_both_families_stays_nodata) {
  const policy p{settings()};
  world w;
  w.set("empty.example", rr_type::aaaa, nodata("example."));
  w.set("empty.example", rr_type::a, nodata("example."));
  const auto reply = reply_of(run(p, make_query("empty.example", rr_type::aaaa), w));
  EXPECT_EQ(reply.kind, reply_kind::forwarded);
  EXPECT_EQ(w.asked, (std::vector<question>{ask("empty.example", rr_type::aaaa), ask("empty.example", rr_type::a)}));
  const auto r = read(reply.wire);
  EXPECT_EQ(r.rcode(), 0U);
  EXPECT_TRUE(r.answer.empty());
  ASSERT_EQ(r.authority.size(), 1U);  // the upstream's SOA, for negative caching
  EXPECT_EQ(r.authority[0].type, rr_type::soa);
  EXPECT_EQ(r.qtype, rr_type::aaaa);
}

TEST(dns_policy_translate, nxdomain_stays_nxdomain_without_asking_the_other_family) {
  for (const auto mode : {dns_mode::translate, dns_mode::all}) {
    const policy p{settings(mode)};
    world w;
    w.set("gone.example", rr_type::a, nxdomain("example."));
    const auto reply = reply_of(run(p, make_query("gone.example", rr_type::a), w));
    EXPECT_EQ(reply.kind, reply_kind::forwarded);
    EXPECT_EQ(w.asked.size(), 1U);
    const auto r = read(reply.wire);
    EXPECT_EQ(r.rcode(), 3U);
    EXPECT_EQ(of_type(r.authority, rr_type::soa).size(), 1U);
  }
}

TEST(dns_policy_translate, upstream_failure_is_servfail) {
  const policy p{settings()};
  {
    world w;
    w.set("a.example", rr_type::a, std::nullopt);
    const auto reply = reply_of(run(p, make_query("a.example", rr_type::a), w));
    EXPECT_EQ(reply.kind, reply_kind::upstream_failed);
    EXPECT_EQ(read(reply.wire).rcode(), 2U);
    EXPECT_EQ(w.asked.size(), 1U);
  }
  {
    // The asked family is NODATA and the other family's lookup failed: it cannot be told.
    world w;
    w.set("a.example", rr_type::a, nodata("example."));
    w.set("a.example", rr_type::aaaa, std::nullopt);
    const auto reply = reply_of(run(p, make_query("a.example", rr_type::a), w));
    EXPECT_EQ(reply.kind, reply_kind::upstream_failed);
    EXPECT_EQ(read(reply.wire).rcode(), 2U);
  }
}

TEST(dns_policy_translate, other_family_error_is_servfail_but_its_nxdomain_is_not) {
  const policy p{settings()};
  for (const unsigned code : {2U, 5U}) {  // SERVFAIL, REFUSED
    world w;
    w.set("a.example", rr_type::aaaa, nodata("example."));
    w.set("a.example", rr_type::a, upstream_msg{code, false, {}, {}, {}});
    const auto reply = reply_of(run(p, make_query("a.example", rr_type::aaaa), w));
    EXPECT_EQ(reply.kind, reply_kind::upstream_failed) << code;
    EXPECT_EQ(read(reply.wire).rcode(), 2U) << code;
  }
  world w;
  w.set("a.example", rr_type::aaaa, nodata("example."));
  w.set("a.example", rr_type::a, nxdomain("example."));
  const auto reply = reply_of(run(p, make_query("a.example", rr_type::aaaa), w));
  EXPECT_EQ(reply.kind, reply_kind::forwarded);
  EXPECT_EQ(read(reply.wire).rcode(), 0U);  // the asked family's NODATA
}

TEST(dns_policy_translate, asked_family_servfail_is_passed_on) {
  const policy p{settings()};
  world w;
  w.set("a.example", rr_type::a, servfail_msg());
  const auto reply = reply_of(run(p, make_query("a.example", rr_type::a), w));
  EXPECT_EQ(read(reply.wire).rcode(), 2U);
  EXPECT_EQ(w.asked.size(), 1U);
}

// ---- all mode ------------------------------------------------------------------------------------

TEST(dns_policy_all, real_address_gets_a_fake_one) {
  const policy p{settings(dns_mode::all)};
  for (const auto type : {rr_type::a, rr_type::aaaa}) {
    world w;
    w.set("dual.example", rr_type::a, upstream_msg{0, false, {rr_a("dual.example.", "192.0.2.1")}, {}, {}});
    w.set("dual.example", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("dual.example.", "2001:db8::1")}, {}, {}});
    const auto d = run(p, make_query("dual.example", type), w);
    ASSERT_TRUE(std::holds_alternative<allocate_fake>(d));
    EXPECT_EQ(std::get<allocate_fake>(d).family, type == rr_type::a ? ip_family::v4 : ip_family::v6);
    EXPECT_EQ(w.asked.size(), 1U);
  }
  // Only the other family: also faked.
  world w;
  w.set("v6only.example", rr_type::a, nodata("example."));
  w.set("v6only.example", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("v6only.example.", "2001:db8::1")}, {}, {}});
  EXPECT_EQ(allocated(run(p, make_query("v6only.example", rr_type::a), w)), ip_family::v4);
}

TEST(dns_policy_all, nodata_for_both_families_stays_nodata) {
  const policy p{settings(dns_mode::all)};
  world w;
  w.set("txtonly.example", rr_type::a, nodata("example."));
  w.set("txtonly.example", rr_type::aaaa, nodata("example."));
  const auto reply = reply_of(run(p, make_query("txtonly.example", rr_type::a), w));
  const auto r = read(reply.wire);
  EXPECT_EQ(r.rcode(), 0U);
  EXPECT_TRUE(r.answer.empty());
}

TEST(dns_policy_rules_in_use, never_rules_forward_untouched) {
  // all mode, a name under a never rule: its real address goes out as it came.
  const policy p{settings(dns_mode::all, {{"corp.example.", dns_mode::never}})};
  world w;
  w.set("intranet.corp.example", rr_type::a,
        upstream_msg{0, false, {rr_a("intranet.corp.example.", "192.0.2.77")}, {}, {}});
  const auto reply = reply_of(run(p, make_query("intranet.corp.example", rr_type::a), w));
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].rdata, a_rdata("192.0.2.77"));
  // Built-in: local. is never faked, also in all mode.
  world local;
  local.set("nas.local", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("nas.local.", "2001:db8:5::5")}, {}, {}});
  EXPECT_EQ(read(reply_of(run(p, make_query("nas.local", rr_type::aaaa), local)).wire).answer.size(), 1U);
  // translate mode, never rule: NODATA stays NODATA without asking the other family.
  const policy t{settings(dns_mode::translate, {{"corp.example.", dns_mode::never}})};
  world w2;
  w2.set("v4only.corp.example", rr_type::aaaa, nodata("corp.example."));
  const auto nd = reply_of(run(t, make_query("v4only.corp.example", rr_type::aaaa), w2));
  EXPECT_EQ(w2.asked.size(), 1U);
  EXPECT_TRUE(read(nd.wire).answer.empty());
}

TEST(dns_policy_rules_in_use, longest_rule_decides_the_query) {
  const policy p{settings(dns_mode::translate, {{"example.", dns_mode::all}, {"keep.example.", dns_mode::translate}})};
  world w;
  w.set("www.keep.example", rr_type::a, upstream_msg{0, false, {rr_a("www.keep.example.", "192.0.2.1")}, {}, {}});
  EXPECT_TRUE(std::holds_alternative<send_reply>(run(p, make_query("www.keep.example", rr_type::a), w)));
  world w2;
  w2.set("www.other.example", rr_type::a, upstream_msg{0, false, {rr_a("www.other.example.", "192.0.2.1")}, {}, {}});
  EXPECT_EQ(allocated(run(p, make_query("www.other.example", rr_type::a), w2)), ip_family::v4);
}

TEST(dns_policy, other_classes_are_forwarded_never_faked) {
  const policy p{settings(dns_mode::all)};
  const auto q = make_query("version.bind", rr_type::txt, {.qclass = class_ch});
  lookups known;
  const auto d = p.decide(q, known, no_limit);
  ASSERT_TRUE(std::holds_alternative<ask_upstream>(d));
  EXPECT_EQ(std::get<ask_upstream>(d).q, (question{name("version.bind"), rr_type::txt, class_ch}));
  // An A query in class CH is not an address query of the policy's.
  const auto qa = make_query("host.example", rr_type::a, {.qclass = class_ch});
  const auto da = p.decide(qa, known, no_limit);
  ASSERT_TRUE(std::holds_alternative<ask_upstream>(da));
  EXPECT_EQ(std::get<ask_upstream>(da).q.qclass, class_ch);
  // Its answer is forwarded.
  lookups with;
  const question chq{name("host.example"), rr_type::a, class_ch};
  auto a = accept_upstream_answer(answer_wire(chq, {}), upstream_id, chq);
  ASSERT_TRUE(a);
  with.add(chq, timed_answer{std::make_shared<const answer>(std::move(*a)), 0s});
  EXPECT_EQ(reply_of(p.decide(qa, with, no_limit)).kind, reply_kind::forwarded);
}

// ---- the fake reply -------------------------------------------------------------------------------

TEST(dns_policy_fake_reply, a_with_edns_and_do) {
  const policy p{settings()};
  const auto q =
      make_query("WwW.ExAmple", rr_type::a, {.id = 0xbeef, .rd = true, .cd = true, .edns = 4096, .do_bit = true});
  const auto wire = p.fake_reply(q, addr("198.18.1.2"));
  const bytes expected = wire_builder{}
                             .u16(0xbeef)  // ID echoed
                             .u16(0x8190)  // QR, RD, RA, CD; AA 0, AD 0, rcode 0
                             .u16(1)       // QDCOUNT
                             .u16(1)       // ANCOUNT
                             .u16(0)       // NSCOUNT
                             .u16(1)       // ARCOUNT: OPT
                             .name("WwW.ExAmple")
                             .u16(rr_type::a)
                             .u16(class_in)
                             .u16(0xc00c)  // the question's name
                             .u16(rr_type::a)
                             .u16(class_in)
                             .u32(42)  // fake_ttl
                             .u16(4)
                             .raw({198, 18, 1, 2})
                             .u8(0)  // OPT: root owner
                             .u16(rr_type::opt)
                             .u16(1232)        // our buffer size
                             .u32(0x00008000)  // ext rcode 0, version 0, DO
                             .u16(0)
                             .get();
  EXPECT_EQ(wire, expected);
  // And it reads as an answer to the question, with the fake address as the name's.
  const auto a = accept_upstream_answer(wire, 0xbeef, q.q);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->v4, std::vector<ip_address>{addr("198.18.1.2")});
  EXPECT_EQ(a->cache_ttl, 42s);
}

TEST(dns_policy_fake_reply, aaaa_without_edns) {
  const policy p{settings()};
  const auto q = make_query("V6.example", rr_type::aaaa, {.id = 7, .rd = false, .cd = false});
  const auto wire = p.fake_reply(q, addr("2001:2::1:5"));
  const auto r = read(wire);
  EXPECT_EQ(r.id, 7);
  EXPECT_TRUE(r.has(flag::qr));
  EXPECT_TRUE(r.has(flag::ra));
  EXPECT_FALSE(r.has(flag::rd));
  EXPECT_FALSE(r.has(flag::cd));
  EXPECT_FALSE(r.has(flag::aa));
  EXPECT_FALSE(r.has(flag::ad));
  EXPECT_FALSE(r.has(flag::tc));
  EXPECT_EQ(r.rcode(), 0U);
  EXPECT_FALSE(r.has_opt);
  EXPECT_EQ(r.qname, "V6.example.");
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].owner, "V6.example.");
  EXPECT_EQ(r.answer[0].type, rr_type::aaaa);
  EXPECT_EQ(r.answer[0].ttl, 42U);
  EXPECT_EQ(r.answer[0].rdata, aaaa_rdata("2001:2::1:5"));
  EXPECT_TRUE(r.authority.empty());
  EXPECT_TRUE(r.additional.empty());
  // EDNS without DO: OPT present, DO clear.
  const auto with_edns = read(p.fake_reply(make_query("v6.example", rr_type::aaaa, {.edns = 512}), addr("2001:2::1")));
  EXPECT_TRUE(with_edns.has_opt);
  EXPECT_EQ(with_edns.opt_ttl, 0U);
}

// ---- pool reverse names ----------------------------------------------------------------------------

TEST(dns_policy_reverse, mapped_pool_address_answers_ptr_with_the_mapping_name) {
  const policy p{settings(dns_mode::all)};
  for (const char* fake : {"198.18.0.5", "198.19.255.254", "2001:2::abcd"}) {
    const auto q = make_query(reverse_name_of(addr(fake)).to_string(), rr_type::ptr, {.edns = 1232});
    lookups known;
    auto d = p.decide(q, known, no_limit);
    ASSERT_TRUE(std::holds_alternative<find_mapping>(d)) << fake;
    EXPECT_EQ(std::get<find_mapping>(d).fake, addr(fake));
    known.add_mapping(addr(fake), name("Mapped.Example"));
    const auto reply = reply_of(p.decide(q, known, no_limit));
    EXPECT_EQ(reply.kind, reply_kind::reverse);
    const auto r = read(reply.wire);
    EXPECT_EQ(r.rcode(), 0U);
    EXPECT_TRUE(r.has(flag::aa));
    EXPECT_TRUE(r.has(flag::qr));
    EXPECT_TRUE(r.has_opt);
    ASSERT_EQ(r.answer.size(), 1U) << fake;
    EXPECT_EQ(r.answer[0].type, rr_type::ptr);
    EXPECT_EQ(r.answer[0].ttl, 42U);
    EXPECT_EQ(r.rdata_name(r.answer[0]), "mapped.example.");
  }
}

TEST(dns_policy_reverse, unmapped_pool_address_is_nxdomain_with_soa) {
  const policy p{settings()};
  world w;
  const auto reply = reply_of(run(p, make_query("9.0.19.198.In-Addr.Arpa", rr_type::ptr), w));
  EXPECT_EQ(w.looked_up, std::vector<ip_address>{addr("198.19.0.9")});
  EXPECT_TRUE(w.asked.empty());  // never forwarded
  const auto r = read(reply.wire);
  EXPECT_EQ(r.rcode(), 3U);
  EXPECT_EQ(r.qname, "9.0.19.198.In-Addr.Arpa.");
  EXPECT_TRUE(r.answer.empty());
  ASSERT_EQ(r.authority.size(), 1U);
  EXPECT_EQ(r.authority[0].type, rr_type::soa);
  // (letter case as ldns compresses it into the question: names compare case-insensitively)
  EXPECT_EQ(name(r.authority[0].owner), name("19.198.in-addr.arpa."));
  EXPECT_EQ(r.authority[0].ttl, 42U);
  // SOA MINIMUM (the negative TTL) is the last 4 bytes of its rdata.
  const auto& soa = r.authority[0].rdata;
  ASSERT_GE(soa.size(), 4U);
  EXPECT_EQ(u32_at(soa, soa.size() - 4), 42U);

  // The IPv6 pool's apex is the /48 zone.
  world w6;
  const auto r6 =
      read(reply_of(run(p, make_query(reverse_name_of(addr("2001:2::77")).to_string(), rr_type::ptr), w6)).wire);
  EXPECT_EQ(r6.rcode(), 3U);
  ASSERT_EQ(r6.authority.size(), 1U);
  EXPECT_EQ(name(r6.authority[0].owner), name("0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa."));
}

TEST(dns_policy_reverse, names_above_the_addresses_are_nodata) {
  const policy p{settings()};
  for (const char* partial : {"0.18.198.in-addr.arpa", "18.198.in-addr.arpa", "19.198.in-addr.arpa",
                              "0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa", "1.0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa"}) {
    world w;
    const auto reply = reply_of(run(p, make_query(partial, rr_type::ptr), w));
    EXPECT_EQ(reply.kind, reply_kind::reverse) << partial;
    EXPECT_TRUE(w.asked.empty()) << partial;
    EXPECT_TRUE(w.looked_up.empty()) << partial;
    const auto r = read(reply.wire);
    EXPECT_EQ(r.rcode(), 0U) << partial;
    EXPECT_TRUE(r.answer.empty()) << partial;
    EXPECT_EQ(of_type(r.authority, rr_type::soa).size(), 1U) << partial;
  }
}

TEST(dns_policy_reverse, other_types_for_a_mapped_address_are_nodata) {
  const policy p{settings()};
  for (const auto type : {rr_type::txt, rr_type::a, rr_type::aaaa, rr_type::cname}) {
    world w;
    w.mappings.emplace_back(addr("198.18.0.5"), name("m.example"));
    const auto reply = reply_of(run(p, make_query("5.0.18.198.in-addr.arpa", type), w));
    EXPECT_EQ(reply.kind, reply_kind::reverse);
    EXPECT_TRUE(w.asked.empty());
    const auto r = read(reply.wire);
    EXPECT_EQ(r.rcode(), 0U) << type;
    EXPECT_TRUE(r.answer.empty()) << type;
    EXPECT_EQ(of_type(r.authority, rr_type::soa).size(), 1U) << type;
  }
}

TEST(dns_policy_reverse, reverse_names_outside_the_pools_are_forwarded) {
  const policy p{settings()};
  const std::vector<std::string> names{"1.2.0.192.in-addr.arpa.", "5.0.17.198.in-addr.arpa.", "198.in-addr.arpa.",
                                       reverse_name_of(addr("2001:3::1")).to_string()};
  for (const auto& outside : names) {
    world w;
    w.set(outside, rr_type::ptr,
          upstream_msg{0, false, {{outside, rr_type::ptr, 300, name_rdata("real.example.")}}, {}, {}});
    const auto reply = reply_of(run(p, make_query(outside, rr_type::ptr), w));
    EXPECT_EQ(reply.kind, reply_kind::forwarded) << outside;
    EXPECT_EQ(w.asked.size(), 1U) << outside;
    EXPECT_TRUE(w.looked_up.empty()) << outside;
    const auto r = read(reply.wire);
    ASSERT_EQ(r.answer.size(), 1U) << outside;
    EXPECT_EQ(r.rdata_name(r.answer[0]), "real.example.");
  }
}

// Issue 5: "the reverse zones of both pools are answered locally (NXDOMAIN when unmapped), never
// forwarded". A name inside 18.198.in-addr.arpa. that is not an address (a DNS-SD browse name,
// a fifth label) is in that zone too.
TEST(dns_policy_reverse, names_in_a_pool_zone_that_are_not_addresses_are_never_forwarded) {
  const policy p{settings()};
  for (const char* inside : {"_dns-sd._udp.0.18.198.in-addr.arpa", "x.5.0.18.198.in-addr.arpa",
                             "1.5.0.18.198.in-addr.arpa", "g.0.0.0.0.2.0.0.0.1.0.0.2.ip6.arpa"}) {
    const auto q = make_query(inside, rr_type::ptr);
    lookups known;
    const auto d = p.decide(q, known, no_limit);
    EXPECT_FALSE(std::holds_alternative<ask_upstream>(d)) << inside << " is forwarded upstream";
    if (const auto* reply = std::get_if<send_reply>(&d)) {
      EXPECT_EQ(read(reply->wire).rcode(), 3U) << inside;
    }
  }
}

// ---- ANY -----------------------------------------------------------------------------------------

TEST(dns_policy, any_is_answered_with_one_hinfo) {
  const policy p{settings()};
  const auto q = make_query("Big.Example", type_any, {.id = 99, .edns = 1232});
  lookups known;
  const auto reply = reply_of(p.decide(q, known, no_limit));
  EXPECT_EQ(reply.kind, reply_kind::any_minimal);
  const auto r = read(reply.wire);
  EXPECT_EQ(r.id, 99);
  EXPECT_EQ(r.rcode(), 0U);
  EXPECT_EQ(r.qtype, type_any);
  EXPECT_TRUE(r.has_opt);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].owner, "Big.Example.");
  EXPECT_EQ(r.answer[0].type, type_hinfo);
  const bytes hinfo{7, 'R', 'F', 'C', '8', '4', '8', '2', 0};  // CPU "RFC8482", OS ""
  EXPECT_EQ(r.answer[0].rdata, hinfo);
}

// ---- pool addresses, glue ---------------------------------------------------------------------------

TEST(dns_policy_filter, pool_addresses_upstream_count_as_none) {
  const policy p{settings()};
  // Only a pool address for A: the name is treated as IPv6-only and gets its own fake.
  world w;
  w.set("loop.example", rr_type::a, upstream_msg{0, false, {rr_a("loop.example.", "198.18.3.4")}, {}, {}});
  w.set("loop.example", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("loop.example.", "2001:db8::4")}, {}, {}});
  EXPECT_EQ(allocated(run(p, make_query("loop.example", rr_type::a), w)), ip_family::v4);
  // A v6 pool address likewise.
  world w6;
  w6.set("loop.example", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("loop.example.", "2001:2::99")}, {}, {}});
  w6.set("loop.example", rr_type::a, upstream_msg{0, false, {rr_a("loop.example.", "192.0.2.4")}, {}, {}});
  EXPECT_EQ(allocated(run(p, make_query("loop.example", rr_type::aaaa), w6)), ip_family::v6);
  // Nothing else anywhere: NOERROR without the pool record.
  world none;
  none.set("loop.example", rr_type::a, upstream_msg{0, false, {rr_a("loop.example.", "198.19.0.1")}, {}, {}});
  none.set("loop.example", rr_type::aaaa, nodata("example."));
  const auto reply = reply_of(run(p, make_query("loop.example", rr_type::a), none));
  EXPECT_EQ(reply.records_removed, 1U);
  EXPECT_TRUE(read(reply.wire).answer.empty());
}

TEST(dns_policy_filter, pool_addresses_are_removed_from_forwarded_answers) {
  const policy p{settings()};
  world w;
  w.set("mixed.example", rr_type::a,
        upstream_msg{0, false, {rr_a("mixed.example.", "198.18.3.4"), rr_a("mixed.example.", "192.0.2.1")}, {}, {}});
  const auto reply = reply_of(run(p, make_query("mixed.example", rr_type::a), w));
  EXPECT_EQ(reply.records_removed, 1U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].rdata, a_rdata("192.0.2.1"));
}

TEST(dns_policy_filter, v4_mapped_aaaa_is_no_ipv6_address) {
  const policy p{settings()};
  world w;
  w.set("mapped.example", rr_type::aaaa,
        upstream_msg{0, false, {rr_aaaa("mapped.example.", "::ffff:192.0.2.1")}, {}, {}});
  w.set("mapped.example", rr_type::a, upstream_msg{0, false, {rr_a("mapped.example.", "192.0.2.1")}, {}, {}});
  EXPECT_EQ(allocated(run(p, make_query("mapped.example", rr_type::aaaa), w)), ip_family::v6);
}

upstream_msg mx_with_glue(bool ad) {
  return {0,
          ad,
          {rr_mx("example.org.", 10, "mail.example.net."), rr_rrsig("example.org.", type_mx, "example.org.")},
          {},
          {rr_a("mail.example.net.", "192.0.2.25"), rr_aaaa("mail.example.net.", "2001:db8::25"),
           rr_rrsig("mail.example.net.", rr_type::a, "example.net."),
           rr_rrsig("mail.example.net.", rr_type::aaaa, "example.net.")}};
}

TEST(dns_policy_filter, glue_of_an_all_name_goes_with_its_signatures) {
  const policy p{settings(dns_mode::translate, {{"example.net.", dns_mode::all}})};
  world w;
  w.set("example.org", type_mx, mx_with_glue(true));
  const auto reply = reply_of(run(p, make_query("example.org", type_mx, {.edns = 1232, .do_bit = true}), w));
  EXPECT_EQ(reply.kind, reply_kind::forwarded);
  EXPECT_EQ(reply.records_removed, 4U);  // A, AAAA and their two RRSIGs
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 2U);  // the MX and its signature stay
  EXPECT_EQ(r.answer[0].type, type_mx);
  EXPECT_EQ(r.answer[1].type, type_rrsig);
  EXPECT_TRUE(r.additional.empty());
  EXPECT_FALSE(r.has(flag::ad));  // edited data is no longer what was validated
}

TEST(dns_policy_filter, glue_of_a_translate_name_is_kept) {
  const policy p{settings()};
  world w;
  w.set("example.org", type_mx, mx_with_glue(true));
  const auto reply = reply_of(run(p, make_query("example.org", type_mx, {.edns = 1232, .do_bit = true}), w));
  EXPECT_EQ(reply.records_removed, 0U);
  const auto r = read(reply.wire);
  EXPECT_EQ(r.answer.size(), 2U);
  EXPECT_EQ(r.additional.size(), 4U);
  EXPECT_TRUE(r.has(flag::ad));  // untouched, to a client that asked for DNSSEC
  // Pool addresses in glue go in every mode.
  world pool;
  pool.set("example.org", type_mx,
           upstream_msg{0,
                        false,
                        {rr_mx("example.org.", 10, "mail.example.net.")},
                        {},
                        {rr_a("mail.example.net.", "198.18.0.25"), rr_aaaa("mail.example.net.", "2001:db8::25")}});
  const auto pr = reply_of(run(p, make_query("example.org", type_mx), pool));
  EXPECT_EQ(pr.records_removed, 1U);
  const auto prr = read(pr.wire);
  ASSERT_EQ(prr.additional.size(), 1U);
  EXPECT_EQ(prr.additional[0].type, rr_type::aaaa);
}

TEST(dns_policy_filter, all_mode_glue_in_srv_and_ns_answers) {
  const policy p{settings(dns_mode::all)};
  world w;
  const record ns{"example.org.", rr_type::ns, 300, name_rdata("ns1.example.org.")};
  w.set("example.org", rr_type::ns,
        upstream_msg{
            0, false, {ns}, {}, {rr_a("ns1.example.org.", "192.0.2.53"), rr_aaaa("ns1.example.org.", "2001:db8::53")}});
  const auto reply = reply_of(run(p, make_query("example.org", rr_type::ns), w));
  EXPECT_EQ(reply.records_removed, 2U);
  const auto r = read(reply.wire);
  EXPECT_EQ(r.answer.size(), 1U);
  EXPECT_TRUE(r.additional.empty());
}

// ---- SVCB / HTTPS ---------------------------------------------------------------------------------

bytes full_params() {
  return concat({svc_kv(1, alpn_h2_h3()), svc_kv(3, port_8443()), svc_kv(svc_param::ipv4hint, v4hint_value()),
                 svc_kv(5, ech_config()), svc_kv(svc_param::ipv6hint, v6hint_value())});
}

// The SvcParams of an SVCB/HTTPS record read back: rdata after priority and TargetName.
bytes params_of(const parsed_reply& r, const parsed_rr& rr) {
  std::size_t end = 0;
  EXPECT_TRUE(r.name_at(rr.rdata_offset + 2, &end));
  return {r.wire.begin() + static_cast<std::ptrdiff_t>(end),
          r.wire.begin() + static_cast<std::ptrdiff_t>(rr.rdata_offset + rr.rdata.size())};
}

TEST(dns_policy_svcb, all_mode_removes_both_hints_without_lookups) {
  const policy p{settings(dns_mode::translate, {{"svc.example.", dns_mode::all}})};
  world w;
  w.set("svc.example", rr_type::https,
        upstream_msg{0,
                     true,
                     {rr_svc(rr_type::https, "svc.example.", 1, ".", full_params()),
                      rr_rrsig("svc.example.", rr_type::https, "svc.example.")},
                     {},
                     {}});
  const auto reply = reply_of(run(p, make_query("svc.example", rr_type::https, {.edns = 1232, .do_bit = true}), w));
  EXPECT_EQ(w.asked.size(), 1U);
  EXPECT_EQ(reply.hints_removed, 2U);
  EXPECT_EQ(reply.records_removed, 1U);  // the RRSIG over the edited record
  const auto r = read(reply.wire);
  EXPECT_FALSE(r.has(flag::ad));
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.answer[0].type, rr_type::https);
  EXPECT_EQ(u16_at(r.answer[0].rdata, 0), 1);  // priority kept
  EXPECT_EQ(r.rdata_name(r.answer[0], 2), ".");
  // alpn, port and ech byte for byte, in order.
  EXPECT_EQ(params_of(r, r.answer[0]),
            concat({svc_kv(1, alpn_h2_h3()), svc_kv(3, port_8443()), svc_kv(5, ech_config())}));
}

TEST(dns_policy_svcb, translate_asks_the_target_and_removes_the_family_it_lacks) {
  const policy p{settings()};
  world w;
  w.set("www.example", rr_type::https,
        upstream_msg{0, false, {rr_svc(rr_type::https, "www.example.", 1, "cdn.example.net.", full_params())}, {}, {}});
  w.set("cdn.example.net", rr_type::a, upstream_msg{0, false, {rr_a("cdn.example.net.", "192.0.2.10")}, {}, {}});
  w.set("cdn.example.net", rr_type::aaaa, nodata("example.net."));
  const auto reply = reply_of(run(p, make_query("www.example", rr_type::https), w));
  EXPECT_EQ(w.asked, (std::vector<question>{ask("www.example", rr_type::https), ask("cdn.example.net", rr_type::a),
                                            ask("cdn.example.net", rr_type::aaaa)}));
  EXPECT_EQ(reply.hints_removed, 1U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(r.rdata_name(r.answer[0], 2), "cdn.example.net.");
  EXPECT_EQ(params_of(r, r.answer[0]), concat({svc_kv(1, alpn_h2_h3()), svc_kv(3, port_8443()),
                                               svc_kv(svc_param::ipv4hint, v4hint_value()), svc_kv(5, ech_config())}));
}

TEST(dns_policy_svcb, translate_keeps_hints_of_a_dual_stack_target) {
  const policy p{settings()};
  world w;
  w.set("www.example", rr_type::https,
        upstream_msg{0, false, {rr_svc(rr_type::https, "www.example.", 1, "cdn.example.net.", full_params())}, {}, {}});
  w.set("cdn.example.net", rr_type::a, upstream_msg{0, false, {rr_a("cdn.example.net.", "192.0.2.10")}, {}, {}});
  w.set("cdn.example.net", rr_type::aaaa,
        upstream_msg{0, false, {rr_aaaa("cdn.example.net.", "2001:db8::10")}, {}, {}});
  const auto reply = reply_of(run(p, make_query("www.example", rr_type::https), w));
  EXPECT_EQ(reply.hints_removed, 0U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(params_of(r, r.answer[0]), full_params());
}

TEST(dns_policy_svcb, target_dot_means_the_owner) {
  const policy p{settings()};
  world w;
  w.set("svc.example", rr_type::svcb,
        upstream_msg{0, false, {rr_svc(rr_type::svcb, "svc.example.", 1, ".", full_params())}, {}, {}});
  w.set("svc.example", rr_type::a, nodata("example."));
  w.set("svc.example", rr_type::aaaa, upstream_msg{0, false, {rr_aaaa("svc.example.", "2001:db8::10")}, {}, {}});
  const auto reply = reply_of(run(p, make_query("svc.example", rr_type::svcb), w));
  EXPECT_EQ(w.asked, (std::vector<question>{ask("svc.example", rr_type::svcb), ask("svc.example", rr_type::a),
                                            ask("svc.example", rr_type::aaaa)}));
  EXPECT_EQ(reply.hints_removed, 1U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(params_of(r, r.answer[0]), concat({svc_kv(1, alpn_h2_h3()), svc_kv(3, port_8443()), svc_kv(5, ech_config()),
                                               svc_kv(svc_param::ipv6hint, v6hint_value())}));
}

TEST(dns_policy_svcb, alias_mode_is_forwarded_without_lookups) {
  const policy p{settings(dns_mode::all)};
  world w;
  w.set("example.com", rr_type::https,
        upstream_msg{0, false, {rr_svc(rr_type::https, "example.com.", 0, "pool.svc.example.", {})}, {}, {}});
  const auto reply = reply_of(run(p, make_query("example.com", rr_type::https), w));
  EXPECT_EQ(w.asked.size(), 1U);
  EXPECT_EQ(reply.hints_removed, 0U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(u16_at(r.answer[0].rdata, 0), 0);
  EXPECT_EQ(r.rdata_name(r.answer[0], 2), "pool.svc.example.");
}

TEST(dns_policy_svcb, mandatory_list_loses_the_removed_hints) {
  const policy p{settings(dns_mode::all)};
  const bytes mandatory{0, 1, 0, 4};  // alpn, ipv4hint
  world w;
  w.set("svc.example", rr_type::https,
        upstream_msg{0,
                     false,
                     {rr_svc(rr_type::https, "svc.example.", 1, ".",
                             concat({svc_kv(0, mandatory), svc_kv(1, alpn_h2_h3()),
                                     svc_kv(svc_param::ipv4hint, v4hint_value())}))},
                     {},
                     {}});
  const auto r = read(reply_of(run(p, make_query("svc.example", rr_type::https), w)).wire);
  ASSERT_EQ(r.answer.size(), 1U);
  EXPECT_EQ(params_of(r, r.answer[0]), concat({svc_kv(0, {0, 1}), svc_kv(1, alpn_h2_h3())}));
}

TEST(dns_policy_svcb, failed_target_lookup_removes_the_hints) {
  const policy p{settings()};
  world w;
  w.set("www.example", rr_type::https,
        upstream_msg{0, false, {rr_svc(rr_type::https, "www.example.", 1, "cdn.example.net.", full_params())}, {}, {}});
  w.set("cdn.example.net", rr_type::a, std::nullopt);
  w.set("cdn.example.net", rr_type::aaaa, servfail_msg());
  const auto reply = reply_of(run(p, make_query("www.example", rr_type::https), w));
  EXPECT_EQ(reply.hints_removed, 2U);
}

TEST(dns_policy_svcb, lookups_stop_at_the_budget_and_the_rest_is_removed) {
  const policy p{settings()};
  world w;
  upstream_msg m;
  for (int i = 1; i <= 5; ++i) {
    const auto target = "t" + std::to_string(i) + ".example.";
    m.an.push_back(rr_svc(rr_type::https, "www.example.", static_cast<std::uint16_t>(i), target, full_params()));
    w.set(target, rr_type::a, upstream_msg{0, false, {rr_a(target, "192.0.2.1")}, {}, {}});
    w.set(target, rr_type::aaaa, upstream_msg{0, false, {rr_aaaa(target, "2001:db8::1")}, {}, {}});
  }
  w.set("www.example", rr_type::https, m);
  const auto reply = reply_of(run(p, make_query("www.example", rr_type::https), w));
  EXPECT_EQ(w.asked.size(), policy::max_lookups);
  // t1..t3 fully checked (kept), t4's A checked but not its AAAA, t5 not at all.
  EXPECT_EQ(reply.hints_removed, 3U);
  const auto r = read(reply.wire);
  ASSERT_EQ(r.answer.size(), 5U);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto hints = hints_in(params_of(r, r.answer[i]));
    ASSERT_TRUE(hints) << i;
    EXPECT_EQ(hints->v4, i < 4) << i;
    EXPECT_EQ(hints->v6, i < 3) << i;
  }
}

// A record whose SvcParams are malformed (keys out of order) and carry hints must not pass
// the hints on: a lenient client would use them and go around the gateway.
TEST(dns_policy_svcb, malformed_params_never_carry_hints_past_the_policy) {
  const policy p{settings(dns_mode::all)};
  const auto bad = concat({svc_kv(svc_param::ipv6hint, v6hint_value()), svc_kv(svc_param::ipv4hint, v4hint_value())});
  world w;
  w.set("svc.example", rr_type::https,
        upstream_msg{0, false, {rr_svc(rr_type::https, "svc.example.", 1, ".", bad)}, {}, {}});
  const auto reply = reply_of(run(p, make_query("svc.example", rr_type::https), w));
  const auto r = read(reply.wire);
  for (const auto& rr : r.answer) {
    if (rr.type == rr_type::https) {
      const auto params = params_of(r, rr);
      EXPECT_NE(params, bad) << "malformed hints forwarded as they came";
    }
  }
}

// ---- size limits ----------------------------------------------------------------------------------

TEST(dns_policy, replies_over_the_limit_are_truncated) {
  const policy p{settings(dns_mode::translate, {{"example.net.", dns_mode::all}})};
  upstream_msg big;
  for (int i = 0; i < 20; ++i) {
    big.an.push_back(rr_txt("big.example.", std::string(60, static_cast<char>('a' + i))));
  }
  // Forwarded unedited ...
  world w;
  w.set("big.example", rr_type::txt, big);
  const auto full = read(reply_of(run(p, make_query("big.example", rr_type::txt), w)).wire);
  EXPECT_EQ(full.answer.size(), 20U);
  EXPECT_FALSE(full.has(flag::tc));
  const auto cut_wire = reply_of(run(p, make_query("big.example", rr_type::txt, {.edns = 512}), w, 512)).wire;
  EXPECT_LE(cut_wire.size(), 512U);
  const auto cut = read(cut_wire);
  EXPECT_TRUE(cut.has(flag::tc));
  EXPECT_TRUE(cut.answer.empty());
  EXPECT_EQ(cut.qname, "big.example.");
  EXPECT_TRUE(cut.has_opt);
  // ... and edited (glue removed).
  big.ar.push_back(rr_a("x.example.net.", "192.0.2.1"));
  world e;
  e.set("big.example", rr_type::txt, big);
  const auto edited = reply_of(run(p, make_query("big.example", rr_type::txt), e, 512));
  EXPECT_EQ(edited.records_removed, 1U);
  EXPECT_LE(edited.wire.size(), 512U);
  EXPECT_TRUE(read(edited.wire).has(flag::tc));
}

}  // namespace
}  // namespace gate46::dns
