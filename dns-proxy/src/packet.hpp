// ldns-level building blocks shared by the message functions and the policy. Internal to
// gate46::dns (it includes ldns.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "gate46/dns/message.hpp"
#include "ldns.hpp"

namespace gate46::dns::packet {

ldns::pkt_ptr parse(byte_view wire);
// Empty when ldns cannot serialise the packet.
bytes serialise(const ldns_pkt* pkt);
// A reply skeleton for `q`: ID, QR, opcode QUERY, RD and CD echoed, the question (as the
// client wrote its name), and OPT if the query had one (DO echoed).
ldns::pkt_ptr reply_skeleton(const query& q);
void set_rcode(ldns_pkt* pkt, rcode code, bool client_has_edns);
rcode full_rcode(const ldns_pkt* pkt);

dns_name owner_of(const ldns_rr* rr);
// The name in rdata field `i` of `rr`, if it is one.
std::optional<dns_name> name_field(const ldns_rr* rr, std::size_t i);

// Called for each record of a forwarded answer: the record to put in the reply (a clone, or an
// edited copy), or null to leave it out.
using record_editor = std::function<ldns::rr_ptr(const ldns_rr* rr, ldns_pkt_section section)>;

// The reply to `q` from the upstream packet `upstream` (the answer `a`, received `age` ago),
// each record passed through `edit` when given, fitted to `limit` (TC set past it). AD is
// passed only to clients that asked for DNSSEC, and only when `keep_ad`.
bytes reply_from(const query& q, const ldns_pkt* upstream, const answer& a, std::chrono::seconds age, std::size_t limit,
                 const record_editor* edit, bool keep_ad);

// Serialises `pkt`, the reply to `q`; past `limit` bytes, the header, question and OPT alone
// with TC set.
bytes fit(const query& q, const ldns_pkt* pkt, std::size_t limit);

}  // namespace gate46::dns::packet
