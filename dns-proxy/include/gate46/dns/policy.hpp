// The delegating policy (RFC 3089 §3, "DNS name resolving delegation"): which names get fake
// addresses, and what every reply the LAN receives may contain. A pure core: the policy reads
// what it has been told (upstream answers, mappings) and returns a decision; the responder
// (responder.hpp) does the lookups and allocations it asks for and calls it again. No sockets,
// no store, no clock here, so every rule is a unit test.
//
// A query is answered in steps:
//   decide() -> ask_upstream{question}   the responder adds the upstream answer, decides again
//            -> find_mapping{address}    the responder adds the store's mapping, decides again
//            -> allocate_fake{family}    the responder allocates and calls fake_reply()
//            -> send_reply{wire}         done
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/config.hpp"
#include "gate46/common/dns_name.hpp"
#include "gate46/dns/message.hpp"

namespace gate46::dns {

// The names the policy never fakes unless the operator names them in a rule of their own:
// local. and home.arpa. (RFC 6762, RFC 8375), the reverse zones of RFC 1918 (answered by the
// LAN's own servers), the reverse zones of both fake pools (answered here, see below), the
// pool NTP names, and the captive-portal and connectivity probes of the common systems, which
// must see the real network.
std::vector<dns_rule> builtin_never_rules(const cidr& pool_v4, const cidr& pool_v6);

// dns.mode and the rules by name: the longest matching suffix decides, an operator's rule
// beats a built-in one for the same suffix, and dns.mode applies to names no rule matches.
class rule_table {
 public:
  rule_table(dns_mode default_mode, std::span<const dns_rule> builtin, std::span<const dns_rule> operator_rules);

  [[nodiscard]] dns_mode mode_for(const dns_name& name) const;

 private:
  struct suffix_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  dns_mode default_mode_;
  // Keyed by the suffix's wire form; looked up by string_view, without copying the name.
  std::unordered_map<std::string, dns_mode, suffix_hash, std::equal_to<>> by_suffix_;
};

struct policy_settings {
  dns_mode mode = dns_mode::translate;
  std::vector<dns_rule> rules;  // the operator's
  std::chrono::seconds fake_ttl{60};
  cidr pool_v4{*ip_address::parse("198.18.0.0"), 15};
  cidr pool_v6{*ip_address::parse("2001:2::"), 48};
  friend bool operator==(const policy_settings&, const policy_settings&) = default;
};
policy_settings policy_settings_of(const config& cfg);

// A reverse-mapping name (in-addr.arpa., ip6.arpa.) read as the prefix it names: "2.0.192.
// in-addr.arpa." is 192.0.2.0/24, a full name is a host prefix.
std::optional<cidr> reverse_name_prefix(const dns_name& name);
// The reverse name of a host address ("1.2.0.192.in-addr.arpa.").
dns_name reverse_name_of(const ip_address& address);

// What the policy has been told while answering one query. An upstream answer that could not
// be had (every upstream timed out) is recorded as nullopt.
class lookups {
 public:
  lookups() { answers_.reserve(2); }  // an address query asks for both families
  void add(const question& q, std::optional<timed_answer> a);
  void add_mapping(const ip_address& fake, std::optional<dns_name> name);

  // nullptr: not asked yet; else the answer, nullopt when it failed.
  [[nodiscard]] const std::optional<timed_answer>* find(const question& q) const;
  [[nodiscard]] const std::optional<timed_answer>* find(const dns_name& name, std::uint16_t type) const;
  [[nodiscard]] const std::optional<dns_name>* find_mapping(const ip_address& fake) const;
  [[nodiscard]] std::size_t size() const noexcept { return answers_.size() + mappings_.size(); }

 private:
  friend class policy;
  std::vector<std::pair<question, std::optional<timed_answer>>> answers_;
  std::vector<std::pair<ip_address, std::optional<dns_name>>> mappings_;
  // The mode of the last name the policy looked up: decide() runs several times per query.
  mutable std::optional<std::pair<dns_name, dns_mode>> mode_memo_;
};

struct ask_upstream {
  question q;
  friend bool operator==(const ask_upstream&, const ask_upstream&) = default;
};
struct find_mapping {
  ip_address fake;
  friend bool operator==(const find_mapping&, const find_mapping&) = default;
};
struct allocate_fake {
  ip_family family;
  friend bool operator==(const allocate_fake&, const allocate_fake&) = default;
};
// Why a reply is what it is, for the counters.
enum class reply_kind : std::uint8_t {
  forwarded,       // an upstream answer, filtered
  reverse,         // a pool reverse name answered locally (PTR or negative)
  any_minimal,     // RFC 8482 HINFO
  upstream_failed  // SERVFAIL: no upstream answered
};
struct send_reply {
  bytes wire;
  reply_kind kind = reply_kind::forwarded;
  unsigned hints_removed = 0;    // ipv4hint/ipv6hint values taken out of SVCB/HTTPS records
  unsigned records_removed = 0;  // A/AAAA records (glue, pool addresses) and their signatures
};
using decision = std::variant<ask_upstream, find_mapping, allocate_fake, send_reply>;

class policy {
 public:
  explicit policy(policy_settings settings);

  // The next step for `q`, given what is known. `limit` is the largest reply the client's
  // transport takes (bigger ones are truncated, TC set).
  [[nodiscard]] decision decide(const query& q, const lookups& known, std::size_t limit) const;

  // The reply to an A or AAAA query with the name's fake address: one record, the query name
  // as the client wrote it, TTL dns.fake_ttl, AA and AD clear.
  [[nodiscard]] bytes fake_reply(const query& q, const ip_address& fake) const;

  [[nodiscard]] dns_mode mode_for(const dns_name& name) const { return rules_.mode_for(name); }
  [[nodiscard]] const policy_settings& settings() const noexcept { return settings_; }
  [[nodiscard]] bool in_pools(const ip_address& address) const noexcept {
    return settings_.pool_v4.contains(address) || settings_.pool_v6.contains(address);
  }

  // The upstream lookups one query may cost at most (HTTPS target checks included); past it,
  // hints are removed without asking.
  static constexpr std::size_t max_lookups = 8;

 private:
  [[nodiscard]] decision decide_address(const query& q, const lookups& known, std::size_t limit) const;
  [[nodiscard]] decision decide_reverse(const query& q, const dns_name& apex, const std::optional<cidr>& prefix,
                                        const lookups& known, std::size_t limit) const;
  [[nodiscard]] decision forward(const query& q, const question& asked, const lookups& known, std::size_t limit) const;
  [[nodiscard]] bool has_real_address(const answer& a, ip_family family) const;
  [[nodiscard]] dns_mode query_mode(const dns_name& name, const lookups& known) const;

  policy_settings settings_;
  rule_table rules_;
  // The pools' reverse zones (18.198.in-addr.arpa., ...), answered here: every name in them.
  std::vector<std::pair<dns_name, cidr>> pool_zones_;
};

}  // namespace gate46::dns
