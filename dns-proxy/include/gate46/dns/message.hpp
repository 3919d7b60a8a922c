// DNS messages as the proxy handles them: queries from clients, queries to upstreams, their
// answers, and the replies built from them. Pure functions over bytes (ldns underneath, never
// in this header), so the servers and the resolver stay thin and all of this is unit tested.
//
// Anything read from the network is checked before use: a client's bytes yield a query, an
// immediate reply (FORMERR, NOTIMP, BADVERS) or a silent drop; an upstream's bytes that do not
// answer the question we asked are dropped.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"

namespace gate46::dns {

using bytes = std::vector<std::uint8_t>;
using byte_view = std::span<const std::uint8_t>;

enum class rcode : std::uint16_t {
  noerror = 0,
  formerr = 1,
  servfail = 2,
  nxdomain = 3,
  notimp = 4,
  refused = 5,
  badvers = 16,  // extended (EDNS0)
};

namespace rr_type {
inline constexpr std::uint16_t a = 1;
inline constexpr std::uint16_t ns = 2;
inline constexpr std::uint16_t cname = 5;
inline constexpr std::uint16_t soa = 6;
inline constexpr std::uint16_t ptr = 12;
inline constexpr std::uint16_t txt = 16;
inline constexpr std::uint16_t aaaa = 28;
inline constexpr std::uint16_t opt = 41;
inline constexpr std::uint16_t svcb = 64;
inline constexpr std::uint16_t https = 65;
inline constexpr std::uint16_t ixfr = 251;
inline constexpr std::uint16_t axfr = 252;
}  // namespace rr_type

inline constexpr std::uint16_t class_in = 1;
// Our EDNS0 buffer size, upstream and downstream (DNS flag day 2020).
inline constexpr std::uint16_t edns_buffer_size = 1232;

struct question {
  dns_name name;  // lower-cased: the cache key and what policy matches
  std::uint16_t type = 0;
  std::uint16_t qclass = class_in;
  friend bool operator==(const question&, const question&) = default;
};

struct query {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  bool checking_disabled = false;
  bool dnssec_ok = false;
  question q;
  // The name exactly as the client wrote it (letter case included), echoed in the reply.
  bytes name_as_sent;
  // The client's EDNS0 UDP payload size when it sent an OPT record (at least 512).
  std::optional<std::uint16_t> edns_udp_size;

  // The largest reply we send this client over UDP: its EDNS0 size, but never more than the
  // flag-day buffer size even if it offers more (larger UDP answers fragment, and fragments
  // get lost or spoofed); 512 without EDNS0.
  [[nodiscard]] std::size_t udp_limit() const noexcept {
    return std::min<std::size_t>(edns_udp_size.value_or(512), edns_buffer_size);
  }
};

struct drop {};
using query_or_reply = std::variant<query, bytes, drop>;

// A message from a client: a query to answer, a reply to send at once (FORMERR for malformed
// queries and QDCOUNT != 1, NOTIMP for other opcodes, BADVERS for EDNS versions above 0,
// REFUSED for zone transfers), or a drop (responses, anything without a whole header).
query_or_reply parse_query(byte_view wire);
// The same through ldns alone, for every message (parse_query reads the plain shape of nearly
// every query itself); the fuzz target checks that both agree.
query_or_reply parse_query_with_ldns(byte_view wire);

// A reply to `q` carrying only its question and `code`.
bytes make_error_reply(const query& q, rcode code);
// REFUSED for a client that may not use us, echoing ID and question when they parse; nothing
// for what would be dropped anyway.
std::optional<bytes> make_refusal(byte_view wire);

// ---- upstream side ---------------------------------------------------------------------------

// An A or AAAA record of an answer, in any section.
struct address_record {
  dns_name owner;
  ip_address address;
  friend bool operator==(const address_record&, const address_record&) = default;
};
// An SVCB or HTTPS record that carries address hints.
struct hinted_service {
  dns_name owner;
  dns_name target;  // TargetName, or the owner when it is "." (RFC 9460 §2.5.2)
  bool v4_hint = false;
  bool v6_hint = false;
  bool malformed = false;  // SvcParams that do not parse (RFC 9460 §2.2): the record is dropped
  friend bool operator==(const hinted_service&, const hinted_service&) = default;
};

// An upstream's answer, checked against our question.
struct answer {
  bytes wire;
  rcode code = rcode::noerror;
  bool truncated = false;
  // How long it may be cached: the smallest TTL of its records, or for NXDOMAIN and NODATA
  // the negative TTL of RFC 2308 (min of the SOA's TTL and MINIMUM); zero for anything else.
  std::chrono::seconds cache_ttl{0};
  // Read once when the answer is accepted, so that the policy decides on cached answers
  // without parsing them again.
  // The addresses owned by the name the question's CNAME chain ends at (never those of
  // unrelated names an upstream added); v4-mapped AAAA records are not IPv6 addresses.
  std::vector<ip_address> v4;
  std::vector<ip_address> v6;
  std::vector<address_record> address_records;  // every A/AAAA record, any section
  std::vector<hinted_service> hinted_services;  // SVCB/HTTPS records with ipv4hint/ipv6hint
};

// An answer and how long ago it was received (zero when it comes straight from upstream).
struct timed_answer {
  std::shared_ptr<const answer> a;
  std::chrono::seconds age{0};
};

// The query we send: RD set, CD and DO as given, EDNS0 with our buffer size.
bytes make_upstream_query(const question& q, std::uint16_t id, bool checking_disabled, bool dnssec_ok);

// Accepts `wire` only if it answers our query: same ID, QR set, one question equal to ours
// (name compared case-insensitively, type, class). Otherwise nullopt: the caller keeps waiting.
std::optional<answer> accept_upstream_answer(byte_view wire, std::uint16_t id, const question& q);

// The reply to `q` from `a`, received `age` ago: the client's ID and question (its letter
// case), RD and CD echoed, TTLs reduced by the age, OPT only if the query had one, and at most
// `limit` bytes: past it, the sections are dropped and TC is set.
bytes make_reply(const query& q, const answer& a, std::chrono::seconds age, std::size_t limit);

// a.v4 or a.v6.
inline const std::vector<ip_address>& addresses_in(const answer& a, ip_family family) {
  return family == ip_family::v4 ? a.v4 : a.v6;
}

}  // namespace gate46::dns
