#include "gate46/dns/policy.hpp"

#include <algorithm>
#include <array>
#include <set>

#include "gate46/dns/svcb.hpp"
#include "packet.hpp"

namespace gate46::dns {
namespace {

constexpr std::uint16_t type_any = 255;
constexpr std::uint16_t type_hinfo = 13;
constexpr std::uint32_t any_hinfo_ttl = 3600;  // RFC 8482 §4.2 leaves it to the implementer

// ---- names ------------------------------------------------------------------------------------

std::vector<std::string_view> labels_of(std::string_view wire) {
  std::vector<std::string_view> out;
  for (std::size_t at = 0; at < wire.size() && wire[at] != 0; at += 1 + static_cast<std::uint8_t>(wire[at])) {
    out.push_back(wire.substr(at + 1, static_cast<std::uint8_t>(wire[at])));
  }
  return out;
}

std::optional<unsigned> decimal_octet(std::string_view label) {
  if (label.empty() || label.size() > 3 || (label.size() > 1 && label[0] == '0')) {
    return std::nullopt;
  }
  unsigned value = 0;
  for (const char c : label) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 255 ? std::optional<unsigned>{value} : std::nullopt;
}

std::optional<unsigned> hex_nibble(std::string_view label) {
  if (label.size() != 1) {
    return std::nullopt;
  }
  const char c = label[0];  // lower case: dns_name lower-cases
  if (c >= '0' && c <= '9') {
    return static_cast<unsigned>(c - '0');
  }
  if (c >= 'a' && c <= 'f') {
    return static_cast<unsigned>(c - 'a' + 10);
  }
  return std::nullopt;
}

// The reverse names of the zones a prefix spans, cut at label boundaries (8 bits for IPv4,
// 4 for IPv6): 198.18.0.0/15 is 18.198.in-addr.arpa. and 19.198.in-addr.arpa.
std::vector<std::string> reverse_zones_of(const cidr& prefix) {
  const unsigned step = prefix.family() == ip_family::v4 ? 8 : 4;
  const unsigned labels = (prefix.prefix_length() + step - 1) / step;
  const unsigned spare = labels * step - prefix.prefix_length();  // bits that vary below the cut
  std::vector<std::string> out;
  const auto& base = prefix.network().v6_bytes();
  const unsigned first = prefix.family() == ip_family::v4 ? 12 : 0;  // v4 lives in the last 4 bytes
  for (unsigned variant = 0; variant < (1U << spare); ++variant) {
    std::string name;
    for (unsigned i = labels; i-- > 0;) {
      unsigned value = 0;
      if (step == 8) {
        value = base[first + i];
      } else {
        const auto byte = base[i / 2];
        value = (i % 2 == 0) ? (byte >> 4) : (byte & 0x0f);
      }
      if (i == labels - 1) {
        value |= variant;  // the spare bits are the low bits of the last label
      }
      name += step == 8 ? std::to_string(value) : std::string(1, "0123456789abcdef"[value]);
      name += '.';
    }
    name += step == 8 ? "in-addr.arpa." : "ip6.arpa.";
    out.push_back(std::move(name));
  }
  return out;
}

// ---- wire building ------------------------------------------------------------------------------

void put_u16(bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put_u32(bytes& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v & 0xffff));
}

std::uint32_t ttl_of(std::chrono::seconds ttl) {
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ttl.count(), 0, 0x7fffffff));
}

ldns_rdf* dname_rdf(const dns_name& name) {
  const auto wire = name.wire();
  return ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, wire.size(), wire.data());
}

ldns::rr_ptr make_rr(ldns_rdf* owner, std::uint16_t type, std::uint32_t ttl) {
  ldns::rr_ptr rr{ldns_rr_new()};
  ldns_rr_set_owner(rr.get(), owner);
  ldns_rr_set_type(rr.get(), static_cast<ldns_rr_type>(type));
  ldns_rr_set_class(rr.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr.get(), ttl);
  return rr;
}

// A SOA for a zone gate46 answers itself; its MINIMUM (and TTL) is the negative caching time.
ldns::rr_ptr local_soa(const dns_name& apex, std::uint32_t negative_ttl) {
  auto rr = make_rr(dname_rdf(apex), rr_type::soa, negative_ttl);
  ldns_rr_push_rdf(rr.get(), dname_rdf(*dns_name::parse("localhost.")));
  ldns_rr_push_rdf(rr.get(), dname_rdf(*dns_name::parse("nobody.invalid.")));
  for (const std::uint32_t value : {1U, 3600U, 600U, 86400U, negative_ttl}) {
    ldns_rr_push_rdf(rr.get(), ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, value));
  }
  return rr;
}

bytes local_reply(const query& q, rcode code, ldns::rr_ptr answer_rr, ldns::rr_ptr authority_rr, std::size_t limit) {
  auto pkt = packet::reply_skeleton(q);
  ldns_pkt_set_ra(pkt.get(), true);
  ldns_pkt_set_aa(pkt.get(), true);  // our own zone data
  packet::set_rcode(pkt.get(), code, q.edns_udp_size.has_value());
  if (answer_rr) {
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_ANSWER, answer_rr.release());
  }
  if (authority_rr) {
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_AUTHORITY, authority_rr.release());
  }
  return packet::fit(q, pkt.get(), limit);
}

send_reply servfail(const query& q) {
  return {make_error_reply(q, rcode::servfail), reply_kind::upstream_failed};
}

ip_family family_of_type(std::uint16_t type) {
  return type == rr_type::a ? ip_family::v4 : ip_family::v6;
}

std::uint16_t type_of_family(ip_family family) {
  return family == ip_family::v4 ? rr_type::a : rr_type::aaaa;
}

}  // namespace

// ---- rules ----------------------------------------------------------------------------------------

std::vector<dns_rule> builtin_never_rules(const cidr& pool_v4, const cidr& pool_v6) {
  std::vector<std::string> suffixes{// Special-use names that are never on the Internet (RFC 6761, RFC 6762, RFC 8375).
                                    "localhost.", "local.", "home.arpa.",
                                    // RFC 1918 reverse zones: the LAN's own servers answer them.
                                    "10.in-addr.arpa.", "168.192.in-addr.arpa.",
                                    // NTP must reach real servers: clocks are set before anything else works.
                                    "pool.ntp.org.", "time.windows.com.", "time.apple.com.", "time.google.com.",
                                    "time.android.com.", "ntp.ubuntu.com.", "time.cloudflare.com.",
                                    // Captive-portal and connectivity probes must see the real network.
                                    "connectivitycheck.gstatic.com.", "connectivitycheck.android.com.",
                                    "clients3.google.com.", "captive.apple.com.", "msftconnecttest.com.",
                                    "msftncsi.com.", "detectportal.firefox.com.", "nmcheck.gnome.org.",
                                    "connectivity-check.ubuntu.com.", "network-test.debian.org."};
  for (int second = 16; second <= 31; ++second) {
    suffixes.push_back(std::to_string(second) + ".172.in-addr.arpa.");
  }
  for (const auto& pool : {pool_v4, pool_v6}) {
    for (auto& zone : reverse_zones_of(pool)) {
      suffixes.push_back(std::move(zone));
    }
  }
  std::vector<dns_rule> out;
  out.reserve(suffixes.size());
  for (auto& suffix : suffixes) {
    out.push_back({std::move(suffix), dns_mode::never});
  }
  return out;
}

rule_table::rule_table(dns_mode default_mode, std::span<const dns_rule> builtin,
                       std::span<const dns_rule> operator_rules)
    : default_mode_{default_mode} {
  for (const auto* rules : {&builtin, &operator_rules}) {
    for (const auto& rule : *rules) {
      if (const auto name = dns_name::parse(rule.suffix)) {
        by_suffix_.insert_or_assign(std::string{name->wire_view()}, rule.mode);  // the operator's come last
      }
    }
  }
}

dns_mode rule_table::mode_for(const dns_name& name) const {
  if (by_suffix_.empty()) {
    return default_mode_;
  }
  const auto wire = name.wire_view();
  for (std::size_t at = 0;; at += 1 + static_cast<std::uint8_t>(wire[at])) {
    if (const auto it = by_suffix_.find(wire.substr(at)); it != by_suffix_.end()) {
      return it->second;
    }
    if (wire[at] == 0) {
      return default_mode_;
    }
  }
}

policy_settings policy_settings_of(const config& cfg) {
  return {cfg.dns.mode, cfg.dns.rules, cfg.dns.fake_ttl, cfg.pools.ipv4, cfg.pools.ipv6};
}

// ---- reverse names --------------------------------------------------------------------------------

std::optional<cidr> reverse_name_prefix(const dns_name& name) {
  constexpr std::string_view arpa{"\4arpa\0", 6};  // the last label and the root
  if (!name.wire_view().ends_with(arpa)) {
    return std::nullopt;
  }
  auto labels = labels_of(name.wire_view());
  if (labels.size() < 2 || labels.back() != "arpa") {
    return std::nullopt;
  }
  const auto zone = labels[labels.size() - 2];
  labels.resize(labels.size() - 2);
  std::reverse(labels.begin(), labels.end());  // most significant first
  ip_address::bytes_type v6{};
  if (zone == "in-addr") {
    if (labels.size() > 4) {
      return std::nullopt;
    }
    std::array<std::uint8_t, 4> v4{};
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const auto octet = decimal_octet(labels[i]);
      if (!octet) {
        return std::nullopt;
      }
      v4[i] = static_cast<std::uint8_t>(*octet);
    }
    return cidr{ip_address::from_v4(v4), static_cast<unsigned>(labels.size() * 8)};
  }
  if (zone == "ip6") {
    if (labels.size() > 32) {
      return std::nullopt;
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const auto nibble = hex_nibble(labels[i]);
      if (!nibble) {
        return std::nullopt;
      }
      v6[i / 2] = static_cast<std::uint8_t>(v6[i / 2] | (i % 2 == 0 ? *nibble << 4 : *nibble));
    }
    const auto address = ip_address::from_v6(v6);
    if (address.is_v4()) {
      return std::nullopt;  // ::ffff:0:0/96 names an IPv4 address the in-addr.arpa. way
    }
    return cidr{address, static_cast<unsigned>(labels.size() * 4)};
  }
  return std::nullopt;
}

dns_name reverse_name_of(const ip_address& address) {
  const auto zones = reverse_zones_of(cidr{address, address.is_v4() ? 32U : 128U});
  return *dns_name::parse(zones.front());
}

// ---- lookups ------------------------------------------------------------------------------------

void lookups::add(const question& q, std::optional<timed_answer> a) {
  answers_.emplace_back(q, std::move(a));
}

void lookups::add_mapping(const ip_address& fake, std::optional<dns_name> name) {
  mappings_.emplace_back(fake, std::move(name));
}

const std::optional<timed_answer>* lookups::find(const question& q) const {
  const auto it = std::find_if(answers_.begin(), answers_.end(), [&](const auto& e) { return e.first == q; });
  return it == answers_.end() ? nullptr : &it->second;
}

const std::optional<timed_answer>* lookups::find(const dns_name& name, std::uint16_t type) const {
  const auto it = std::find_if(answers_.begin(), answers_.end(), [&](const auto& e) {
    return e.first.type == type && e.first.qclass == class_in && e.first.name == name;
  });
  return it == answers_.end() ? nullptr : &it->second;
}

const std::optional<dns_name>* lookups::find_mapping(const ip_address& fake) const {
  const auto it = std::find_if(mappings_.begin(), mappings_.end(), [&](const auto& e) { return e.first == fake; });
  return it == mappings_.end() ? nullptr : &it->second;
}

// ---- the policy ---------------------------------------------------------------------------------

policy::policy(policy_settings settings)
    : settings_{std::move(settings)},
      rules_{settings_.mode, builtin_never_rules(settings_.pool_v4, settings_.pool_v6), settings_.rules} {
  for (const auto& pool : {settings_.pool_v4, settings_.pool_v6}) {
    for (const auto& zone : reverse_zones_of(pool)) {
      pool_zones_.emplace_back(*dns_name::parse(zone), pool);
    }
  }
}

bool policy::has_real_address(const answer& a, ip_family family) const {
  const auto& addresses = addresses_in(a, family);
  return std::any_of(addresses.begin(), addresses.end(), [&](const ip_address& x) { return !in_pools(x); });
}

dns_mode policy::query_mode(const dns_name& name, const lookups& known) const {
  auto& memo = known.mode_memo_;
  if (!memo || memo->first != name) {
    memo.emplace(name, rules_.mode_for(name));
  }
  return memo->second;
}

decision policy::decide(const query& q, const lookups& known, std::size_t limit) const {
  if (q.q.qclass != class_in) {
    return forward(q, q.q, known, limit);
  }
  if (q.q.type == type_any) {
    // RFC 8482 §4.2: one synthesised HINFO instead of everything, for every name.
    auto rr = make_rr(ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, q.name_as_sent.size(), q.name_as_sent.data()),
                      type_hinfo, any_hinfo_ttl);
    ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, "RFC8482"));
    ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, ""));
    auto pkt = packet::reply_skeleton(q);
    ldns_pkt_set_ra(pkt.get(), true);
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_ANSWER, rr.release());
    return send_reply{packet::fit(q, pkt.get(), limit), reply_kind::any_minimal};
  }
  for (const auto& [apex, pool] : pool_zones_) {
    if (q.q.name.wire_view().ends_with(apex.wire_view()) && q.q.name.is_subdomain_of(apex)) {
      return decide_reverse(q, apex, reverse_name_prefix(q.q.name), known, limit);
    }
  }
  if (q.q.type == rr_type::a || q.q.type == rr_type::aaaa) {
    return decide_address(q, known, limit);
  }
  return forward(q, q.q, known, limit);
}

decision policy::decide_address(const query& q, const lookups& known, std::size_t limit) const {
  const auto family = family_of_type(q.q.type);
  const auto other = family == ip_family::v4 ? ip_family::v6 : ip_family::v4;
  const auto mode = query_mode(q.q.name, known);
  const auto* asked = known.find(q.q);
  if (asked == nullptr) {
    return ask_upstream{q.q};
  }
  if (!asked->has_value()) {
    return servfail(q);
  }
  const answer& a = *(*asked)->a;
  // Never faked: the name's rule says so, or the name does not exist, or the upstream failed
  // (its SERVFAIL or REFUSED is passed on as it came).
  if (mode == dns_mode::never || a.code != rcode::noerror) {
    return forward(q, q.q, known, limit);
  }
  if (has_real_address(a, family)) {
    if (mode == dns_mode::all) {
      return allocate_fake{family};
    }
    return forward(q, q.q, known, limit);  // translate: a real address of the asked family
  }
  // No address of the asked family: is there one of the other? Only then is the name
  // reachable through the gateway, and only then does it get a fake address.
  const auto other_type = type_of_family(other);
  const auto* other_answer = known.find(q.q.name, other_type);
  if (other_answer == nullptr) {
    return ask_upstream{question{q.q.name, other_type, class_in}};
  }
  if (!other_answer->has_value()) {
    return servfail(q);
  }
  const answer& o = *(*other_answer)->a;
  if (o.code == rcode::noerror && has_real_address(o, other)) {
    return allocate_fake{family};
  }
  if (o.code != rcode::noerror && o.code != rcode::nxdomain) {
    return servfail(q);  // cannot tell whether the name has an address of the other family
  }
  return forward(q, q.q, known, limit);  // NODATA stays NODATA
}

decision policy::decide_reverse(const query& q, const dns_name& apex, const std::optional<cidr>& prefix,
                                const lookups& known, std::size_t limit) const {
  const auto ttl = ttl_of(settings_.fake_ttl);
  if (!prefix) {
    // In our zone but not an address or a prefix of one (a DNS-SD browse name, a fifth label):
    // no such name.
    return send_reply{local_reply(q, rcode::nxdomain, nullptr, local_soa(apex, ttl), limit), reply_kind::reverse};
  }
  if (prefix->prefix_length() != (prefix->family() == ip_family::v4 ? 32U : 128U)) {
    // Above the addresses: an empty non-terminal of our zone.
    return send_reply{local_reply(q, rcode::noerror, nullptr, local_soa(apex, ttl), limit), reply_kind::reverse};
  }
  const auto& fake = prefix->network();
  const auto* mapped = known.find_mapping(fake);
  if (mapped == nullptr) {
    return find_mapping{fake};
  }
  if (!mapped->has_value()) {
    return send_reply{local_reply(q, rcode::nxdomain, nullptr, local_soa(apex, ttl), limit), reply_kind::reverse};
  }
  if (q.q.type != rr_type::ptr) {
    return send_reply{local_reply(q, rcode::noerror, nullptr, local_soa(apex, ttl), limit), reply_kind::reverse};
  }
  auto ptr = make_rr(ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, q.name_as_sent.size(), q.name_as_sent.data()),
                     rr_type::ptr, ttl);
  ldns_rr_push_rdf(ptr.get(), dname_rdf(**mapped));
  return send_reply{local_reply(q, rcode::noerror, std::move(ptr), nullptr, limit), reply_kind::reverse};
}

decision policy::forward(const query& q, const question& asked, const lookups& known, std::size_t limit) const {
  const auto* entry = known.find(asked);
  if (entry == nullptr) {
    return ask_upstream{asked};
  }
  if (!entry->has_value()) {
    return servfail(q);
  }
  const answer& a = *(*entry)->a;
  const auto age = (*entry)->age;
  const bool address_query = q.q.type == rr_type::a || q.q.type == rr_type::aaaa;

  // Address records: never one inside a pool (it would loop through the gateway), and no real
  // address of a name the policy fakes every family of. For an address query the answer's own
  // chain was decided above (by the query name's rule); other records go by their owner's.
  const auto drop_address = [&](const dns_name& owner, const ip_address& address, bool own_chain) {
    if (in_pools(address)) {
      return true;
    }
    return !own_chain && rules_.mode_for(owner) == dns_mode::all;
  };
  const auto& own_addresses = addresses_in(a, q.q.type == rr_type::a ? ip_family::v4 : ip_family::v6);
  const auto in_own_chain = [&](const ip_address& address) {
    return address_query && std::find(own_addresses.begin(), own_addresses.end(), address) != own_addresses.end();
  };
  bool any_address_dropped = false;
  for (const auto& r : a.address_records) {
    any_address_dropped = any_address_dropped || drop_address(r.owner, r.address, in_own_chain(r.address));
  }

  // SVCB/HTTPS hints: removed for each family the policy would fake for the target name. In
  // translate mode that depends on whether the target has real addresses of that family:
  // ask (answers are cached), within the budget of lookups; unknown means removed.
  struct strip {
    bool v4 = false;
    bool v6 = false;
  };
  std::vector<std::pair<dns_name, strip>> strips;  // by target
  for (const auto& service : a.hinted_services) {
    if (std::any_of(strips.begin(), strips.end(), [&](const auto& s) { return s.first == service.target; })) {
      continue;
    }
    strip s;
    const auto mode = rules_.mode_for(service.target);
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      bool& flag = family == ip_family::v4 ? s.v4 : s.v6;
      if (mode == dns_mode::never) {
        continue;
      }
      if (mode == dns_mode::all) {
        flag = true;
        continue;
      }
      const question target_q{service.target, type_of_family(family), class_in};
      const auto* target_answer = known.find(target_q);
      if (target_answer == nullptr) {
        if (known.size() < max_lookups) {
          return ask_upstream{target_q};
        }
        flag = true;
        continue;
      }
      flag = !target_answer->has_value() || (*target_answer)->a->code != rcode::noerror ||
             !has_real_address(*(*target_answer)->a, family);
    }
    strips.emplace_back(service.target, s);
  }
  const auto strip_for = [&](const dns_name& target) -> strip {
    const auto it = std::find_if(strips.begin(), strips.end(), [&](const auto& s) { return s.first == target; });
    return it == strips.end() ? strip{} : it->second;
  };
  bool any_hint_stripped = false;
  for (const auto& service : a.hinted_services) {
    const auto s = strip_for(service.target);
    any_hint_stripped =
        any_hint_stripped || service.malformed || (s.v4 && service.v4_hint) || (s.v6 && service.v6_hint);
  }

  if (!any_address_dropped && !any_hint_stripped) {
    return send_reply{make_reply(q, a, age, limit)};
  }

  // Edit a copy: records out, hints out, and the signatures over what changed (they would no
  // longer verify). AD goes too: the data is no longer what the upstream validated.
  const auto upstream = packet::parse(a.wire);
  if (!upstream) {
    return servfail(q);
  }
  send_reply reply;
  std::set<std::pair<std::string, std::uint16_t>> edited;  // (owner wire, type)
  const auto note_edit = [&](const ldns_rr* rr) {
    edited.emplace(std::string{packet::owner_of(rr).wire_view()}, static_cast<std::uint16_t>(ldns_rr_get_type(rr)));
  };
  std::vector<const ldns_rr*> dropped;
  std::vector<std::pair<const ldns_rr*, svc_params_edit>> rewritten;
  for (const ldns_rr_list* section :
       {ldns_pkt_answer(upstream.get()), ldns_pkt_authority(upstream.get()), ldns_pkt_additional(upstream.get())}) {
    const bool answer_section = section == ldns_pkt_answer(upstream.get());
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(section); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(section, i);
      const auto type = ldns_rr_get_type(rr);
      if ((type == LDNS_RR_TYPE_A || type == LDNS_RR_TYPE_AAAA) && ldns_rr_rd_count(rr) == 1) {
        const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
        const auto* d = ldns_rdf_data(rdf);
        std::optional<ip_address> address;
        if (type == LDNS_RR_TYPE_A && ldns_rdf_size(rdf) == 4) {
          address = ip_address::from_v4({d[0], d[1], d[2], d[3]});
        } else if (type == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rdf) == 16) {
          ip_address::bytes_type b{};
          std::copy_n(d, 16, b.begin());
          address = ip_address::from_v6(b);
        }
        if (address && drop_address(packet::owner_of(rr), *address, answer_section && in_own_chain(*address))) {
          dropped.push_back(rr);
          note_edit(rr);
          ++reply.records_removed;
        }
      } else if ((type == LDNS_RR_TYPE_SVCB || type == LDNS_RR_TYPE_HTTPS) && ldns_rr_rd_count(rr) >= 3) {
        auto target = packet::name_field(rr, 1).value_or(dns_name{});
        const auto s = strip_for(target.is_root() ? packet::owner_of(rr) : target);
        const ldns_rdf* params = ldns_rr_rdf(rr, 2);
        auto edit = strip_address_hints({ldns_rdf_data(params), ldns_rdf_size(params)}, s.v4, s.v6);
        if (!edit) {
          dropped.push_back(rr);  // malformed parameters: nothing we can vouch for
          note_edit(rr);
        } else if (edit->removed > 0) {
          reply.hints_removed += edit->removed;
          note_edit(rr);
          rewritten.emplace_back(rr, std::move(*edit));
        }
      }
    }
  }
  const packet::record_editor editor = [&](const ldns_rr* rr, ldns_pkt_section) -> ldns::rr_ptr {
    if (std::find(dropped.begin(), dropped.end(), rr) != dropped.end()) {
      return nullptr;
    }
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG && ldns_rr_rd_count(rr) > 0) {
      const auto covered = static_cast<std::uint16_t>(ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)));
      if (edited.contains({std::string{packet::owner_of(rr).wire_view()}, covered})) {
        ++reply.records_removed;
        return nullptr;
      }
    }
    ldns::rr_ptr copy{ldns_rr_clone(rr)};
    const auto it = std::find_if(rewritten.begin(), rewritten.end(), [&](const auto& e) { return e.first == rr; });
    if (it != rewritten.end()) {
      const auto& params = it->second.params;
      ldns_rdf* replacement = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_SVCPARAMS, params.size(), params.data());
      ldns_rdf_deep_free(ldns_rr_set_rdf(copy.get(), replacement, 2));
    }
    return copy;
  };
  reply.wire = packet::reply_from(q, upstream.get(), a, age, limit, &editor, false);
  return reply;
}

bytes policy::fake_reply(const query& q, const ip_address& fake) const {
  // Built by hand: this is the hot path of the benchmark, and the layout is fixed.
  bytes out;
  out.reserve(12 + q.name_as_sent.size() + 4 + 2 + 10 + 16 + 11);
  put_u16(out, q.id);
  const std::uint8_t flags1 = 0x80 | (q.recursion_desired ? 0x01 : 0x00);  // QR, opcode 0, AA 0, TC 0
  const std::uint8_t flags2 = 0x80 | (q.checking_disabled ? 0x10 : 0x00);  // RA, AD 0, rcode 0
  out.push_back(flags1);
  out.push_back(flags2);
  put_u16(out, 1);                        // QDCOUNT
  put_u16(out, 1);                        // ANCOUNT
  put_u16(out, 0);                        // NSCOUNT
  put_u16(out, q.edns_udp_size ? 1 : 0);  // ARCOUNT
  out.insert(out.end(), q.name_as_sent.begin(), q.name_as_sent.end());
  put_u16(out, q.q.type);
  put_u16(out, q.q.qclass);
  put_u16(out, 0xc00c);  // the question's name
  put_u16(out, q.q.type);
  put_u16(out, class_in);
  put_u32(out, ttl_of(settings_.fake_ttl));
  const auto& b = fake.v6_bytes();
  if (q.q.type == rr_type::a) {
    put_u16(out, 4);
    out.insert(out.end(), b.end() - 4, b.end());
  } else {
    put_u16(out, 16);
    out.insert(out.end(), b.begin(), b.end());
  }
  if (q.edns_udp_size) {
    out.push_back(0);  // root owner
    put_u16(out, rr_type::opt);
    put_u16(out, edns_buffer_size);
    out.push_back(0);  // extended rcode
    out.push_back(0);  // version
    put_u16(out, q.dnssec_ok ? 0x8000 : 0);
    put_u16(out, 0);
  }
  return out;
}

}  // namespace gate46::dns
