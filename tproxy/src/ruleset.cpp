#include "gate46/tproxy/ruleset.hpp"

#include <stdexcept>

#include <fmt/format.h>

namespace gate46::tproxy {
namespace {

std::string hex(std::uint32_t value) {
  return fmt::format("{:#x}", value);
}

// nft reads a quoted interface name literally as long as it holds no quote or backslash;
// the kernel allows nearly any byte in a name, so refuse rather than mis-quote.
std::string quoted_interface(const std::string& name) {
  if (name.empty() || name.size() > 15 || name.find_first_of("\"\\\n") != std::string::npos) {
    throw std::invalid_argument{"interface name nft cannot take literally: \"" + name + "\""};
  }
  return "\"" + name + "\"";
}

std::string interface_set(const std::vector<std::string>& names) {
  std::string out = "{ ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : ", ") + quoted_interface(names[i]);
  }
  return out + " }";
}

std::string address_set(const std::vector<ip_address>& addresses, ip_family family) {
  std::string out;
  for (const auto& a : addresses) {
    if (a.family() == family) {
      out += (out.empty() ? "" : ", ") + a.to_string();
    }
  }
  return out.empty() ? out : "{ " + out + " }";
}

}  // namespace

ruleset_settings ruleset_settings_of(const config& cfg) {
  ruleset_settings s;
  s.lan_interfaces = cfg.lan.interfaces;
  s.pool_v4 = cfg.pools.ipv4;
  s.pool_v6 = cfg.pools.ipv6;
  s.tproxy_port = cfg.tproxy.port;
  s.mark = cfg.tproxy.mark;
  s.mark_mask = cfg.tproxy.mark_mask;
  s.bypass_mark = cfg.tproxy.bypass_mark;
  s.capture_dns = cfg.tproxy.capture_dns;
  s.dns_port = cfg.dns.listen.empty() ? 53 : cfg.dns.listen.front().port;
  for (const auto& upstream : cfg.dns.upstreams) {
    s.dns_upstreams.push_back(upstream.address);
  }
  return s;
}

std::string make_table(const ruleset_settings& s) {
  if (s.lan_interfaces.empty()) {
    throw std::invalid_argument{"no LAN interface to capture on"};
  }
  const auto lan = interface_set(s.lan_interfaces);
  const auto mask = hex(s.mark_mask);
  // Set our bits, keep everyone else's: mark = (mark & ~mask) | tproxy.mark.
  const auto set_mark = fmt::format("meta mark set meta mark & {} | {}", hex(~s.mark_mask), hex(s.mark & s.mark_mask));
  const auto port = std::to_string(s.tproxy_port);

  std::string t;
  t += fmt::format("table {} {} {{\n", table_family, table_name);
  t += fmt::format("  set fake4 {{\n    type ipv4_addr\n    flags interval\n    elements = {{ {} }}\n  }}\n",
                   s.pool_v4.to_string());
  t += fmt::format("  set fake6 {{\n    type ipv6_addr\n    flags interval\n    elements = {{ {} }}\n  }}\n",
                   s.pool_v6.to_string());

  t += "  chain prerouting {\n";
  t += "    type filter hook prerouting priority mangle; policy accept;\n";
  t += fmt::format("    meta mark & {} == {} return\n", mask, hex(s.bypass_mark & s.mark_mask));
  t += fmt::format("    iifname {} ip daddr @fake4 meta l4proto {{ tcp, udp }} tproxy ip to :{} {} accept\n", lan, port,
                   set_mark);
  t += fmt::format("    iifname {} ip6 daddr @fake6 meta l4proto {{ tcp, udp }} tproxy ip6 to :{} {} accept\n", lan,
                   port, set_mark);
  t += "  }\n";

  if (s.capture_dns) {
    const auto dns_port = std::to_string(s.dns_port);
    const auto except4 = address_set(s.dns_upstreams, ip_family::v4);
    const auto except6 = address_set(s.dns_upstreams, ip_family::v6);
    t += "  chain dns {\n";
    t += "    type nat hook prerouting priority dstnat; policy accept;\n";
    t += fmt::format("    iifname {} ip daddr != @fake4 {}meta l4proto {{ tcp, udp }} th dport 53 redirect to :{}\n",
                     lan, except4.empty() ? "" : "ip saddr != " + except4 + " ", dns_port);
    t += fmt::format("    iifname {} ip6 daddr != @fake6 {}meta l4proto {{ tcp, udp }} th dport 53 redirect to :{}\n",
                     lan, except6.empty() ? "" : "ip6 saddr != " + except6 + " ", dns_port);
    t += "  }\n";
  }

  t += "  chain input {\n";
  t += "    type filter hook input priority filter; policy accept;\n";
  t += fmt::format("    meta l4proto {{ tcp, udp }} th dport {} meta mark & {} != {} drop\n", port, mask,
                   hex(s.mark & s.mark_mask));
  t += "  }\n";
  t += "}\n";
  return t;
}

std::string make_apply_script(const ruleset_settings& s) {
  // "table ... {}" first so that the delete never fails on a machine without the table; the
  // three commands are one transaction.
  return fmt::format("table {0} {1} {{}}\ndelete table {0} {1}\n", table_family, table_name) + make_table(s);
}

std::string make_remove_script() {
  return fmt::format("table {0} {1} {{}}\ndelete table {0} {1}\n", table_family, table_name);
}

}  // namespace gate46::tproxy
