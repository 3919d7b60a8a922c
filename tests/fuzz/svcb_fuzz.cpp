// SvcParams on arbitrary bytes: hints_in and strip_address_hints must never crash or read out
// of bounds, and agree with each other: on parameters they accept, stripping both families
// leaves no hint, stripping one leaves the other as it was, and stripping nothing changes
// nothing.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gate46/dns/svcb.hpp"

using namespace gate46::dns;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> params{data, size};
  const auto hints = hints_in(params);
  const auto both = strip_address_hints(params, true, true);
  const auto v4 = strip_address_hints(params, true, false);
  const auto v6 = strip_address_hints(params, false, true);
  const auto none = strip_address_hints(params, false, false);
  if (!hints) {
    // Malformed for one, malformed for all.
    if (both || v4 || v6 || none) {
      std::abort();
    }
    return 0;
  }
  if (!none) {
    return 0;  // a mandatory list that cannot be read (odd length): nothing to check
  }
  if (!both || !v4 || !v6) {
    std::abort();
  }
  // Stripping nothing changes nothing, except that an empty mandatory list (necessarily the
  // first parameter: keys increase) is dropped.
  const bool empty_mandatory = size >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 0;
  const auto unchanged = empty_mandatory ? params.subspan(4) : params;
  if (none->removed != 0 || none->params != std::vector<std::uint8_t>(unchanged.begin(), unchanged.end())) {
    std::abort();
  }
  if (both->removed != static_cast<unsigned>(hints->v4) + static_cast<unsigned>(hints->v6) ||
      v4->removed != static_cast<unsigned>(hints->v4) || v6->removed != static_cast<unsigned>(hints->v6)) {
    std::abort();
  }
  const auto after_both = hints_in(both->params);
  const auto after_v4 = hints_in(v4->params);
  const auto after_v6 = hints_in(v6->params);
  if (!after_both || after_both->v4 || after_both->v6) {
    std::abort();
  }
  if (!after_v4 || after_v4->v4 || after_v4->v6 != hints->v6) {
    std::abort();
  }
  if (!after_v6 || after_v6->v6 || after_v6->v4 != hints->v4) {
    std::abort();
  }
  // Stripping is idempotent.
  const auto twice = strip_address_hints(both->params, true, true);
  if (!twice || twice->removed != 0 || twice->params != both->params) {
    std::abort();
  }
  return 0;
}
