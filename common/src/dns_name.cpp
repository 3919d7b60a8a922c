#include "gate46/common/dns_name.hpp"

namespace gate46 {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::optional<dns_name> dns_name::parse(std::string_view text) {
  if (text == ".") {
    return dns_name{};
  }
  if (text.empty()) {
    return std::nullopt;
  }
  std::string wire;
  std::string label;
  const auto end_label = [&]() -> bool {
    if (label.empty() || label.size() > 63) {
      return false;
    }
    wire += static_cast<char>(label.size());
    wire += label;
    label.clear();
    return true;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.') {
      if (!end_label()) {
        return std::nullopt;
      }
      continue;
    }
    if (c != '\\') {
      label += lower(c);
      continue;
    }
    // An escape: \DDD (decimal byte) or \X (X literally).
    if (i + 1 >= text.size()) {
      return std::nullopt;
    }
    const char next = text[i + 1];
    if (next >= '0' && next <= '9') {
      if (i + 3 >= text.size()) {
        return std::nullopt;
      }
      unsigned value = 0;
      for (std::size_t k = 1; k <= 3; ++k) {
        const char d = text[i + k];
        if (d < '0' || d > '9') {
          return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(d - '0');
      }
      if (value > 255) {
        return std::nullopt;
      }
      label += lower(static_cast<char>(value));
      i += 3;
    } else {
      label += lower(next);
      i += 1;
    }
  }
  if (!label.empty() && !end_label()) {
    return std::nullopt;
  }
  wire += '\0';
  if (wire.size() > max_wire_length) {
    return std::nullopt;
  }
  return dns_name{std::move(wire)};
}

std::optional<dns_name> dns_name::from_wire(std::span<const std::uint8_t> wire) {
  std::string out;
  std::size_t i = 0;
  while (true) {
    if (i >= wire.size() || i >= max_wire_length) {
      return std::nullopt;
    }
    const auto length = wire[i];
    if (length == 0) {
      break;
    }
    if (length > 63 || i + 1 + length > wire.size()) {
      return std::nullopt;
    }
    out += static_cast<char>(length);
    for (std::size_t k = 0; k < length; ++k) {
      out += lower(static_cast<char>(wire[i + 1 + k]));
    }
    i += 1 + length;
  }
  if (i + 1 != wire.size()) {
    return std::nullopt;  // trailing bytes after the root label
  }
  out += '\0';
  if (out.size() > max_wire_length) {
    return std::nullopt;
  }
  return dns_name{std::move(out)};
}

std::string dns_name::to_string() const {
  if (is_root()) {
    return ".";
  }
  std::string text;
  std::size_t i = 0;
  while (wire_[i] != '\0') {
    const auto length = static_cast<std::uint8_t>(wire_[i]);
    for (std::size_t k = 0; k < length; ++k) {
      const auto b = static_cast<std::uint8_t>(wire_[i + 1 + k]);
      if (b == '.' || b == '\\') {
        text += '\\';
        text += static_cast<char>(b);
      } else if (b <= 0x20 || b >= 0x7f) {
        text += '\\';
        text += static_cast<char>('0' + b / 100);
        text += static_cast<char>('0' + (b / 10) % 10);
        text += static_cast<char>('0' + b % 10);
      } else {
        text += static_cast<char>(b);
      }
    }
    text += '.';
    i += 1 + length;
  }
  return text;
}

bool dns_name::is_subdomain_of(const dns_name& suffix) const noexcept {
  if (suffix.wire_.size() > wire_.size()) {
    return false;
  }
  // Walk label boundaries until the remainder has the suffix's length; compare there.
  std::size_t i = 0;
  while (wire_.size() - i > suffix.wire_.size()) {
    i += 1 + static_cast<std::uint8_t>(wire_[i]);
  }
  return wire_.size() - i == suffix.wire_.size() && std::string_view{wire_}.substr(i) == suffix.wire_;
}

}  // namespace gate46
