// The whole chain, end to end (issue 10): hosts that know nothing of gate46 reach a server of
// the other IP family by name. gate46d runs the dns, relay and firewall components in the gateway
// namespace exactly as on a router: its DNS answers fake addresses, its real nftables rules
// capture the flows to them, its relay maps them back to names, resolves them and connects.
// Everything the clients and servers run is the real thing: glibc's resolver, curl, dig, nginx,
// knotd.
//
//   [client4] 192.0.2.2 --- 192.0.2.1 [gw] 2001:db8:2::1 --- 2001:db8:2::2 [server6]
//   [client6] 2001:db8:1::2 --- 2001:db8:1::1 [gw] 203.0.113.1 --- 203.0.113.2 [server4]
//
//   client4  IPv4 only (IPv6 disabled), default via 192.0.2.1, nameserver 192.0.2.1
//   client6  IPv6 only, default via 2001:db8:1::1, nameserver 2001:db8:1::1
//   gw       gate46d: lan.interfaces lan4 (client4) and lan6 (client6); dns.listen left to its
//            default (port 53 of the LAN addresses); upstream knotd at 203.0.113.2. It does not
//            forward: packets reach a server only through the relay.
//   server6  IPv6 only: nginx on [2001:db8:2::2]:80
//   server4  IPv4 only (IPv6 disabled): nginx on 203.0.113.2:80, knotd (gate46.test.) on :53
//
// The zone has v6only.gate46.test (AAAA of server6) and v4only.gate46.test (A of server4) and
// nothing else: client4 asks for A v6only and gets a fake address from 198.18.0.0/15, client6
// asks for AAAA v4only and gets one from 2001:2::/48. Each nginx serves an index naming its
// server and logs "remote_addr server_addr uri status" per request: which server answered, and
// that the request came from the gateway's address of that server's family.
//
// Each test builds the topology and starts its own gate46d with a new store (ctest runs every
// test as a process of its own, so a suite-wide topology would be built once per test anyway).
// One test, both_families_then_a_stop_leaves_no_rule_or_route, also runs in the ASan+UBSan
// build (label e2e-sanitizer): the whole chain in both directions and a clean stop.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
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
#include "gate46/testing/web_server.hpp"

namespace {

using namespace gate46::testing;
using gate46::cidr;
using gate46::ip_address;
using json = nlohmann::json;

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
// curl --max-time for one small transfer; run_command's bound is a little longer.
constexpr int curl_max_time_s = 15;
constexpr auto curl_timeout = 20s;

// Debian's python3 (a python3 earlier in PATH may be another).
constexpr const char* python = "/usr/bin/python3";

constexpr std::string_view v6_only = "v6only.gate46.test";
constexpr std::string_view v4_only = "v4only.gate46.test";
constexpr std::string_view nonexistent = "nonexistent.gate46.test";

constexpr std::string_view client4_address = "192.0.2.2";
constexpr std::string_view client6_address = "2001:db8:1::2";
constexpr std::string_view gw_lan_v4 = "192.0.2.1";
constexpr std::string_view gw_lan_v6 = "2001:db8:1::1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";
constexpr std::string_view gw_up_v4 = "203.0.113.1";
constexpr std::string_view server6_address = "2001:db8:2::2";
constexpr std::string_view server4_address = "203.0.113.2";

// Third-party resolvers the clients may be configured with: nothing listens there, and the
// gateway has no route to them.
constexpr std::string_view elsewhere_resolver_v4 = "198.51.100.53";
constexpr std::string_view elsewhere_resolver_v6 = "2001:db8:5353::53";

constexpr std::string_view fake_pool_v4 = "198.18.0.0/15";
constexpr std::string_view fake_pool_v6 = "2001:2::/48";

// What each server's index says: the body tells which server answered.
constexpr std::string_view server6_index = "server6: IPv6-only web server\n";
constexpr std::string_view server4_index = "server4: IPv4-only web server\n";

knot_zone test_zone_records() {
  knot_zone z;
  z.origin = "gate46.test.";
  z.records = {
      {"v6only", "AAAA", std::string{server6_address}},  //
      {"v4only", "A", std::string{server4_address}},
  };
  return z;
}

// A plain client that keeps its connection: resolves NAME in one family through the
// namespace's resolver (gate46's DNS), connects to port 80, sends one GET, reads the start of
// the reply, prints "held ADDRESS STATUS-LINE" and sleeps until killed.
constexpr std::string_view hold_py = R"py(
import socket, sys, time
family = socket.AF_INET if sys.argv[1] == '4' else socket.AF_INET6
name = sys.argv[2]
address = socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)[0][4]
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(address)
s.sendall(b'GET / HTTP/1.1\r\nHost: ' + name.encode() + b'\r\n\r\n')
reply = s.recv(65536)
print('held', address[0], reply.split(b'\r\n', 1)[0].decode(), flush=True)
time.sleep(120)
)py";

[[nodiscard]] bool in(std::string_view address, std::string_view range) {
  const auto a = ip_address::parse(address);
  const auto c = cidr::parse(range);
  return a && c && c->contains(*a);
}

// `size` bytes from a seeded generator (splitmix64 of each 8-byte word's index): no two
// blocks alike, so a reordered, repeated or lost block changes the checksum.
void write_seeded_file(const std::filesystem::path& path, std::size_t size, std::uint64_t seed) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  constexpr std::size_t chunk_words = 1U << 17U;  // 1 MiB
  std::vector<std::uint64_t> chunk(chunk_words);
  std::uint64_t index = 0;
  for (std::size_t written = 0; written < size;) {
    for (auto& word : chunk) {
      std::uint64_t z = seed + (++index) * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31U);
    }
    const auto n = std::min(size - written, chunk.size() * sizeof(std::uint64_t));
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    written += n;
  }
  out.close();
  if (!out) {
    throw std::runtime_error{"cannot write " + path.string()};
  }
}

// The checksums `sha256sum` prints, in the order of `files`.
std::vector<std::string> sha256_of(const std::vector<std::string>& files) {
  std::vector<std::string> argv{"sha256sum"};
  argv.insert(argv.end(), files.begin(), files.end());
  std::vector<std::string> sums;
  for (const auto& line : lines_of(run_checked(argv, 60s))) {
    const auto words = split_words(line);
    if (!words.empty()) {
      sums.push_back(words[0]);
    }
  }
  return sums;
}

// What the daemon runs with, per test.
struct daemon_options {
  bool capture_dns = false;
};

class e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client4_.emplace("client4");
    client6_.emplace("client6");
    gw_.emplace("gw");
    server6_.emplace("server6");
    server4_.emplace("server4");
    connect_veth(*gw_, {"lan4", {"192.0.2.1/24"}}, *client4_, {"eth0", {"192.0.2.2/24"}});
    connect_veth(*gw_, {"lan6", {"2001:db8:1::1/64"}}, *client6_, {"eth0", {"2001:db8:1::2/64"}});
    connect_veth(*gw_, {"up6", {"2001:db8:2::1/64"}}, *server6_, {"eth0", {"2001:db8:2::2/64"}});
    connect_veth(*gw_, {"up4", {"203.0.113.1/24"}}, *server4_, {"eth0", {"203.0.113.2/24"}});
    // The single-family hosts: no IPv6 at all (not even link-local) on client4 and server4, no
    // IPv4 address on client6 and server6. The clients know the gateway only as their router
    // and resolver, as a DHCP or RA client would; the servers need no route (the gateway's
    // address is on their link).
    for (const auto* ns : {&*client4_, &*server4_}) {
      ns->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.eth0.disable_ipv6=1"});
    }
    client4_->run_checked({"ip", "route", "add", "default", "via", std::string{gw_lan_v4}});
    client6_->run_checked({"ip", "-6", "route", "add", "default", "via", std::string{gw_lan_v6}});
    client4_->write_resolv_conf({std::string{gw_lan_v4}});
    client6_->write_resolv_conf({std::string{gw_lan_v6}});

    knot_.emplace(*server4_, knot_options{{std::string{server4_address}}, 53, test_zone_records(), false});
    for (const auto* d : {&server6_dir_, &server4_dir_}) {
      std::filesystem::create_directories(d->path() / "www");
    }
    server6_dir_.write_file("www/index.html", server6_index);
    server4_dir_.write_file("www/index.html", server4_index);
    web6_.emplace(*server6_, server6_dir_.path(),
                  web_server_options{{"[" + std::string{server6_address} + "]:80"}, "", ""});
    web4_.emplace(*server4_, server4_dir_.path(), web_server_options{{std::string{server4_address} + ":80"}, "", ""});
  }

  void TearDown() override {
    if (gate46_ && gate46_->running()) {
      stop_gate46();
    }
  }

  // ---- gate46d ---------------------------------------------------------------------------

  void write_config(const daemon_options& o) {
    config_ = dir_.write_file("gate46.toml",
                              "[daemon]\n"
                              "components = [\"dns\", \"relay\", \"firewall\"]\n"
                              "threads = 2\n"
                              "\n"
                              "[lan]\n"
                              "interfaces = [\"lan4\", \"lan6\"]\n"
                              "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
                              "\n"
                              "[dns]\n"
                              "upstreams = [\"" +
                                  std::string{server4_address} +
                                  "\"]\n"
                                  "mode = \"translate\"\n"
                                  "upstream_timeout_ms = 1000\n"
                                  "\n"
                                  "[gateway]\n"
                                  "connect_timeout = 5\n"
                                  "\n"
                                  "[tproxy]\n"
                                  "capture_dns = " +
                                  (o.capture_dns ? "true" : "false") + "\n" + private_state_sections(dir_.path()) +
                                  "\n"
                                  "[log]\n"
                                  "level = \"info\"\n");
  }

  // gate46d from the configuration file alone (components, listen addresses: all from it),
  // once it says it runs: DNS served on both LAN addresses, the transparent listener up, the
  // capture rules in place.
  void start_gate46() {
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string()}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [dns, relay, firewall]", log_timeout)) << d.log_text();
    const auto log = d.log_text();
    for (const char* expected : {"serving DNS on 192.0.2.1:53", "serving DNS on [2001:db8:1::1]:53",
                                 "transparent relay on", "capture rules applied: table inet gate46"}) {
      ASSERT_NE(log.find(expected), std::string::npos) << expected << "\n" << log;
    }
  }
  void start_gate46(const daemon_options& o) {
    write_config(o);
    start_gate46();
  }

  // SIGTERM, a clean exit; the log of the stop kept in stop_log_ (each component's counters).
  void stop_gate46() {
    const auto mark = gate46_->log_mark();
    EXPECT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    stop_log_ = gate46_->log_text(mark);
    EXPECT_NE(stop_log_.find("gate46d stopped"), std::string::npos) << stop_log_;
  }
  // The counters `component` logged at stop; a missing one reads as absent (nullopt), never
  // as 0.
  struct counters {
    std::map<std::string, std::uint64_t> values;
    std::optional<std::uint64_t> operator[](const std::string& name) const {
      const auto at = values.find(name);
      return at == values.end() ? std::nullopt : std::optional{at->second};
    }
  };
  [[nodiscard]] counters counters_at_stop(std::string_view component) const {
    auto c = component_counters(stop_log_, component);
    EXPECT_FALSE(c.empty()) << "no " << component << " counters at stop: " << stop_log_;
    return {std::move(c)};
  }

  // gate46ctl (in the gateway namespace) with gate46d's configuration; its JSON output parsed.
  json ctl_json(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{GATE46CTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--json", "--config", config_.string()});
    const auto r = gw_->run(argv, 15s);
    EXPECT_TRUE(r.ok()) << join_argv(argv) << ": " << r.status << " " << r.out << r.err;
    auto parsed = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << r.out;
    return parsed;
  }
  // `gate46ctl flows --json` over the control socket: the live flows.
  json flows() const {
    const auto r = gw_->run({GATE46CTL_PATH, "flows", "--json", "--socket", (dir_ / "control.sock").string()});
    const auto parsed = json::parse(r.out, nullptr, false);
    return r.ok() && !parsed.is_discarded() && parsed.contains("flows") ? parsed.at("flows") : json::array();
  }

  // Everything the capture layer touches in the gateway namespace, as the tools print it.
  // stdout only: `ip route show table 46` prints "FIB table does not exist" on stderr until a
  // route was ever added there, and the kernel never deletes an emptied table.
  [[nodiscard]] std::string capture_state() const {
    std::string out;
    for (const auto& argv : std::vector<std::vector<std::string>>{{"nft", "list", "ruleset"},
                                                                  {"ip", "rule"},
                                                                  {"ip", "-6", "rule"},
                                                                  {"ip", "route", "show", "table", "46"},
                                                                  {"ip", "-6", "route", "show", "table", "46"}}) {
      out += "$ " + join_argv(argv) + "\n" + gw_->run(argv).out;
    }
    return out;
  }

  // ---- clients ---------------------------------------------------------------------------

  // curl in `ns`: no proxy option, nothing but the name or address; the body on stdout.
  static command_result curl(const netns& ns, const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = curl_timeout, int max_time_s = curl_max_time_s) {
    std::vector<std::string> argv{"curl", "-sS", "--fail", "--max-time", std::to_string(max_time_s)};
    argv.insert(argv.end(), args.begin(), args.end());
    return ns.run(argv, timeout);
  }

  // The body and the address curl connected to ("-w" after the body, split off again).
  struct fetched {
    command_result result;
    std::string body;
    std::string remote_ip;
  };
  static fetched fetch(const netns& ns, const std::vector<std::string>& args) {
    static constexpr std::string_view marker = "\n@remote_ip=";
    std::vector<std::string> all{"-w", std::string{marker} + "%{remote_ip}"};
    all.insert(all.end(), args.begin(), args.end());
    fetched f{curl(ns, all), "", ""};
    const auto at = f.result.out.rfind(marker);
    if (at != std::string::npos) {
      f.body = f.result.out.substr(0, at);
      f.remote_ip = f.result.out.substr(at + marker.size());
    }
    return f;
  }

  // The first address dig finds for `name` (A or AAAA) through the namespace's resolv.conf;
  // empty if none.
  static std::string resolve(const netns& ns, std::string_view name, const char* type) {
    const auto r = ns.run({"dig", "+short", "+time=3", "+tries=1", std::string{name}, type}, 10s);
    const auto lines = lines_of(r.out);
    return r.ok() && !lines.empty() ? lines.front() : "";
  }

  using request_list = std::vector<std::vector<std::string>>;
  // One request arrived at nginx from `from` to `to` for `uri`, answered `status`.
  static std::vector<std::string> request(std::string_view from, std::string_view to, std::string_view uri,
                                          std::string_view status = "200") {
    return {std::string{from}, std::string{to}, std::string{uri}, std::string{status}};
  }
  // The requests nginx logged since it started (its start-up probes left out), each as its
  // words, once there are `expected` of them (bounded wait; fewer if they never appear).
  static request_list requests_at(const web_server& web, std::size_t expected) {
    request_list seen;
    for (const auto& line : web.requests_seen(expected)) {
      seen.push_back(split_words(line));
    }
    return seen;
  }

  // Client `ns` fetches http://NAME/ by name: the right server's index, from a fake address of
  // `pool` (which is what curl connected to), and nginx saw the gateway's address of the
  // server's family. Returns the fake address.
  std::string expect_reaches_by_name(const netns& ns, std::string_view name, std::string_view pool,
                                     std::string_view expected_body) {
    const auto f = fetch(ns, {url(name)});
    EXPECT_TRUE(f.result.ok()) << name << ": " << f.result.status << " " << f.result.err << gate46_->log_text();
    EXPECT_EQ(f.body, expected_body) << name;
    EXPECT_TRUE(in(f.remote_ip, pool)) << name << ": curl connected to '" << f.remote_ip << "'";
    return f.remote_ip;
  }

  temp_dir dir_{"gate46-e2e"};
  temp_dir server6_dir_{"gate46-e2e-server6"};
  temp_dir server4_dir_{"gate46-e2e-server4"};
  temp_dir client_dir_{"gate46-e2e-client"};
  std::filesystem::path config_;
  std::string stop_log_;
  std::optional<netns> client4_;
  std::optional<netns> client6_;
  std::optional<netns> gw_;
  std::optional<netns> server6_;
  std::optional<netns> server4_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<web_server> web6_;
  std::optional<web_server> web4_;
  std::optional<process> gate46_;
};

// ---- a, b: by name across families, with unmodified clients ----------------------------------

TEST_F(e2e, ipv4_only_client_reaches_an_ipv6_only_server_by_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  // curl resolves the name itself (glibc, resolv.conf -> gate46's DNS): the name has no A
  // record, so the answer is a fake IPv4 address, and the capture takes the flow from there.
  const auto fake = expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  EXPECT_EQ(resolve(*client4_, v6_only, "A"), fake) << "the same name keeps its fake address";
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/")})) << web6_->access_log();
  EXPECT_TRUE(requests_at(*web4_, 0).empty()) << web4_->access_log();
  stop_gate46();
  const auto relay = counters_at_stop("relay");
  EXPECT_EQ(relay["flows"], 1U) << stop_log_;
  EXPECT_EQ(relay["connect_failures"], 0U) << stop_log_;
  EXPECT_EQ(counters_at_stop("dns")["fake_answers"], 2U) << stop_log_;  // curl's and dig's
}

// wg-quick sets net.ipv4.conf.all.src_valid_mark = 1: the reverse-path check then looks the
// source up with the packet's mark, and the capture mark's rule would send that lookup to the
// local-delivery table: every captured IPv4 packet a martian. The capture must not depend on it.
TEST_F(e2e, capture_works_when_the_router_validates_sources_with_their_mark) {
  gw_->run_checked({"sysctl", "-qw", "net.ipv4.conf.all.src_valid_mark=1"});
  gw_->run_checked({"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"});
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/")})) << web6_->access_log();
  stop_gate46();
  EXPECT_EQ(counters_at_stop("relay")["flows"], 1U) << stop_log_;
}

TEST_F(e2e, ipv6_only_client_reaches_an_ipv4_only_server_by_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  const auto fake = expect_reaches_by_name(*client6_, v4_only, fake_pool_v6, server4_index);
  const auto again = resolve(*client6_, v4_only, "AAAA");
  ASSERT_TRUE(ip_address::parse(again) && ip_address::parse(fake)) << again << " " << fake;
  EXPECT_EQ(*ip_address::parse(again), *ip_address::parse(fake)) << "the same name keeps its fake address";
  EXPECT_EQ(requests_at(*web4_, 1), (request_list{request(gw_up_v4, server4_address, "/")})) << web4_->access_log();
  EXPECT_TRUE(requests_at(*web6_, 0).empty()) << web6_->access_log();
  stop_gate46();
  const auto relay = counters_at_stop("relay");
  EXPECT_EQ(relay["flows"], 1U) << stop_log_;
  EXPECT_EQ(relay["connect_failures"], 0U) << stop_log_;
}

// ---- c: DNS capture ---------------------------------------------------------------------------

TEST_F(e2e, with_dns_capture_clients_asking_a_third_party_resolver_still_get_fake_answers) {
  // Both clients are configured with resolvers elsewhere, which the gateway cannot even route
  // to: only the capture of port 53 can answer them.
  client4_->write_resolv_conf({std::string{elsewhere_resolver_v4}});
  client6_->write_resolv_conf({std::string{elsewhere_resolver_v6}});
  ASSERT_NO_FATAL_FAILURE(start_gate46({.capture_dns = true}));
  const auto rules = gw_->run({"nft", "list", "table", "inet", "gate46"});
  ASSERT_NE(rules.out.find("redirect to :53"), std::string::npos) << rules.out << rules.err;

  // dig reports the server it believes it asked; the answer is a fake address all the same.
  for (const auto& [ns, name, type, resolver, pool] :
       {std::tuple{&*client4_, v6_only, "A", elsewhere_resolver_v4, fake_pool_v4},
        std::tuple{&*client6_, v4_only, "AAAA", elsewhere_resolver_v6, fake_pool_v6}}) {
    SCOPED_TRACE(std::string{name});
    const auto r = ns->run({"dig", "+time=3", "+tries=1", std::string{name}, type}, 10s);
    ASSERT_TRUE(r.ok()) << r.out << r.err;
    const auto reply = parse_dig(r.out);
    EXPECT_EQ(reply.status, "NOERROR") << r.out;
    ASSERT_EQ(reply.answer.size(), 1U) << r.out;
    EXPECT_TRUE(in(split_words(reply.answer[0].text).back(), pool)) << r.out;
    EXPECT_NE(r.out.find("SERVER: " + std::string{resolver} + "#53"), std::string::npos) << r.out;
  }
  expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  expect_reaches_by_name(*client6_, v4_only, fake_pool_v6, server4_index);
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/")})) << web6_->access_log();
  EXPECT_EQ(requests_at(*web4_, 1), (request_list{request(gw_up_v4, server4_address, "/")})) << web4_->access_log();
  stop_gate46();
  const auto dns = counters_at_stop("dns");
  EXPECT_GE(dns["fake_answers"], 4U) << stop_log_;
  EXPECT_EQ(counters_at_stop("relay")["flows"], 2U) << stop_log_;
}

// ---- d, e: volume -----------------------------------------------------------------------------

TEST_F(e2e, a_100_mib_download_arrives_intact) {
  constexpr std::size_t size = 100U << 20U;
  const auto served = web6_->root() / "big.bin";
  write_seeded_file(served, size, 20240607);
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  const auto down = (client_dir_ / "big.bin").string();
  const auto r =
      curl(*client4_, {"-o", down, "-w", "%{size_download} %{remote_ip}", url(v6_only, "/big.bin")}, 70s, 60);
  ASSERT_TRUE(r.ok()) << r.status << " " << r.err << gate46_->log_text();
  const auto w = split_words(r.out);
  ASSERT_EQ(w.size(), 2U) << r.out;
  EXPECT_EQ(w[0], std::to_string(size));
  EXPECT_TRUE(in(w[1], fake_pool_v4)) << r.out;
  const auto sums = sha256_of({served.string(), down});
  ASSERT_EQ(sums.size(), 2U);
  EXPECT_EQ(sums[1], sums[0]) << "the download differs from the file served";
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/big.bin")}))
      << web6_->access_log();
  stop_gate46();
  const auto relay = counters_at_stop("relay");
  EXPECT_EQ(relay["flows"], 1U) << stop_log_;
  EXPECT_GE(relay["bytes_down"], size) << stop_log_;
  EXPECT_EQ(relay["resets"], 0U) << stop_log_;
}

TEST_F(e2e, two_hundred_parallel_requests_all_succeed) {
  constexpr std::size_t requests = 200;
  // A file of its own per request (about 16 KiB, its number all through it): each response is
  // checked against the one file it must be.
  std::filesystem::create_directories(web6_->root() / "p");
  auto content_of = [](std::size_t i) {
    std::string text;
    const auto line = "request " + std::to_string(i) + " of 200 through gate46\n";
    while (text.size() < (16U << 10U)) {
      text += line;
    }
    return text;
  };
  for (std::size_t i = 0; i < requests; ++i) {
    server6_dir_.write_file("www/p/" + std::to_string(i) + ".txt", content_of(i));
  }
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));

  // One curl, all 200 at once, each on a connection of its own (no reuse, no waiting to see
  // whether a connection could carry several): 200 flows through the capture and the relay.
  std::vector<std::string> args{"--parallel",
                                "--parallel-immediate",
                                "--parallel-max",
                                std::to_string(requests),
                                "-H",
                                "Connection: close",
                                "-w",
                                "%{http_code} %{remote_ip} %{url_effective}\\n"};
  std::vector<std::string> files;
  for (std::size_t i = 0; i < requests; ++i) {
    files.push_back((client_dir_ / (std::to_string(i) + ".txt")).string());
    args.insert(args.end(), {"-o", files.back(), url(v6_only, "/p/" + std::to_string(i) + ".txt")});
  }
  const auto r = curl(*client4_, args, 70s, 60);
  ASSERT_TRUE(r.ok()) << r.status << " " << r.err << gate46_->log_text();

  // Each transfer: 200, from a fake address (the same one: one name), and the right body.
  std::set<std::string> urls;
  std::set<std::string> remotes;
  for (const auto& line : lines_of(r.out)) {
    const auto w = split_words(line);
    ASSERT_EQ(w.size(), 3U) << line;
    EXPECT_EQ(w[0], "200") << line;
    remotes.insert(w[1]);
    urls.insert(w[2]);
  }
  EXPECT_EQ(urls.size(), requests) << r.out;
  ASSERT_EQ(remotes.size(), 1U) << r.out;
  EXPECT_TRUE(in(*remotes.begin(), fake_pool_v4)) << r.out;
  std::size_t intact = 0;
  for (std::size_t i = 0; i < requests; ++i) {
    const auto body = read_file(files[i]);
    EXPECT_EQ(body, content_of(i)) << files[i];
    intact += body == content_of(i) ? 1 : 0;
  }
  EXPECT_EQ(intact, requests);

  // nginx: each file asked once, all from the gateway's IPv6 address.
  const auto seen = requests_at(*web6_, requests);
  std::set<std::string> uris;
  for (const auto& w : seen) {
    ASSERT_EQ(w.size(), 4U);
    EXPECT_EQ(w[0], gw_up_v6);
    EXPECT_EQ(w[3], "200");
    uris.insert(w[2]);
  }
  EXPECT_EQ(seen.size(), requests);
  EXPECT_EQ(uris.size(), requests);

  stop_gate46();
  const auto relay = counters_at_stop("relay");
  EXPECT_EQ(relay["flows"], requests) << stop_log_;
  EXPECT_EQ(relay["connect_failures"], 0U) << stop_log_;
  EXPECT_EQ(relay["refused_max_flows"], 0U) << stop_log_;
  EXPECT_EQ(relay["resets"], 0U) << stop_log_;
}

// ---- f: a name that does not exist -------------------------------------------------------------

TEST_F(e2e, a_nonexistent_name_fails_cleanly_and_the_gateway_keeps_serving) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  for (const auto& [ns, type] : {std::pair{&*client4_, "A"}, std::pair{&*client6_, "AAAA"}}) {
    SCOPED_TRACE(type);
    // gate46 passes the upstream's NXDOMAIN on, no fake address for a name that is not there.
    const auto d = ns->run({"dig", "+time=3", "+tries=1", std::string{nonexistent}, type}, 10s);
    ASSERT_TRUE(d.ok()) << d.out << d.err;
    const auto reply = parse_dig(d.out);
    EXPECT_EQ(reply.status, "NXDOMAIN") << d.out;
    EXPECT_TRUE(reply.answer.empty()) << d.out;
    // curl says so at once: exit 6, not a timeout, not a connection attempt.
    const auto c = curl(*ns, {url(nonexistent)});
    EXPECT_FALSE(c.timed_out);
    EXPECT_EQ(c.status, 6) << c.err;
    EXPECT_NE(c.err.find("Could not resolve host: " + std::string{nonexistent}), std::string::npos) << c.err;
  }
  ASSERT_TRUE(gate46_->running()) << gate46_->log_text();
  // The gateway goes on serving both ways, and stored no mapping for the missing name.
  expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  expect_reaches_by_name(*client6_, v4_only, fake_pool_v6, server4_index);
  std::set<std::string> names;
  for (const auto& m : ctl_json({"map", "list"}).value("mappings", json::array())) {
    names.insert(m.at("name").get<std::string>());
  }
  EXPECT_EQ(names, (std::set<std::string>{std::string{v6_only} + ".", std::string{v4_only} + "."}));
  EXPECT_EQ(requests_at(*web6_, 1).size(), 1U) << web6_->access_log();
  EXPECT_EQ(requests_at(*web4_, 1).size(), 1U) << web4_->access_log();
  stop_gate46();
  EXPECT_EQ(counters_at_stop("relay")["flows"], 2U) << stop_log_;
}

// ---- g: a crash between the answer and the connect --------------------------------------------

TEST_F(e2e, a_fake_address_answered_before_a_kill_9_still_reaches_the_server_after_a_restart) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  const auto fake = resolve(*client4_, v6_only, "A");
  ASSERT_TRUE(in(fake, fake_pool_v4)) << "A " << v6_only << ": '" << fake << "'";
  const auto applied = capture_state();

  // The crash: no stop, no cleanup. The capture rules stay behind (flows to the fake address
  // now hit a port nobody listens on).
  ASSERT_TRUE(gate46_->signal(SIGKILL));
  ASSERT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{128 + SIGKILL});
  ASSERT_EQ(capture_state(), applied) << "kill -9 left the rules as they were";

  // Started again with the same configuration: the firewall component replaces its stale
  // table and finds its rules and routes in place (nothing doubled), and the store still maps
  // the address the client cached.
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  EXPECT_EQ(capture_state(), applied);
  for (const char* family : {"-4", "-6"}) {
    const auto rules = gw_->run_checked({"ip", family, "rule"});
    std::size_t ours = 0;
    for (const auto& line : lines_of(rules)) {
      ours += line.find("fwmark 0x46/0xff lookup 46") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(ours, 1U) << rules;
  }

  // The client connects with what it cached, asking no DNS: curl --resolve.
  const auto f = fetch(*client4_, {"--resolve", std::string{v6_only} + ":80:" + fake, url(v6_only)});
  ASSERT_TRUE(f.result.ok()) << f.result.status << " " << f.result.err << gate46_->log_text();
  EXPECT_EQ(f.body, server6_index);
  EXPECT_EQ(f.remote_ip, fake);
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/")})) << web6_->access_log();
  const auto mapping = ctl_json({"map", "get", fake});
  EXPECT_EQ(mapping.at("mapping").at("name"), std::string{v6_only} + ".") << mapping;
  EXPECT_EQ(mapping.at("mapping").at("v4"), fake) << mapping;

  stop_gate46();
  const auto relay = counters_at_stop("relay");
  EXPECT_EQ(relay["flows"], 1U) << stop_log_;
  EXPECT_EQ(relay["unmapped"], 0U) << stop_log_;
  // The restarted daemon answered no query: the mapping came from the store.
  const auto dns = counters_at_stop("dns");
  EXPECT_EQ(dns["udp_queries"], 0U) << stop_log_;
  EXPECT_EQ(dns["tcp_queries"], 0U) << stop_log_;
}

// ---- h: what gate46ctl shows ------------------------------------------------------------------

TEST_F(e2e, gate46ctl_shows_the_mappings_made_and_the_live_flows) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  const auto fake4 = expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  const auto fake6 = expect_reaches_by_name(*client6_, v4_only, fake_pool_v6, server4_index);
  ASSERT_TRUE(ip_address::parse(fake4) && ip_address::parse(fake6)) << fake4 << " " << fake6;

  // The store: exactly the two names asked for, with the fake addresses the clients used (the
  // real records of the other family made none).
  std::map<std::string, std::pair<json, json>> mappings;
  for (const auto& m : ctl_json({"map", "list"}).value("mappings", json::array())) {
    mappings[m.at("name").get<std::string>()] = {m.at("v4"), m.at("v6")};
  }
  ASSERT_EQ(mappings.size(), 2U) << ctl_json({"map", "list"});
  const auto& m6 = mappings[std::string{v6_only} + "."];
  EXPECT_EQ(m6.first, fake4);
  EXPECT_TRUE(m6.second.is_null()) << m6.second;
  const auto& m4 = mappings[std::string{v4_only} + "."];
  EXPECT_TRUE(m4.first.is_null()) << m4.first;
  ASSERT_TRUE(m4.second.is_string()) << m4.second;
  EXPECT_EQ(*ip_address::parse(m4.second.get<std::string>()), *ip_address::parse(fake6));

  // Live flows: one held connection from each client, by name.
  const auto script = dir_.write_file("hold.py", hold_py);
  process hold4{client4_->command({python, "-u", script.string(), "4", std::string{v6_only}})};
  process hold6{client6_->command({python, "-u", script.string(), "6", std::string{v4_only}})};
  for (auto* h : {&hold4, &hold6}) {
    ASSERT_TRUE(h->wait_for_log("HTTP/1.1 200 OK", log_timeout)) << h->log_text();
  }
  json live;
  ASSERT_TRUE(wait_until(
      [&] {
        live = flows();
        return live.size() == 2 && live[0].at("bytes_down").get<std::uint64_t>() > 0 &&
               live[1].at("bytes_down").get<std::uint64_t>() > 0;
      },
      log_timeout, 100ms))
      << live;
  std::map<std::string, json> by_name;
  for (const auto& f : live) {
    by_name[f.at("name").get<std::string>()] = f;
  }
  ASSERT_EQ(by_name.size(), 2U) << live;
  const auto& f4 = by_name[std::string{v6_only} + "."];
  EXPECT_EQ(f4.at("component"), "relay") << f4;
  EXPECT_EQ(f4.at("client").get<std::string>().rfind(std::string{client4_address} + ":", 0), 0U) << f4;
  EXPECT_EQ(f4.at("destination"), fake4 + ":80") << f4;
  EXPECT_EQ(f4.at("target"), "[" + std::string{server6_address} + "]:80") << f4;
  EXPECT_GT(f4.at("bytes_up").get<std::uint64_t>(), 0U) << f4;
  const auto& f6 = by_name[std::string{v4_only} + "."];
  EXPECT_EQ(f6.at("component"), "relay") << f6;
  EXPECT_EQ(f6.at("client").get<std::string>().rfind("[" + std::string{client6_address} + "]:", 0), 0U) << f6;
  EXPECT_EQ(f6.at("destination"), "[" + ip_address::parse(fake6)->to_string() + "]:80") << f6;
  EXPECT_EQ(f6.at("target"), std::string{server4_address} + ":80") << f6;
  EXPECT_GT(f6.at("bytes_up").get<std::uint64_t>(), 0U) << f6;
  // A flow holds its mapping.
  EXPECT_EQ(ctl_json({"map", "get", fake4}).at("mapping").at("held"), true);

  // The flows end with their clients.
  ASSERT_TRUE(hold4.signal(SIGKILL));
  ASSERT_TRUE(hold6.signal(SIGKILL));
  EXPECT_TRUE(wait_until([&] { return flows().empty(); }, log_timeout, 100ms)) << flows();
}

// ---- i: a stop leaves nothing behind (also in the sanitizer build) ----------------------------

TEST_F(e2e, both_families_then_a_stop_leaves_no_rule_or_route) {
  const auto before = capture_state();
  ASSERT_NO_FATAL_FAILURE(start_gate46({}));
  // While it runs: the table, the fwmark rule and the local route of both families.
  const auto tables = gw_->run_checked({"nft", "list", "tables"});
  ASSERT_NE(tables.find("table inet gate46"), std::string::npos) << tables;
  for (const char* family : {"-4", "-6"}) {
    const auto rules = gw_->run_checked({"ip", family, "rule"});
    EXPECT_NE(rules.find("fwmark 0x46/0xff lookup 46"), std::string::npos) << rules;
    const auto routes = gw_->run_checked({"ip", family, "route", "show", "table", "46"});
    EXPECT_NE(routes.find("local default dev lo"), std::string::npos) << routes;
  }
  // The whole chain in both directions.
  const auto fake = expect_reaches_by_name(*client4_, v6_only, fake_pool_v4, server6_index);
  expect_reaches_by_name(*client6_, v4_only, fake_pool_v6, server4_index);
  EXPECT_EQ(requests_at(*web6_, 1), (request_list{request(gw_up_v6, server6_address, "/")})) << web6_->access_log();
  EXPECT_EQ(requests_at(*web4_, 1), (request_list{request(gw_up_v4, server4_address, "/")})) << web4_->access_log();

  stop_gate46();
  EXPECT_EQ(counters_at_stop("relay")["flows"], 2U) << stop_log_;
  EXPECT_NE(stop_log_.find("capture rules removed"), std::string::npos) << stop_log_;
  const auto tables_after = gw_->run_checked({"nft", "list", "tables"});
  EXPECT_EQ(tables_after.find("gate46"), std::string::npos) << tables_after;
  for (const char* family : {"-4", "-6"}) {
    const auto rules = gw_->run_checked({"ip", family, "rule"});
    EXPECT_EQ(rules.find("fwmark 0x46"), std::string::npos) << rules;
    EXPECT_EQ(rules.find("lookup 46"), std::string::npos) << rules;
    const auto routes = gw_->run({"ip", family, "route", "show", "table", "46"});
    EXPECT_EQ(routes.out, "") << family << " table 46 still has routes";
  }
  EXPECT_EQ(capture_state(), before);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "control.sock"));
  // And nothing is captured any more: the fake address the client still has leads nowhere.
  const auto after =
      curl(*client4_, {"--resolve", std::string{v6_only} + ":80:" + fake, url(v6_only)}, curl_timeout, 1);
  EXPECT_FALSE(after.ok()) << after.out;
  EXPECT_EQ(requests_at(*web6_, 1).size(), 1U) << web6_->access_log();
}

}  // namespace
