#include "gate46/dns/message.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "gate46/dns/svcb.hpp"
#include "packet.hpp"

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

}  // namespace

namespace packet {

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

namespace {

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

}  // namespace

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

dns_name owner_of(const ldns_rr* rr) {
  const ldns_rdf* owner = ldns_rr_owner(rr);
  return dns_name::from_wire({ldns_rdf_data(owner), ldns_rdf_size(owner)}).value_or(dns_name{});
}

std::optional<dns_name> name_field(const ldns_rr* rr, std::size_t i) {
  if (i >= ldns_rr_rd_count(rr)) {
    return std::nullopt;
  }
  const ldns_rdf* rdf = ldns_rr_rdf(rr, i);
  if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) {
    return std::nullopt;
  }
  return dns_name::from_wire({ldns_rdf_data(rdf), ldns_rdf_size(rdf)});
}

bytes fit(const query& q, const ldns_pkt* pkt, std::size_t limit) {
  auto out = serialise(pkt);
  if (!out.empty() && out.size() <= std::min(limit, std::size_t{65535})) {
    return out;
  }
  // Too big for the client's transport: the header, question and OPT, with TC set.
  auto truncated = reply_skeleton(q);
  ldns_pkt_set_ra(truncated.get(), ldns_pkt_ra(pkt));
  ldns_pkt_set_aa(truncated.get(), ldns_pkt_aa(pkt));
  ldns_pkt_set_rcode(truncated.get(), ldns_pkt_get_rcode(pkt));
  ldns_pkt_set_edns_extended_rcode(truncated.get(), ldns_pkt_edns_extended_rcode(pkt));
  ldns_pkt_set_tc(truncated.get(), true);
  return serialise(truncated.get());
}

bytes reply_from(const query& q, const ldns_pkt* upstream, const answer& a, std::chrono::seconds age, std::size_t limit,
                 const record_editor* edit, bool keep_ad) {
  auto pkt = reply_skeleton(q);
  ldns_pkt_set_ra(pkt.get(), true);  // AA stays clear: a forwarder is not authoritative
  // RFC 6840 §5.8: AD only for clients that asked about DNSSEC.
  ldns_pkt_set_ad(pkt.get(), keep_ad && q.dnssec_ok && ldns_pkt_ad(upstream));
  set_rcode(pkt.get(), a.code, q.edns_udp_size.has_value());
  const auto age_s = static_cast<std::uint32_t>(std::clamp<std::int64_t>(age.count(), 0, 0x7fffffff));
  // Each record's TTL is reduced by its age in the cache (not below 0).
  const auto copy = [&](ldns_pkt_section section, const ldns_rr_list* from) {
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(from); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(from, i);
      ldns::rr_ptr out = edit != nullptr ? (*edit)(rr, section) : ldns::rr_ptr{ldns_rr_clone(rr)};
      if (!out) {
        continue;
      }
      const auto ttl = ldns_rr_ttl(out.get());
      ldns_rr_set_ttl(out.get(), ttl > age_s ? ttl - age_s : 0);
      ldns_pkt_push_rr(pkt.get(), section, out.release());
    }
  };
  copy(LDNS_SECTION_ANSWER, ldns_pkt_answer(upstream));
  copy(LDNS_SECTION_AUTHORITY, ldns_pkt_authority(upstream));
  copy(LDNS_SECTION_ADDITIONAL, ldns_pkt_additional(upstream));
  if (a.truncated) {
    ldns_pkt_set_tc(pkt.get(), true);
  }
  return fit(q, pkt.get(), limit);
}

}  // namespace packet

using packet::full_rcode;
using packet::parse;
using packet::reply_skeleton;
using packet::serialise;
using packet::set_rcode;

namespace {

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

std::optional<ip_address> address_of(const ldns_rr* rr) {
  if (ldns_rr_rd_count(rr) != 1) {
    return std::nullopt;
  }
  const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
  const auto* d = ldns_rdf_data(rdf);
  if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rdf_size(rdf) == 4) {
    return ip_address::from_v4({d[0], d[1], d[2], d[3]});
  }
  if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rdf) == 16) {
    ip_address::bytes_type b{};
    std::copy_n(d, 16, b.begin());
    return ip_address::from_v6(b);
  }
  return std::nullopt;
}

// The SvcParams field of an SVCB/HTTPS record in ServiceMode, if any.
std::optional<byte_view> svc_params_of(const ldns_rr* rr) {
  const auto type = ldns_rr_get_type(rr);
  if ((type != LDNS_RR_TYPE_SVCB && type != LDNS_RR_TYPE_HTTPS) || ldns_rr_rd_count(rr) < 3) {
    return std::nullopt;
  }
  const ldns_rdf* params = ldns_rr_rdf(rr, 2);
  return byte_view{ldns_rdf_data(params), ldns_rdf_size(params)};
}

void read_facts(const ldns_pkt* pkt, const dns_name& question_name, answer& a) {
  const ldns_rr_list* answers = ldns_pkt_answer(pkt);
  // Follow the CNAME chain from the question's name (bounded: a loop ends it).
  auto target = question_name;
  for (int hops = 0; hops < 16; ++hops) {
    std::optional<dns_name> next;
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers) && !next; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(answers, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && packet::owner_of(rr) == target) {
        next = packet::name_field(rr, 0);
      }
    }
    if (!next) {
      break;
    }
    target = std::move(*next);
  }
  for (const ldns_rr_list* section :
       std::array<const ldns_rr_list*, 3>{answers, ldns_pkt_authority(pkt), ldns_pkt_additional(pkt)}) {
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(section); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(section, i);
      if (auto address = address_of(rr)) {
        auto owner = packet::owner_of(rr);
        if (section == answers && owner == target) {
          if (address->is_v4() && ldns_rr_get_type(rr) == LDNS_RR_TYPE_A) {
            a.v4.push_back(*address);
          } else if (address->is_v6()) {  // a v4-mapped AAAA is not an IPv6 destination
            a.v6.push_back(*address);
          }
        }
        a.address_records.push_back({std::move(owner), *address});
      } else if (auto params = svc_params_of(rr)) {
        // Malformed parameters count as carrying both hints: the policy then looks at the
        // record, and drops what it cannot read.
        const auto parsed_hints = hints_in(*params);
        const auto hints = parsed_hints.value_or(svc_hints{true, true});
        if (hints.v4 || hints.v6) {
          auto owner = packet::owner_of(rr);
          auto service_target = packet::name_field(rr, 1).value_or(dns_name{});
          a.hinted_services.push_back(
              {owner, service_target.is_root() ? owner : service_target, hints.v4, hints.v6, !parsed_hints});
        }
      }
    }
  }
}

// The shape nearly every query has: one question with an uncompressed name, no answer or
// authority records, at most an OPT record of version 0 in the additional section, nothing
// after it. Read without ldns (the common case of a busy resolver); anything else goes to
// the general parser, which tells what is wrong with it.
std::optional<query> parse_plain_query(byte_view wire) {
  if (wire.size() < header_size || (wire[2] & 0xf8) != 0 || read_u16(wire, 4) != 1 || read_u16(wire, 6) != 0 ||
      read_u16(wire, 8) != 0 || read_u16(wire, 10) > 1) {
    return std::nullopt;  // a response, another opcode, or more sections than a plain query
  }
  std::size_t at = header_size;
  while (at < wire.size() && wire[at] != 0) {
    if (wire[at] > 63) {
      return std::nullopt;  // a compression pointer or a reserved label type
    }
    at += 1 + wire[at];
  }
  if (at >= wire.size() || at + 1 - header_size > dns_name::max_wire_length || wire.size() - (at + 1) < 4) {
    return std::nullopt;
  }
  const byte_view name_wire = wire.subspan(header_size, at + 1 - header_size);
  at += 1;
  const auto type = read_u16(wire, at);
  const auto qclass = read_u16(wire, at + 2);
  at += 4;
  if (type == rr_type::axfr || type == rr_type::ixfr || type == rr_type::opt) {
    return std::nullopt;
  }
  query q;
  if (read_u16(wire, 10) == 1) {
    // OPT: root owner, type 41, class = UDP size, TTL = extended rcode, version, flags.
    if (wire.size() - at < 11 || wire[at] != 0 || read_u16(wire, at + 1) != rr_type::opt || wire[at + 6] != 0) {
      return std::nullopt;
    }
    const std::size_t rdlength = read_u16(wire, at + 9);
    if (wire.size() - (at + 11) != rdlength) {
      return std::nullopt;
    }
    q.edns_udp_size = std::max<std::uint16_t>(512, read_u16(wire, at + 3));
    q.dnssec_ok = (wire[at + 7] & 0x80) != 0;
    at += 11 + rdlength;
  }
  if (at != wire.size()) {
    return std::nullopt;
  }
  auto name = dns_name::from_wire(name_wire);
  if (!name) {
    return std::nullopt;
  }
  q.id = read_u16(wire, 0);
  q.recursion_desired = (wire[2] & 0x01) != 0;
  q.checking_disabled = (wire[3] & 0x10) != 0;
  q.q = question{std::move(*name), type, qclass};
  q.name_as_sent.assign(name_wire.begin(), name_wire.end());
  return q;
}

}  // namespace

query_or_reply parse_query(byte_view wire) {
  if (auto plain = parse_plain_query(wire)) {
    return std::move(*plain);
  }
  return parse_query_with_ldns(wire);
}

query_or_reply parse_query_with_ldns(byte_view wire) {
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
  read_facts(pkt.get(), *name, a);
  return a;
}

bytes make_reply(const query& q, const answer& a, std::chrono::seconds age, std::size_t limit) {
  const auto upstream = parse(a.wire);
  if (!upstream) {
    return make_error_reply(q, rcode::servfail);  // cannot happen: accepted answers parse
  }
  return packet::reply_from(q, upstream.get(), a, age, limit, nullptr, true);
}

}  // namespace gate46::dns
