// The one way into ldns for gate46::dns sources, and RAII for its objects. Nothing outside
// dns-proxy/src includes this: ldns leaks macros into whatever follows it.
#pragma once

// <ldns/common.h> does `#define bool _Bool` unless stdbool.h came first, which breaks every
// later C++ header (see ../shared/notes/environment.md).
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers): must precede ldns, see above
// clang-format off
#include <ldns/ldns.h>
// clang-format on

#include <memory>

namespace gate46::dns::ldns {

struct pkt_deleter {
  void operator()(ldns_pkt* p) const noexcept { ldns_pkt_free(p); }
};
struct rr_deleter {
  void operator()(ldns_rr* p) const noexcept { ldns_rr_free(p); }
};
struct rdf_deleter {
  void operator()(ldns_rdf* p) const noexcept { ldns_rdf_deep_free(p); }
};
struct wire_deleter {
  void operator()(std::uint8_t* p) const noexcept { LDNS_FREE(p); }
};

using pkt_ptr = std::unique_ptr<ldns_pkt, pkt_deleter>;
using rr_ptr = std::unique_ptr<ldns_rr, rr_deleter>;
using rdf_ptr = std::unique_ptr<ldns_rdf, rdf_deleter>;
using wire_ptr = std::unique_ptr<std::uint8_t, wire_deleter>;

}  // namespace gate46::dns::ldns
