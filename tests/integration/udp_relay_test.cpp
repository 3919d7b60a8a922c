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
// Tests that need the opposite direction add an IPv6-only client:
//
//   client6 ns (IPv6 only)  ---  lan6 2001:db8:1::1/64   (gate46's DNS also on [2001:db8:1::1]:53)
//   eth0 2001:db8:1::2/64, default via 2001:db8:1::1, nameserver 2001:db8:1::1
//
// The gateway namespace does not forward: a datagram reaches a server only by being TPROXY'd to
// gate46d (tproxy.port 7046) and relayed from the gateway's own addresses; the reply comes back
// from the fake address and port the client sent to.
#include <algorithm>
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
constexpr std::string_view gw_lan_v6 = "2001:db8:1::1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";
constexpr std::string_view gw_up_v4 = "203.0.113.1";

constexpr int python_echo_port = 7007;
constexpr int socat_echo_port = 7008;
constexpr int closed_port = 7009;  // nothing listens there until a test starts an echo on it

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

// A UDP echo on the server (ADDRESS PORT, either family): every datagram back to its sender,
// unchanged. Logs each sender's address once ("from ADDRESS").
constexpr std::string_view echo_py = R"py(
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
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
// exit 0 only when every flow got every reply right. ADDRESS may be of either family.
constexpr std::string_view flows_py = R"py(
import ipaddress, os, select, socket, sys, time
address, port, flows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
v6 = ipaddress.ip_address(address).version == 6
socks, want, sent_at, tries, done, problems = [], {}, {}, {}, {}, []
for i in range(flows):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('::' if v6 else '0.0.0.0', 0))
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
            if (ipaddress.ip_address(source[0]), source[1]) != (ipaddress.ip_address(address), port):
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

// ICMP: a client socket on a fixed source port (so that a later run is the same session) sends to
// ADDRESS:PORT. "silent": three datagrams, one a second; exit 0 when none got any answer (the
// target's port is closed; the gateway has nothing to echo). "echo": up to ten tries, 0.5 s apart;
// exit 0 when one of them comes back, unchanged and from ADDRESS:PORT.
constexpr std::string_view icmp_py = R"py(
import ipaddress, socket, sys
address, port, source_port, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', source_port))
s.settimeout(0.5 if mode == 'echo' else 1.0)
sent = set()
for i in range(10 if mode == 'echo' else 3):
    payload = ('%s %d' % (mode, i)).encode()
    sent.add(payload)
    s.sendto(payload, (address, port))
    try:
        data, source = s.recvfrom(65535)
    except socket.timeout:
        continue
    if mode == 'silent':
        print('answered %r from %r' % (data, source), flush=True)
        sys.exit(1)
    if data in sent and source == (address, port):
        print('echoed', flush=True)
        sys.exit(0)
    print('wrong answer %r from %r' % (data, source), flush=True)
    sys.exit(1)
print('silent' if mode == 'silent' else 'never echoed', flush=True)
sys.exit(0 if mode == 'silent' else 1)
)py";

// Sizes: one socket sends ADDRESS:PORT one datagram of random bytes per SIZE argument, in order,
// and waits for it to come back (2 s, three tries). "SIZE" must come back byte for byte from
// ADDRESS:PORT ("SIZE ok"); "SIZE:none" must not come back at all within 3 s ("SIZE none"). Any
// other datagram (shorter, longer, different: a truncated relay) is a problem. Exit 0 when every
// size went as expected. ADDRESS may be of either family.
constexpr std::string_view sizes_py = R"py(
import ipaddress, os, socket, sys, time
address, port = ipaddress.ip_address(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('::' if address.version == 6 else '0.0.0.0', 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
problems = []
def receive(until):
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data, source = s.recvfrom(1 << 17)
        except socket.timeout:
            return None
        if (ipaddress.ip_address(source[0]), source[1]) != (address, port):
            problems.append('a datagram from %r' % (source,))
            continue
        return data
for arg in sys.argv[3:]:
    size, expect_none = (int(arg.split(':')[0]), arg.endswith(':none'))
    payload = os.urandom(size)
    if expect_none:
        s.sendto(payload, (str(address), port))
        data = receive(time.monotonic() + 3)
        if data is None:
            print(size, 'none', flush=True)
        else:
            problems.append('%d: %d bytes came back, none expected' % (size, len(data)))
        continue
    for attempt in range(3):
        s.sendto(payload, (str(address), port))
        data = receive(time.monotonic() + 2)
        if data is not None:
            break
    if data == payload:
        print(size, 'ok', flush=True)
    elif data is None:
        problems.append('%d: no reply after 3 tries' % size)
    else:
        problems.append('%d: got %d bytes back, %s' % (size, len(data), 'a different datagram' if len(data) == size else 'not the datagram sent'))
for p in problems:
    print(p, flush=True)
sys.exit(1 if problems else 0)
)py";

struct daemon_options {
  std::string gateway_extra;  // more [gateway] keys
  bool ipv6_lan = false;      // lan6 (add_ipv6_client()) is a LAN interface; DNS also on it
};

// Field by field: g++ warns of the missing initializer even with designated initializers.
daemon_options with_ipv6_lan() {
  daemon_options o;
  o.ipv6_lan = true;
  return o;
}

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

  // An IPv6-only client on the gateway's lan6: call before start_gate46(with_ipv6_lan()).
  void add_ipv6_client() {
    client6_.emplace("client6");
    connect_veth(*gw_, {"lan6", {std::string{gw_lan_v6} + "/64"}}, *client6_, {"eth0", {"2001:db8:1::2/64"}});
    client6_->run_checked({"ip", "-6", "route", "add", "default", "via", std::string{gw_lan_v6}});
    client6_->write_resolv_conf({std::string{gw_lan_v6}});
  }

  void start_python_echo() { start_echo(echo_, *server6_, server6, python_echo_port); }

  void start_echo(std::optional<process>& slot, const netns& ns, std::string_view address, int port) {
    const auto script = dir_.write_file("echo.py", echo_py);
    auto& e = slot.emplace(ns.command({python, "-u", script.string(), std::string{address}, std::to_string(port)}));
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
        "[lan]\n" +
        std::string{o.ipv6_lan ? "interfaces = [\"lan0\", \"lan6\"]\n"
                                 "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
                               : "interfaces = [\"lan0\"]\n"
                                 "networks = [\"192.0.2.0/24\"]\n"} +
        "\n"
        "[dns]\n" +
        std::string{o.ipv6_lan ? "listen = [\"192.0.2.1:53\", \"[2001:db8:1::1]:53\"]\n"
                               : "listen = [\"192.0.2.1:53\"]\n"} +
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

  // The fake AAAA gate46's DNS answers the IPv6-only client for `name`.
  std::string fake_aaaa(std::string_view name) const {
    const auto r = client6_->run({"dig", "+short", "+time=5", "+tries=1", std::string{name}, "AAAA"}, 15s);
    const auto lines = lines_of(r.out);
    return r.ok() && !lines.empty() ? lines.front() : "";
  }

  command_result run_sizes(const netns& client, const std::string& fake, int port, std::vector<std::string> sizes) {
    const auto script = dir_.write_file("sizes.py", sizes_py);
    std::vector<std::string> argv{python, "-u", script.string(), fake, std::to_string(port)};
    argv.insert(argv.end(), sizes.begin(), sizes.end());
    return client.run(argv, 60s);
  }

  [[nodiscard]] static bool in(std::string_view address, const char* range) {
    const auto a = ip_address::parse(address);
    return a && cidr::parse(range)->contains(*a);
  }

  void expect_two_of_five_flows_refused(const std::string& gateway_keys, const std::string& refused_by);

  command_result run_flows(const std::string& fake, int port, int flows, int rounds) {
    return run_flows(*client4_, fake, port, flows, rounds);
  }
  command_result run_flows(const netns& client, const std::string& fake, int port, int flows, int rounds) {
    const auto script = dir_.write_file("flows.py", flows_py);
    return client.run(
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
  std::optional<netns> client6_;  // add_ipv6_client()
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot4_;
  std::optional<knot_server> knot6_;
  std::optional<process> echo_;
  std::optional<process> echo4_;      // on server4
  std::optional<process> late_echo_;  // on server6's closed_port, once a test opens it
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

// Five flows where `gateway_keys` allow three sessions: two flows never get a reply, and the
// refusals are counted in `refused_by` only.
void udp_relay::expect_two_of_five_flows_refused(const std::string& gateway_keys, const std::string& refused_by) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46({gateway_keys}));
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  const auto r = run_flows(fake, python_echo_port, 5, 1);
  EXPECT_FALSE(r.ok()) << r.out;
  EXPECT_NE(r.out.find("2 flows incomplete"), std::string::npos) << r.out;
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_sessions"), 3U) << stop_log_;
  for (const char* refusal : {"udp_refused_max", "udp_refused_max_flows", "udp_refused_per_client"}) {
    if (refusal == refused_by) {
      EXPECT_GE(counters.at(refusal), 2U) << stop_log_;
    } else {
      EXPECT_EQ(counters.at(refusal), 0U) << refusal << "\n" << stop_log_;
    }
  }
}

TEST_F(udp_relay, past_udp_sessions_max_new_sessions_are_dropped_and_counted) {
  expect_two_of_five_flows_refused("udp_sessions_max = 3\n", "udp_refused_max");
}

// A session holds two descriptors as a TCP flow does: it takes a place in gateway.max_flows.
TEST_F(udp_relay, past_max_flows_new_sessions_are_dropped_and_counted) {
  expect_two_of_five_flows_refused("max_flows = 3\n", "udp_refused_max_flows");
}

TEST_F(udp_relay, an_ipv6_only_client_reaches_an_ipv4_only_udp_server_through_a_fake_aaaa) {
  ASSERT_NO_FATAL_FAILURE(add_ipv6_client());
  ASSERT_NO_FATAL_FAILURE(start_echo(echo4_, *server4_, server4, python_echo_port));
  ASSERT_NO_FATAL_FAILURE(start_gate46(with_ipv6_lan()));
  // v4only.gate46.test has only an A record: gate46's DNS gives the IPv6-only client a fake AAAA.
  const auto fake = fake_aaaa("v4only.gate46.test");
  ASSERT_TRUE(in(fake, "2001:2::/48")) << "AAAA v4only.gate46.test: '" << fake << "'";
  // Two flows, three rounds each; the script checks each reply's source is [fake]:7007.
  const auto r = run_flows(*client6_, fake, python_echo_port, 2, 3);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  EXPECT_NE(r.out.find("ok 2"), std::string::npos) << r.out;
  // The IPv4-only server saw only the gateway's IPv4 address.
  EXPECT_EQ(lines_of(echo4_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v4}}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_sessions"), 2U) << stop_log_;
  EXPECT_GE(counters.at("udp_datagrams_up"), 6U) << stop_log_;
  EXPECT_EQ(counters.at("udp_datagrams_up"), counters.at("udp_datagrams_down")) << stop_log_;
  EXPECT_EQ(counters.at("udp_bytes_up"), counters.at("udp_bytes_down")) << stop_log_;
}

TEST_F(udp_relay, a_closed_target_port_is_counted_as_an_icmp_error_and_the_session_and_other_flows_go_on) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  const auto script = dir_.write_file("icmp.py", icmp_py);
  const auto client = [&](const char* mode) {
    return client4_->run({python, "-u", script.string(), fake, std::to_string(closed_port), "40001", mode}, 20s);
  };
  // Nothing listens on the server's port 7009: each datagram draws an ICMPv6 port unreachable to
  // the gateway. The client gets no answer (gate46 does not make one up) and its wait ends.
  const auto silent = client("silent");
  ASSERT_TRUE(silent.ok()) << silent.out << silent.err << gate46_->log_text();
  EXPECT_EQ(lines_of(silent.out), std::vector<std::string>{"silent"});
  // gate46d serves another flow meanwhile.
  const auto other = run_flows(fake, python_echo_port, 1, 3);
  ASSERT_TRUE(other.ok()) << other.out << other.err << gate46_->log_text();
  // The port opens: the same client endpoint, the same session, now echoed.
  ASSERT_NO_FATAL_FAILURE(start_echo(late_echo_, *server6_, server6, closed_port));
  const auto echoed = client("echo");
  ASSERT_TRUE(echoed.ok()) << echoed.out << echoed.err << gate46_->log_text();
  EXPECT_EQ(lines_of(echoed.out), std::vector<std::string>{"echoed"});
  const auto counters = stop_gate46();
  EXPECT_GE(counters.at("udp_icmp_errors"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_client_gone"), 0U) << stop_log_;
  // One session for 7009 (kept through the ICMP errors), one for the other flow.
  EXPECT_EQ(counters.at("udp_sessions"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("udp_dropped_setup"), 0U) << stop_log_;
}

TEST_F(udp_relay, datagrams_up_to_the_largest_ipv4_payload_are_relayed_whole_across_families) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  // The veth MTU is 1500: everything above 1472 bytes crosses as IPv4 fragments to the gateway
  // and IPv6 fragments to the server. The relay reads into a 64 KiB + 1 byte buffer, so no
  // IPv4/IPv6 datagram can be cut short; each must come back byte for byte. 0 bytes is a
  // datagram too.
  const auto r = run_sizes(*client4_, fake, python_echo_port, {"100", "0", "1472", "1473", "8000", "65000", "65507"});
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{"100 ok", "0 ok", "1472 ok", "1473 ok", "8000 ok", "65000 ok", "65507 ok"}))
      << r.out;
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_dropped_truncated"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("udp_datagrams_up"), counters.at("udp_datagrams_down")) << stop_log_;
  EXPECT_EQ(counters.at("udp_bytes_up"), counters.at("udp_bytes_down")) << stop_log_;
  EXPECT_GE(counters.at("udp_bytes_up"), 100U + 1472 + 1473 + 8000 + 65000 + 65507) << stop_log_;
}

TEST_F(udp_relay, an_ipv6_datagram_too_large_for_ipv4_is_dropped_and_counted_never_cut) {
  ASSERT_NO_FATAL_FAILURE(add_ipv6_client());
  ASSERT_NO_FATAL_FAILURE(start_echo(echo4_, *server4_, server4, python_echo_port));
  ASSERT_NO_FATAL_FAILURE(start_gate46(with_ipv6_lan()));
  const auto fake = fake_aaaa("v4only.gate46.test");
  ASSERT_TRUE(in(fake, "2001:2::/48")) << fake;
  // 65527 bytes is the largest IPv6 UDP payload, 65507 the largest IPv4 one: the bigger ones
  // cannot be sent on to the IPv4-only server (EMSGSIZE). They are dropped and counted, nothing
  // shorter is sent in their place, and the session goes on.
  const auto r = run_sizes(*client6_, fake, python_echo_port, {"100", "65527:none", "65508:none", "65507", "200"});
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  EXPECT_EQ(lines_of(r.out), (std::vector<std::string>{"100 ok", "65527 none", "65508 none", "65507 ok", "200 ok"}))
      << r.out;
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("udp_sessions"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("udp_dropped_send"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("udp_dropped_truncated"), 0U) << stop_log_;
  // Only what was relayed counts up (a slow echo may have drawn a retry of a small one).
  EXPECT_EQ(counters.at("udp_datagrams_up"), counters.at("udp_datagrams_down")) << stop_log_;
  EXPECT_EQ(counters.at("udp_bytes_up"), counters.at("udp_bytes_down")) << stop_log_;
  EXPECT_GE(counters.at("udp_bytes_up"), 100U + 65507 + 200) << stop_log_;
  EXPECT_LT(counters.at("udp_bytes_up"), 65508U + 65507) << stop_log_;
}

TEST_F(udp_relay, the_listeners_and_a_sessions_sockets_get_a_receive_buffer_for_bursts) {
  ASSERT_NO_FATAL_FAILURE(start_python_echo());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_a("echo6.gate46.test");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << fake;
  const auto r = run_flows(fake, python_echo_port, 1, 1);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  // gate46d asks 1 MiB (the default, about 90 datagrams of 1200 bytes, made it drop from 60
  // Mbit/s on a busy machine: tests/bench/udp_bench.sh); the kernel caps the request at
  // net.core.rmem_max and doubles it.
  const auto rmem_max = std::stoull(gw_->run_checked({"cat", "/proc/sys/net/core/rmem_max"}));
  const auto rmem_default = std::stoull(gw_->run_checked({"cat", "/proc/sys/net/core/rmem_default"}));
  const auto expected = 2 * std::min<std::uint64_t>(1U << 20U, rmem_max);
  if (expected <= rmem_default) {
    GTEST_SKIP() << "net.core.rmem_max " << rmem_max << " leaves nothing above the default to see";
  }
  // The two listeners on :7046, the session's reply socket (fake:7007 <-> the client) and its
  // upstream socket (to the server).
  // ss prints each socket's "skmem:(...,rbN,...)" on the line after it.
  const auto ss = gw_->run_checked({"ss", "-Huanmp"});
  const auto lines = lines_of(ss);
  std::size_t relay_sockets = 0;
  std::size_t big = 0;
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.find("gate46d") == std::string::npos ||
        (line.find(":7046 ") == std::string::npos && line.find(":7007 ") == std::string::npos)) {
      continue;
    }
    ++relay_sockets;
    const auto at = lines[i + 1].find(",rb");
    ASSERT_NE(at, std::string::npos) << lines[i + 1];
    if (std::stoull(lines[i + 1].substr(at + 3)) >= expected) {
      ++big;
    }
  }
  EXPECT_EQ(relay_sockets, 4U) << ss;
  EXPECT_EQ(big, 4U) << "rb >= " << expected << " wanted on each:\n" << ss;
  stop_gate46();
}

}  // namespace
