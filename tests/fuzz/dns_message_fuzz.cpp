// The DNS message core on arbitrary bytes, both ways: as a client's query (parse, the plain
// reader checked against ldns, then every reply built for it) and as an upstream's answer to a
// question (checks, reply building at several size limits, address extraction). Nothing may crash, leak or read out of
// bounds, and whatever is built must parse again as a response.
#include <cstdint>
#include <cstdlib>
#include <variant>

#include "gate46/dns/message.hpp"

using namespace gate46::dns;

namespace {

void must_be_a_response(const bytes& wire) {
  if (wire.size() < 12 || (wire[2] & 0x80) == 0) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const byte_view wire{data, size};

  auto parsed = parse_query(wire);
  // parse_query reads plain queries itself and leaves the rest to ldns: both must agree.
  const auto general = parse_query_with_ldns(wire);
  if (const auto* fast = std::get_if<query>(&parsed)) {
    const auto* slow = std::get_if<query>(&general);
    if (slow == nullptr || fast->id != slow->id || fast->recursion_desired != slow->recursion_desired ||
        fast->checking_disabled != slow->checking_disabled || fast->dnssec_ok != slow->dnssec_ok ||
        !(fast->q == slow->q) || fast->name_as_sent != slow->name_as_sent ||
        fast->edns_udp_size != slow->edns_udp_size) {
      std::abort();
    }
  }
  if (auto* q = std::get_if<query>(&parsed)) {
    must_be_a_response(make_error_reply(*q, rcode::servfail));
    // The same bytes as an upstream's answer to the question just parsed (with its own ID
    // and the QR bit set, so the checks get past the header).
    bytes as_answer(wire.begin(), wire.end());
    as_answer[2] |= 0x80;
    if (auto a = accept_upstream_answer(as_answer, q->id, q->q)) {
      for (const std::size_t limit : {std::size_t{12}, std::size_t{512}, q->udp_limit(), std::size_t{65535}}) {
        const auto reply = make_reply(*q, *a, std::chrono::seconds{size % 7}, limit);
        must_be_a_response(reply);
        if (reply.size() > limit && limit >= 512) {
          std::abort();  // the reply must fit, truncated if needed
        }
      }
      (void)addresses_in(*a, gate46::ip_family::v4);
      (void)addresses_in(*a, gate46::ip_family::v6);
    }
  } else if (auto* immediate = std::get_if<bytes>(&parsed)) {
    must_be_a_response(*immediate);
  }
  (void)make_refusal(wire);
  return 0;
}
