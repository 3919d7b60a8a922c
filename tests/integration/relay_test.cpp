// gate46d's transparent relay (component relay, issue 8) with the capture rules of the firewall
// component and the delegating DNS of the dns component: unmodified clients that only know the
// gateway as their router and resolver reach a server of the other family with plain curl.
//
//   client4 ns (IPv4 only)                 gw ns (gate46d)                          server ns
//   eth0 192.0.2.2/24           ---  lan0 192.0.2.1/24                 up0 203.0.113.1/24  --- eth0 203.0.113.2/24
//   default via 192.0.2.1                                                  2001:db8:2::1/64       2001:db8:2::2/64
//   nameserver 192.0.2.1                                                                          nginx :80 (both)
//   client6 ns (IPv6 only)                                                                        knotd (gate46.test.)
//   eth0 2001:db8:1::2/64       ---  lan1 2001:db8:1::1/64                                        sink.py :9000 (both)
//   default via 2001:db8:1::1
//   nameserver 2001:db8:1::1
//
// The gateway namespace does not forward: a client's packets reach the server only by being
// TPROXY'd to gate46d's transparent listener (tproxy.port 7046) and relayed from the gateway's
// own up0 addresses. The clients resolve through gate46's DNS (dns.mode translate): the
// IPv4-only client gets a fake A from 198.18.0.0/15 for the IPv6-only name, the IPv6-only
// client a fake AAAA from 2001:2::/48 for the IPv4-only name; the relay maps the fake address
// back to the name, resolves it upstream (knotd) and connects in the name's own family. nginx
// logs which of its addresses each request came to and from where: the family a flow took.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <random>
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
using steady = std::chrono::steady_clock;

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
// curl --max-time for one transfer; run_command's bound is a little longer.
constexpr int curl_max_time_s = 20;
constexpr auto curl_timeout = 25s;
// A refused flow (unmapped fake address, max_flows) is reset at once: well within this, where a
// silently dropped connection would hang until curl's own timeout.
constexpr auto fails_fast = 2s;

// Debian's python3 (a python3 earlier in PATH may be another).
constexpr const char* python = "/usr/bin/python3";

// The zone knotd serves, gate46d's upstream: single-family names for the web server.
namespace zone {
constexpr std::string_view v6_only = "v6only.gate46.test";  // AAAA 2001:db8:2::2
constexpr std::string_view v4_only = "v4only.gate46.test";  // A 203.0.113.2

knot_zone records() {
  knot_zone z;
  z.records = {
      {"v6only", "AAAA", "2001:db8:2::2"},  //
      {"v4only", "A", "203.0.113.2"},
  };
  return z;
}
}  // namespace zone

constexpr std::string_view server_v4 = "203.0.113.2";
constexpr std::string_view server_v6 = "2001:db8:2::2";
constexpr std::string_view gw_up_v4 = "203.0.113.1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";
constexpr std::string_view gw_lan_v4 = "192.0.2.1";
constexpr std::string_view gw_lan_v6 = "2001:db8:1::1";

// Fake addresses the DNS never handed out: every test starts with an empty mapping store.
constexpr std::string_view unmapped_v4 = "198.18.200.200";
constexpr std::string_view unmapped_v6 = "2001:2::dead";

// The port of sink.py on the server.
constexpr int sink_port = 9000;

// A TCP server that answers only once the client has half-closed: it reads until EOF, then
// sends "<sha256 of what it read> <length>\n" followed by everything it read, and closes. A relay
// that does not pass the client's FIN on leaves it waiting forever. Logs "PEER -> LOCAL" per
// connection (the family the relay used).
constexpr std::string_view sink_py = R"py(
import hashlib, socket, sys, threading

def serve(conn, peer, local):
    with conn:
        print('%s -> %s' % (peer, local), flush=True)
        data = bytearray()
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        conn.sendall(('%s %d\n' % (hashlib.sha256(data).hexdigest(), len(data))).encode() + bytes(data))

def accept_loop(sock):
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=serve, args=(conn, peer[0], conn.getsockname()[0]), daemon=True).start()

port = int(sys.argv[1])
threads = []
for family, address in ((socket.AF_INET, sys.argv[2]), (socket.AF_INET6, sys.argv[3])):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(128)
    t = threading.Thread(target=accept_loop, args=(s,), daemon=True)
    t.start()
    threads.append(t)
print('ready', flush=True)
for t in threads:
    t.join()
)py";

// The client of sink.py: resolves NAME in one family (through the namespace's resolver, that is
// gate46's DNS), sends N random bytes, shuts its write side down, reads the reply to EOF and
// checks it. Prints "ok REMOTE" (the address it connected to) or what was wrong; exit 0 only
// when the reply was whole and right.
constexpr std::string_view half_close_py = R"py(
import hashlib, os, socket, sys

family = socket.AF_INET if sys.argv[1] == '4' else socket.AF_INET6
name, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
address = socket.getaddrinfo(name, port, family, socket.SOCK_STREAM)[0][4]
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(address)
data = os.urandom(n)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
reply = bytearray()
while True:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    reply += chunk
s.close()
expected = ('%s %d\n' % (hashlib.sha256(data).hexdigest(), n)).encode() + data
if bytes(reply) == expected:
    print('ok', address[0], flush=True)
    sys.exit(0)
head = bytes(reply[:80])
print('mismatch: got %d bytes, expected %d; starts %r' % (len(reply), len(expected), head), flush=True)
sys.exit(1)
)py";

// Holds flows open for the max_flows test: TRANSPARENT connections to NAME:80 (resolved in one
// family through gate46's DNS, so to its fake address) and SOCKS connections through the SOCKS5
// server at PROXY to NAME:80, each proven end to end by one HTTP/1.1 keep-alive request. Prints
// "held N", waits (bounded) for the file RELEASE to appear, proves every held flow still works
// with a second request, closes them all and prints "released".
constexpr std::string_view holder_py = R"py(
import os, socket, sys, time

family = socket.AF_INET if sys.argv[1] == '4' else socket.AF_INET6
name, transparent, proxy, socks_count, release = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError('closed after %d of %d bytes' % (len(buf), n))
        buf += chunk
    return buf

def http_get(s):
    s.sendall(('GET /small.txt HTTP/1.1\r\nHost: %s\r\n\r\n' % name).encode())
    buf = b''
    while b'\r\n\r\n' not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError('closed in the headers: %r' % buf)
        buf += chunk
    head, body = buf.split(b'\r\n\r\n', 1)
    if not head.startswith(b'HTTP/1.1 200'):
        raise RuntimeError('status: %r' % head[:40])
    length = 0
    for line in head.split(b'\r\n')[1:]:
        k, v = line.split(b':', 1)
        if k.strip().lower() == b'content-length':
            length = int(v)
    body += recv_exact(s, length - len(body))
    return body

held = []
address = socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)[0][4]
for i in range(transparent):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(address)
    http_get(s)
    held.append(s)
    print('transparent', address[0], flush=True)
if socks_count:
    host, port = proxy.rsplit(':', 1)
    for i in range(socks_count):
        s = socket.create_connection((host.strip('[]'), int(port)), timeout=5)
        s.sendall(b'\x05\x01\x00')
        if recv_exact(s, 2) != b'\x05\x00':
            raise RuntimeError('socks method refused')
        s.sendall(b'\x05\x01\x00\x03' + bytes([len(name)]) + name.encode() + (80).to_bytes(2, 'big'))
        reply = recv_exact(s, 4)
        if reply[1] != 0:
            raise RuntimeError('socks reply %d' % reply[1])
        recv_exact(s, {1: 4, 4: 16}[reply[3]] + 2)
        http_get(s)
        held.append(s)
        print('socks', proxy, flush=True)
print('held', len(held), flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.02)
if not os.path.exists(release):
    print('never released', flush=True)
    sys.exit(1)
for s in held:
    http_get(s)
print('still working', len(held), flush=True)
for s in held:
    s.close()
print('released', flush=True)
)py";

// What the daemon runs with, per test.
struct daemon_config {
  std::string components = "dns,relay,firewall";
  std::optional<unsigned> max_flows;
};

class relay : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client4_.emplace("client4");
    client6_.emplace("client6");
    gw_.emplace("gw");
    server_.emplace("server");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24"}},  //
                 *client4_, {"eth0", {"192.0.2.2/24"}});
    connect_veth(*gw_, {"lan1", {"2001:db8:1::1/64"}},  //
                 *client6_, {"eth0", {"2001:db8:1::2/64"}});
    connect_veth(*gw_, {"up0", {"203.0.113.1/24", "2001:db8:2::1/64"}},  //
                 *server_, {"eth0", {"203.0.113.2/24", "2001:db8:2::2/64"}});
    // client4 has no IPv6 at all, not even link-local; client6 has no IPv4 address. Each knows
    // the gateway only as its router and its resolver, as a DHCP/RA client would.
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"});
    client4_->run_checked({"ip", "route", "add", "default", "via", std::string{gw_lan_v4}});
    client6_->run_checked({"ip", "-6", "route", "add", "default", "via", std::string{gw_lan_v6}});
    client4_->write_resolv_conf({std::string{gw_lan_v4}});
    client6_->write_resolv_conf({std::string{gw_lan_v6}});
    knot_.emplace(*server_, knot_options{{std::string{server_v4}, std::string{server_v6}}, 53, zone::records(), false});
    ASSERT_NO_FATAL_FAILURE(start_nginx());
  }

  void TearDown() override {
    if (gate46_ && gate46_->running()) {
      stop_gate46();
    }
  }

  // ---- the servers -----------------------------------------------------------------------

  void start_nginx() {
    const auto www = dir_.path() / "www";
    std::filesystem::create_directories(www / "upload");
    dir_.write_file("www/small.txt", small_text);
    big_ = dir_.write_file("www/big.bin", random_bytes(1U << 20U, 20240607));
    big_sha256_ = sha256_of({big_.string()}).at(0);
    ASSERT_NO_THROW(
        web_.emplace(*server_, dir_.path(),
                     web_server_options{{std::string{server_v4} + ":80", "[" + std::string{server_v6} + "]:80"},
                                        "    location /upload/ {\n      dav_methods PUT;\n      create_full_put_path "
                                        "on;\n      client_max_body_size 64m;\n    }\n",
                                        "  keepalive_timeout 60s;\n"},
                     "small.txt"));
  }

  void start_sink() {
    const auto script = dir_.write_file("sink.py", sink_py);
    auto& s = sink_.emplace(server_->command(
        {python, "-u", script.string(), std::to_string(sink_port), std::string{server_v4}, std::string{server_v6}}));
    ASSERT_TRUE(s.wait_for_log("ready", log_timeout)) << s.log_text();
  }

  static std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::string bytes(n, '\0');
    std::mt19937_64 random{seed};
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      const auto r = random();
      for (std::size_t j = 0; j < 8; ++j) {
        bytes[i + j] = static_cast<char>((r >> (8 * j)) & 0xffU);
      }
    }
    return bytes;
  }

  [[nodiscard]] std::string access_log() const { return web_->access_log(); }
  [[nodiscard]] std::vector<std::string> requests_seen(std::size_t expected) const {
    return web_->requests_seen(expected);
  }

  // ---- gate46d ---------------------------------------------------------------------------

  void write_config(const daemon_config& c) {
    std::string text =
        "[daemon]\n"
        "threads = 2\n"
        "\n"
        "[lan]\n"
        "interfaces = [\"lan0\", \"lan1\"]\n"
        "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
        "\n"
        "[dns]\n"
        "listen = [\"192.0.2.1:53\", \"[2001:db8:1::1]:53\"]\n"
        "upstreams = [\"203.0.113.2\"]\n"
        "mode = \"translate\"\n"
        "upstream_timeout_ms = 1000\n"
        "\n"
        "[gateway]\n"
        "prefer_family = \"ipv6\"\n"
        "happy_eyeballs_delay_ms = 250\n"
        "connect_timeout = 5\n";
    if (c.max_flows) {
      text += "max_flows = " + std::to_string(*c.max_flows) + "\n";
    }
    text +=
        "\n"
        "[tproxy]\n"
        "port = 7046\n" +
        private_state_sections(dir_.path()) +
        "\n"
        "[log]\n"
        "level = \"info\"\n";
    config_ = dir_.write_file("gate46.toml", text);
  }

  // gate46d with the capture rules installed and the transparent listener up; with socks among
  // the components, also once SOCKS5 is served on both LAN addresses.
  void start_gate46(const daemon_config& c = {}) {
    write_config(c);
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", c.components}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout)) << d.log_text();
    ASSERT_TRUE(d.wait_for_log("transparent relay on", log_timeout)) << d.log_text();
    if (c.components.find("socks") != std::string::npos) {
      for (const char* at : {"SOCKS5 on 192.0.2.1:1080", "SOCKS5 on [2001:db8:1::1]:1080"}) {
        ASSERT_TRUE(d.wait_for_log(at, log_timeout)) << d.log_text();
      }
    }
    if (c.components.find("firewall") == std::string::npos) {
      return;
    }
    const auto table = gw_->run({"nft", "list", "table", "inet", "gate46"});
    ASSERT_TRUE(table.ok()) << table.err << d.log_text();
    ASSERT_NE(table.out.find("tproxy ip to :7046"), std::string::npos) << table.out;
    ASSERT_NE(table.out.find("tproxy ip6 to :7046"), std::string::npos) << table.out;
  }

  // SIGTERM, a clean exit, and the relay component's counters as it logged them at stop (the
  // other components' lines stay in stop_log_).
  std::map<std::string, std::uint64_t> stop_gate46() {
    const auto mark = gate46_->log_mark();
    EXPECT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    stop_log_ = gate46_->log_text(mark);
    EXPECT_NE(stop_log_.find("gate46d stopped"), std::string::npos) << stop_log_;
    auto counters = component_counters(stop_log_, "relay");
    EXPECT_FALSE(counters.empty()) << "no relay counters at stop: " << stop_log_;
    return counters;
  }

  // ---- clients ---------------------------------------------------------------------------

  // curl in `ns` with `args` (options and the URL), body to stdout. No proxy options: the
  // clients only have the gateway as router and resolver.
  static command_result curl(const netns& ns, const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = curl_timeout) {
    std::vector<std::string> argv{"curl", "-sS", "--fail", "--max-time", std::to_string(curl_max_time_s)};
    argv.insert(argv.end(), args.begin(), args.end());
    return ns.run(argv, timeout);
  }

  static std::string url(std::string_view host, std::string_view path = "/small.txt", int port = 80) {
    return gate46::testing::url(host, path, port);
  }

  // The body and the address curl connected to ("-w" after the body, split off again).
  struct fetched {
    command_result result;
    std::string body;
    std::string remote_ip;
  };
  static fetched fetch(const netns& ns, const std::string& target) {
    static constexpr std::string_view marker = "\n@remote_ip=";
    fetched f{curl(ns, {"-w", std::string{marker} + "%{remote_ip}", target}), "", ""};
    const auto at = f.result.out.rfind(marker);
    if (at != std::string::npos) {
      f.body = f.result.out.substr(0, at);
      f.remote_ip = f.result.out.substr(at + marker.size());
    }
    return f;
  }

  // The address `name` resolves to for `type` (A/AAAA) through the namespace's resolver
  // (resolv.conf: gate46's DNS). Empty if dig gave none.
  static std::string resolve(const netns& ns, std::string_view name, const char* type) {
    const auto r = ns.run({"dig", "+short", "+time=5", "+tries=1", std::string{name}, type}, 15s);
    const auto lines = lines_of(r.out);
    return r.ok() && !lines.empty() ? lines.front() : "";
  }

  [[nodiscard]] static bool in(std::string_view address, const char* range) {
    const auto a = ip_address::parse(address);
    return a && cidr::parse(range)->contains(*a);
  }

  [[nodiscard]] std::vector<std::string> sha256_of(const std::vector<std::string>& files) const {
    std::vector<std::string> argv{"sha256sum"};
    argv.insert(argv.end(), files.begin(), files.end());
    const auto out = run_checked(argv, 30s);
    std::vector<std::string> sums;
    for (const auto& line : lines_of(out)) {
      const auto words = split_words(line);
      if (!words.empty()) {
        sums.push_back(words[0]);
      }
    }
    return sums;
  }

  // A connection the gateway refuses: reset at once. curl says "Connection reset by peer" while
  // receiving (56) or sending (55), or fails to connect at all (7); never a timeout, never a
  // clean empty reply (52, a FIN instead of a reset).
  static void expect_reset_fast(const netns& ns, const std::string& target) {
    const auto start = steady::now();
    const auto r = curl(ns, {target});
    const auto took = steady::now() - start;
    EXPECT_FALSE(r.timed_out) << target;
    EXPECT_TRUE(r.status == 56 || r.status == 55 || r.status == 7) << target << ": status " << r.status << " " << r.err;
    EXPECT_EQ(r.out, "") << target;
    EXPECT_LT(took, fails_fast) << target << " took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms: " << r.err;
  }

  static constexpr std::string_view small_text = "hello through the transparent relay\n";

  temp_dir dir_{"gate46-relay"};
  std::filesystem::path config_;
  std::filesystem::path big_;
  std::string big_sha256_;
  std::string stop_log_;
  std::optional<netns> client4_;
  std::optional<netns> client6_;
  std::optional<netns> gw_;
  std::optional<netns> server_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<web_server> web_;
  std::optional<process> sink_;
  std::optional<process> gate46_;
};

// ---- 1. across families with unmodified clients (RFC 3089 with the client side in the network) -

TEST_F(relay, ipv4_only_client_reaches_an_ipv6_only_server_with_plain_curl) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  // The name has no A record: gate46's DNS answers a fake one from the IPv4 pool.
  const auto fake = resolve(*client4_, zone::v6_only, "A");
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << "A " << zone::v6_only << ": '" << fake << "'";

  const auto f = fetch(*client4_, url(zone::v6_only));
  ASSERT_TRUE(f.result.ok()) << f.result.status << " " << f.result.err << gate46_->log_text();
  EXPECT_EQ(f.body, small_text);
  EXPECT_EQ(f.remote_ip, fake) << "curl connected to the fake address the DNS answered";

  // nginx saw it at its IPv6 address, from the gateway's.
  const auto seen = requests_seen(1);
  ASSERT_EQ(seen.size(), 1U) << access_log();
  EXPECT_EQ(split_words(seen[0]),
            (std::vector<std::string>{std::string{gw_up_v6}, std::string{server_v6}, "/small.txt", "200"}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("unmapped"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("connect_failures"), 0U) << stop_log_;
  EXPECT_GE(counters.at("bytes_down"), small_text.size()) << stop_log_;
}

TEST_F(relay, ipv6_only_client_reaches_an_ipv4_only_server_with_plain_curl) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = resolve(*client6_, zone::v4_only, "AAAA");
  ASSERT_TRUE(in(fake, "2001:2::/48")) << "AAAA " << zone::v4_only << ": '" << fake << "'";

  const auto f = fetch(*client6_, url(zone::v4_only));
  ASSERT_TRUE(f.result.ok()) << f.result.status << " " << f.result.err << gate46_->log_text();
  EXPECT_EQ(f.body, small_text);
  ASSERT_TRUE(ip_address::parse(f.remote_ip)) << f.remote_ip;
  EXPECT_EQ(*ip_address::parse(f.remote_ip), *ip_address::parse(fake));

  const auto seen = requests_seen(1);
  ASSERT_EQ(seen.size(), 1U) << access_log();
  EXPECT_EQ(split_words(seen[0]),
            (std::vector<std::string>{std::string{gw_up_v4}, std::string{server_v4}, "/small.txt", "200"}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 1U) << stop_log_;
  EXPECT_EQ(counters.at("connect_failures"), 0U) << stop_log_;
}

// ---- 2. volume: large transfers both ways, many flows at once ----------------------------------

TEST_F(relay, large_downloads_and_uploads_arrive_intact_both_families) {
  // 32 MiB of random bytes, served and uploaded.
  constexpr std::size_t size = 32U << 20U;
  const auto large = dir_.write_file("www/large.bin", random_bytes(size, 46));
  const auto large_sha256 = sha256_of({large.string()}).at(0);
  ASSERT_NO_FATAL_FAILURE(start_gate46());

  struct leg {
    const netns* client;
    std::string_view name;
    std::string_view server_address;  // where nginx must see it arrive
  };
  int i = 0;
  for (const auto& l : {leg{&*client4_, zone::v6_only, server_v6}, leg{&*client6_, zone::v4_only, server_v4}}) {
    SCOPED_TRACE(std::string{l.name});
    const auto down = (dir_ / ("down-" + std::to_string(i) + ".bin")).string();
    const auto got = curl(*l.client, {"-o", down, url(l.name, "/large.bin")});
    ASSERT_TRUE(got.ok()) << got.status << " " << got.err;
    EXPECT_EQ(sha256_of({down}), std::vector<std::string>{large_sha256});
    // Upload: nginx (WebDAV PUT) stores the body, 201 Created.
    const auto up_path = "/upload/up-" + std::to_string(i) + ".bin";
    const auto put = curl(*l.client, {"-T", large.string(), url(l.name, up_path)});
    ASSERT_TRUE(put.ok()) << put.status << " " << put.err;
    EXPECT_EQ(sha256_of({(dir_.path() / "www" / up_path.substr(1)).string()}), std::vector<std::string>{large_sha256});
    ++i;
  }
  const auto seen = requests_seen(4);
  ASSERT_EQ(seen.size(), 4U) << access_log();
  EXPECT_EQ(split_words(seen[0]),
            (std::vector<std::string>{std::string{gw_up_v6}, std::string{server_v6}, "/large.bin", "200"}));
  EXPECT_EQ(split_words(seen[1]),
            (std::vector<std::string>{std::string{gw_up_v6}, std::string{server_v6}, "/upload/up-0.bin", "201"}));
  EXPECT_EQ(split_words(seen[2]),
            (std::vector<std::string>{std::string{gw_up_v4}, std::string{server_v4}, "/large.bin", "200"}));
  EXPECT_EQ(split_words(seen[3]),
            (std::vector<std::string>{std::string{gw_up_v4}, std::string{server_v4}, "/upload/up-1.bin", "201"}));

  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 4U) << stop_log_;
  EXPECT_GE(counters.at("bytes_up"), 2 * size) << stop_log_;
  EXPECT_GE(counters.at("bytes_down"), 2 * size) << stop_log_;
  // Bulk data went through splice(), not through userspace buffers; every relayed byte went one
  // of the two ways (the engine's counters are shared with SOCKS CONNECT, not running here).
  EXPECT_GT(counters.at("spliced_bytes"), 0U) << stop_log_;
  EXPECT_GE(counters.at("spliced_bytes"), 2 * size) << stop_log_;
  EXPECT_EQ(counters.at("spliced_bytes") + counters.at("buffered_bytes"),
            counters.at("bytes_up") + counters.at("bytes_down"))
      << stop_log_;
  EXPECT_EQ(counters.at("resets"), 0U) << stop_log_;
}

TEST_F(relay, a_hundred_parallel_flows_from_each_family_arrive_intact) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  constexpr std::size_t transfers = 100;
  constexpr std::size_t total = 2 * transfers;
  const auto out = dir_.path() / "parallel";
  std::filesystem::create_directories(out);
  // Each client: 100 transfers of 1 MiB, all at once, one connection each ("Connection: close"
  // keeps curl from reusing one). Both clients run at the same time: 200 flows in the relay.
  auto argv_for = [&](std::string_view name, const std::string& prefix, std::vector<std::string>& files) {
    std::vector<std::string> argv{"curl",           "-sS", "--fail", "--max-time",       "40", "--parallel",
                                  "--parallel-max", "100", "-H",     "Connection: close"};
    for (std::size_t i = 0; i < transfers; ++i) {
      files.push_back((out / (prefix + std::to_string(i) + ".bin")).string());
      argv.insert(argv.end(), {"-o", files.back(), url(name, "/big.bin?" + prefix + std::to_string(i))});
    }
    return argv;
  };
  std::vector<std::string> files4;
  std::vector<std::string> files6;
  const auto start = steady::now();
  process from6{client6_->command(argv_for(zone::v4_only, "six-", files6))};
  const auto r4 = client4_->run(argv_for(zone::v6_only, "four-", files4), 45s);
  const auto status6 = from6.wait_exit(45s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  ASSERT_TRUE(r4.ok()) << r4.status << " " << r4.err;
  ASSERT_EQ(status6, std::optional<int>{0}) << from6.log_text();

  const auto sums4 = sha256_of(files4);
  const auto sums6 = sha256_of(files6);
  EXPECT_EQ(static_cast<std::size_t>(std::count(sums4.begin(), sums4.end(), big_sha256_)), transfers);
  EXPECT_EQ(static_cast<std::size_t>(std::count(sums6.begin(), sums6.end(), big_sha256_)), transfers);
  // Each its own request, in the family of its name.
  const auto seen = requests_seen(total);
  EXPECT_EQ(seen.size(), total) << access_log();
  for (const auto& line : seen) {
    const auto w = split_words(line);
    ASSERT_EQ(w.size(), 4U) << line;
    EXPECT_EQ(w[3], "200") << line;
    if (w[2].find("?four-") != std::string::npos) {
      EXPECT_EQ(w[0] + " " + w[1], std::string{gw_up_v6} + " " + std::string{server_v6}) << line;
    } else {
      EXPECT_EQ(w[0] + " " + w[1], std::string{gw_up_v4} + " " + std::string{server_v4}) << line;
    }
  }
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), total) << stop_log_;
  EXPECT_EQ(counters.at("connect_failures"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("refused_max_flows"), 0U) << stop_log_;
  EXPECT_GE(counters.at("bytes_down"), total << 20U) << stop_log_;
  // Spliced where a pipe was free, buffered where the per-thread pool ran dry: every byte once.
  EXPECT_EQ(counters.at("spliced_bytes") + counters.at("buffered_bytes"),
            counters.at("bytes_up") + counters.at("bytes_down"))
      << stop_log_;
  EXPECT_EQ(counters.at("resets"), 0U) << stop_log_;
  std::cout << total << " x 1 MiB through the transparent relay in " << took.count() << " ms\n";
}

// ---- 3. refusals: reset at once, and the daemon goes on serving --------------------------------

TEST_F(relay, an_unmapped_fake_address_is_reset_at_once_in_both_families) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  // Inside the pools, captured by the rules, but the DNS never handed them out (the store is
  // new): nothing to map them back to.
  expect_reset_fast(*client4_, url(unmapped_v4));
  expect_reset_fast(*client6_, url(unmapped_v6));
  // Another port of the same address: the same.
  expect_reset_fast(*client4_, url(unmapped_v4, "/", 443));

  // Nothing reached the web server; the daemon still serves mapped names in both families.
  EXPECT_TRUE(requests_seen(0).empty()) << access_log();
  const auto good4 = curl(*client4_, {url(zone::v6_only)});
  ASSERT_TRUE(good4.ok()) << good4.err;
  EXPECT_EQ(good4.out, small_text);
  const auto good6 = curl(*client6_, {url(zone::v4_only)});
  ASSERT_TRUE(good6.ok()) << good6.err;
  EXPECT_EQ(good6.out, small_text);

  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("unmapped"), 3U) << stop_log_;
  EXPECT_EQ(counters.at("flows"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("connect_failures"), 0U) << stop_log_;
  EXPECT_EQ(requests_seen(2).size(), 2U) << access_log();
}

TEST_F(relay, a_target_port_that_refuses_resets_the_client_at_once) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  // The names are mapped and resolve, but nothing listens on port 81 of the web server: the
  // gateway's connect is refused, and the client learns it from a reset, not from a timeout.
  expect_reset_fast(*client4_, url(zone::v6_only, "/", 81));
  expect_reset_fast(*client6_, url(zone::v4_only, "/", 81));
  const auto good = curl(*client4_, {url(zone::v6_only)});
  ASSERT_TRUE(good.ok()) << good.err;
  EXPECT_EQ(good.out, small_text);
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("connect_failures"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("unmapped"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("flows"), 1U) << stop_log_;
}

TEST_F(relay, without_the_capture_rules_a_connection_straight_to_the_port_is_reset_as_not_fake) {
  // No firewall component: nothing drops unmarked connections to tproxy.port, so a client can
  // reach the listener directly. Its destination is the gateway's own address, no fake one.
  ASSERT_NO_FATAL_FAILURE(start_gate46({"dns,relay", {}}));
  expect_reset_fast(*client4_, url(gw_lan_v4, "/", 7046));
  expect_reset_fast(*client6_, url(gw_lan_v6, "/", 7046));
  EXPECT_TRUE(requests_seen(0).empty()) << access_log();
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("not_fake"), 2U) << stop_log_;
  EXPECT_EQ(counters.at("unmapped"), 0U) << stop_log_;
  EXPECT_EQ(counters.at("flows"), 0U) << stop_log_;
}

TEST_F(relay, past_max_flows_new_connections_are_reset_transparent_and_socks_together) {
  ASSERT_NO_FATAL_FAILURE(start_gate46({"dns,socks,relay,firewall", 3}));
  // Two transparent flows from the IPv4 client and one SOCKS flow: the three the limit allows.
  const auto script = dir_.write_file("holder.py", holder_py);
  const auto release = dir_ / "release";
  process holder{client4_->command(
      {python, "-u", script.string(), "4", std::string{zone::v6_only}, "2", "192.0.2.1:1080", "1", release.string()})};
  ASSERT_TRUE(holder.wait_for_log("held 3", 20s)) << holder.log_text() << gate46_->log_text();
  ASSERT_TRUE(in(split_words(lines_of(holder.log_text()).at(0)).at(1), "198.18.0.0/15")) << holder.log_text();

  // A fourth: transparent from either family, or SOCKS, is reset at once.
  expect_reset_fast(*client4_, url(zone::v6_only));
  expect_reset_fast(*client6_, url(zone::v4_only));
  {
    const auto start = steady::now();
    const auto socks = curl(*client4_, {"--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
    const auto took = steady::now() - start;
    EXPECT_FALSE(socks.ok()) << socks.out;
    EXPECT_FALSE(socks.timed_out);
    EXPECT_EQ(socks.out, "");
    EXPECT_LT(took, fails_fast) << socks.err;
  }

  // The held flows are untouched; once they close, new connections work again.
  dir_.write_file("release", "");
  ASSERT_TRUE(holder.wait_for_log("released", 20s)) << holder.log_text();
  EXPECT_EQ(holder.wait_exit(10s), std::optional<int>{0}) << holder.log_text();
  EXPECT_NE(holder.log_text().find("still working 3"), std::string::npos) << holder.log_text();
  // The gateway frees a slot when both sides of a flow have closed: shortly after, not at once.
  command_result again;
  const bool works = wait_until(
      [&] {
        again = curl(*client4_, {url(zone::v6_only)});
        return again.ok();
      },
      10s, 200ms);
  ASSERT_TRUE(works) << again.status << " " << again.err;
  EXPECT_EQ(again.out, small_text);
  const auto again6 = curl(*client6_, {url(zone::v4_only)});
  ASSERT_TRUE(again6.ok()) << again6.err;
  const auto socks_again = curl(*client4_, {"--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
  ASSERT_TRUE(socks_again.ok()) << socks_again.err;

  const auto counters = stop_gate46();
  // The transparent fourths of both families (and any retry while the slots were freed).
  EXPECT_GE(counters.at("refused_max_flows"), 2U) << stop_log_;
  // The held two and the two after the release.
  EXPECT_EQ(counters.at("flows"), 4U) << stop_log_;
  const auto socks = component_counters(stop_log_, "socks");
  ASSERT_FALSE(socks.empty()) << stop_log_;
  EXPECT_EQ(socks.at("refused_max_flows"), 1U) << stop_log_;
  EXPECT_EQ(socks.at("flows"), 2U) << stop_log_;
}

// ---- 4. TCP semantics through the relay --------------------------------------------------------

TEST_F(relay, a_half_closed_client_still_gets_the_whole_reply) {
  ASSERT_NO_FATAL_FAILURE(start_sink());
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto script = dir_.write_file("half_close.py", half_close_py);
  const auto mark = sink_->log_mark();
  // The sink replies only after the client's FIN has reached it, with a sum of what it got and
  // all of it back: 1 MiB each way, after the half-close.
  const auto r4 = client4_->run(
      {python, "-u", script.string(), "4", std::string{zone::v6_only}, std::to_string(sink_port), "1048576"}, 20s);
  ASSERT_TRUE(r4.ok()) << r4.out << r4.err << sink_->log_text();
  ASSERT_TRUE(in(split_words(r4.out).at(1), "198.18.0.0/15")) << r4.out;
  const auto r6 = client6_->run(
      {python, "-u", script.string(), "6", std::string{zone::v4_only}, std::to_string(sink_port), "1048576"}, 20s);
  ASSERT_TRUE(r6.ok()) << r6.out << r6.err << sink_->log_text();
  ASSERT_TRUE(in(split_words(r6.out).at(1), "2001:2::/48")) << r6.out;
  // Across families, from the gateway's addresses.
  const auto seen = lines_of(sink_->log_text(mark));
  EXPECT_EQ(seen, (std::vector<std::string>{std::string{gw_up_v6} + " -> " + std::string{server_v6},
                                            std::string{gw_up_v4} + " -> " + std::string{server_v4}}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 2U) << stop_log_;
  EXPECT_GE(counters.at("bytes_up"), 2U << 20U) << stop_log_;
  EXPECT_GE(counters.at("bytes_down"), 2U << 20U) << stop_log_;
}

TEST_F(relay, gate46ctl_flows_shows_a_captured_flow_with_its_fake_address_name_and_real_target) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = resolve(*client6_, zone::v4_only, "AAAA");
  ASSERT_TRUE(in(fake, "2001:2::/48")) << fake;
  // A plain client (no proxy, no idea of gate46) that keeps its connection after one exchange.
  const auto script = dir_.write_file("hold.py", R"(import socket, sys, time
s = socket.create_connection((sys.argv[1], 80))
s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
s.recv(65536)
time.sleep(60)
)");
  process held{client6_->command({python, "-u", script.string(), fake})};
  const auto socket = (dir_.path() / "control.sock").string();
  nlohmann::json flows;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto r = run_command({GATE46CTL_PATH, "flows", "--json", "--socket", socket});
        flows = nlohmann::json::parse(r.out).at("flows");
        return flows.size() == 1 && flows[0].at("bytes_down").get<std::uint64_t>() > 0;
      },
      log_timeout, 100ms))
      << flows;
  const auto& f = flows[0];
  EXPECT_EQ(f.at("component"), "relay");
  EXPECT_EQ(f.at("client").get<std::string>().rfind("[2001:db8:1::2]:", 0), 0U) << f;
  EXPECT_EQ(f.at("destination"), "[" + fake + "]:80") << f;
  EXPECT_EQ(f.at("name"), std::string{zone::v4_only} + ".") << f;
  EXPECT_EQ(f.at("target"), std::string{server_v4} + ":80") << f;
  EXPECT_GT(f.at("bytes_up").get<std::uint64_t>(), 0U) << f;
  // The store's side of the same story: the mapping the DNS answer made, held by the flow.
  const auto mapping =
      nlohmann::json::parse(run_checked({GATE46CTL_PATH, "map", "get", fake, "--json", "--config", config_.string()}));
  EXPECT_EQ(mapping.at("mapping").at("name"), std::string{zone::v4_only} + ".") << mapping;
  EXPECT_EQ(mapping.at("mapping").at("held"), true) << mapping;
  ASSERT_TRUE(held.signal(SIGKILL));
  EXPECT_TRUE(wait_until(
      [&] {
        return nlohmann::json::parse(run_command({GATE46CTL_PATH, "flows", "--json", "--socket", socket}).out)
            .at("flows")
            .empty();
      },
      log_timeout, 100ms));
}

}  // namespace
