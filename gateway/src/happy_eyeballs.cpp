#include "gate46/gateway/happy_eyeballs.hpp"

#include <algorithm>

namespace gate46::gateway {

std::vector<ip_address> interleave_families(const std::vector<ip_address>& v6, const std::vector<ip_address>& v4,
                                            ip_family preferred) {
  const auto& first = preferred == ip_family::v6 ? v6 : v4;
  const auto& second = preferred == ip_family::v6 ? v4 : v6;
  std::vector<ip_address> out;
  out.reserve(v6.size() + v4.size());
  const auto add = [&](const ip_address& a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) {
      out.push_back(a);
    }
  };
  for (std::size_t i = 0; i < std::max(first.size(), second.size()); ++i) {
    if (i < first.size()) {
      add(first[i]);
    }
    if (i < second.size()) {
      add(second[i]);
    }
  }
  return out;
}

std::chrono::steady_clock::time_point next_attempt_at(std::chrono::steady_clock::time_point last_start,
                                                      bool last_failed, std::chrono::milliseconds delay,
                                                      std::chrono::steady_clock::time_point now) {
  if (last_failed) {
    return now;
  }
  return std::max(now, last_start + delay);
}

}  // namespace gate46::gateway
