#include "gate46/dns/message.hpp"

#include <gtest/gtest.h>

#include "dns_test_wire.hpp"

namespace gate46::dns {
namespace {

using namespace std::chrono_literals;
using test_wire::u16_at;
using test_wire::wire_builder;
using test_wire::flag::qr;
using test_wire::flag::rd;

// Header: id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
wire_builder header(std::uint16_t id, std::uint16_t flags, std::uint16_t qd, std::uint16_t an = 0, std::uint16_t ns = 0,
                    std::uint16_t ar = 0) {
  wire_builder w;
  w.u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  return w;
}

query parsed(const bytes& wire) {
  auto r = parse_query(wire);
  EXPECT_TRUE(std::holds_alternative<query>(r));
  return std::holds_alternative<query>(r) ? std::get<query>(r) : query{};
}

// The rcode (low 4 bits) of a reply.
unsigned rcode_of(const bytes& reply) {
  return reply.size() >= 4 ? reply[3] & 0x0f : 99;
}

TEST(dns_message, parses_a_query_and_keeps_the_letter_case) {
  const auto wire =
      header(0x1234, rd, 1, 0, 0, 1).name("WwW.Example.COM").u16(rr_type::aaaa).u16(class_in).opt(4096, 0, true).get();
  const auto q = parsed(wire);
  EXPECT_EQ(q.id, 0x1234);
  EXPECT_TRUE(q.recursion_desired);
  EXPECT_FALSE(q.checking_disabled);
  EXPECT_EQ(q.q.name, *dns_name::parse("www.example.com"));
  EXPECT_EQ(q.q.type, rr_type::aaaa);
  EXPECT_EQ(q.q.qclass, class_in);
  EXPECT_EQ(q.edns_udp_size, 4096);
  EXPECT_TRUE(q.dnssec_ok);
  EXPECT_EQ(q.udp_limit(), 1232U);  // never above the flag-day size
  const bytes as_sent{3, 'W', 'w', 'W', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'C', 'O', 'M', 0};
  EXPECT_EQ(q.name_as_sent, as_sent);

  const auto plain = parsed(header(1, 0, 1).name("a.example").u16(rr_type::a).u16(class_in).get());
  EXPECT_FALSE(plain.edns_udp_size);
  EXPECT_EQ(plain.udp_limit(), 512U);
}

TEST(dns_message, drops_what_it_cannot_answer) {
  EXPECT_TRUE(std::holds_alternative<drop>(parse_query(bytes{0x12, 0x34, 0x01})));  // no header
  // A response sent to the server: never answered (no reflection loops).
  const auto response = header(7, qr, 1).name("a.example").u16(1).u16(1).get();
  EXPECT_TRUE(std::holds_alternative<drop>(parse_query(response)));
}

TEST(dns_message, malformed_queries_get_formerr_with_their_id) {
  const std::vector<bytes> bad{
      header(0xbeef, rd, 2).name("a.example").u16(1).u16(1).name("b.example").u16(1).u16(1).get(),  // QDCOUNT 2
      header(0xbeef, rd, 0).get(),                                                                  // QDCOUNT 0
      header(0xbeef, rd, 1).raw({3, 'a', 'b'}).get(),                                               // cut label
      header(0xbeef, rd, 1).raw({0xc0, 12, 0, 1, 0, 1}).get(),  // name pointing at itself: a loop
      header(0xbeef, rd, 1).name("a.example").u16(1).get(),     // no class
  };
  for (const auto& wire : bad) {
    const auto r = parse_query(wire);
    ASSERT_TRUE(std::holds_alternative<bytes>(r));
    const auto& reply = std::get<bytes>(r);
    EXPECT_EQ(u16_at(reply, 0), 0xbeef);
    EXPECT_TRUE(reply[2] & 0x80);    // QR
    EXPECT_EQ(rcode_of(reply), 1U);  // FORMERR
  }
}

TEST(dns_message, other_opcodes_get_notimp_and_transfers_are_refused) {
  const auto notify = header(9, 4 << 11, 1).name("a.example").u16(rr_type::soa).u16(1).get();
  const auto r = parse_query(notify);
  ASSERT_TRUE(std::holds_alternative<bytes>(r));
  EXPECT_EQ(rcode_of(std::get<bytes>(r)), 4U);
  EXPECT_EQ((std::get<bytes>(r)[2] >> 3) & 0x0f, 4);  // opcode echoed

  const auto axfr = parse_query(header(9, 0, 1).name("a.example").u16(rr_type::axfr).u16(1).get());
  ASSERT_TRUE(std::holds_alternative<bytes>(axfr));
  EXPECT_EQ(rcode_of(std::get<bytes>(axfr)), 5U);
}

TEST(dns_message, edns_versions_above_zero_get_badvers) {
  const auto r = parse_query(header(3, rd, 1, 0, 0, 1).name("a.example").u16(1).u16(1).opt(1232, 1).get());
  ASSERT_TRUE(std::holds_alternative<bytes>(r));
  const auto& reply = std::get<bytes>(r);
  EXPECT_EQ(rcode_of(reply), 0U);   // BADVERS = 16: low bits 0 ...
  EXPECT_EQ(u16_at(reply, 10), 1);  // ... and an OPT record carries the high bits
  // The OPT is the last record: its TTL's first byte is the extended rcode (16 >> 4 = 1).
  EXPECT_EQ(reply[reply.size() - 6], 1);
}

TEST(dns_message, refusal_echoes_id_and_question) {
  const auto wire = header(0x4242, rd, 1).name("Secret.Example").u16(1).u16(1).get();
  const auto refusal = make_refusal(wire);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(u16_at(*refusal, 0), 0x4242);
  EXPECT_EQ(rcode_of(*refusal), 5U);
  EXPECT_EQ(u16_at(*refusal, 4), 1);                                                   // the question is echoed
  EXPECT_FALSE(make_refusal(header(1, qr, 1).name("a.example").u16(1).u16(1).get()));  // responses: dropped
}

// An upstream answer for a.example A with two records, TTL 300 and 100.
bytes upstream_a(std::uint16_t id, std::string_view qname = "a.example") {
  return header(id, qr | rd | 0x0080, 1, 2, 0, 1)
      .name(qname)
      .u16(rr_type::a)
      .u16(class_in)
      .name("a.example")
      .u16(rr_type::a)
      .u16(class_in)
      .u32(300)
      .u16(4)
      .raw({192, 0, 2, 10})
      .name("a.example")
      .u16(rr_type::a)
      .u16(class_in)
      .u32(100)
      .u16(4)
      .raw({192, 0, 2, 11})
      .opt(1232)
      .get();
}

TEST(dns_message, accepts_only_answers_to_our_question) {
  const question q{*dns_name::parse("a.example"), rr_type::a, class_in};
  const auto a = accept_upstream_answer(upstream_a(77), 77, q);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, rcode::noerror);
  EXPECT_EQ(a->cache_ttl, 100s);  // the smallest TTL
  EXPECT_FALSE(a->truncated);
  EXPECT_TRUE(accept_upstream_answer(upstream_a(77, "A.EXAMPLE"), 77, q));   // case-insensitive
  EXPECT_FALSE(accept_upstream_answer(upstream_a(78), 77, q));               // wrong ID
  EXPECT_FALSE(accept_upstream_answer(upstream_a(77, "b.example"), 77, q));  // wrong name
  const question aaaa{q.name, rr_type::aaaa, class_in};
  EXPECT_FALSE(accept_upstream_answer(upstream_a(77), 77, aaaa));  // wrong type
  auto not_a_response = upstream_a(77);
  not_a_response[2] &= 0x7f;
  EXPECT_FALSE(accept_upstream_answer(not_a_response, 77, q));
  auto cut = upstream_a(77);
  cut.resize(cut.size() - 15);
  EXPECT_FALSE(accept_upstream_answer(cut, 77, q));

  const auto addresses = addresses_in(*a, ip_family::v4);
  ASSERT_EQ(addresses.size(), 2U);
  EXPECT_EQ(addresses[0], *ip_address::parse("192.0.2.10"));
  EXPECT_TRUE(addresses_in(*a, ip_family::v6).empty());
}

TEST(dns_message, negative_answers_cache_for_the_soa_minimum) {
  const question q{*dns_name::parse("nope.example"), rr_type::a, class_in};
  // NXDOMAIN with the zone's SOA in authority: TTL 3600, MINIMUM 60.
  const auto wire = header(5, qr | rd | 3, 1, 0, 1, 0)
                        .name("nope.example")
                        .u16(rr_type::a)
                        .u16(class_in)
                        .name("example")
                        .u16(rr_type::soa)
                        .u16(class_in)
                        .u32(3600)
                        .u16(3 + 3 + 20)
                        .raw({1, 'n', 0})
                        .raw({1, 'h', 0})
                        .u32(1)
                        .u32(7200)
                        .u32(3600)
                        .u32(1209600)
                        .u32(60)
                        .get();
  const auto a = accept_upstream_answer(wire, 5, q);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, rcode::nxdomain);
  EXPECT_EQ(a->cache_ttl, 60s);
  // SERVFAIL is never cached.
  const auto servfail = header(6, qr | rd | 2, 1).name("nope.example").u16(rr_type::a).u16(class_in).get();
  EXPECT_EQ(accept_upstream_answer(servfail, 6, q)->cache_ttl, 0s);
}

TEST(dns_message, reply_echoes_the_client_and_ages_ttls) {
  const question q{*dns_name::parse("a.example"), rr_type::a, class_in};
  const auto a = *accept_upstream_answer(upstream_a(77), 77, q);

  const auto client = parsed(header(0x9999, rd | 0x0010, 1).name("A.Example").u16(rr_type::a).u16(class_in).get());
  const auto reply = make_reply(client, a, 40s, client.udp_limit());
  const auto back = accept_upstream_answer(reply, 0x9999, q);  // parses as an answer to our question
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cache_ttl, 60s);   // 100 - 40
  EXPECT_EQ(reply[2] & 0x01, 1);     // RD echoed
  EXPECT_EQ(reply[3] & 0x10, 0x10);  // CD echoed
  EXPECT_EQ(reply[3] & 0x80, 0x80);  // RA
  EXPECT_EQ(u16_at(reply, 10), 0);   // no OPT: the query had none
  // The question in the client's letter case, right after the header.
  EXPECT_EQ(std::string(reply.begin() + 12, reply.begin() + 23), std::string("\x01"
                                                                             "A"
                                                                             "\x07"
                                                                             "Example"
                                                                             "\x00",
                                                                             11));

  const auto edns_client =
      parsed(header(1, rd, 1, 0, 0, 1).name("a.example").u16(rr_type::a).u16(class_in).opt(1400).get());
  const auto with_opt = make_reply(edns_client, a, 0s, edns_client.udp_limit());
  EXPECT_EQ(u16_at(with_opt, 10), 1);  // OPT present
}

TEST(dns_message, replies_too_big_for_the_client_are_truncated) {
  const question q{*dns_name::parse("a.example"), rr_type::a, class_in};
  const auto a = *accept_upstream_answer(upstream_a(77), 77, q);
  const auto client = parsed(header(2, rd, 1).name("a.example").u16(rr_type::a).u16(class_in).get());
  const auto full = make_reply(client, a, 0s, 512);
  const auto cut = make_reply(client, a, 0s, full.size() - 1);
  EXPECT_EQ(cut[2] & 0x02, 0x02);  // TC
  EXPECT_EQ(u16_at(cut, 6), 0);    // no answers
  EXPECT_EQ(u16_at(cut, 4), 1);    // the question stays
  EXPECT_LT(cut.size(), full.size());
}

TEST(dns_message, upstream_query_carries_edns) {
  const question q{*dns_name::parse("a.example"), rr_type::aaaa, class_in};
  const auto wire = make_upstream_query(q, 0x5555, false, true);
  EXPECT_EQ(u16_at(wire, 0), 0x5555);
  EXPECT_EQ(wire[2] & 0x01, 1);    // RD
  EXPECT_EQ(u16_at(wire, 10), 1);  // OPT
  const auto back = parsed(wire);
  EXPECT_EQ(back.q, q);
  EXPECT_EQ(back.edns_udp_size, 1232);
}

}  // namespace
}  // namespace gate46::dns
