// gate46d's delegating DNS policy (issue 5) between a client namespace and a real authoritative
// server, queried with real dig and kdig over UDP and TCP: fake addresses in translate and all
// mode, [[dns.rule]] suffixes, PTR for the pools' reverse names, HTTPS hints, MX/SRV/NS glue,
// RFC 8482 ANY, a SIGHUP reload switching dns.mode, and the mappings as gate46ctl shows them.
//
//   client ns                    gw ns (gate46d, gate46ctl)            auth ns
//   eth0 192.0.2.2/24     ---    lan0 192.0.2.1/24         up0 203.0.113.1/24  --- eth0 203.0.113.2/24
//        2001:db8:1::2/64             2001:db8:1::1/64         2001:db8:2::1/64        2001:db8:2::2/64
//                                                                                 knotd (gate46.test.)
//
// The light cases run over both transport families (TEST_P, the client's and the upstream's
// family alike); the heavy ones (200 names, rules, reload) over one.
#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gate46/common/address.hpp"
#include "gate46/testing/dig.hpp"
#include "gate46/testing/gate46_config.hpp"
#include "gate46/testing/knot.hpp"
#include "gate46/testing/netns.hpp"
#include "gate46/testing/privileges.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/wait.hpp"

namespace {

using namespace gate46::testing;
using gate46::cidr;
using gate46::ip_address;
using json = nlohmann::json;

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
// dig and kdig give up after this.
constexpr int client_timeout_s = 5;
// dns.fake_ttl: distinct from every TTL in the zone (300 for records, 60 negative).
constexpr std::uint32_t fake_ttl = 45;
constexpr std::uint32_t reloaded_fake_ttl = 30;
// pools.lease_grace, left at its default.
constexpr std::int64_t default_lease_grace_s = 3600;

// The default pools (the configuration leaves them alone): the one of an A or AAAA record.
cidr pool_of(std::string_view type) {
  return *cidr::parse(type == "A" ? "198.18.0.0/15" : "2001:2::/48");
}

// ---- the zone --------------------------------------------------------------------------------

// gate46.test. as knotd serves it here (the fixture adds SOA, NS and ns A/AAAA).
namespace zone {
constexpr std::string_view apex = "gate46.test.";
constexpr std::string_view ns = "ns.gate46.test.";  // A 203.0.113.2, AAAA 2001:db8:2::2 (the fixture's)
constexpr std::string_view v4_only = "v4only.gate46.test.";
constexpr std::string_view v4_only_address = "203.0.113.10";
constexpr std::string_view v6_only = "v6only.gate46.test.";  // AAAA 2001:db8:2::10
constexpr std::string_view dual = "dual.gate46.test.";       // A 203.0.113.20, AAAA 2001:db8:2::20
// to-v4 -> mid-v4 -> v4only, to-v6 -> mid-v6 -> v6only.
constexpr std::string_view to_v4 = "to-v4.gate46.test.";
constexpr std::string_view to_v6 = "to-v6.gate46.test.";
constexpr std::string_view text_only = "textonly.gate46.test.";
constexpr std::string_view nonexistent = "nonexistent.gate46.test.";
// A and AAAA inside the fake pools: such an address must never reach a client.
constexpr std::string_view in_pool = "inpool.gate46.test.";
constexpr std::string_view in_pool_v4_address = "198.18.5.5";
constexpr std::string_view in_pool_v6_address = "2001:2::5:5";
constexpr std::string_view to_pool = "to-pool.gate46.test.";  // CNAME inpool
// A real A, and an AAAA inside the pool: as good as AAAA-less.
constexpr std::string_view half_pool = "halfpool.gate46.test.";
constexpr std::string_view half_pool_v6_address = "2001:2::6:6";
constexpr std::string_view mx_pool_address = "198.18.5.6";  // mxpool, an MX target only
// MX and SRV with in-zone targets (knotd adds their A/AAAA as additional records).
constexpr std::string_view mail = "mail.gate46.test.";        // MX v4only, v6only, dual, mxpool
constexpr std::string_view xmpp = "_xmpp._tcp.gate46.test.";  // SRV v4only, v6only, dual
// HTTPS: svc4 -> v4only, svc6 -> v6only, svcdual -> dual, svcself -> "." (itself, AAAA only);
// each with both hints and ALPN.
constexpr std::string_view svc4 = "svc4.gate46.test.";
constexpr std::string_view svc6 = "svc6.gate46.test.";
constexpr std::string_view svc_dual = "svcdual.gate46.test.";
constexpr std::string_view svc_self = "svcself.gate46.test.";
// Under the suffixes the rules name: all.gate46.test. (all), keep.gate46.test. (never).
constexpr std::string_view all_suffix = "all.gate46.test.";
constexpr std::string_view dual_all = "dual.all.gate46.test.";
constexpr std::string_view v4_all = "v4.all.gate46.test.";
constexpr std::string_view keep_suffix = "keep.gate46.test.";
constexpr std::string_view v6_keep = "v6.keep.gate46.test.";  // AAAA 2001:db8:2::50
constexpr std::string_view v4_keep = "v4.keep.gate46.test.";  // A 203.0.113.50
constexpr std::string_view mail_keep = "mail.keep.gate46.test.";
constexpr std::string_view svc_keep = "svc.keep.gate46.test.";
// n000 ... n199: AAAA only.
constexpr unsigned generated_count = 200;

std::string generated_name(unsigned i) {
  std::array<char, 8> label{};
  std::snprintf(label.data(), label.size(), "n%03u", i);
  return std::string{label.data()} + ".gate46.test.";
}

knot_zone records() {
  knot_zone z;
  z.records = {
      {"v4only", "A", "203.0.113.10"},
      {"v6only", "AAAA", "2001:db8:2::10"},
      {"dual", "A", "203.0.113.20"},
      {"dual", "AAAA", "2001:db8:2::20"},
      {"to-v4", "CNAME", "mid-v4"},
      {"mid-v4", "CNAME", "v4only"},
      {"to-v6", "CNAME", "mid-v6"},
      {"mid-v6", "CNAME", "v6only"},
      {"textonly", "TXT", "\"no address here\""},
      {"inpool", "A", "198.18.5.5"},
      {"inpool", "AAAA", "2001:2::5:5"},
      {"to-pool", "CNAME", "inpool"},
      {"halfpool", "A", "203.0.113.60"},
      {"halfpool", "AAAA", "2001:2::6:6"},
      {"mxpool", "A", "198.18.5.6"},
      {"mail", "MX", "10 v4only"},
      {"mail", "MX", "20 v6only"},
      {"mail", "MX", "30 dual"},
      {"mail", "MX", "40 mxpool"},
      {"_xmpp._tcp", "SRV", "10 5 5222 v4only"},
      {"_xmpp._tcp", "SRV", "20 5 5222 v6only"},
      {"_xmpp._tcp", "SRV", "30 5 5222 dual"},
      {"svc4", "HTTPS", "1 v4only alpn=h2 ipv4hint=203.0.113.10 ipv6hint=2001:db8:2::99"},
      {"svc6", "HTTPS", "1 v6only alpn=h2 ipv4hint=203.0.113.80 ipv6hint=2001:db8:2::10"},
      {"svcdual", "HTTPS", "1 dual alpn=h2,h3 ipv4hint=203.0.113.20 ipv6hint=2001:db8:2::20"},
      {"svcself", "HTTPS", "1 . alpn=h2 ipv4hint=203.0.113.81 ipv6hint=2001:db8:2::81"},
      {"svcself", "AAAA", "2001:db8:2::81"},
      {"dual.all", "A", "203.0.113.40"},
      {"dual.all", "AAAA", "2001:db8:2::40"},
      {"v4.all", "A", "203.0.113.41"},
      {"v6.keep", "AAAA", "2001:db8:2::50"},
      {"v4.keep", "A", "203.0.113.50"},
      {"mail.keep", "MX", "10 v6.keep"},
      {"mail.keep", "MX", "20 v4.keep"},
      {"svc.keep", "HTTPS", "1 v6.keep alpn=h2 ipv4hint=203.0.113.51 ipv6hint=2001:db8:2::50"},
  };
  for (unsigned i = 0; i < generated_count; ++i) {
    std::array<char, 32> address{};
    std::snprintf(address.data(), address.size(), "2001:db8:2:1::%x", i + 1);
    z.records.push_back({generated_name(i).substr(0, 4), "AAAA", address.data()});
  }
  return z;
}

}  // namespace zone

// ---- names and records -------------------------------------------------------------------------

// "1.2.18.198.in-addr.arpa." / the ip6.arpa. nibble name of an address.
std::string reverse_name(const ip_address& address) {
  std::string out;
  const auto& b = address.v6_bytes();
  if (address.is_v4()) {
    for (std::size_t i = 16; i-- > 12;) {
      out += std::to_string(b[i]) + ".";
    }
    return out + "in-addr.arpa.";
  }
  constexpr std::string_view hex = "0123456789abcdef";
  for (std::size_t i = 16; i-- > 0;) {
    out += hex[b[i] & 0x0f];
    out += '.';
    out += hex[b[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa.";
}

// A record text without one SvcParam ("ipv4hint=..."): what a hint removal leaves.
std::string without_param(const std::string& text, std::string_view key) {
  std::string out;
  for (const auto& w : split_words(text)) {
    if (!w.starts_with(key)) {
      out += (out.empty() ? "" : " ") + w;
    }
  }
  return out;
}

std::vector<std::string> without_param(const std::vector<std::string>& texts, std::string_view key) {
  std::vector<std::string> out;
  out.reserve(texts.size());
  for (const auto& t : texts) {
    out.push_back(without_param(t, key));
  }
  return out;
}

bool is_address_record(const std::string& text) {
  const auto type = type_of(text);
  return type == "A" || type == "AAAA";
}

// "2026-01-02T03:04:05.678Z" (gate46ctl's JSON times) in milliseconds since the epoch.
std::optional<std::int64_t> rfc3339_millis(const std::string& text) {
  std::istringstream in{text};
  std::tm utc{};
  char dot = 0;
  int millis = 0;
  char zone = 0;
  in >> std::get_time(&utc, "%Y-%m-%dT%H:%M:%S") >> dot >> millis >> zone;
  if (!in || dot != '.' || zone != 'Z') {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(::timegm(&utc)) * 1000 + millis;
}

enum class transport { udp, tcp };

std::string to_string(transport t) {
  return t == transport::udp ? "UDP" : "TCP";
}

constexpr std::array<transport, 2> both_transports{transport::udp, transport::tcp};

// ---- the parameter: the transport family, on the LAN side and upstream ------------------------

struct addressing {
  const char* name;           // for test names
  const char* gw;             // gate46d's listen address
  const char* upstream;       // knotd
  const char* upstream_conf;  // as dns.upstreams writes it
};

constexpr addressing ipv4{"ipv4", "192.0.2.1", "203.0.113.2", "203.0.113.2"};
constexpr addressing ipv6{"ipv6", "2001:db8:1::1", "2001:db8:2::2", "[2001:db8:2::2]"};

void PrintTo(const addressing& a, std::ostream* os) {
  *os << a.name;
}

// What the [dns] section says beyond the network.
struct policy_config {
  std::string mode = "translate";
  std::uint32_t ttl = fake_ttl;
  std::vector<std::pair<std::string_view, std::string>> rules;  // suffix, mode
};

class dns_policy : public ::testing::TestWithParam<addressing> {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client_.emplace("client");
    gw_.emplace("gw");
    auth_.emplace("auth");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "2001:db8:1::1/64"}},  //
                 *client_, {"eth0", {"192.0.2.2/24", "2001:db8:1::2/64"}});
    connect_veth(*gw_, {"up0", {"203.0.113.1/24", "2001:db8:2::1/64"}},  //
                 *auth_, {"eth0", {"203.0.113.2/24", "2001:db8:2::2/64"}});
    // Whatever runs inside asks gate46d, never the host's resolver.
    client_->write_resolv_conf({net().gw});
    knot_.emplace(*auth_, knot_options{{"203.0.113.2", "2001:db8:2::2"}, 53, zone::records(), false});
    write_config({});
  }

  void TearDown() override {
    // Every test ends with a clean stop of whatever gate46d it left running.
    if (gate46_ && gate46_->running()) {
      expect_clean_stop();
    }
  }

  [[nodiscard]] const addressing& net() const { return GetParam(); }

  void write_config(const policy_config& c) { config_ = dir_.write_file("gate46.toml", config_text(c)); }

  [[nodiscard]] std::string config_text(const policy_config& c) const {
    std::string text =
        "[daemon]\n"
        "threads = 2\n"
        "\n"
        "[lan]\n"
        "interfaces = [\"lan0\"]\n"
        "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
        "\n"
        "[dns]\n"
        "listen = [\"192.0.2.1:53\", \"[2001:db8:1::1]:53\"]\n"
        "upstreams = [\"" +
        std::string{net().upstream_conf} +
        "\"]\n"
        "upstream_timeout_ms = 1000\n"
        "mode = \"" +
        c.mode + "\"\nfake_ttl = " + std::to_string(c.ttl) + "\n";
    for (const auto& [suffix, mode] : c.rules) {
      text += "\n[[dns.rule]]\nsuffix = \"" + std::string{suffix} + "\"\nmode = \"" + mode + "\"\n";
    }
    return text + private_state_sections(dir_.path()) +
           "\n"
           "[log]\n"
           "level = \"info\"\n";
  }

  void start_gate46() {
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", "dns"}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [dns]", log_timeout)) << d.log_text();
  }

  // SIGHUP after rewriting the file; returns once gate46d says the reload was applied.
  void reload(const policy_config& c) {
    write_config(c);
    const auto mark = gate46_->log_mark();
    ASSERT_TRUE(gate46_->signal(SIGHUP));
    ASSERT_TRUE(gate46_->wait_for_log("reload: applied", log_timeout, mark)) << gate46_->log_text(mark);
    EXPECT_NE(gate46_->log_text(mark).find("dns."), std::string::npos) << gate46_->log_text(mark);
  }

  void expect_clean_stop() {
    const auto mark = gate46_->log_mark();
    ASSERT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    EXPECT_NE(gate46_->log_text(mark).find("gate46d stopped"), std::string::npos) << gate46_->log_text(mark);
  }

  [[nodiscard]] static std::vector<std::string> dig_options(transport t) {
    return {"+time=" + std::to_string(client_timeout_s),
            "+tries=1",
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "+additional",
            t == transport::tcp ? "+tcp" : "+notcp"};
  }

  // dig NAME TYPE through gate46d (in the client namespace) or at knotd (in the auth namespace).
  dig_reply dig_via_gate46(std::string_view name, const std::string& type, transport t,
                           const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{"dig", std::string{"@"} + net().gw, std::string{name}, type};
    const auto options = dig_options(t);
    argv.insert(argv.end(), options.begin(), options.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto r = client_->run(argv, 15s);
    return parse_dig(r.out + r.err);
  }

  dig_reply dig_direct(std::string_view name, const std::string& type, transport t) {
    std::vector<std::string> argv{"dig", std::string{"@"} + net().upstream, std::string{name}, type};
    const auto options = dig_options(t);
    argv.insert(argv.end(), options.begin(), options.end());
    const auto r = auth_->run(argv, 15s);
    return parse_dig(r.out + r.err);
  }

  // dig -x ADDRESS through gate46d.
  dig_reply dig_reverse(const std::string& address, transport t) {
    std::vector<std::string> argv{"dig", std::string{"@"} + net().gw, "-x", address};
    const auto options = dig_options(t);
    argv.insert(argv.end(), options.begin(), options.end());
    const auto r = client_->run(argv, 15s);
    return parse_dig(r.out + r.err);
  }

  // kdig +short: the rdata lines.
  std::vector<std::string> kdig_short(std::string_view name, const std::string& type, transport t) {
    const auto r =
        client_->run({"kdig", std::string{"@"} + net().gw, std::string{name}, type, "+short",
                      t == transport::tcp ? "+tcp" : "+notcp", "+time=" + std::to_string(client_timeout_s), "+retry=0"},
                     15s);
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    return lines_of(r.out);
  }

  // The fake address of an A or AAAA reply: exactly one record, for the name as asked, of the
  // asked type, TTL `ttl`, inside the pool of its family, in a reply without AA and AD.
  // nullopt (after a failure is recorded) otherwise.
  static std::optional<ip_address> fake_in(const dig_reply& r, std::string_view name, const std::string& type,
                                           std::uint32_t ttl = fake_ttl) {
    EXPECT_TRUE(r.got) << r.raw;
    EXPECT_EQ(r.status, "NOERROR") << r.raw;
    EXPECT_TRUE(r.flags.contains("qr") && r.flags.contains("rd") && r.flags.contains("ra")) << r.raw;
    EXPECT_FALSE(r.flags.contains("aa")) << "a synthesised answer is not authoritative:\n" << r.raw;
    EXPECT_FALSE(r.flags.contains("ad")) << "a synthesised answer is never validated data:\n" << r.raw;
    EXPECT_FALSE(r.flags.contains("tc")) << r.raw;
    if (r.answer.size() != 1) {
      ADD_FAILURE() << "one fake " << type << " record expected:\n" << r.raw;
      return std::nullopt;
    }
    EXPECT_EQ(r.answer[0].ttl, ttl) << "dns.fake_ttl:\n" << r.raw;
    const auto w = split_words(r.answer[0].text);
    if (w.size() != 4 || w[0] != name || w[1] != "IN" || w[2] != type) {
      ADD_FAILURE() << "\"" << name << " IN " << type << " <fake>\" expected:\n" << r.raw;
      return std::nullopt;
    }
    const auto address = ip_address::parse(w[3]);
    const auto pool = pool_of(type);
    if (!address || !pool.contains(*address)) {
      ADD_FAILURE() << w[3] << " is not in " << pool.to_string() << ":\n" << r.raw;
      return std::nullopt;
    }
    return address;
  }

  // The same query at knotd and through gate46d give the same records in every section.
  void expect_as_authoritative(std::string_view name, const std::string& type, transport t) {
    SCOPED_TRACE(std::string{name} + " " + type + " over " + to_string(t));
    const auto via = dig_via_gate46(name, type, t);
    const auto direct = dig_direct(name, type, t);
    ASSERT_TRUE(via.got) << via.raw;
    ASSERT_TRUE(direct.got) << direct.raw;
    EXPECT_EQ(via.status, direct.status) << via.raw;
    EXPECT_EQ(via.answer_texts(), direct.answer_texts()) << "via gate46:\n" << via.raw << "direct:\n" << direct.raw;
    EXPECT_EQ(via.authority_texts(), direct.authority_texts()) << "via gate46:\n"
                                                               << via.raw << "direct:\n"
                                                               << direct.raw;
    EXPECT_EQ(via.additional_texts(), direct.additional_texts()) << "via gate46:\n"
                                                                 << via.raw << "direct:\n"
                                                                 << direct.raw;
  }

  // Negative answers: the rcode, no answer, the zone's SOA in the authority section.
  static void expect_negative(const dig_reply& r, const std::string& status) {
    EXPECT_TRUE(r.got) << r.raw;
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_TRUE(r.answer.empty()) << r.raw;
    ASSERT_EQ(r.authority.size(), 1U) << r.raw;
    EXPECT_EQ(type_of(r.authority[0].text), "SOA") << r.raw;
  }

  // Every query knotd has counted, over every transport.
  [[nodiscard]] std::uint64_t knot_queries() const {
    std::uint64_t total = 0;
    for (const char* t : {"udp4", "tcp4", "udp6", "tcp6"}) {
      total += knot_->queries_over(t);
    }
    return total;
  }

  // gate46ctl in the gateway's namespace, with gate46d's configuration.
  command_result ctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{GATE46CTL_PATH, "--config", config_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return gw_->run(argv, 15s);
  }

  // `gate46ctl map list --json`: name -> (v4, v6), "" for none.
  std::map<std::string, std::pair<std::string, std::string>> store_mappings() {
    const auto r = ctl({"map", "list", "--json"});
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    std::map<std::string, std::pair<std::string, std::string>> out;
    const auto parsed = json::parse(r.out, nullptr, false);
    if (parsed.is_discarded() || !parsed.contains("mappings")) {
      ADD_FAILURE() << "not the JSON of map list: " << r.out << r.err;
      return out;
    }
    for (const auto& m : parsed["mappings"]) {
      const auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string{}; };
      out[m["name"].get<std::string>()] = {text(m["v4"]), text(m["v6"])};
    }
    return out;
  }

  temp_dir dir_{"gate46-dnspolicy"};
  std::filesystem::path config_;
  std::optional<netns> client_;
  std::optional<netns> gw_;
  std::optional<netns> auth_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<process> gate46_;
};

// The heavier cases, over one transport family.
class dns_policy_one_family : public dns_policy {};

// ---- translate mode ------------------------------------------------------------------------------

TEST_P(dns_policy, translate_fakes_only_the_missing_family) {
  start_gate46();
  std::optional<ip_address> v4_of_v6_only;
  std::optional<ip_address> v6_of_v4_only;
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    // An AAAA-only name asked for A: one fake A; an A-only name asked for AAAA: one fake AAAA.
    const auto a = fake_in(dig_via_gate46(zone::v6_only, "A", t), zone::v6_only, "A");
    const auto aaaa = fake_in(dig_via_gate46(zone::v4_only, "AAAA", t), zone::v4_only, "AAAA");
    ASSERT_TRUE(a && aaaa);
    // The same name gets the same address, whichever transport asks.
    if (v4_of_v6_only) {
      EXPECT_EQ(a->to_string(), v4_of_v6_only->to_string());
      EXPECT_EQ(aaaa->to_string(), v6_of_v4_only->to_string());
    }
    v4_of_v6_only = a;
    v6_of_v4_only = aaaa;
    // Names with a real address of the asked family get it, as knotd gives it.
    expect_as_authoritative(zone::dual, "A", t);
    expect_as_authoritative(zone::dual, "AAAA", t);
    expect_as_authoritative(zone::v4_only, "A", t);
    expect_as_authoritative(zone::v6_only, "AAAA", t);
    expect_as_authoritative(zone::to_v4, "A", t);  // the whole chain, real A at the end
    expect_as_authoritative(zone::to_v6, "AAAA", t);
    // A CNAME chain to a name without the asked family: a fake for the query name, which the
    // gateway re-resolves; the chain is not given.
    const auto chain_a = fake_in(dig_via_gate46(zone::to_v6, "A", t), zone::to_v6, "A");
    const auto chain_aaaa = fake_in(dig_via_gate46(zone::to_v4, "AAAA", t), zone::to_v4, "AAAA");
    ASSERT_TRUE(chain_a && chain_aaaa);
    EXPECT_NE(chain_a->to_string(), a->to_string()) << "one mapping per query name";
    EXPECT_NE(chain_aaaa->to_string(), aaaa->to_string()) << "one mapping per query name";
  }
  // kdig (lower-casing, its own EDNS) sees the same addresses; so does dig with the name in
  // another letter case (the answer keeps the case it was asked in).
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    EXPECT_EQ(kdig_short(zone::v6_only, "A", t), std::vector<std::string>{v4_of_v6_only->to_string()});
    EXPECT_EQ(kdig_short(zone::v4_only, "AAAA", t), std::vector<std::string>{v6_of_v4_only->to_string()});
    const auto mixed = fake_in(dig_via_gate46("V6Only.GATE46.test.", "A", t), "V6Only.GATE46.test.", "A");
    ASSERT_TRUE(mixed);
    EXPECT_EQ(mixed->to_string(), v4_of_v6_only->to_string());
    // A client asking for DNSSEC records (DO, and AD in the query) gets the same unsigned
    // answer with AD clear: there is nothing to validate.
    const auto with_do = dig_via_gate46(zone::v6_only, "A", t, {"+dnssec", "+adflag"});
    const auto signed_fake = fake_in(with_do, zone::v6_only, "A");
    ASSERT_TRUE(signed_fake);
    EXPECT_EQ(signed_fake->to_string(), v4_of_v6_only->to_string());
    EXPECT_NE(with_do.raw.find("; EDNS: version: 0, flags: do;"), std::string::npos) << with_do.raw;
    // An address of the asked family inside the pool does not count: the name gets a fake.
    const auto half = fake_in(dig_via_gate46(zone::half_pool, "AAAA", t), zone::half_pool, "AAAA");
    ASSERT_TRUE(half);
    EXPECT_NE(half->to_string(), ip_address::parse(zone::half_pool_v6_address)->to_string());
    expect_as_authoritative(zone::half_pool, "A", t);
  }
}

TEST_P(dns_policy, translate_keeps_negative_answers_and_never_gives_pool_addresses) {
  start_gate46();
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    for (const auto* type : {"A", "AAAA"}) {
      SCOPED_TRACE(type);
      // NXDOMAIN stays NXDOMAIN, NODATA stays NODATA (no address of either family: no fake).
      const auto nx = dig_via_gate46(zone::nonexistent, type, t);
      expect_negative(nx, "NXDOMAIN");
      EXPECT_EQ(nx.authority_texts(), dig_direct(zone::nonexistent, type, t).authority_texts()) << nx.raw;
      const auto nodata = dig_via_gate46(zone::text_only, type, t);
      expect_negative(nodata, "NOERROR");
      EXPECT_EQ(nodata.authority_texts(), dig_direct(zone::text_only, type, t).authority_texts()) << nodata.raw;
      // A name whose only addresses lie in the pools: NODATA, the records never pass.
      const auto in_pool = dig_via_gate46(zone::in_pool, type, t);
      EXPECT_EQ(in_pool.status, "NOERROR") << in_pool.raw;
      EXPECT_TRUE(in_pool.answer.empty()) << in_pool.raw;
      // Through a CNAME: the chain, without the address.
      const auto to_pool = dig_via_gate46(zone::to_pool, type, t);
      EXPECT_EQ(to_pool.status, "NOERROR") << to_pool.raw;
      EXPECT_EQ(to_pool.answer_texts(), std::vector<std::string>{"to-pool.gate46.test. IN CNAME inpool.gate46.test."})
          << to_pool.raw;
      for (const auto& r : {in_pool, to_pool}) {
        EXPECT_EQ(r.raw.find(zone::in_pool_v4_address), std::string::npos) << r.raw;
        EXPECT_EQ(r.raw.find(zone::in_pool_v6_address), std::string::npos) << r.raw;
      }
    }
  }
  // The zone itself has them (the test would prove nothing otherwise).
  const auto direct = dig_direct(zone::in_pool, "A", transport::udp);
  EXPECT_EQ(direct.answer_texts(), std::vector<std::string>{"inpool.gate46.test. IN A 198.18.5.5"}) << direct.raw;
  // Nothing above was worth a mapping, nor are the lookups of HTTPS targets and MX glue.
  EXPECT_EQ(dig_via_gate46(zone::svc6, "HTTPS", transport::udp).answer.size(), 1U);
  EXPECT_EQ(dig_via_gate46(zone::mail, "MX", transport::udp).answer.size(), 4U);
  EXPECT_TRUE(store_mappings().empty()) << ctl({"map", "list"}).out;
}

TEST_P(dns_policy, ptr_of_a_fake_address_gives_the_query_name_and_pool_reverse_zones_stay_local) {
  start_gate46();
  const auto a = fake_in(dig_via_gate46(zone::v6_only, "A", transport::udp), zone::v6_only, "A");
  const auto aaaa = fake_in(dig_via_gate46(zone::v4_only, "AAAA", transport::udp), zone::v4_only, "AAAA");
  const auto chain = fake_in(dig_via_gate46(zone::to_v6, "A", transport::udp), zone::to_v6, "A");
  ASSERT_TRUE(a && aaaa && chain);
  const auto before = knot_queries();
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    for (const auto& [address, name] : std::vector<std::pair<ip_address, std::string_view>>{
             {*a, zone::v6_only}, {*aaaa, zone::v4_only}, {*chain, zone::to_v6}}) {
      SCOPED_TRACE(address.to_string());
      const auto ptr = dig_reverse(address.to_string(), t);
      ASSERT_TRUE(ptr.got) << ptr.raw;
      EXPECT_EQ(ptr.status, "NOERROR") << ptr.raw;
      EXPECT_EQ(ptr.answer_texts(), std::vector<std::string>{reverse_name(address) + " IN PTR " + std::string{name}})
          << ptr.raw;
    }
    // Unmapped pool addresses: NXDOMAIN with the SOA of the pool's reverse zone. Among them
    // the pool address knotd's zone holds (inpool).
    for (const auto* unmapped : {"198.18.5.5", "198.19.255.254", "2001:2::dead", "2001:2:0:ffff::1"}) {
      SCOPED_TRACE(unmapped);
      const auto nx = dig_reverse(unmapped, t);
      expect_negative(nx, "NXDOMAIN");
      EXPECT_TRUE(nx.answer.empty()) << nx.raw;
    }
    // Another type at a mapped address's reverse name: NODATA with the SOA.
    expect_negative(dig_via_gate46(reverse_name(*a), "TXT", t), "NOERROR");
    // A name above the addresses, inside the pool's reverse zone: NODATA, answered here too.
    expect_negative(dig_via_gate46("5.18.198.in-addr.arpa.", "PTR", t), "NOERROR");
  }
  EXPECT_EQ(knot_queries(), before) << "the pools' reverse zones are answered by gate46d, never forwarded";
  // Other reverse names are forwarded (knotd, not authoritative for them, refuses).
  const auto other = dig_reverse(std::string{zone::v4_only_address}, transport::udp);
  ASSERT_TRUE(other.got) << other.raw;
  EXPECT_GT(knot_queries(), before) << other.raw;
}

TEST_P(dns_policy, translate_keeps_real_glue_and_removes_only_the_hints_of_faked_families) {
  start_gate46();
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    // MX: every target's real A/AAAA stays in the additional section; the pool address of
    // mxpool never passes.
    const auto mx = dig_via_gate46(zone::mail, "MX", t);
    const auto mx_direct = dig_direct(zone::mail, "MX", t);
    ASSERT_TRUE(mx.got) << mx.raw;
    EXPECT_EQ(mx.status, "NOERROR") << mx.raw;
    EXPECT_EQ(mx.answer_texts(), mx_direct.answer_texts()) << mx.raw;
    const auto glue = mx_direct.additional_texts();
    ASSERT_NE(std::find(glue.begin(), glue.end(), "v4only.gate46.test. IN A 203.0.113.10"), glue.end())
        << "knotd adds glue: " << mx_direct.raw;
    ASSERT_NE(std::find(glue.begin(), glue.end(), "mxpool.gate46.test. IN A 198.18.5.6"), glue.end()) << mx_direct.raw;
    std::vector<std::string> expected_glue;
    std::copy_if(glue.begin(), glue.end(), std::back_inserter(expected_glue),
                 [](const std::string& r) { return r.find(zone::mx_pool_address) == std::string::npos; });
    EXPECT_EQ(mx.additional_texts(), expected_glue) << "via gate46:\n" << mx.raw << "direct:\n" << mx_direct.raw;
    EXPECT_EQ(mx.raw.find(zone::mx_pool_address), std::string::npos) << mx.raw;
    // SRV and NS: as knotd gives them, glue included.
    expect_as_authoritative(zone::xmpp, "SRV", t);
    expect_as_authoritative(zone::apex, "NS", t);

    // HTTPS: a hint is removed when the policy would fake that family for the target.
    expect_as_authoritative(zone::svc_dual, "HTTPS", t);  // both families real: both hints
    struct hinted {
      std::string_view owner;
      std::string_view removed;
      std::string_view kept;
    };
    for (const auto& h : {hinted{zone::svc6, "ipv4hint=", "ipv6hint="}, hinted{zone::svc4, "ipv6hint=", "ipv4hint="},
                          hinted{zone::svc_self, "ipv4hint=", "ipv6hint="}}) {
      SCOPED_TRACE(h.owner);
      const auto via = dig_via_gate46(h.owner, "HTTPS", t);
      const auto direct = dig_direct(h.owner, "HTTPS", t);
      ASSERT_TRUE(via.got) << via.raw;
      EXPECT_EQ(via.status, "NOERROR") << via.raw;
      ASSERT_EQ(direct.answer.size(), 1U) << direct.raw;
      ASSERT_NE(direct.answer[0].text.find(h.removed), std::string::npos) << direct.raw;
      EXPECT_EQ(via.answer_texts(), without_param(direct.answer_texts(), h.removed)) << "via gate46:\n"
                                                                                     << via.raw << "direct:\n"
                                                                                     << direct.raw;
      ASSERT_EQ(via.answer.size(), 1U) << via.raw;
      EXPECT_NE(via.answer[0].text.find("alpn="), std::string::npos) << via.raw;
      EXPECT_NE(via.answer[0].text.find(h.kept), std::string::npos) << via.raw;
      // The target's real addresses, as knotd adds them, stay.
      EXPECT_EQ(via.additional_texts(), direct.additional_texts()) << via.raw;
    }
  }
  // kdig reads the edited record the same way.
  const auto k = kdig_short(zone::svc6, "HTTPS", transport::udp);
  ASSERT_EQ(k.size(), 1U);
  EXPECT_EQ(k[0].find("ipv4hint"), std::string::npos) << k[0];
  EXPECT_NE(k[0].find("ipv6hint=2001:db8:2::10"), std::string::npos) << k[0];
  EXPECT_NE(k[0].find("alpn="), std::string::npos) << k[0];
}

TEST_P(dns_policy, any_is_answered_minimally) {
  start_gate46();
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    for (const auto name : {zone::dual, zone::mail}) {
      const auto any = dig_via_gate46(name, "ANY", t);
      ASSERT_TRUE(any.got) << any.raw;
      EXPECT_EQ(any.status, "NOERROR") << any.raw;
      EXPECT_EQ(any.answer_texts(), std::vector<std::string>{std::string{name} + " IN HINFO \"RFC8482\" \"\""})
          << any.raw;
      EXPECT_TRUE(any.additional.empty()) << any.raw;
    }
  }
}

// ---- all mode ------------------------------------------------------------------------------------

TEST_P(dns_policy, all_mode_fakes_every_existing_name_and_removes_glue_and_hints) {
  write_config({"all", fake_ttl, {{zone::keep_suffix, "never"}}});
  start_gate46();
  std::map<std::string, std::string> first;  // name/type -> address
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    for (const auto name : {zone::v4_only, zone::v6_only, zone::dual, zone::to_v4, zone::to_v6, zone::svc_self,
                            std::string_view{"n000.gate46.test."}, zone::ns}) {
      for (const std::string type : {"A", "AAAA"}) {
        SCOPED_TRACE(std::string{name} + " " + type);
        const auto fake = fake_in(dig_via_gate46(name, type, t), name, type);
        ASSERT_TRUE(fake);
        const auto key = std::string{name} + "/" + type;
        if (const auto it = first.find(key); it != first.end()) {
          EXPECT_EQ(fake->to_string(), it->second) << "same name, same address";
        }
        first[key] = fake->to_string();
      }
    }
    // Names without any address keep their negative answers.
    expect_negative(dig_via_gate46(zone::nonexistent, "A", t), "NXDOMAIN");
    expect_negative(dig_via_gate46(zone::text_only, "AAAA", t), "NOERROR");
    const auto in_pool = dig_via_gate46(zone::in_pool, "A", t);
    EXPECT_EQ(in_pool.status, "NOERROR") << in_pool.raw;
    EXPECT_TRUE(in_pool.answer.empty()) << in_pool.raw;
    EXPECT_EQ(in_pool.raw.find(zone::in_pool_v4_address), std::string::npos) << in_pool.raw;

    // The never rule: real answers and NODATA under keep.gate46.test.
    expect_as_authoritative(zone::v6_keep, "AAAA", t);
    expect_as_authoritative(zone::v4_keep, "A", t);
    expect_negative(dig_via_gate46(zone::v6_keep, "A", t), "NOERROR");
    expect_as_authoritative(zone::mail_keep, "MX", t);  // its glue is under the rule too
    expect_as_authoritative(zone::svc_keep, "HTTPS", t);

    // Glue: MX, SRV and NS lose every A/AAAA of the additional section.
    for (const auto& [name, type] : std::vector<std::pair<std::string_view, std::string>>{
             {zone::mail, "MX"}, {zone::xmpp, "SRV"}, {zone::apex, "NS"}}) {
      SCOPED_TRACE(std::string{name} + " " + type);
      const auto via = dig_via_gate46(name, type, t);
      const auto direct = dig_direct(name, type, t);
      EXPECT_EQ(via.status, "NOERROR") << via.raw;
      EXPECT_EQ(via.answer_texts(), direct.answer_texts()) << via.raw;
      ASSERT_TRUE(std::any_of(direct.additional.begin(), direct.additional.end(),
                              [](const record_line& r) { return is_address_record(r.text); }))
          << "knotd adds glue: " << direct.raw;
      std::vector<std::string> expected;
      for (const auto& r : direct.additional_texts()) {
        if (!is_address_record(r)) {
          expected.push_back(r);
        }
      }
      EXPECT_EQ(via.additional_texts(), expected) << "via gate46:\n" << via.raw << "direct:\n" << direct.raw;
    }
    // HTTPS: both hints go, whatever the target has; ALPN stays; no address rides along.
    for (const auto name : {zone::svc4, zone::svc6, zone::svc_dual, zone::svc_self}) {
      SCOPED_TRACE(name);
      const auto via = dig_via_gate46(name, "HTTPS", t);
      const auto direct = dig_direct(name, "HTTPS", t);
      EXPECT_EQ(via.status, "NOERROR") << via.raw;
      EXPECT_EQ(via.answer_texts(), without_param(without_param(direct.answer_texts(), "ipv4hint="), "ipv6hint="))
          << "via gate46:\n"
          << via.raw << "direct:\n"
          << direct.raw;
      ASSERT_EQ(via.answer.size(), 1U) << via.raw;
      EXPECT_NE(via.answer[0].text.find("alpn="), std::string::npos) << via.raw;
      EXPECT_FALSE(std::any_of(via.additional.begin(), via.additional.end(), [](const record_line& r) {
        return is_address_record(r.text);
      })) << via.raw;
    }
    // ANY: the RFC 8482 HINFO.
    const auto any = dig_via_gate46(zone::dual, "ANY", t);
    EXPECT_EQ(any.answer_texts(), std::vector<std::string>{"dual.gate46.test. IN HINFO \"RFC8482\" \"\""}) << any.raw;
  }
  // Both fakes of a name map back to it.
  for (const auto* type : {"A", "AAAA"}) {
    const auto ptr = dig_reverse(first[std::string{zone::dual} + "/" + type], transport::udp);
    EXPECT_EQ(ptr.answer.size(), 1U) << ptr.raw;
    EXPECT_EQ(ptr.answer_texts(),
              std::vector<std::string>{reverse_name(*ip_address::parse(first[std::string{zone::dual} + "/" + type])) +
                                       " IN PTR " + std::string{zone::dual}})
        << ptr.raw;
  }
}

// ---- rules, reload, many names, the store ---------------------------------------------------------

TEST_P(dns_policy_one_family, rules_choose_the_mode_by_longest_suffix) {
  write_config({"translate", fake_ttl, {{zone::all_suffix, "all"}, {zone::keep_suffix, "never"}}});
  start_gate46();
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    // all.gate46.test.: fakes for names with real addresses of the asked family.
    for (const std::string type : {"A", "AAAA"}) {
      ASSERT_TRUE(fake_in(dig_via_gate46(zone::dual_all, type, t), zone::dual_all, type));
    }
    ASSERT_TRUE(fake_in(dig_via_gate46(zone::v4_all, "A", t), zone::v4_all, "A"));
    // The rest of gate46.test.: translate.
    expect_as_authoritative(zone::dual, "A", t);
    ASSERT_TRUE(fake_in(dig_via_gate46(zone::v6_only, "A", t), zone::v6_only, "A"));
    // keep.gate46.test.: never, not even where translate would fake.
    expect_negative(dig_via_gate46(zone::v6_keep, "A", t), "NOERROR");
    expect_negative(dig_via_gate46(zone::v4_keep, "AAAA", t), "NOERROR");
    expect_as_authoritative(zone::v6_keep, "AAAA", t);
    expect_as_authoritative(zone::mail_keep, "MX", t);  // glue included
  }
  const auto stored = store_mappings();
  EXPECT_TRUE(stored.contains(std::string{zone::dual_all})) << ctl({"map", "list"}).out;
  EXPECT_FALSE(stored.contains(std::string{zone::v6_keep})) << ctl({"map", "list"}).out;
  EXPECT_FALSE(stored.contains(std::string{zone::dual})) << ctl({"map", "list"}).out;
}

TEST_P(dns_policy_one_family, sighup_switches_the_mode_live) {
  start_gate46();
  const auto translated = fake_in(dig_via_gate46(zone::v6_only, "A", transport::udp), zone::v6_only, "A");
  ASSERT_TRUE(translated);
  expect_as_authoritative(zone::dual, "A", transport::udp);
  const auto glued = dig_via_gate46(zone::mail, "MX", transport::udp);
  EXPECT_TRUE(std::any_of(glued.additional.begin(), glued.additional.end(), [](const record_line& r) {
    return is_address_record(r.text);
  })) << glued.raw;

  // translate -> all, and a new fake_ttl: the running daemon applies both.
  reload({"all", reloaded_fake_ttl, {}});
  for (const auto t : both_transports) {
    SCOPED_TRACE(to_string(t));
    ASSERT_TRUE(fake_in(dig_via_gate46(zone::dual, "A", t), zone::dual, "A", reloaded_fake_ttl));
    ASSERT_TRUE(fake_in(dig_via_gate46(zone::v4_only, "A", t), zone::v4_only, "A", reloaded_fake_ttl));
    const auto again = fake_in(dig_via_gate46(zone::v6_only, "A", t), zone::v6_only, "A", reloaded_fake_ttl);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->to_string(), translated->to_string()) << "the mapping survives the reload";
    const auto mx = dig_via_gate46(zone::mail, "MX", t);
    EXPECT_EQ(mx.answer.size(), 4U) << mx.raw;
    EXPECT_FALSE(std::any_of(mx.additional.begin(), mx.additional.end(), [](const record_line& r) {
      return is_address_record(r.text);
    })) << mx.raw;
  }

  // And back: real answers again, glue again.
  reload({"translate", fake_ttl, {}});
  expect_as_authoritative(zone::dual, "A", transport::udp);
  expect_as_authoritative(zone::v4_only, "A", transport::tcp);
  ASSERT_TRUE(fake_in(dig_via_gate46(zone::v6_only, "A", transport::udp), zone::v6_only, "A"));
  const auto mx = dig_via_gate46(zone::mail, "MX", transport::udp);
  EXPECT_TRUE(std::any_of(mx.additional.begin(), mx.additional.end(), [](const record_line& r) {
    return is_address_record(r.text);
  })) << mx.raw;
}

TEST_P(dns_policy_one_family, two_hundred_names_get_distinct_addresses_that_map_back) {
  start_gate46();
  std::vector<std::string> names;
  for (unsigned i = 0; i < zone::generated_count; ++i) {
    names.push_back(zone::generated_name(i));
  }
  // One kdig for all the A queries (over UDP), then again (over TCP): the same addresses.
  const auto ask_all = [&](transport t) {
    std::vector<std::string> argv{"kdig",
                                  std::string{"@"} + net().gw,
                                  "+noall",
                                  "+answer",
                                  t == transport::tcp ? "+tcp" : "+notcp",
                                  "+time=" + std::to_string(client_timeout_s),
                                  "+retry=1"};
    for (const auto& n : names) {
      argv.push_back(n);
      argv.emplace_back("A");
    }
    const auto r = client_->run(argv, 45s);
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    std::map<std::string, std::string> by_name;
    for (const auto& w : answer_lines(r.out)) {
      if (w.size() != 5 || w[2] != "IN" || w[3] != "A") {
        ADD_FAILURE() << "not an A record in kdig's output:\n" << r.out << r.err;
        break;
      }
      EXPECT_EQ(w[1], std::to_string(fake_ttl));
      EXPECT_FALSE(by_name.contains(w[0])) << "two answers for " << w[0];
      by_name[w[0]] = w[4];
    }
    return by_name;
  };
  const auto udp = ask_all(transport::udp);
  ASSERT_EQ(udp.size(), zone::generated_count);
  std::set<std::string> distinct;
  for (const auto& n : names) {
    ASSERT_TRUE(udp.contains(n)) << n;
    const auto address = ip_address::parse(udp.at(n));
    ASSERT_TRUE(address && pool_of("A").contains(*address)) << udp.at(n);
    distinct.insert(udp.at(n));
  }
  EXPECT_EQ(distinct.size(), zone::generated_count) << "200 names, 200 addresses";
  EXPECT_EQ(ask_all(transport::tcp), udp) << "the same names, the same addresses";

  // dig -x for each, in one dig (batch file), over TCP: each address gives its name back.
  std::string batch;
  for (const auto& [name, address] : udp) {
    batch += "-x " + address + "\n";
  }
  const auto batch_file = dir_.write_file("reverse.batch", batch);
  const auto r = client_->run({"dig", std::string{"@"} + net().gw, "+noall", "+answer", "+tcp",
                               "+time=" + std::to_string(client_timeout_s), "+tries=1", "-f", batch_file.string()},
                              45s);
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  std::map<std::string, std::string> ptr;  // reverse name -> name
  for (const auto& w : answer_lines(r.out)) {
    ASSERT_EQ(w.size(), 5U);
    EXPECT_EQ(w[3], "PTR");
    ptr[w[0]] = w[4];
  }
  EXPECT_EQ(ptr.size(), zone::generated_count) << r.out;
  for (const auto& [name, address] : udp) {
    const auto reverse = reverse_name(*ip_address::parse(address));
    EXPECT_EQ(ptr[reverse], name) << address;
  }

  // The store holds what DNS answered: gate46ctl lists every name with its address.
  const auto stored = store_mappings();
  for (const auto& [name, address] : udp) {
    ASSERT_TRUE(stored.contains(name)) << name;
    EXPECT_EQ(stored.at(name), std::make_pair(address, std::string{})) << name;
  }
  EXPECT_EQ(stored.size(), zone::generated_count);
}

TEST_P(dns_policy_one_family, gate46ctl_shows_the_mappings_dns_made) {
  start_gate46();
  const auto a = fake_in(dig_via_gate46(zone::v6_only, "A", transport::udp), zone::v6_only, "A");
  const auto aaaa = fake_in(dig_via_gate46(zone::v4_only, "AAAA", transport::tcp), zone::v4_only, "AAAA");
  const auto chain = fake_in(dig_via_gate46(zone::to_v6, "A", transport::udp), zone::to_v6, "A");
  ASSERT_TRUE(a && aaaa && chain);
  // Real answers and negative ones make no mapping.
  expect_as_authoritative(zone::dual, "A", transport::udp);
  expect_negative(dig_via_gate46(zone::nonexistent, "A", transport::udp), "NXDOMAIN");

  const auto stored = store_mappings();
  const std::map<std::string, std::pair<std::string, std::string>> expected{
      {std::string{zone::to_v6}, {chain->to_string(), ""}},  // the query name, not the chain's end
      {std::string{zone::v4_only}, {"", aaaa->to_string()}},
      {std::string{zone::v6_only}, {a->to_string(), ""}},
  };
  EXPECT_EQ(stored, expected) << ctl({"map", "list"}).out;
  // The table and map get agree.
  const auto table = ctl({"map", "list"});
  ASSERT_TRUE(table.ok()) << table.out << table.err;
  EXPECT_NE(table.out.find(std::string{zone::to_v6}), std::string::npos) << table.out;
  const auto get = ctl({"map", "get", a->to_string(), "--json"});
  ASSERT_TRUE(get.ok()) << get.out << get.err;
  const auto parsed = json::parse(get.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << get.out;
  EXPECT_EQ(parsed["mapping"]["name"], std::string{zone::v6_only}) << get.out;
  EXPECT_EQ(parsed["mapping"]["v4"], a->to_string()) << get.out;
  // The answer's TTL is the lease: expiry = last use + dns.fake_ttl + pools.lease_grace.
  const auto last_used = rfc3339_millis(parsed["mapping"]["last_used"].get<std::string>());
  const auto expiry = rfc3339_millis(parsed["mapping"]["expiry"].get<std::string>());
  ASSERT_TRUE(last_used && expiry) << get.out;
  EXPECT_EQ(*expiry - *last_used, (fake_ttl + default_lease_grace_s) * 1000) << get.out;
  // A real answer for the other family adds nothing to the mapping.
  const auto v6_too = dig_via_gate46(zone::v6_only, "AAAA", transport::udp);
  EXPECT_EQ(v6_too.answer_texts(), std::vector<std::string>{"v6only.gate46.test. IN AAAA 2001:db8:2::10"})
      << v6_too.raw;
  EXPECT_EQ(store_mappings().at(std::string{zone::v6_only}), std::make_pair(a->to_string(), std::string{}));
}

INSTANTIATE_TEST_SUITE_P(families, dns_policy, ::testing::Values(ipv4, ipv6),
                         [](const ::testing::TestParamInfo<addressing>& p) { return p.param.name; });
// The heavy cases over IPv6 transport, asking for fake IPv4 addresses (and the reverse).
INSTANTIATE_TEST_SUITE_P(ipv6_transport, dns_policy_one_family, ::testing::Values(ipv6),
                         [](const ::testing::TestParamInfo<addressing>& p) { return p.param.name; });

}  // namespace
