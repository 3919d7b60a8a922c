#include "gate46/common/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

namespace gate46 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view minimal = R"(
[lan]
interfaces = ["lan0"]
networks = ["192.0.2.0/24", "2001:db8:1::/64"]

[dns]
upstreams = ["198.51.100.53", "[2001:db8:53::1]:5353"]
)";

config parse(std::string_view text) {
  return parse_config(text, "test.toml");
}

// Parses `text` and returns the error it must raise.
config_error error_of(std::string_view text) {
  try {
    (void)parse(text);
  } catch (const config_error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return config_error{"", 0, 0, "", ""};
}

TEST(config, defaults_match_the_design_table) {
  const auto cfg = parse(minimal);
  EXPECT_EQ(cfg.source, "test.toml");
  EXPECT_THAT(cfg.daemon.components, ElementsAre("dns", "socks", "relay", "firewall"));
  EXPECT_EQ(cfg.daemon.threads, std::max(1U, std::thread::hardware_concurrency()));
  EXPECT_EQ(cfg.daemon.user, "gate46");
  EXPECT_THAT(cfg.lan.interfaces, ElementsAre("lan0"));
  EXPECT_THAT(cfg.lan.networks, ElementsAre(*cidr::parse("192.0.2.0/24"), *cidr::parse("2001:db8:1::/64")));
  EXPECT_EQ(cfg.store.path, "/var/lib/gate46/mappings.mdb");
  EXPECT_EQ(cfg.store.map_size, 1ULL << 30);
  EXPECT_EQ(cfg.store.sync_interval, milliseconds{1000});
  EXPECT_EQ(cfg.pools.ipv4, *cidr::parse("198.18.0.0/15"));
  EXPECT_EQ(cfg.pools.ipv6, *cidr::parse("2001:2::/48"));
  EXPECT_EQ(cfg.pools.key_file, "/etc/gate46/pool.key");
  EXPECT_EQ(cfg.pools.lease_grace, seconds{3600});
  EXPECT_EQ(cfg.pools.hold_refresh, seconds{60});
  EXPECT_TRUE(cfg.dns.listen.empty());  // follows lan.interfaces
  EXPECT_THAT(cfg.dns.upstreams,
              ElementsAre(*endpoint::parse("198.51.100.53:53"), *endpoint::parse("[2001:db8:53::1]:5353")));
  EXPECT_EQ(cfg.dns.mode, dns_mode::translate);
  EXPECT_EQ(cfg.dns.fake_ttl, seconds{60});
  EXPECT_EQ(cfg.dns.upstream_timeout, milliseconds{2000});
  EXPECT_EQ(cfg.dns.upstream_tries, 2U);
  EXPECT_EQ(cfg.dns.tcp_idle_timeout, seconds{10});
  EXPECT_EQ(cfg.dns.tcp_max_per_client, 16U);
  EXPECT_EQ(cfg.dns.tcp_max, 1024U);
  EXPECT_TRUE(cfg.dns.rules.empty());
  EXPECT_TRUE(cfg.gateway.socks_listen.empty());  // follows lan.interfaces, plus loopback
  EXPECT_THAT(cfg.gateway.socks_networks, ElementsAre(socks_network{*cidr::parse("192.0.2.0/24"), socks_auth::none},
                                                      socks_network{*cidr::parse("2001:db8:1::/64"), socks_auth::none},
                                                      socks_network{*cidr::parse("127.0.0.0/8"), socks_auth::none},
                                                      socks_network{*cidr::parse("::1/128"), socks_auth::none}));
  EXPECT_TRUE(cfg.gateway.users.empty());
  EXPECT_EQ(cfg.gateway.prefer_family, ip_family::v6);
  EXPECT_EQ(cfg.gateway.happy_eyeballs_delay, milliseconds{250});
  EXPECT_EQ(cfg.gateway.connect_timeout, seconds{10});
  EXPECT_EQ(cfg.gateway.tcp_idle_timeout, seconds{3600});
  EXPECT_EQ(cfg.gateway.udp_idle_timeout, seconds{60});
  EXPECT_EQ(cfg.gateway.udp_dns_idle_timeout, seconds{10});
  EXPECT_EQ(cfg.gateway.bind_timeout, seconds{60});
  EXPECT_EQ(cfg.gateway.max_flows, std::nullopt);
  EXPECT_EQ(cfg.gateway.udp_sessions_per_client, 256U);
  EXPECT_EQ(cfg.gateway.udp_sessions_max, 4096U);
  EXPECT_EQ(cfg.gateway.drain_timeout, seconds{10});
  EXPECT_EQ(cfg.gateway.deny.size(), 9U);
  EXPECT_EQ(cfg.tproxy.port, 7046);
  EXPECT_EQ(cfg.tproxy.mark, 0x46U);
  EXPECT_EQ(cfg.tproxy.mark_mask, 0xffU);
  EXPECT_EQ(cfg.tproxy.bypass_mark, 0x47U);
  EXPECT_EQ(cfg.tproxy.route_table, 46U);
  EXPECT_EQ(cfg.tproxy.rule_priority, 460U);
  EXPECT_FALSE(cfg.tproxy.capture_dns);
  EXPECT_EQ(cfg.control.socket, "/run/gate46/control.sock");
  EXPECT_EQ(cfg.log.level, log_level::info);
  EXPECT_EQ(cfg.log.format, log_format::text);
}

TEST(config, default_deny_list_covers_loopback_link_local_and_multicast) {
  const auto deny = gateway_config::default_deny();
  const auto denied = [&](std::string_view text) {
    const auto a = *ip_address::parse(text);
    return std::any_of(deny.begin(), deny.end(), [&](const cidr& c) { return c.contains(a); });
  };
  for (const char* text : {"0.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "169.254.1.1", "224.0.0.1", "239.1.1.1",
                           "255.255.255.255", "::", "::1", "fe80::1", "ff02::1"}) {
    EXPECT_TRUE(denied(text)) << text;
  }
  for (const char* text : {"192.0.2.1", "2001:db8::1", "203.0.113.9"}) {
    EXPECT_FALSE(denied(text)) << text;
  }
}

TEST(config, reads_every_section) {
  const auto cfg = parse(R"(
[daemon]
components = ["dns", "relay"]
threads = 3
user = "nobody"
[lan]
interfaces = ["lan0", "lan1"]
networks = ["192.0.2.0/24"]
[store]
path = "/tmp/x.mdb"
map_size = 16777216
sync_interval_ms = 0
[pools]
ipv4 = "198.18.0.0/24"
ipv6 = "2001:2:0:1::/64"
key_file = "/tmp/k"
lease_grace = 0
hold_refresh = 30
[dns]
listen = ["192.0.2.1", "[2001:db8:1::1]:5353"]
upstreams = ["203.0.113.53"]
mode = "all"
fake_ttl = 5
upstream_timeout_ms = 500
upstream_tries = 3
tcp_idle_timeout = 20
tcp_max_per_client = 4
tcp_max = 64
[[dns.rule]]
suffix = "Corp.Example"
mode = "never"
[[dns.rule]]
suffix = "v6.example."
mode = "all"
[gateway]
socks_listen = ["192.0.2.1"]
prefer_family = "ipv4"
happy_eyeballs_delay_ms = 100
connect_timeout = 5
tcp_idle_timeout = 600
udp_idle_timeout = 30
udp_dns_idle_timeout = 5
bind_timeout = 20
max_flows = 5000
udp_sessions_per_client = 8
udp_sessions_max = 100
drain_timeout = 0
deny = ["127.0.0.0/8"]
[[gateway.socks_network]]
cidr = "192.0.2.0/25"
auth = "password"
[[gateway.user]]
name = "alice"
hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA"
[tproxy]
port = 7000
mark = 0x100
mark_mask = 0xf00
bypass_mark = 0x200
route_table = 100
rule_priority = 100
capture_dns = true
[control]
socket = "/tmp/c.sock"
[log]
level = "debug"
format = "json"
)");
  EXPECT_THAT(cfg.daemon.components, ElementsAre("dns", "relay"));
  EXPECT_EQ(cfg.daemon.threads, 3U);
  EXPECT_EQ(cfg.store.sync_interval, milliseconds{0});
  EXPECT_EQ(cfg.pools.ipv4.prefix_length(), 24U);
  EXPECT_THAT(cfg.dns.listen, ElementsAre(*endpoint::parse("192.0.2.1:53"), *endpoint::parse("[2001:db8:1::1]:5353")));
  EXPECT_EQ(cfg.dns.mode, dns_mode::all);
  EXPECT_THAT(cfg.dns.rules,
              ElementsAre(dns_rule{"corp.example.", dns_mode::never}, dns_rule{"v6.example.", dns_mode::all}));
  EXPECT_THAT(cfg.gateway.socks_listen, ElementsAre(*endpoint::parse("192.0.2.1:1080")));
  // An explicit list replaces the default one entirely.
  EXPECT_THAT(cfg.gateway.socks_networks,
              ElementsAre(socks_network{*cidr::parse("192.0.2.0/25"), socks_auth::password}));
  ASSERT_EQ(cfg.gateway.users.size(), 1U);
  EXPECT_EQ(cfg.gateway.users[0].name, "alice");
  EXPECT_EQ(cfg.gateway.prefer_family, ip_family::v4);
  EXPECT_EQ(cfg.gateway.max_flows, 5000U);
  EXPECT_EQ(cfg.gateway.bind_timeout, seconds{20});
  EXPECT_EQ(cfg.gateway.drain_timeout, seconds{0});
  EXPECT_THAT(cfg.gateway.deny, ElementsAre(*cidr::parse("127.0.0.0/8")));
  EXPECT_EQ(cfg.tproxy.mark, 0x100U);
  EXPECT_TRUE(cfg.tproxy.capture_dns);
  EXPECT_EQ(cfg.log.level, log_level::debug);
  EXPECT_EQ(cfg.log.format, log_format::json);
}

struct error_case {
  std::string name;
  std::string text;
  std::uint32_t line;
  std::string key;
  std::string message;
};

void PrintTo(const error_case& c, std::ostream* os) {
  *os << c.name;
}

class config_errors : public ::testing::TestWithParam<error_case> {};

TEST_P(config_errors, name_file_line_and_key) {
  const auto& c = GetParam();
  const auto e = error_of(c.text);
  EXPECT_EQ(e.file(), "test.toml");
  EXPECT_EQ(e.line(), c.line) << e.what();
  EXPECT_EQ(e.key(), c.key) << e.what();
  EXPECT_THAT(e.message(), HasSubstr(c.message)) << e.what();
  EXPECT_THAT(std::string{e.what()}, HasSubstr("test.toml:" + std::to_string(c.line) + ":"));
}

std::string lan() {
  return "[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"192.0.2.0/24\"]\n";
}  // lines 1-3
std::string dns() {
  return "[dns]\nupstreams = [\"198.51.100.53\"]\n";
}  // lines 4-5 after lan

INSTANTIATE_TEST_SUITE_P(
    cases, config_errors,
    ::testing::Values(
        error_case{"syntax", lan() + "[dns\n", 4, "", "expected ']'"},
        error_case{"unknown_top_level_table", lan() + dns() + "[bogus]\nx = 1\n", 6, "bogus", "unknown key"},
        error_case{"unknown_key_in_section", lan() + dns() + "fake_tll = 60\n", 6, "dns.fake_tll", "unknown key"},
        error_case{"unknown_key_in_rule",
                   lan() + dns() + "[[dns.rule]]\nsuffix = \"a.example\"\nmode = \"all\"\nmod = 1\n", 9,
                   "dns.rule[0].mod", "unknown key"},
        error_case{"wrong_type", lan() + dns() + "fake_ttl = \"60\"\n", 6, "dns.fake_ttl",
                   "expected an integer, got a string"},
        error_case{"wrong_type_in_list", lan() + "[dns]\nupstreams = [\"198.51.100.53\", 53]\n", 5, "dns.upstreams[1]",
                   "expected a string"},
        error_case{"section_not_a_table", lan() + dns() + "[[tproxy]]\n", 6, "tproxy", "expected a table"},
        error_case{"missing_required", "[lan]\ninterfaces = [\"lan0\"]\n" + dns(), 1, "lan.networks",
                   "required key is missing"},
        error_case{"missing_required_table", lan(), 1, "dns.upstreams", "required key is missing"},
        error_case{"host_bits", "[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"192.0.2.1/24\"]\n" + dns(), 3,
                   "lan.networks[0]", "host bits set"},
        error_case{"bad_cidr", "[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"192.0.2.0/40\"]\n" + dns(), 3,
                   "lan.networks[0]", "bad prefix length"},
        error_case{"not_a_cidr", "[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"lan\"]\n" + dns(), 3, "lan.networks[0]",
                   "not an IPv4 or IPv6 prefix"},
        error_case{"empty_interfaces", "[lan]\ninterfaces = []\nnetworks = [\"192.0.2.0/24\"]\n" + dns(), 2,
                   "lan.interfaces", "at least one"},
        error_case{"bad_interface", "[lan]\ninterfaces = [\"a/b\"]\nnetworks = [\"192.0.2.0/24\"]\n" + dns(), 2,
                   "lan.interfaces[0]", "not a valid interface name"},
        error_case{"bad_enum", lan() + dns() + "mode = \"never\"\n", 6, "dns.mode", "is not one of: translate, all"},
        error_case{"out_of_range", lan() + dns() + "[tproxy]\nport = 70000\n", 7, "tproxy.port", "out of range"},
        error_case{"bad_endpoint", lan() + "[dns]\nupstreams = [\"198.51.100.53:99999\"]\n", 5, "dns.upstreams[0]",
                   "is not an address"},
        error_case{"unknown_component", lan() + dns() + "[daemon]\ncomponents = [\"dns\", \"icmpx\"]\n", 7,
                   "daemon.components[1]", "unknown component"},
        error_case{"duplicate_component", lan() + dns() + "[daemon]\ncomponents = [\"dns\", \"dns\"]\n", 7,
                   "daemon.components[1]", "listed twice"},
        error_case{"pool_family", lan() + dns() + "[pools]\nipv4 = \"2001:2::/48\"\n", 7, "pools.ipv4", "IPv4 prefix"},
        error_case{"pool_overlaps_lan", "[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"198.18.0.0/24\"]\n" + dns(), 1,
                   "pools.ipv4", "overlaps LAN network"},
        error_case{"upstream_in_pool", lan() + "[dns]\nupstreams = [\"198.18.0.53\"]\n", 5, "dns.upstreams",
                   "inside a fake pool"},
        error_case{"mark_outside_mask", lan() + dns() + "[tproxy]\nmark = 0x100\n", 7, "tproxy.mark", "outside"},
        error_case{"bypass_equals_mark", lan() + dns() + "[tproxy]\nbypass_mark = 0x146\n", 7, "tproxy.bypass_mark",
                   "would be captured"},
        error_case{"main_route_table", lan() + dns() + "[tproxy]\nroute_table = 254\n", 7, "tproxy.route_table",
                   "kernel's default, main and local"},
        error_case{"bad_rule_suffix", lan() + dns() + "[[dns.rule]]\nsuffix = \"a..b\"\nmode = \"all\"\n", 7,
                   "dns.rule[0].suffix", "not a domain name"},
        error_case{"duplicate_rule",
                   lan() + dns() +
                       "[[dns.rule]]\nsuffix = \"a.example\"\nmode = \"all\"\n"
                       "[[dns.rule]]\nsuffix = \"A.example.\"\nmode = \"never\"\n",
                   10, "dns.rule[1].suffix", "already has a rule"},
        error_case{"rule_needs_mode", lan() + dns() + "[[dns.rule]]\nsuffix = \"a.example\"\n", 6, "dns.rule[0].mode",
                   "required key is missing"},
        error_case{"password_without_users",
                   lan() + dns() + "[[gateway.socks_network]]\ncidr = \"192.0.2.0/24\"\nauth = \"password\"\n", 6,
                   "gateway.socks_network", "no [[gateway.user]]"},
        error_case{"bad_hash", lan() + dns() + "[[gateway.user]]\nname = \"bob\"\nhash = \"plain\"\n", 8,
                   "gateway.user[0].hash", "argon2id"},
        error_case{"non_ascii", lan() + dns() + "# caf\xc3\xa9\n", 6, "", "non-ASCII byte"},
        error_case{"long_socket_path", lan() + dns() + "[control]\nsocket = \"/" + std::string(120, 'x') + "\"\n", 7,
                   "control.socket", "1 to 107 bytes"}),
    [](const auto& test_param) { return test_param.param.name; });

TEST(config, escapes_carry_non_ascii_text) {
  const auto cfg = parse(std::string{minimal} + "[[gateway.user]]\nname = \"J\\u00f6rg\"\nhash = \"$argon2id$x\"\n");
  ASSERT_EQ(cfg.gateway.users.size(), 1U);
  EXPECT_EQ(cfg.gateway.users[0].name, "J\xc3\xb6rg");
}

TEST(config, load_config_names_an_unreadable_file) {
  try {
    (void)load_config("/nonexistent/gate46.toml");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.file(), "/nonexistent/gate46.toml");
    EXPECT_THAT(e.message(), HasSubstr("cannot read"));
  }
}

TEST(config, example_file_is_valid) {
  const auto cfg = load_config(GATE46_SOURCE_DIR "/deploy/gate46.toml.example");
  EXPECT_FALSE(cfg.lan.interfaces.empty());
  EXPECT_FALSE(cfg.dns.upstreams.empty());
}

TEST(config, reload_classifies_changed_keys) {
  const auto running = parse(minimal);
  auto loaded = running;
  EXPECT_TRUE(changed_keys(running, loaded).empty());

  loaded.log.level = log_level::debug;
  loaded.dns.fake_ttl = seconds{5};
  loaded.gateway.deny.clear();
  EXPECT_THAT(changed_keys(running, loaded), ElementsAre("dns.fake_ttl", "gateway.deny", "log.level"));
  EXPECT_TRUE(keys_needing_restart(running, loaded).empty());

  loaded.tproxy.port = 7047;
  loaded.daemon.threads += 1;
  loaded.dns.listen.push_back(*endpoint::parse("192.0.2.1:53"));
  loaded.pools.ipv4 = *cidr::parse("198.18.0.0/16");
  EXPECT_THAT(keys_needing_restart(running, loaded),
              ElementsAre("daemon.threads", "pools.ipv4", "dns.listen", "tproxy.port"));
  EXPECT_EQ(changed_keys(running, loaded).size(), 7U);
}

}  // namespace
}  // namespace gate46
