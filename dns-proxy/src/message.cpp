#include "gate46/dns/message.hpp"

#include <algorithm>
#include <limits>

#include "ldns.hpp"

namespace gate46::dns {
namespace {

constexpr std::size_t header_size = 12;

std::uint16_t read_u16(byte_view wire, std::size_t at) {
  return static_cast<std::uint16_t>((wire[at] << 8) | wire[at + 1]);
}

// A reply made from the header alone, for queries ldns cannot parse: ID and opcode echoed,
// no sections.
bytes header_only_reply(byte_view wire, rcode code) {
  bytes out(header_size, 0);
  out[0] = wire[0];
  out[1] = wire[1];
  out[2] = static_cast<std::uint8_t>(0x80 | (wire[2] & 0x78) | (wire[2] & 0x01));  // QR, opcode, RD
  out[3] = static_cast<std::uint8_t>(static_cast<unsigned>(code) & 0x0f);
  return out;
}

ldns::pkt_ptr parse(byte_view wire) {
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, wire.data(), wire.size()) != LDNS_STATUS_OK) {
    return nullptr;
  }
  return ldns::pkt_ptr{raw};
}

bytes serialise(const ldns_pkt* pkt) {
  std::uint8_t* raw = nullptr;
  std::size_t size = 0;
  if (ldns_pkt2wire(&raw, pkt, &size) != LDNS_STATUS_OK) {
    return {};
  }
  const ldns::wire_ptr owned{raw};
  return bytes(raw, raw + size);
}

// The question RR for `q`, with the owner name as the client wrote it.
ldns::rr_ptr question_rr(const bytes& name_wire, const question& q) {
  ldns::rr_ptr rr{ldns_rr_new()};
  ldns_rdf* owner = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, name_wire.size(), name_wire.data());
  ldns_rr_set_owner(rr.get(), owner);
  ldns_rr_set_type(rr.get(), static_cast<ldns_rr_type>(q.type));
  ldns_rr_set_class(rr.get(), static_cast<ldns_rr_class>(q.qclass));
  ldns_rr_set_question(rr.get(), true);
  return rr;
}

// A reply skeleton for `q`: ID, QR, opcode QUERY, RD and CD echoed, the question, and OPT if
// the query had one (DO echoed).
ldns::pkt_ptr reply_skeleton(const query& q) {
  ldns::pkt_ptr pkt{ldns_pkt_new()};
  ldns_pkt_set_id(pkt.get(), q.id);
  ldns_pkt_set_qr(pkt.get(), true);
  ldns_pkt_set_opcode(pkt.get(), LDNS_PACKET_QUERY);
  ldns_pkt_set_rd(pkt.get(), q.recursion_desired);
  ldns_pkt_set_cd(pkt.get(), q.checking_disabled);
  ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_QUESTION, question_rr(q.name_as_sent, q.q).release());
  if (q.edns_udp_size) {
    ldns_pkt_set_edns_udp_size(pkt.get(), edns_buffer_size);
    ldns_pkt_set_edns_do(pkt.get(), q.dnssec_ok);
  }
  return pkt;
}

void set_rcode(ldns_pkt* pkt, rcode code, bool client_has_edns) {
  auto value = static_cast<unsigned>(code);
  if (value > 15 && !client_has_edns) {
    value = static_cast<unsigned>(rcode::servfail);  // an extended rcode cannot reach it
  }
  ldns_pkt_set_rcode(pkt, static_cast<std::uint8_t>(value & 0x0f));
  if (client_has_edns) {
    ldns_pkt_set_edns_extended_rcode(pkt, static_cast<std::uint8_t>(value >> 4));
  }
}

rcode full_rcode(const ldns_pkt* pkt) {
  return static_cast<rcode>((static_cast<unsigned>(ldns_pkt_edns_extended_rcode(pkt)) << 4) |
                            static_cast<unsigned>(ldns_pkt_get_rcode(pkt)));
}

// Copies `from` into `section` of `to`, each record's TTL reduced by `age` (not below 0).
void copy_section(ldns_pkt* to, ldns_pkt_section section, const ldns_rr_list* from, std::uint32_t age) {
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(from); ++i) {
    ldns_rr* copy = ldns_rr_clone(ldns_rr_list_rr(from, i));
    const auto ttl = ldns_rr_ttl(copy);
    ldns_rr_set_ttl(copy, ttl > age ? ttl - age : 0);
    ldns_pkt_push_rr(to, section, copy);
  }
}

std::chrono::seconds cache_ttl_of(const ldns_pkt* pkt) {
  constexpr std::uint32_t max_cache_ttl = 86400;
  const auto code = full_rcode(pkt);
  const ldns_rr_list* answers = ldns_pkt_answer(pkt);
  if (code == rcode::noerror && ldns_rr_list_rr_count(answers) > 0) {
    std::uint32_t ttl = max_cache_ttl;
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers); ++i) {
      ttl = std::min(ttl, ldns_rr_ttl(ldns_rr_list_rr(answers, i)));
    }
    return std::chrono::seconds{ttl};
  }
  if (code == rcode::noerror || code == rcode::nxdomain) {
    // RFC 2308 §5: negative answers live for min(SOA TTL, SOA MINIMUM); without a SOA, not at all.
    const ldns_rr_list* authority = ldns_pkt_authority(pkt);
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(authority); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(authority, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
        const auto minimum = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
        return std::chrono::seconds{std::min({ldns_rr_ttl(rr), minimum, max_cache_ttl})};
      }
    }
  }
  return std::chrono::seconds{0};
}

}  // namespace

query_or_reply parse_query(byte_view wire) {
  if (wire.size() < header_size || (wire[2] & 0x80) != 0) {
    return drop{};  // no header to answer, or a response sent to a server
  }
  const unsigned opcode = (wire[2] >> 3) & 0x0f;
  if (opcode != LDNS_PACKET_QUERY) {
    return header_only_reply(wire, rcode::notimp);
  }
  if (read_u16(wire, 4) != 1) {
    return header_only_reply(wire, rcode::formerr);
  }
  const auto pkt = parse(wire);
  if (!pkt || ldns_rr_list_rr_count(ldns_pkt_question(pkt.get())) != 1) {
    return header_only_reply(wire, rcode::formerr);
  }
  const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0);
  const ldns_rdf* owner = ldns_rr_owner(rr);
  const byte_view owner_wire{ldns_rdf_data(owner), ldns_rdf_size(owner)};
  auto name = dns_name::from_wire(owner_wire);
  if (!name) {
    return header_only_reply(wire, rcode::formerr);
  }
  query q;
  q.id = ldns_pkt_id(pkt.get());
  q.recursion_desired = ldns_pkt_rd(pkt.get());
  q.checking_disabled = ldns_pkt_cd(pkt.get());
  q.q = question{std::move(*name), static_cast<std::uint16_t>(ldns_rr_get_type(rr)),
                 static_cast<std::uint16_t>(ldns_rr_get_class(rr))};
  q.name_as_sent.assign(owner_wire.begin(), owner_wire.end());
  if (ldns_pkt_edns(pkt.get())) {
    q.edns_udp_size = std::max<std::uint16_t>(512, ldns_pkt_edns_udp_size(pkt.get()));
    q.dnssec_ok = ldns_pkt_edns_do(pkt.get());
    if (ldns_pkt_edns_version(pkt.get()) != 0) {
      return make_error_reply(q, rcode::badvers);  // RFC 6891 §6.1.3
    }
  }
  if (q.q.type == rr_type::axfr || q.q.type == rr_type::ixfr) {
    return make_error_reply(q, rcode::refused);  // a forwarding resolver serves no zone transfers
  }
  return q;
}

bytes make_error_reply(const query& q, rcode code) {
  auto pkt = reply_skeleton(q);
  ldns_pkt_set_ra(pkt.get(), true);
  set_rcode(pkt.get(), code, q.edns_udp_size.has_value());
  return serialise(pkt.get());
}

std::optional<bytes> make_refusal(byte_view wire) {
  auto parsed = parse_query(wire);
  if (auto* q = std::get_if<query>(&parsed)) {
    return make_error_reply(*q, rcode::refused);
  }
  if (std::holds_alternative<drop>(parsed)) {
    return std::nullopt;
  }
  return header_only_reply(wire, rcode::refused);
}

bytes make_upstream_query(const question& q, std::uint16_t id, bool checking_disabled, bool dnssec_ok) {
  const auto wire = q.name.wire();
  ldns_rdf* name = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, wire.size(), wire.data());
  const std::uint16_t flags = LDNS_RD | (checking_disabled ? LDNS_CD : 0);
  const ldns::pkt_ptr pkt{
      ldns_pkt_query_new(name, static_cast<ldns_rr_type>(q.type), static_cast<ldns_rr_class>(q.qclass), flags)};
  ldns_pkt_set_id(pkt.get(), id);
  ldns_pkt_set_edns_udp_size(pkt.get(), edns_buffer_size);
  ldns_pkt_set_edns_do(pkt.get(), dnssec_ok);
  return serialise(pkt.get());
}

std::optional<answer> accept_upstream_answer(byte_view wire, std::uint16_t id, const question& q) {
  if (wire.size() < header_size || read_u16(wire, 0) != id || (wire[2] & 0x80) == 0) {
    return std::nullopt;
  }
  const auto pkt = parse(wire);
  if (!pkt || ldns_rr_list_rr_count(ldns_pkt_question(pkt.get())) != 1) {
    return std::nullopt;
  }
  const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0);
  const ldns_rdf* owner = ldns_rr_owner(rr);
  const auto name = dns_name::from_wire({ldns_rdf_data(owner), ldns_rdf_size(owner)});
  if (!name || *name != q.name || ldns_rr_get_type(rr) != q.type || ldns_rr_get_class(rr) != q.qclass) {
    return std::nullopt;
  }
  answer a;
  a.wire.assign(wire.begin(), wire.end());
  a.code = full_rcode(pkt.get());
  a.truncated = ldns_pkt_tc(pkt.get());
  a.cache_ttl = a.truncated ? std::chrono::seconds{0} : cache_ttl_of(pkt.get());
  return a;
}

bytes make_reply(const query& q, const answer& a, std::chrono::seconds age, std::size_t limit) {
  const auto upstream = parse(a.wire);
  if (!upstream) {
    return make_error_reply(q, rcode::servfail);  // cannot happen: accepted answers parse
  }
  const bool client_edns = q.edns_udp_size.has_value();
  auto pkt = reply_skeleton(q);
  ldns_pkt_set_ra(pkt.get(), true);  // AA stays clear: a forwarder is not authoritative
  // RFC 6840 §5.8: AD only for clients that asked about DNSSEC.
  ldns_pkt_set_ad(pkt.get(), q.dnssec_ok && ldns_pkt_ad(upstream.get()));
  set_rcode(pkt.get(), a.code, client_edns);
  const auto age_s = static_cast<std::uint32_t>(std::clamp<std::int64_t>(age.count(), 0, 0x7fffffff));
  copy_section(pkt.get(), LDNS_SECTION_ANSWER, ldns_pkt_answer(upstream.get()), age_s);
  copy_section(pkt.get(), LDNS_SECTION_AUTHORITY, ldns_pkt_authority(upstream.get()), age_s);
  copy_section(pkt.get(), LDNS_SECTION_ADDITIONAL, ldns_pkt_additional(upstream.get()), age_s);
  if (a.truncated) {
    ldns_pkt_set_tc(pkt.get(), true);
  }
  auto out = serialise(pkt.get());
  if (out.size() <= std::min(limit, std::size_t{65535})) {
    return out;
  }
  // Too big for the client's transport: the header, question and OPT, with TC set.
  auto truncated = reply_skeleton(q);
  ldns_pkt_set_ra(truncated.get(), true);
  set_rcode(truncated.get(), a.code, client_edns);
  ldns_pkt_set_tc(truncated.get(), true);
  return serialise(truncated.get());
}

std::vector<ip_address> addresses_in(const answer& a, ip_family family) {
  std::vector<ip_address> out;
  const auto pkt = parse(a.wire);
  if (!pkt || ldns_rr_list_rr_count(ldns_pkt_question(pkt.get())) != 1) {
    return out;
  }
  const auto name_of = [](const ldns_rdf* rdf) {
    return dns_name::from_wire({ldns_rdf_data(rdf), ldns_rdf_size(rdf)});
  };
  const ldns_rr_list* answers = ldns_pkt_answer(pkt.get());
  // Follow the CNAME chain from the question's name (bounded: a loop ends it), then take the
  // addresses owned by the name it ends at, and only those.
  auto target = name_of(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0)));
  for (int hops = 0; target && hops < 16; ++hops) {
    std::optional<dns_name> next;
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers) && !next; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(answers, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1 &&
          name_of(ldns_rr_owner(rr)) == target) {
        next = name_of(ldns_rr_rdf(rr, 0));
      }
    }
    if (!next) {
      break;
    }
    target = std::move(next);
  }
  if (!target) {
    return out;
  }
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answers, i);
    if (ldns_rr_rd_count(rr) != 1 || name_of(ldns_rr_owner(rr)) != target) {
      continue;
    }
    const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
    if (family == ip_family::v4 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rdf_size(rdf) == 4) {
      const auto* d = ldns_rdf_data(rdf);
      out.push_back(ip_address::from_v4({d[0], d[1], d[2], d[3]}));
    } else if (family == ip_family::v6 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rdf) == 16) {
      ip_address::bytes_type b{};
      std::copy_n(ldns_rdf_data(rdf), 16, b.begin());
      const auto address = ip_address::from_v6(b);
      if (address.is_v6()) {  // a v4-mapped AAAA is not an IPv6 destination
        out.push_back(address);
      }
    }
  }
  return out;
}

}  // namespace gate46::dns
