// Test helpers for the DNS policy and responder tests: writes upstream answers and client
// queries field by field, and reads replies back without ldns (names decompressed), so the
// tests check the bytes a client receives.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"
#include "gate46/dns/message.hpp"

namespace gate46::dns::test_wire {

inline dns_name name(std::string_view text) {
  return *dns_name::parse(text);
}
inline ip_address addr(std::string_view text) {
  return *ip_address::parse(text);
}

namespace flag {
inline constexpr std::uint16_t qr = 0x8000;
inline constexpr std::uint16_t aa = 0x0400;
inline constexpr std::uint16_t tc = 0x0200;
inline constexpr std::uint16_t rd = 0x0100;
inline constexpr std::uint16_t ra = 0x0080;
inline constexpr std::uint16_t ad = 0x0020;
inline constexpr std::uint16_t cd = 0x0010;
}  // namespace flag

inline constexpr std::uint16_t type_mx = 15;
inline constexpr std::uint16_t type_hinfo = 13;
inline constexpr std::uint16_t type_rrsig = 46;
inline constexpr std::uint16_t type_any = 255;
inline constexpr std::uint16_t class_ch = 3;

// Writes DNS messages field by field; names uncompressed, in the letter case given.
class wire_builder {
 public:
  wire_builder& u8(std::uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  wire_builder& u16(std::uint16_t v) { return u8(static_cast<std::uint8_t>(v >> 8)).u8(static_cast<std::uint8_t>(v)); }
  wire_builder& u32(std::uint32_t v) {
    return u16(static_cast<std::uint16_t>(v >> 16)).u16(static_cast<std::uint16_t>(v));
  }
  wire_builder& name(std::string_view text) {
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
      if (i == text.size() || text[i] == '.') {
        if (i > start) {
          u8(static_cast<std::uint8_t>(i - start));
          for (std::size_t k = start; k < i; ++k) {
            u8(static_cast<std::uint8_t>(text[k]));
          }
        }
        start = i + 1;
      }
    }
    return u8(0);
  }
  wire_builder& raw(const bytes& b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  // An OPT pseudo-RR: root owner, type 41, class = UDP size, TTL = extended rcode, version, DO.
  wire_builder& opt(std::uint16_t udp_size, std::uint8_t version = 0, bool do_bit = false) {
    return u8(0).u16(rr_type::opt).u16(udp_size).u8(0).u8(version).u16(do_bit ? 0x8000 : 0).u16(0);
  }
  [[nodiscard]] const bytes& get() const { return out_; }

 private:
  bytes out_;
};

// ---- records -------------------------------------------------------------------------------------

struct record {
  std::string owner;
  std::uint16_t type = 0;
  std::uint32_t ttl = 300;
  bytes rdata;
};

inline bytes a_rdata(std::string_view text) {
  const auto b = addr(text).v6_bytes();
  return {b.end() - 4, b.end()};
}
inline bytes aaaa_rdata(std::string_view text) {
  const auto b = addr(text).v6_bytes();
  return {b.begin(), b.end()};
}
inline bytes name_rdata(std::string_view text) {
  return wire_builder{}.name(text).get();
}

inline record rr_a(std::string owner, std::string_view address, std::uint32_t ttl = 300) {
  return {std::move(owner), rr_type::a, ttl, a_rdata(address)};
}
inline record rr_aaaa(std::string owner, std::string_view address, std::uint32_t ttl = 300) {
  return {std::move(owner), rr_type::aaaa, ttl, aaaa_rdata(address)};
}
inline record rr_cname(std::string owner, std::string_view target) {
  return {std::move(owner), rr_type::cname, 300, name_rdata(target)};
}
inline record rr_soa(std::string zone, std::uint32_t minimum = 300) {
  wire_builder w;
  w.name("ns." + zone).name("hostmaster." + zone).u32(1).u32(3600).u32(600).u32(86400).u32(minimum);
  return {std::move(zone), rr_type::soa, minimum, w.get()};
}
inline record rr_mx(std::string owner, std::uint16_t preference, std::string_view exchange) {
  return {std::move(owner), type_mx, 300, wire_builder{}.u16(preference).name(exchange).get()};
}
inline record rr_txt(std::string owner, std::string_view text) {
  wire_builder w;
  w.u8(static_cast<std::uint8_t>(text.size()));
  for (const char c : text) {
    w.u8(static_cast<std::uint8_t>(c));
  }
  return {std::move(owner), rr_type::txt, 300, w.get()};
}
// An RRSIG over `covered` at `owner` (algorithm 13, a fake 64-byte signature).
inline record rr_rrsig(std::string owner, std::uint16_t covered, std::string_view signer) {
  wire_builder w;
  w.u16(covered).u8(13).u8(2).u32(300).u32(2000000000).u32(1600000000).u16(4242).name(signer);
  for (int i = 0; i < 64; ++i) {
    w.u8(static_cast<std::uint8_t>(i));
  }
  return {std::move(owner), type_rrsig, 300, w.get()};
}
// An SVCB (64) or HTTPS (65) record: priority, TargetName, SvcParams as given.
inline record rr_svc(std::uint16_t type, std::string owner, std::uint16_t priority, std::string_view target,
                     const bytes& params) {
  return {std::move(owner), type, 300, wire_builder{}.u16(priority).name(target).raw(params).get()};
}

// SvcParams pieces: key, length, value.
inline bytes svc_kv(std::uint16_t key, const bytes& value) {
  return wire_builder{}.u16(key).u16(static_cast<std::uint16_t>(value.size())).raw(value).get();
}
inline bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}
inline bytes alpn_h2_h3() {
  return {2, 'h', '2', 2, 'h', '3'};
}
inline bytes port_8443() {
  return {0x20, 0xfb};
}
inline bytes ech_config() {
  return {0xfe, 0x0d, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef};
}
inline bytes v4hint_value() {
  return concat({a_rdata("192.0.2.10"), a_rdata("192.0.2.11")});
}
inline bytes v6hint_value() {
  return aaaa_rdata("2001:db8::10");
}

// ---- upstream answers ------------------------------------------------------------------------------

inline constexpr std::uint16_t upstream_id = 0x4242;

struct upstream_msg {
  unsigned rcode = 0;
  bool ad = false;
  std::vector<record> an;
  std::vector<record> ns;
  std::vector<record> ar;
};

inline void put_records(wire_builder& w, const std::vector<record>& records) {
  for (const auto& r : records) {
    w.name(r.owner).u16(r.type).u16(class_in).u32(r.ttl).u16(static_cast<std::uint16_t>(r.rdata.size())).raw(r.rdata);
  }
}

// An upstream's answer to `q`: QR, RD, RA (and AD) set, the question as asked.
inline bytes answer_wire(const question& q, const upstream_msg& m) {
  wire_builder w;
  const auto flags = static_cast<std::uint16_t>(flag::qr | flag::rd | flag::ra | (m.ad ? flag::ad : 0) | m.rcode);
  w.u16(upstream_id).u16(flags).u16(1);
  w.u16(static_cast<std::uint16_t>(m.an.size()))
      .u16(static_cast<std::uint16_t>(m.ns.size()))
      .u16(static_cast<std::uint16_t>(m.ar.size()));
  bytes qname(q.name.wire().begin(), q.name.wire().end());
  w.raw(qname).u16(q.type).u16(q.qclass);
  put_records(w, m.an);
  put_records(w, m.ns);
  put_records(w, m.ar);
  return w.get();
}

// The answer as the resolver hands it over (accepted, facts read).
inline std::optional<timed_answer> answered(const question& q, const upstream_msg& m,
                                            std::chrono::seconds age = std::chrono::seconds{0}) {
  auto a = accept_upstream_answer(answer_wire(q, m), upstream_id, q);
  EXPECT_TRUE(a.has_value()) << "the test's upstream answer was not accepted";
  if (!a) {
    return std::nullopt;
  }
  return timed_answer{std::make_shared<const answer>(std::move(*a)), age};
}

inline upstream_msg nodata(const std::string& zone) {
  return {0, false, {}, {rr_soa(zone)}, {}};
}
inline upstream_msg nxdomain(const std::string& zone) {
  return {3, false, {}, {rr_soa(zone)}, {}};
}
inline upstream_msg servfail_msg() {
  return {2, false, {}, {}, {}};
}

// ---- client queries -------------------------------------------------------------------------------

struct query_options {
  std::uint16_t id = 0x1234;
  bool rd = true;
  bool cd = false;
  std::optional<std::uint16_t> edns = std::nullopt;  // UDP size of an OPT record
  bool do_bit = false;
  std::uint16_t qclass = class_in;
};

inline bytes query_wire(std::string_view qname, std::uint16_t type, const query_options& o = {}) {
  wire_builder w;
  const auto flags = static_cast<std::uint16_t>((o.rd ? flag::rd : 0) | (o.cd ? flag::cd : 0));
  w.u16(o.id).u16(flags).u16(1).u16(0).u16(0).u16(o.edns ? 1 : 0);
  w.name(qname).u16(type).u16(o.qclass);
  if (o.edns) {
    w.opt(*o.edns, 0, o.do_bit);
  }
  return w.get();
}

inline query make_query(std::string_view qname, std::uint16_t type, const query_options& o = {}) {
  auto r = parse_query(query_wire(qname, type, o));
  EXPECT_TRUE(std::holds_alternative<query>(r)) << "the test's query did not parse";
  return std::holds_alternative<query>(r) ? std::get<query>(r) : query{};
}

// ---- replies, read back ---------------------------------------------------------------------------

struct parsed_rr {
  std::string owner;  // presentation form, letter case as on the wire
  std::uint16_t type = 0;
  std::uint16_t rclass = 0;
  std::uint32_t ttl = 0;
  bytes rdata;
  std::size_t rdata_offset = 0;  // in the message, for names inside rdata
};

struct parsed_reply {
  bytes wire;
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::string qname;  // as on the wire
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  std::vector<parsed_rr> answer;
  std::vector<parsed_rr> authority;
  std::vector<parsed_rr> additional;  // without OPT
  bool has_opt = false;
  std::uint16_t opt_udp_size = 0;
  std::uint32_t opt_ttl = 0;  // extended rcode, version, DO

  [[nodiscard]] unsigned rcode() const { return flags & 0x0f; }
  [[nodiscard]] bool has(std::uint16_t f) const { return (flags & f) != 0; }

  // The name at `at` (compression followed), or nullopt.
  [[nodiscard]] std::optional<std::string> name_at(std::size_t at, std::size_t* end = nullptr) const {
    std::string out;
    bool jumped = false;
    for (int hops = 0; hops < 64; ++hops) {
      if (at >= wire.size()) {
        return std::nullopt;
      }
      const std::uint8_t len = wire[at];
      if ((len & 0xc0) == 0xc0) {
        if (at + 1 >= wire.size()) {
          return std::nullopt;
        }
        if (!jumped && end != nullptr) {
          *end = at + 2;
        }
        jumped = true;
        at = static_cast<std::size_t>(((len & 0x3f) << 8) | wire[at + 1]);
        continue;
      }
      if (len == 0) {
        if (!jumped && end != nullptr) {
          *end = at + 1;
        }
        return out.empty() ? std::string{"."} : out;
      }
      if (at + 1 + len > wire.size()) {
        return std::nullopt;
      }
      out.append(reinterpret_cast<const char*>(&wire[at + 1]), len);
      out += '.';
      at += 1 + len;
    }
    return std::nullopt;
  }
  // The name in the rdata of `rr` at `offset` within it.
  [[nodiscard]] std::string rdata_name(const parsed_rr& rr, std::size_t offset = 0) const {
    return name_at(rr.rdata_offset + offset).value_or("<bad name>");
  }
};

inline std::uint16_t u16_at(const bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
inline std::uint32_t u32_at(const bytes& b, std::size_t at) {
  return (static_cast<std::uint32_t>(u16_at(b, at)) << 16) | u16_at(b, at + 2);
}

inline std::optional<parsed_reply> read_reply(const bytes& wire) {
  parsed_reply r;
  r.wire = wire;
  if (wire.size() < 12) {
    return std::nullopt;
  }
  r.id = u16_at(wire, 0);
  r.flags = u16_at(wire, 2);
  const std::size_t counts[4] = {u16_at(wire, 4), u16_at(wire, 6), u16_at(wire, 8), u16_at(wire, 10)};
  std::size_t at = 12;
  for (std::size_t i = 0; i < counts[0]; ++i) {
    std::size_t end = 0;
    const auto n = r.name_at(at, &end);
    if (!n || end + 4 > wire.size()) {
      return std::nullopt;
    }
    r.qname = *n;
    r.qtype = u16_at(wire, end);
    r.qclass = u16_at(wire, end + 2);
    at = end + 4;
  }
  for (int section = 1; section < 4; ++section) {
    for (std::size_t i = 0; i < counts[section]; ++i) {
      std::size_t end = 0;
      const auto n = r.name_at(at, &end);
      if (!n || end + 10 > wire.size()) {
        return std::nullopt;
      }
      parsed_rr rr;
      rr.owner = *n;
      rr.type = u16_at(wire, end);
      rr.rclass = u16_at(wire, end + 2);
      rr.ttl = u32_at(wire, end + 4);
      const std::size_t length = u16_at(wire, end + 8);
      rr.rdata_offset = end + 10;
      if (rr.rdata_offset + length > wire.size()) {
        return std::nullopt;
      }
      rr.rdata.assign(wire.begin() + static_cast<std::ptrdiff_t>(rr.rdata_offset),
                      wire.begin() + static_cast<std::ptrdiff_t>(rr.rdata_offset + length));
      at = rr.rdata_offset + length;
      if (section == 3 && rr.type == rr_type::opt) {
        r.has_opt = true;
        r.opt_udp_size = rr.rclass;
        r.opt_ttl = rr.ttl;
        continue;
      }
      (section == 1 ? r.answer : section == 2 ? r.authority : r.additional).push_back(std::move(rr));
    }
  }
  if (at != wire.size()) {
    return std::nullopt;
  }
  return r;
}

// The records of `section` with `type`.
inline std::vector<parsed_rr> of_type(const std::vector<parsed_rr>& section, std::uint16_t type) {
  std::vector<parsed_rr> out;
  for (const auto& rr : section) {
    if (rr.type == type) {
      out.push_back(rr);
    }
  }
  return out;
}

}  // namespace gate46::dns::test_wire
