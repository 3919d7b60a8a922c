// The delegating policy driven by fuzzer bytes, as the responder drives it: the first bytes
// choose the mode, the rules, the pools and the size limit; then comes a client query, then the
// upstream answers the policy asks for (records from the fuzzer under a question that matches,
// or a failure), one after another. Mappings come from an in-memory address source.
//
// Nothing may crash or leak, the policy must finish within its lookup budget, and every reply
// must be a response to the query that never carries a pool address or a hint for a name the
// policy fakes every family of.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <variant>
#include <vector>

#include "gate46/dns/policy.hpp"

using namespace gate46;
using namespace gate46::dns;

namespace {

class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : data_{data}, size_{size} {}
  std::uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>((u8() << 8) | u8()); }
  bytes take(std::size_t n) {
    n = std::min(n, size_ - at_);
    bytes out(data_ + at_, data_ + at_ + n);
    at_ += n;
    return out;
  }
  [[nodiscard]] bool empty() const { return at_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

[[noreturn]] void fail() {
  std::abort();
}

const std::array<const char*, 6> rule_suffixes{"example.", "a.example.", "svc.example.", "net.", "local.", "arpa."};

policy_settings settings_of(reader& in) {
  const auto b = in.u8();
  policy_settings s;
  s.mode = (b & 1) != 0 ? dns_mode::all : dns_mode::translate;
  s.fake_ttl = std::chrono::seconds{b >> 4};
  if ((b & 2) != 0) {
    s.pool_v4 = *cidr::parse("192.0.2.0/30");
    s.pool_v6 = *cidr::parse("2001:db8::/126");
  }
  const auto rules = in.u16();
  for (std::size_t i = 0; i < rule_suffixes.size(); ++i) {
    const auto m = (rules >> (2 * i)) & 3;
    if (m != 0) {
      s.rules.push_back({rule_suffixes[i], m == 1 ? dns_mode::translate : m == 2 ? dns_mode::all : dns_mode::never});
    }
  }
  return s;
}

// An upstream answer to `q`: the fuzzer gives the header's flags and counts and the records;
// the ID and question are ours, so that the answer is accepted and its records are read.
std::optional<timed_answer> upstream_answer(reader& in, const question& q) {
  const auto control = in.u8();
  if (control == 0) {
    return std::nullopt;  // the upstream did not answer
  }
  bytes wire{0x12, 0x34, static_cast<std::uint8_t>(0x81 | (control & 0x02)), in.u8(), 0, 1};
  for (int i = 0; i < 3; ++i) {
    wire.push_back(0);
    wire.push_back(in.u8() & 0x1f);
  }
  const auto name = q.name.wire();
  wire.insert(wire.end(), name.begin(), name.end());
  wire.push_back(static_cast<std::uint8_t>(q.type >> 8));
  wire.push_back(static_cast<std::uint8_t>(q.type));
  wire.push_back(static_cast<std::uint8_t>(q.qclass >> 8));
  wire.push_back(static_cast<std::uint8_t>(q.qclass));
  const auto records = in.take(in.u16() & 0x0fff);
  wire.insert(wire.end(), records.begin(), records.end());
  auto a = accept_upstream_answer(wire, 0x1234, q);
  if (!a) {
    return std::nullopt;
  }
  return timed_answer{std::make_shared<const answer>(std::move(*a)), std::chrono::seconds{control >> 4}};
}

// Fake addresses handed out in order from the start of each pool.
class address_source {
 public:
  explicit address_source(const policy& p) : policy_{p} {
    // One name mapped from the start, so that PTR queries find something.
    allocate(*dns_name::parse("mapped.example."), ip_family::v4);
    allocate(*dns_name::parse("mapped.example."), ip_family::v6);
  }

  ip_address allocate(const dns_name& name, ip_family family) {
    auto& slot = by_name_[name][family == ip_family::v4 ? 0 : 1];
    if (!slot) {
      const auto& pool = family == ip_family::v4 ? policy_.settings().pool_v4 : policy_.settings().pool_v6;
      auto b = pool.network().v6_bytes();
      b[15] = static_cast<std::uint8_t>(b[15] + 1 + next_[family == ip_family::v4 ? 0 : 1]++ % 2);
      slot = ip_address::from_v6(b);
      by_address_[*slot] = name;
    }
    return *slot;
  }
  [[nodiscard]] std::optional<dns_name> find(const ip_address& fake) const {
    const auto it = by_address_.find(fake);
    return it == by_address_.end() ? std::nullopt : std::optional<dns_name>{it->second};
  }

 private:
  const policy& policy_;
  std::map<dns_name, std::array<std::optional<ip_address>, 2>> by_name_;
  std::map<ip_address, dns_name> by_address_;
  std::array<unsigned, 2> next_{};
};

void check_reply(const policy& p, const query& q, const send_reply& reply, std::size_t limit) {
  const auto& wire = reply.wire;
  if (wire.size() < 12 || (wire[2] & 0x80) == 0 || ((wire[0] << 8) | wire[1]) != q.id) {
    fail();  // not a response to this query
  }
  if (limit >= 512 && wire.size() > limit) {
    fail();  // must fit, truncated if needed
  }
  const auto again = accept_upstream_answer(wire, q.id, q.q);
  if (!again) {
    fail();  // every reply echoes the question and parses
  }
  for (const auto& r : again->address_records) {
    if (p.in_pools(r.address)) {
      fail();  // a pool address from upstream would loop through the gateway
    }
    const bool address_query = q.q.type == rr_type::a || q.q.type == rr_type::aaaa;
    if (!address_query && p.mode_for(r.owner) == dns_mode::all) {
      fail();  // a real address of a name whose every family is faked
    }
  }
  for (const auto& s : again->hinted_services) {
    if (p.mode_for(s.target) == dns_mode::all) {
      fail();  // a hint for a target whose every family is faked
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in{data, size};
  const policy p{settings_of(in)};
  static constexpr std::array<std::size_t, 4> limits{12, 512, 1232, 65535};
  const auto limit = limits[in.u8() % limits.size()];
  const auto query_wire = in.take(in.u16() & 0x01ff);
  auto parsed = parse_query(query_wire);
  auto* q = std::get_if<query>(&parsed);
  if (q == nullptr) {
    return 0;
  }
  address_source addresses{p};
  lookups known;
  for (std::size_t step = 0;; ++step) {
    if (step > policy::max_lookups + 4) {
      fail();  // the policy must finish within its lookup budget
    }
    auto next = p.decide(*q, known, limit);
    if (const auto* ask = std::get_if<ask_upstream>(&next)) {
      if (known.find(ask->q) != nullptr) {
        fail();  // asked again for what it was told
      }
      known.add(ask->q, upstream_answer(in, ask->q));
      continue;
    }
    if (const auto* find = std::get_if<find_mapping>(&next)) {
      if (!p.in_pools(find->fake) || known.find_mapping(find->fake) != nullptr) {
        fail();
      }
      known.add_mapping(find->fake, (in.u8() & 1) != 0 ? addresses.find(find->fake) : std::nullopt);
      continue;
    }
    if (const auto* fake = std::get_if<allocate_fake>(&next)) {
      const auto family = q->q.type == rr_type::a ? ip_family::v4 : ip_family::v6;
      if ((q->q.type != rr_type::a && q->q.type != rr_type::aaaa) || fake->family != family ||
          p.mode_for(q->q.name) == dns_mode::never) {
        fail();  // fake addresses only for A/AAAA of names that may have them
      }
      const auto address = addresses.allocate(q->q.name, family);
      const auto wire = p.fake_reply(*q, address);
      const auto back = accept_upstream_answer(wire, q->id, q->q);
      if (!back || addresses_in(*back, family) != std::vector<ip_address>{address}) {
        fail();
      }
      return 0;
    }
    check_reply(p, *q, std::get<send_reply>(next), limit);
    return 0;
  }
}
