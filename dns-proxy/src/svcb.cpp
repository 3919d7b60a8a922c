#include "gate46/dns/svcb.hpp"

namespace gate46::dns {
namespace {

struct param {
  std::uint16_t key;
  std::span<const std::uint8_t> value;
};

std::uint16_t read_u16(std::span<const std::uint8_t> wire, std::size_t at) {
  return static_cast<std::uint16_t>((wire[at] << 8) | wire[at + 1]);
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// SvcParams: (key u16, length u16, value) repeated, keys strictly increasing (RFC 9460 §2.2).
std::optional<std::vector<param>> split(std::span<const std::uint8_t> params) {
  std::vector<param> out;
  std::size_t at = 0;
  while (at < params.size()) {
    if (params.size() - at < 4) {
      return std::nullopt;
    }
    const auto key = read_u16(params, at);
    const std::size_t length = read_u16(params, at + 2);
    at += 4;
    if (params.size() - at < length || (!out.empty() && key <= out.back().key)) {
      return std::nullopt;
    }
    out.push_back({key, params.subspan(at, length)});
    at += length;
  }
  return out;
}

}  // namespace

std::optional<svc_hints> hints_in(std::span<const std::uint8_t> params) {
  const auto split_params = split(params);
  if (!split_params) {
    return std::nullopt;
  }
  svc_hints hints;
  for (const auto& p : *split_params) {
    hints.v4 = hints.v4 || p.key == svc_param::ipv4hint;
    hints.v6 = hints.v6 || p.key == svc_param::ipv6hint;
  }
  return hints;
}

std::optional<svc_params_edit> strip_address_hints(std::span<const std::uint8_t> params, bool strip_v4, bool strip_v6) {
  const auto split_params = split(params);
  if (!split_params) {
    return std::nullopt;
  }
  const auto stripped = [&](std::uint16_t key) {
    return (strip_v4 && key == svc_param::ipv4hint) || (strip_v6 && key == svc_param::ipv6hint);
  };
  svc_params_edit edit;
  edit.params.reserve(params.size());
  for (const auto& p : *split_params) {
    if (stripped(p.key)) {
      ++edit.removed;
      continue;
    }
    if (p.key != svc_param::mandatory) {
      put_u16(edit.params, p.key);
      put_u16(edit.params, static_cast<std::uint16_t>(p.value.size()));
      edit.params.insert(edit.params.end(), p.value.begin(), p.value.end());
      continue;
    }
    // mandatory: a list of u16 keys. A record whose mandatory list names a key it lacks is
    // malformed (§8), so the removed hints leave the list too.
    if (p.value.size() % 2 != 0) {
      return std::nullopt;
    }
    std::vector<std::uint8_t> keys;
    for (std::size_t i = 0; i < p.value.size(); i += 2) {
      const auto key = read_u16(p.value, i);
      if (!stripped(key)) {
        put_u16(keys, key);
      }
    }
    if (!keys.empty()) {
      put_u16(edit.params, svc_param::mandatory);
      put_u16(edit.params, static_cast<std::uint16_t>(keys.size()));
      edit.params.insert(edit.params.end(), keys.begin(), keys.end());
    }
  }
  return edit;
}

}  // namespace gate46::dns
