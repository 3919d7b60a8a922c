// gate46d's transparent UDP relay (component relay, issue 11) with the capture rules of the
// firewall component and the delegating DNS of the dns component: an IPv4-only client that
// knows the gateway only as its router and resolver sends UDP to fake addresses, and reaches
// an IPv6-only server.
//
//   client4 ns (IPv4 only)            gw ns (gate46d)                        server6 ns (IPv6 only)
//   eth0 192.0.2.2/24       ---  lan0 192.0.2.1/24         up6 2001:db8:2::1/64  ---  eth0 2001:db8:2::2/64
//   default via 192.0.2.1                                                             knotd :53, echoes :7007/:7008
//   nameserver 192.0.2.1                                   up4 203.0.113.1/24    ---  server4 ns (IPv4 only)
//                                                                                     eth0 203.0.113.2/24
//                                                                                     knotd :53 (gate46d's upstream)
//
// The gateway namespace does not forward: a datagram reaches a server only by being TPROXY'd to
// gate46d (tproxy.port 7046) and relayed from the gateway's own addresses; the reply comes back
// from the fake address and port the client sent to.
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
constexpr const char* python = "/usr/bin/python3";

constexpr std::string_view server6 = "2001:db8:2::2";
constexpr std::string_view server4 = "203.0.113.2";
constexpr std::string_view gw_lan_v4 = "192.0.2.1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";

constexpr int python_echo_port = 7007;
constexpr int socat_echo_port = 7008;

// The zone both knotd serve: the IPv6-only server's names, and an IPv4-only name to ask for.
knot_zone zone_records() {
  knot_zone z;
  z.records = {
      {"dns6", "AAAA", std::string{server6}},  // the IPv6-only DNS server
      {"echo6", "AAAA", std::string{server6}},
      {"v4only", "A", std::string{server4}},
  };
  return z;
}

// A UDP echo on the server: every datagram back to its sender, unchanged. Logs each sender's
// address once ("from ADDRESS").
constexpr std::string_view echo_py = R"py(
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
s.bind((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
seen = set()
while True:
    data, peer = s.recvfrom(65535)
    if peer[0] not in seen:
        seen.add(peer[0])
        print('from', peer[0], flush=True)
    s.sendto(data, peer)
)py";

// The client: FLOWS sockets on distinct source ports, each sending ROUNDS unique payloads to
// ADDRESS:PORT (one at a time per flow, all flows at once) and checking that every reply is its
// own payload and comes from ADDRESS:PORT. A datagram without a reply within a second is sent
// again (UDP: the application retries), at most 5 times. Prints "ok FLOWS" or each problem;
// exit 0 only when every flow got every reply right.
constexpr std::string_view flows_py = R"py(
import os, select, socket, sys, time
address, port, flows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks, want, sent_at, tries, done, problems = [], {}, {}, {}, {}, []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 0))
    s.setblocking(False)
    socks.append(s)
def send(i):
    s = socks[i]
    payload = ('flow %d port %d round %d %s' % (i, s.getsockname()[1], done[i], os.urandom(8).hex())).encode()
    want[i] = payload
    s.sendto(payload, (address, port))
    sent_at[i] = time.monotonic()
    tries[i] = tries.get(i, 0) + 1
for i in range(flows):
    done[i] = 0
    send(i)
index = {s.fileno(): i for i, s in enumerate(socks)}
deadline = time.monotonic() + 30
while any(done[i] < rounds for i in range(flows)) and time.monotonic() < deadline:
    ready, _, _ = select.select(socks, [], [], 0.2)
    for s in ready:
        i = index[s.fileno()]
        while True:
            try:
                data, source = s.recvfrom(65535)
            except BlockingIOError:
                break
            if source != (address, port):
                problems.append('flow %d: reply from %r' % (i, source))
            elif data != want[i] and done[i] < rounds:
                problems.append('flow %d: got %r, wanted %r' % (i, data[:60], want[i][:60]))
            elif done[i] < rounds:
                done[i] += 1
                tries[i] = 0
                if done[i] < rounds:
                    send(i)
    now = time.monotonic()
    for i in range(flows):
        if done[i] < rounds and now - sent_at[i] > 1.0:
            if tries[i] >= 5:
                problems.append('flow %d: no reply after 5 tries' % i)
                done[i] = rounds + 1
            else:
                s = socks[i]
                s.sendto(want[i], (address, port))
                sent_at[i] = now
                tries[i] += 1
for p in problems[:20]:
    print(p, flush=True)
missing = [i for i in range(flows) if done[i] != rounds]
if problems or missing:
    print('failed: %d problems, %d flows incomplete' % (len(problems), len(missing)), flush=True)
    sys.exit(1)
print('ok', flows, flush=True)
)py";

// The session-limit client: sockets A and B each get an echo; a third socket C sends and gets
// nothing (its session is refused); then C keeps sending every 0.3 s until a reply comes (A's
// and B's sessions expire after their idle timeout). Prints each step; exit 0 when C got its
// own payload back from the fake address within the bound.
constexpr std::string_view limits_py = R"py(
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 0))
    s.settimeout(2)
    return s
def exchange(s, payload, timeout):
    s.settimeout(timeout)
    s.sendto(payload, (address, port))
    try:
        data, source = s.recvfrom(65535)
    except socket.timeout:
        return None
    return data, source
a, b, c = sock(), sock(), sock()
for name, s in (('a', a), ('b', b)):
    r = exchange(s, name.encode() * 10, 3)
    if r is None or r != (name.encode() * 10, (address, port)):
        print(name, 'failed', r, flush=True)
        sys.exit(1)
    print(name, 'ok', flush=True)
r = exchange(c, b'c-refused', 1.5)
print('c refused' if r is None else 'c answered %r' % (r,), flush=True)
if r is not None:
    sys.exit(1)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    r = exchange(c, b'c-later', 0.3)
    if r is not None:
        while r is not None and r[0] == b'c-refused':
            r = exchange(c, b'c-later', 0.3)
        if r == (b'c-later', (address, port)):
            print('c ok later', flush=True)
            sys.exit(0)
print('c never answered', flush=True)
sys.exit(1)
)py";

struct daemon_options {
  std::string gateway_extra;  // more [gateway] keys
};

class udp_relay : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client4_.emplace("client4");
    gw_.emplace("gw");
    server6_.emplace("server6");
    server4_.emplace("server4");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24"}}, *client4_, {"eth0", {"192.0.2.2/24"}});
    connect_veth(*gw_, {"up6", {"2001:db8:2::1/64"}}, *server6_, {"eth0", {"2001:db8:2::2/64"}});
    connect_veth(*gw_, {"up4", {"203.0.113.1/24"}}, *server4_, {"eth0", {"203.0.113.2/24"}});
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"});
    client4_->run_checked({"ip", "route", "add", "default", "via", std::string{gw_lan_v4}});
    client4_->write_resolv_conf({std::string{gw_lan_v4}});
    // gate46d's upstream on the IPv4-only server; the same zone on the IPv6-only server, the
    // DNS server the client reaches through the relay.
    knot4_.emplace(*server4_, knot_options{{std::string{server4}}, 53, zone_records(), false});
    knot6_.emplace(*server6_, knot_options{{std::string{server6}}, 53, zone_records(), false});
  }

  void TearDown() override {
    if (gate46_ && gate46_->running()) {
      stop_gate46();
    }
  }

  void start_python_echo() {
    const auto script = dir_.write_file("echo.py", echo_py);
    auto& e = echo_.emplace(
        server6_->command({python, "-u", script.string(), std::string{server6}, std::to_string(python_echo_port)}));
    ASSERT_TRUE(e.wait_for_log("ready", log_timeout)) << e.log_text();
  }

  void start_socat_echo() {
    auto& e = socat_.emplace(server6_->command(
        {"socat", "-d", "-d",
         "UDP6-LISTEN:" + std::to_string(socat_echo_port) + ",bind=[" + std::string{server6} + "],fork,reuseaddr",
         "PIPE"}));
    ASSERT_TRUE(e.wait_for_log("listening on", log_timeout)) << e.log_text();
  }

  void start_gate46(const daemon_options& o = {}) {
    const std::string text =
        "[daemon]\n"
        "threads = 2\n"
        "\n"
        "[lan]\n"
        "interfaces = [\"lan0\"]\n"
        "networks = [\"192.0.2.0/24\"]\n"
        "\n"
        "[dns]\n"
        "listen = [\"192.0.2.1:53\"]\n"
        "upstreams = [\"203.0.113.2\"]\n"
        "mode = \"translate\"\n"
        "upstream_timeout_ms = 1000\n"
        "\n"
        "[gateway]\n"
        "prefer_family = \"ipv6\"\n"
        "drain_timeout = 2\n" +
        o.gateway_extra +
        "\n"
        "[tproxy]\n"
        "port = 7046\n" +
        private_state_sections(dir_.path()) +
        "\n"
        "[log]\n"
        "level = \"info\"\n";
    config_ = dir_.write_file("gate46.toml", text);
    auto& d = gate46_.emplace(
        gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", "dns,relay,firewall"}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout)) << d.log_text();
    ASSERT_TRUE(d.wait_for_log("transparent UDP relay on [::]:7046", log_timeout)) << d.log_text();
    const auto table = gw_->run({"nft", "list", "table", "inet", "gate46"});
    ASSERT_TRUE(table.ok()) << table.err << d.log_text();
    ASSERT_NE(table.out.find("tproxy ip to :7046"), std::string::npos) << table.out;
  }

  std::map<std::string, std::uint64_t> stop_gate46() {
    const auto mark = gate46_->log_mark();
    EXPECT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    stop_log_ = gate46_->log_text(mark);
    auto counters = component_counters(stop_log_, "relay");
    EXPECT_FALSE(counters.empty()) << "no relay counters at stop: " << stop_log_;
    return counters;
  }

  // The fake A gate46's DNS answers for `name` (the client's resolver).
  std::string fake_a(std::string_view name) const {
    const auto r = client4_->run({"dig", "+short", "+time=5", "+tries=1", std::string{name}, "A"}, 15s);
    const auto lines = lines_of(r.out);
    return r.ok() && !lines.empty() ? lines.front() : "";
  }

  [[nodiscard]] static bool in(std::string_view address, const char* range) {
    const auto a = ip_address::parse(address);
    return a && cidr::parse(range)->contains(*a);
  }

  command_result run_flows(const std::string& fake, int port, int flows, int rounds) {
    const auto script = dir_.write_file("flows.py", flows_py);
    return client4_->run(
        {python, "-u", script.string(), fake, std::to_string(port), std::to_string(flows), std::to_string(rounds)},
        45s);
  }

  temp_dir dir_{"gate46-udp"};
  std::filesystem::path config_;
  std::string stop_log_;
  std::optional<netns> client4_;
  std::optional<netns> gw_;
  std::optional<netns> server6_;
  std::optional<netns> server4_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot4_;
  std::optional<knot_server> knot6_;
  std::optional<process> echo_;
  std::optional<process> socat_;
  std::optional<process> gate46_;
};

TEST_F(udp_relay, kdig_over_udp_from_an_ipv4_only_client_reaches_an_ipv6_only_dns_server) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("dns6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << "A dns6.gate46.test: '" << fake << "'";
  const auto udp6_before = knot6_->queries_over("udp6");
  // Straight to the fake address, UDP only: captured, relayed to knotd at 2001:db8:2::2.
  const auto r = client4_->run({"kdig", "+notcp", "+time=3", "+retry=1", "@" + fake, "v4only.gate46.test", "A"}, 20s);
  ASSERT_TRUE(r.ok()) << r.status << " " << r.out << r.err << gate46_->log_text();
  EXPECT_NE(r.out.find("status: NOERROR"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string{server4}), std::string::npos) << r.out;
  // kdig checks the reply's source itself: an answer from elsewhere would be "reply from
  // unexpected source". The IPv6-only server got it over UDP/IPv6.
  EXPECT_EQ(r.out.find("unexpected"), std::string::npos) << r.out;
  EXPECT_GE(knot6_->queries_over("udp6"), udp6_before + 1);
  const auto counters = stop_gate46();
  EXPECT_GE(counters.at("udp_sessions"), 1U) << stop_log_;
  EXPECT_GE(counters.at("udp_datagrams_up"), 1U) << stop_log_;
  EXPECT_GE(counters.at("udp_datagrams_down"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_dropped_unmapped"), 0U) << stop_log_;
}

TEST_F(udp_relay, a_udp_echo_across_families_comes_back_from_the_fake_address_and_is_listed) {
  ASSERT_NO_FATAL_FAILURE(start_socat_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  // One flow, three rounds: the first datagram sets the session up, the others take the
  // connected reply socket. The script checks each reply's source is fake:7008.
  const auto r = run_flows(fake, socat_echo_port, 1, 3);
  ASSERT_TRUE(r.ok()) << r.out << r.err << socat_->log_text() << gate46_->log_text();
  EXPECT_NE(r.out.find("ok 1"), std::string::npos) << r.out;
  // socat saw the datagrams come from the gateway's IPv6 address (socat writes it in full).
  EXPECT_NE(socat_->log_text().find("accepting UDP connection from AF=10 [2001:0db8:0002:0000:0000:0000:0000:0001]"),
            std::string::npos)
      << socat_->log_text();

  // The session lives on (gateway.udp_idle_timeout 60 s) and gate46ctl lists it.
  const auto socket = (dir_.path() / "control.sock").string();
  const auto out = run_checked({GATE46CTL_PATH, "flows", "--json", "--socket", socket});
  const auto flows = nlohmann::json::parse(out).at("flows");
  ASSERT_EQ(flows.size(), 1U) << flows;
  const auto& f = flows[0];
  EXPECT_EQ(f.at("component"), "relay") << f;
  EXPECT_EQ(f.at("client").get<std::string>().rfind("192.0.2.2:", 0), 0U) << f;
  EXPECT_EQ(f.at("destination"), "udp " + fake + ":" + std::to_string(socat_echo_port)) << f;
  EXPECT_EQ(f.at("name"), "echo6.gate46.test.") << f;
  EXPECT_EQ(f.at("target"), "[" + std::string{server6} + "]:" + std::to_string(socat_echo_port)) << f;
  EXPECT_GT(f.at("bytes_up").get<std::uint64_t>(), 0U) << f;
  EXPECT_EQ(f.at("bytes_up"), f.at("bytes_down")) << f;
  // The mapping is held while the session lives.
  const auto mapping =
      nlohmann::json::parse(run_checked({GATE46CTL_PATH, "map", "get", fake, "--json", "--config", config_.string()}));
  EXPECT_EQ(mapping.at("mapping").at("held"), true) << mapping;

  // Stopping ends the session at once (UDP has nothing to drain).
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_sessions"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_active_sessions"), 0U) << stop_log_;
  EXPECT_GE(counters.at("udp_datagrams_up"), 3U) << stop_log_;
  EXPECT_EQ(counters.at("udp_datagrams_up"), counters.at("udp_datagrams_down")) << stop_log_;
  EXPECT_EQ(counters.at("udp_bytes_up"), counters.at("udp_bytes_down")) << stop_log_;
}

TEST_F(udp_relay, two_hundred_parallel_flows_each_get_only_their_own_replies) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  const auto r = run_flows(fake, python_echo_port, 200, 5);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  EXPECT_NE(r.out.find("ok 200"), std::string::npos) << r.out;
  EXPECT_EQ(lines_of(echo_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v6}}));
  const auto counters = stop_gate46();
  // One session per source port; none refused.
  EXPECT_EQ(counters.at("udp_sessions"), 200U) << stop_log_;
  EXPECT_EQ(counters.at("udp_refused_per_client"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("udp_refused_max"), 0U) << stop_log_;
  EXPECT_GE(counters.at("udp_datagrams_down"), 1000U) << stop_log_;
}

TEST_F(udp_relay, past_udp_sessions_per_client_new_sessions_are_dropped_until_one_expires) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46({"udp_sessions_per_client = 2\nudp_idle_timeout = 2\n"}));
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  const auto script = dir_.write_file("limits.py", limits_py);
  const auto r = client4_->run({python, "-u", script.string(), fake, std::to_string(python_echo_port)}, 40s);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  EXPECT_EQ(lines_of(r.out), (std::vector<std::string>{"a ok", "b ok", "c refused", "c ok later"})) << r.out;
  const auto counters = stop_gate46();
  EXPECT_GE(counters.at("udp_refused_per_client"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_refused_max"), 0U) << stop_log_;
  EXPECT_GE(counters.at("udp_idle_timeouts"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_sessions"), 3U) << stop_log_;
}

TEST_F(udp_relay, past_udp_sessions_max_new_sessions_are_dropped_and_counted) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46({"udp_sessions_max = 3\n"}));
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  // Five flows, at most three sessions: two flows never get a reply.
  const auto r = run_flows(fake, python_echo_port, 5, 1);
  EXPECT_FALSE(r.ok()) << r.out;
  EXPECT_NE(r.out.find("2 flows incomplete"), std::string::npos) << r.out;
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_sessions"), 3U) << stop_log_;
  EXPECT_GE(counters.at("udp_refused_max"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("udp_refused_per_client"), 0U) << stop_log_;
}

}  // namespace
