// gate46d's SOCKS5 server (component socks, issue 7) between single-family clients and a
// dual-stack web server, driven with real curl (--socks5, --socks5-hostname, -U) and a small
// python client for the commands curl never sends:
//
//   client4 ns (IPv4 only)                 gw ns (gate46d)                          server ns
//   eth0 192.0.2.2/24           ---  lan0 192.0.2.1/24                 up0 203.0.113.1/24  --- eth0 203.0.113.2/24
//        192.0.2.130/24 (password)        198.51.100.1/24                  2001:db8:2::1/64       2001:db8:2::2/64
//        198.51.100.2/24 (outsider)                                                             nginx :80 (both)
//   client6 ns (IPv6 only)                                                                      knotd (gate46.test.)
//   eth0 2001:db8:1::2/64       ---  lan1 2001:db8:1::1/64
//
// Nothing routes between the clients and the server: the only way across is gate46d, which
// resolves names through knotd (dns.upstreams) and connects in the destination's family.
// lan.networks holds 192.0.2.0/24 and 2001:db8:1::/64 only; [[gateway.socks_network]] puts
// 192.0.2.128/25 behind a password (first match wins), so the same client namespace is a
// no-auth client from 192.0.2.2 and a password client from 192.0.2.130. nginx logs which of its
// addresses each request came to, and from where: the family a flow really took upstream.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
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
constexpr int curl_max_time_s = 10;
constexpr auto curl_timeout = 15s;
// gateway.connect_timeout: the unreachable target's reply comes after this.
constexpr int connect_timeout_s = 2;
// curl's exit status for every SOCKS failure (CURLE_PROXY).
constexpr int curle_proxy = 97;

// Debian's python3 (a python3 earlier in PATH may be another).
constexpr const char* python = "/usr/bin/python3";

// The zone knotd serves, gate46d's upstream. Its own test_zone addresses live elsewhere; these
// point at the web server and at places no flow may go.
namespace zone {
constexpr std::string_view v6_only = "v6only.gate46.test";  // AAAA 2001:db8:2::2
constexpr std::string_view v4_only = "v4only.gate46.test";  // A 203.0.113.2
constexpr std::string_view dual = "dual.gate46.test";       // both
constexpr std::string_view loop = "loop.gate46.test";       // A 127.0.0.1
constexpr std::string_view loop6 = "loop6.gate46.test";     // AAAA ::1
constexpr std::string_view self = "self.gate46.test";       // A 192.0.2.1: the gateway itself
constexpr std::string_view in_pool = "inpool.gate46.test";  // A 198.18.0.10: into our own pool
constexpr std::string_view nonexistent = "nonexistent.gate46.test";

knot_zone records() {
  knot_zone z;
  z.records = {
      {"v6only", "AAAA", "2001:db8:2::2"},  //
      {"v4only", "A", "203.0.113.2"},       //
      {"dual", "A", "203.0.113.2"},         //
      {"dual", "AAAA", "2001:db8:2::2"},    //
      {"loop", "A", "127.0.0.1"},           //
      {"loop6", "AAAA", "::1"},             //
      {"self", "A", "192.0.2.1"},           //
      {"inpool", "A", "198.18.0.10"},
  };
  return z;
}
}  // namespace zone

constexpr std::string_view server_v4 = "203.0.113.2";
constexpr std::string_view server_v6 = "2001:db8:2::2";
constexpr std::string_view gw_up_v4 = "203.0.113.1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";

// The SOCKS requests curl cannot make: a BIND towards loopback, UDP ASSOCIATE, an unknown
// command, an unknown address type. Prints one line per request: "NAME rep=N closed=1" (the
// reply code, and whether gate46d closed the connection within half a second of it).
constexpr std::string_view socks_py = R"py(
import socket, sys

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf

def request(server, port, name, body):
    s = socket.create_connection((server, port), timeout=5)
    s.sendall(b'\x05\x01\x00')                 # VER 5, NMETHODS 1, no authentication
    selection = recv_exact(s, 2)
    if selection != b'\x05\x00':
        print(name, 'selection=' + selection.hex(), flush=True)
        return
    s.sendall(body)
    reply = recv_exact(s, 10)                  # VER REP RSV ATYP(1) BND.ADDR(4) BND.PORT(2)
    s.settimeout(0.5)
    try:
        closed = 1 if s.recv(1) == b'' else 0
    except ConnectionResetError:
        closed = 1
    except socket.timeout:
        closed = 0
    rep = reply[1] if len(reply) >= 2 else -1
    print('%s rep=%d closed=%d len=%d' % (name, rep, closed, len(reply)), flush=True)

server, port = sys.argv[1], int(sys.argv[2])
ipv4_any = b'\x01' + b'\x00' * 4 + b'\x00\x00'  # ATYP 1, 0.0.0.0, port 0
request(server, port, 'bind-loopback', b'\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x15')
request(server, port, 'udp-associate', b'\x05\x03\x00' + ipv4_any)
request(server, port, 'command-9', b'\x05\x09\x00' + ipv4_any)
request(server, port, 'atyp-5', b'\x05\x01\x00\x05' + b'\x00' * 6)
)py";

// What the socks_network list looks like for a test.
enum class client_networks {
  defaults,       // none configured: each of lan.networks, no authentication
  with_password,  // 192.0.2.128/25 password, then lan.networks without
};

struct daemon_config {
  client_networks networks = client_networks::defaults;
  std::string user_hash;  // [[gateway.user]] alice, when not empty
};

// The SOCKS5 reply code curl reports for a refused CONNECT ("Can't complete SOCKS5 connection
// to HOST. (N)"), or -1 when it printed none.
int socks_reply_in(const std::string& curl_stderr) {
  // Plain string search: <regex> trips g++ 12's -Wmaybe-uninitialized under ASan.
  const auto at = curl_stderr.find("SOCKS5 connection to ");
  if (at == std::string::npos) {
    return -1;
  }
  const auto line_end = curl_stderr.find('\n', at);
  const auto line = curl_stderr.substr(at, line_end == std::string::npos ? std::string::npos : line_end - at);
  const auto open = line.rfind('(');
  const auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close <= open + 1) {
    return -1;
  }
  const auto digits = line.substr(open + 1, close - open - 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  return std::stoi(digits);
}

class socks : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client4_.emplace("client4");
    client6_.emplace("client6");
    gw_.emplace("gw");
    server_.emplace("server");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "198.51.100.1/24"}},  //
                 *client4_, {"eth0", {"192.0.2.2/24", "192.0.2.130/24", "198.51.100.2/24"}});
    connect_veth(*gw_, {"lan1", {"2001:db8:1::1/64"}},  //
                 *client6_, {"eth0", {"2001:db8:1::2/64"}});
    connect_veth(*gw_, {"up0", {"203.0.113.1/24", "2001:db8:2::1/64"}},  //
                 *server_, {"eth0", {"203.0.113.2/24", "2001:db8:2::2/64"}});
    // client4 has no IPv6 at all, not even link-local; client6 has no IPv4 address.
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"});
    // On the gateway: 203.0.113.192/26 is an unreachable route (connect fails at once with
    // EHOSTUNREACH); 2001:db8:99::/48 has no route at all (ENETUNREACH).
    gw_->run_checked({"ip", "route", "add", "unreachable", "203.0.113.192/26"});
    knot_.emplace(*server_, knot_options{{std::string{server_v4}, std::string{server_v6}}, 53, zone::records(), false});
    start_nginx();
  }

  void TearDown() override {
    if (gate46_ && gate46_->running()) {
      stop_gate46();
    }
  }

  // ---- the web server --------------------------------------------------------------------

  void start_nginx() {
    const auto www = dir_.path() / "www";
    std::filesystem::create_directories(www);
    dir_.write_file("www/small.txt", small_text);
    // 1 MiB of random bytes: a transfer that spans many reads and writes each way.
    std::string big(1U << 20U, '\0');
    std::mt19937_64 random{20240607};
    for (auto& c : big) {
      c = static_cast<char>(random() & 0xffU);
    }
    big_ = dir_.write_file("www/big.bin", big);
    big_sha256_ = sha256_of({big_.string()}).at(0);
    ASSERT_NO_THROW(web_.emplace(
        *server_, dir_.path(),
        web_server_options{{std::string{server_v4} + ":80", "[" + std::string{server_v6} + "]:80"}, "", ""},
        "small.txt"));
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
        "upstream_timeout_ms = 1000\n"
        "\n"
        "[gateway]\n"
        "prefer_family = \"ipv6\"\n"
        "happy_eyeballs_delay_ms = 250\n"
        "connect_timeout = " +
        std::to_string(connect_timeout_s) + "\n";
    if (c.networks == client_networks::with_password) {
      text +=
          "\n[[gateway.socks_network]]\ncidr = \"192.0.2.128/25\"\nauth = \"password\"\n"
          "\n[[gateway.socks_network]]\ncidr = \"192.0.2.0/24\"\nauth = \"none\"\n"
          "\n[[gateway.socks_network]]\ncidr = \"2001:db8:1::/64\"\nauth = \"none\"\n";
    }
    if (!c.user_hash.empty()) {
      text += "\n[[gateway.user]]\nname = \"alice\"\nhash = \"" + c.user_hash + "\"\n";
    }
    text += private_state_sections(dir_.path()) +
            "\n"
            "[log]\n"
            "level = \"info\"\n";
    config_ = dir_.write_file("gate46.toml", text);
  }

  // gate46d with `components` ("socks" or "dns,socks"), once it serves SOCKS5 on both LAN
  // addresses (the default socks_listen: the address watcher's lan0 and lan1 addresses).
  void start_gate46(const std::string& components = "socks", const daemon_config& c = {}) {
    write_config(c);
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", components}));
    std::string shown = components;
    std::replace(shown.begin(), shown.end(), ',', ' ');
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout)) << d.log_text();
    for (const char* at :
         {"SOCKS5 on 192.0.2.1:1080", "SOCKS5 on [2001:db8:1::1]:1080", "SOCKS5 on 198.51.100.1:1080"}) {
      ASSERT_TRUE(d.wait_for_log(at, log_timeout)) << d.log_text();
    }
  }

  // SIGTERM, a clean exit, and the socks component's counters as it logged them at stop.
  std::map<std::string, std::uint64_t> stop_gate46() {
    const auto mark = gate46_->log_mark();
    EXPECT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    const auto log = gate46_->log_text(mark);
    EXPECT_NE(log.find("gate46d stopped"), std::string::npos) << log;
    auto counters = component_counters(log, "socks");
    EXPECT_FALSE(counters.empty()) << log;
    return counters;
  }

  // ---- clients ---------------------------------------------------------------------------

  // curl in `ns` with `args` (the proxy options and the URL), body to stdout.
  static command_result curl(const netns& ns, const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = curl_timeout) {
    std::vector<std::string> argv{"curl", "-sS", "--fail", "--max-time", std::to_string(curl_max_time_s)};
    argv.insert(argv.end(), args.begin(), args.end());
    return ns.run(argv, timeout);
  }

  static std::string url(std::string_view host, std::string_view path = "/small.txt", int port = 80) {
    return gate46::testing::url(host, path, port);
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

  // The reply code a refused CONNECT got: curl's exit status must be 97 (CURLE_PROXY).
  static int refused_with(const command_result& r) {
    EXPECT_EQ(r.status, curle_proxy) << r.out << r.err;
    EXPECT_FALSE(r.timed_out);
    return socks_reply_in(r.err);
  }

  static constexpr std::string_view small_text = "hello through gate46\n";

  temp_dir dir_{"gate46-socks"};
  std::filesystem::path config_;
  std::filesystem::path big_;
  std::string big_sha256_;
  std::optional<netns> client4_;
  std::optional<netns> client6_;
  std::optional<netns> gw_;
  std::optional<netns> server_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<web_server> web_;
  std::optional<process> gate46_;
};

// ---- 1. across families, by name (DNS delegation: gate46d resolves) --------------------------

TEST_F(socks, ipv4_client_reaches_an_ipv6_only_server_by_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto r = curl(*client4_, {"--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, small_text);
  const auto big = curl(*client4_, {"--socks5-hostname", "192.0.2.1:1080", "-o", (dir_ / "v6.bin").string(),
                                    url(zone::v6_only, "/big.bin")});
  ASSERT_TRUE(big.ok()) << big.err;
  EXPECT_EQ(sha256_of({(dir_ / "v6.bin").string()}), std::vector<std::string>{big_sha256_});
  // Both came to the web server's IPv6 address from the gateway's.
  const auto seen = requests_seen(2);
  ASSERT_EQ(seen.size(), 2U) << access_log();
  for (const auto& line : seen) {
    const auto w = split_words(line);
    ASSERT_EQ(w.size(), 4U) << line;
    EXPECT_EQ(w[0], gw_up_v6) << line;
    EXPECT_EQ(w[1], server_v6) << line;
    EXPECT_EQ(w[3], "200") << line;
  }
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 2U);
  EXPECT_EQ(counters.at("connect_failures"), 0U);
  EXPECT_GE(counters.at("bytes_down"), 1U << 20U);
}

TEST_F(socks, ipv6_client_reaches_an_ipv4_only_server_by_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto r = curl(*client6_, {"--socks5-hostname", "[2001:db8:1::1]:1080", url(zone::v4_only)});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, small_text);
  // The same through a proxy URL (socks5h: the name goes to the gateway).
  const auto big = curl(*client6_, {"--proxy", "socks5h://[2001:db8:1::1]:1080", "-o", (dir_ / "v4.bin").string(),
                                    url(zone::v4_only, "/big.bin")});
  ASSERT_TRUE(big.ok()) << big.err;
  EXPECT_EQ(sha256_of({(dir_ / "v4.bin").string()}), std::vector<std::string>{big_sha256_});
  const auto seen = requests_seen(2);
  ASSERT_EQ(seen.size(), 2U) << access_log();
  for (const auto& line : seen) {
    const auto w = split_words(line);
    ASSERT_EQ(w.size(), 4U) << line;
    EXPECT_EQ(w[0], gw_up_v4) << line;
    EXPECT_EQ(w[1], server_v4) << line;
  }
  stop_gate46();
}

TEST_F(socks, address_literals_cross_families_and_a_dual_stack_name_goes_over_the_preferred_one) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  // --socks5: curl sends the address itself (ATYP 4 from the IPv4 client, ATYP 1 from the IPv6).
  const auto to_v6 = curl(*client4_, {"--socks5", "192.0.2.1:1080", url(server_v6)});
  ASSERT_TRUE(to_v6.ok()) << to_v6.err;
  EXPECT_EQ(to_v6.out, small_text);
  const auto to_v4 = curl(*client6_, {"--socks5", "[2001:db8:1::1]:1080", url(server_v4)});
  ASSERT_TRUE(to_v4.ok()) << to_v4.err;
  EXPECT_EQ(to_v4.out, small_text);
  // prefer_family = ipv6 and both families answer: the IPv6 attempt starts first and wins.
  const auto dual = curl(*client4_, {"--socks5-hostname", "192.0.2.1:1080", url(zone::dual)});
  ASSERT_TRUE(dual.ok()) << dual.err;
  const auto seen = requests_seen(3);
  ASSERT_EQ(seen.size(), 3U) << access_log();
  EXPECT_EQ(split_words(seen[0]).at(1), server_v6) << seen[0];
  EXPECT_EQ(split_words(seen[1]).at(1), server_v4) << seen[1];
  EXPECT_EQ(split_words(seen[2]).at(1), server_v6) << seen[2];
  stop_gate46();
}

// ---- 2. who may use the gateway ----------------------------------------------------------------

TEST_F(socks, password_network_needs_the_right_credentials) {
  // The hash exactly as an administrator makes it: gate46ctl passwd, the password on stdin.
  const auto password_file = dir_.write_file("password", "correct horse\n");
  const auto hashed = run_command({"sh", "-c", "exec \"$0\" passwd < \"$1\"", GATE46CTL_PATH, password_file.string()});
  ASSERT_TRUE(hashed.ok()) << hashed.err;
  const auto hash = lines_of(hashed.out).at(0);
  ASSERT_EQ(hash.rfind("$argon2id$", 0), 0U) << hashed.out;
  ASSERT_NO_FATAL_FAILURE(start_gate46("socks", {client_networks::with_password, hash}));

  const std::vector<std::string> from_password_net{"--interface", "192.0.2.130"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), from_password_net.begin(), from_password_net.end());
    return curl(*client4_, args);
  };
  const auto right = with({"--socks5-hostname", "192.0.2.1:1080", "-U", "alice:correct horse", url(zone::v6_only)});
  ASSERT_TRUE(right.ok()) << right.err;
  EXPECT_EQ(right.out, small_text);
  const auto right_url = with({"--proxy", "socks5h://alice:correct%20horse@192.0.2.1:1080", url(zone::v4_only)});
  ASSERT_TRUE(right_url.ok()) << right_url.err;
  EXPECT_EQ(right_url.out, small_text);

  const auto wrong = with({"--socks5-hostname", "192.0.2.1:1080", "-U", "alice:wrong horse", url(zone::v6_only)});
  EXPECT_EQ(wrong.status, curle_proxy) << wrong.err;
  const auto unknown_user =
      with({"--socks5-hostname", "192.0.2.1:1080", "-U", "bob:correct horse", url(zone::v6_only)});
  EXPECT_EQ(unknown_user.status, curle_proxy) << unknown_user.err;
  // Without credentials: the server accepts no method curl offers (0xFF).
  const auto none = with({"--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
  EXPECT_EQ(none.status, curle_proxy) << none.err;

  // The other network needs none, and credentials offered there are not needed either.
  const auto open =
      curl(*client4_, {"--interface", "192.0.2.2", "--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
  ASSERT_TRUE(open.ok()) << open.err;
  EXPECT_EQ(open.out, small_text);

  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("auth_failures"), 2U) << "the wrong password and the unknown user";
  EXPECT_EQ(counters.at("flows"), 3U);
  EXPECT_NE(gate46_->log_text().find("authentication failed for user alice"), std::string::npos);
}

TEST_F(socks, a_client_outside_the_socks_networks_is_refused) {
  // Default [[gateway.socks_network]]: lan.networks (and loopback). 198.51.100.2 is on the
  // gateway's LAN link, gate46d even listens on 198.51.100.1, but it is in no network.
  ASSERT_NO_FATAL_FAILURE(start_gate46("socks", {client_networks::defaults, ""}));
  const auto inside =
      curl(*client4_, {"--interface", "192.0.2.2", "--socks5-hostname", "192.0.2.1:1080", url(zone::v6_only)});
  ASSERT_TRUE(inside.ok()) << inside.err;
  for (const char* proxy : {"192.0.2.1:1080", "198.51.100.1:1080"}) {
    const auto outside =
        curl(*client4_, {"--interface", "198.51.100.2", "--socks5-hostname", proxy, url(zone::v6_only)});
    EXPECT_EQ(outside.status, curle_proxy) << proxy << ": " << outside.err;
    EXPECT_EQ(outside.out, "");
  }
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("refused_clients"), 2U);
  EXPECT_EQ(counters.at("flows"), 1U);
  EXPECT_EQ(requests_seen(1).size(), 1U) << access_log();
}

// ---- 3. reply codes (RFC 1928 section 6, as socks5.hpp maps them) -------------------------------

TEST_F(socks, failures_get_their_reply_codes) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  auto connect = [&](const std::string& target, bool by_name = true) {
    std::vector<std::string> args{by_name ? "--socks5-hostname" : "--socks5", "192.0.2.1:1080", target};
    return curl(*client4_, args);
  };
  // Refused: nothing listens on port 81 (RST): ECONNREFUSED -> 05, by name and by address.
  EXPECT_EQ(refused_with(connect(url(zone::v6_only, "/", 81))), 5);
  EXPECT_EQ(refused_with(connect(url(server_v4, "/", 81), false)), 5);
  // No such name -> 04 (host unreachable: RFC 1928 has no "no such host").
  EXPECT_EQ(refused_with(connect(url(zone::nonexistent))), 4);
  // Names and addresses that lead to the box itself or into the fake pools: not allowed, 02.
  for (const auto name : {zone::loop, zone::loop6, zone::self, zone::in_pool}) {
    EXPECT_EQ(refused_with(connect(url(name))), 2) << name;
  }
  for (const auto* literal : {"127.0.0.1", "192.0.2.1", "203.0.113.1", "198.18.0.10"}) {
    EXPECT_EQ(refused_with(connect(url(literal), false)), 2) << literal;
  }
  // ::1 from the IPv4-only client: with socks5h curl sends an address literal as ATYP 4 unresolved.
  EXPECT_EQ(refused_with(connect(url("::1"))), 2);
  // An unreachable route on the gateway: connect() fails at once with EHOSTUNREACH -> 04.
  EXPECT_EQ(refused_with(connect(url("203.0.113.200"), false)), 4);
  // No route at all to 2001:db8:99::/48: ENETUNREACH -> 03.
  EXPECT_EQ(refused_with(connect(url("2001:db8:99::1"), false)), 3);
  // 203.0.113.99 is on the gateway's up0 link but nobody has it: ARP gets no answer. The kernel
  // would give up with EHOSTUNREACH only after its 3 solicitations (about 3 s); the 2 s
  // connect_timeout ends it first, ETIMEDOUT -> 06 ("TTL expired", the issue's "timeout").
  const auto start = steady::now();
  EXPECT_EQ(refused_with(connect(url("203.0.113.99"), false)), 6);
  const auto took = steady::now() - start;
  EXPECT_GE(took, std::chrono::seconds{connect_timeout_s} - 100ms);
  EXPECT_LT(took, std::chrono::seconds{connect_timeout_s} + 2s);

  EXPECT_TRUE(requests_seen(0).empty()) << access_log();
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 0U);
  EXPECT_EQ(counters.at("denied_destinations"), 9U);
  // 81 twice, the unreachable route, no route, the timeout.
  EXPECT_EQ(counters.at("connect_failures"), 5U);
  const auto log = gate46_->log_text();
  EXPECT_NE(log.find("203.0.113.99"), std::string::npos) << "every connect failure is logged with its addresses";
}

TEST_F(socks, refusals_and_an_association_get_their_reply_codes) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto tool = dir_.write_file("socks_client.py", socks_py);
  const auto r4 = client4_->run({python, "-u", tool.string(), "192.0.2.1", "1080"}, 30s);
  ASSERT_TRUE(r4.ok()) << r4.out << r4.err;
  EXPECT_EQ(lines_of(r4.out),
            (std::vector<std::string>{"bind-loopback rep=2 closed=1 len=10", "udp-associate rep=0 closed=0 len=10",
                                      "command-9 rep=7 closed=1 len=10", "atyp-5 rep=8 closed=1 len=10"}))
      << r4.out << r4.err;
  const auto r6 = client6_->run({python, "-u", tool.string(), "2001:db8:1::1", "1080"}, 30s);
  ASSERT_TRUE(r6.ok()) << r6.out << r6.err;
  EXPECT_EQ(lines_of(r6.out), lines_of(r4.out));
  stop_gate46();
}

// ---- 4. load -----------------------------------------------------------------------------------

TEST_F(socks, two_hundred_parallel_transfers_arrive_intact) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  constexpr int transfers = 200;
  const auto out = dir_.path() / "parallel";
  std::filesystem::create_directories(out);
  // IPv4 client to the IPv6-only name, 50 at a time over the SOCKS5 server.
  std::vector<std::string> argv{"curl", "-sS", "--fail", "--max-time", "40", "--parallel", "--parallel-max", "50",
                                // One SOCKS flow per transfer: without this curl reuses a tunnel for several requests.
                                "-H", "Connection: close",  //
                                "--socks5-hostname", "192.0.2.1:1080"};
  std::vector<std::string> files;
  for (int i = 0; i < transfers; ++i) {
    files.push_back((out / ("big-" + std::to_string(i) + ".bin")).string());
    argv.insert(argv.end(), {"-o", files.back(), url(zone::v6_only, "/big.bin?transfer=" + std::to_string(i))});
  }
  const auto start = steady::now();
  const auto r = client4_->run(argv, 45s);
  ASSERT_TRUE(r.ok()) << r.status << r.err;
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  const auto sums = sha256_of(files);
  ASSERT_EQ(sums.size(), files.size());
  EXPECT_EQ(static_cast<std::size_t>(std::count(sums.begin(), sums.end(), big_sha256_)), files.size());
  // Each its own request at the web server's IPv6 address.
  const auto seen = requests_seen(transfers);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(transfers));
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](const std::string& line) {
    const auto w = split_words(line);
    return w.size() == 4 && w[1] == server_v6 && w[3] == "200";
  })) << access_log();
  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), static_cast<std::uint64_t>(transfers));
  EXPECT_EQ(counters.at("connect_failures"), 0U);
  EXPECT_GE(counters.at("bytes_down"), static_cast<std::uint64_t>(transfers) << 20U);
  std::cout << transfers << " x 1 MiB through gate46d in " << took.count() << " ms\n";
}

// ---- 5. fake addresses (RFC 3089: the DNS proxy's fake address stands for its name) -------------

TEST_F(socks, a_fake_address_is_mapped_back_to_its_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46("dns,socks"));
  // The IPv4 client asks gate46's DNS for the IPv6-only name's A record: a fake from 198.18/15.
  const auto a =
      client4_->run({"dig", "@192.0.2.1", std::string{zone::v6_only}, "A", "+short", "+time=5", "+tries=1"}, 15s);
  ASSERT_TRUE(a.ok()) << a.out << a.err;
  const auto fake4 = ip_address::parse(lines_of(a.out).at(0));
  ASSERT_TRUE(fake4) << a.out;
  ASSERT_TRUE(cidr::parse("198.18.0.0/15")->contains(*fake4)) << a.out;
  // And the IPv6 client the IPv4-only name's AAAA: a fake from 2001:2::/48.
  const auto aaaa = client6_->run(
      {"dig", "@2001:db8:1::1", std::string{zone::v4_only}, "AAAA", "+short", "+time=5", "+tries=1"}, 15s);
  ASSERT_TRUE(aaaa.ok()) << aaaa.out << aaaa.err;
  const auto fake6 = ip_address::parse(lines_of(aaaa.out).at(0));
  ASSERT_TRUE(fake6) << aaaa.out;
  ASSERT_TRUE(cidr::parse("2001:2::/48")->contains(*fake6)) << aaaa.out;

  // CONNECT to the fake address (--socks5, ATYP 1 / ATYP 4): the gateway maps it back to the
  // name, resolves it and connects in the name's own family.
  const auto via4 = curl(*client4_, {"--socks5", "192.0.2.1:1080", url(fake4->to_string())});
  ASSERT_TRUE(via4.ok()) << via4.err << gate46_->log_text();
  EXPECT_EQ(via4.out, small_text);
  const auto via6 = curl(*client6_, {"--socks5", "[2001:db8:1::1]:1080", url(fake6->to_string())});
  ASSERT_TRUE(via6.ok()) << via6.err << gate46_->log_text();
  EXPECT_EQ(via6.out, small_text);
  // The whole RFC 3089 path with curl resolving on the client: its resolver is gate46's DNS.
  client4_->write_resolv_conf({"192.0.2.1"});
  const auto local = curl(*client4_, {"--socks5", "192.0.2.1:1080", url(zone::v6_only)});
  ASSERT_TRUE(local.ok()) << local.err;
  EXPECT_EQ(local.out, small_text);

  const auto seen = requests_seen(3);
  ASSERT_EQ(seen.size(), 3U) << access_log();
  EXPECT_EQ(split_words(seen[0]).at(1), server_v6) << seen[0];
  EXPECT_EQ(split_words(seen[1]).at(1), server_v4) << seen[1];
  EXPECT_EQ(split_words(seen[2]).at(1), server_v6) << seen[2];

  // Pool addresses nobody was given: not allowed (02), never a destination in themselves.
  const auto unmapped4 = fake4->to_string() == "198.19.255.254" ? "198.19.255.253" : "198.19.255.254";
  EXPECT_EQ(refused_with(curl(*client4_, {"--socks5", "192.0.2.1:1080", url(unmapped4)})), 2);
  const auto unmapped6 = fake6->to_string() == "2001:2::ffff" ? "2001:2::fffe" : "2001:2::ffff";
  EXPECT_EQ(refused_with(curl(*client6_, {"--socks5", "[2001:db8:1::1]:1080", url(unmapped6)})), 2);

  const auto counters = stop_gate46();
  EXPECT_EQ(counters.at("flows"), 3U);
  EXPECT_EQ(counters.at("denied_destinations"), 2U);
}

// ---- 6. the live state over the control socket (gate46ctl status, flows, stats) -------------

TEST_F(socks, gate46ctl_shows_the_running_daemon_its_flows_and_counters) {
  ASSERT_NO_FATAL_FAILURE(start_gate46("dns,socks"));
  const auto socket = (dir_.path() / "control.sock").string();
  const auto ctl = [&](const std::string& command, bool json = true) {
    std::vector<std::string> argv{GATE46CTL_PATH, command, "--socket", socket};
    if (json) {
      argv.emplace_back("--json");
    }
    return run_command(argv);
  };

  const auto status = ctl("status");
  ASSERT_EQ(status.status, 0) << status.err;
  const auto s = nlohmann::json::parse(status.out).at("status");
  EXPECT_EQ(s.at("pid").get<pid_t>(), gate46_->pid());
  EXPECT_EQ(s.at("user").get<std::string>(), "gate46");  // started as root: dropped
  EXPECT_EQ(s.at("config").get<std::string>(), config_.string());
  EXPECT_EQ(s.at("components"), nlohmann::json::array({"dns", "socks"}));
  EXPECT_EQ(s.at("version").get<std::string>(), GATE46_VERSION);
  const auto status_text = ctl("status", false);
  EXPECT_NE(status_text.out.find("components  dns, socks"), std::string::npos) << status_text.out;

  // A client that keeps its connection: a request, a pause, a second request, then it holds
  // the connection (nginx keeps it alive) until killed below. One live flow, named, with its
  // real target.
  const auto client = dir_.write_file("keep_alive.py", R"(import socks, sys, time
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, sys.argv[1], 1080, rdns=True)
s.connect((sys.argv[2], 80))
for pause in (3, 60):
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: " + sys.argv[2].encode() + b"\r\n\r\n")
    s.recv(65536)
    time.sleep(pause)
)");
  process held{client4_->command({python, "-u", client.string(), "192.0.2.1", std::string{zone::v6_only}})};
  nlohmann::json flow;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto r = ctl("flows");
        const auto flows = nlohmann::json::parse(r.out).at("flows");
        if (flows.size() != 1 || flows[0].at("bytes_down").get<std::uint64_t>() == 0) {
          return false;
        }
        flow = flows[0];
        return true;
      },
      log_timeout, 100ms))
      << ctl("flows").out;
  EXPECT_EQ(flow.at("component"), "socks");
  EXPECT_EQ(flow.at("client").get<std::string>().rfind("192.0.2.2:", 0), 0U) << flow;
  EXPECT_EQ(flow.at("destination"), std::string{zone::v6_only} + ".:80") << flow;  // names are absolute
  EXPECT_EQ(flow.at("name"), std::string{zone::v6_only} + ".") << flow;
  EXPECT_EQ(flow.at("target"), "[" + std::string{server_v6} + "]:80") << flow;
  EXPECT_GT(flow.at("bytes_up").get<std::uint64_t>(), 0U);  // the request
  // Live figures: the bytes grow while the flow runs.
  const auto first_down = flow.at("bytes_down").get<std::uint64_t>();
  EXPECT_TRUE(wait_until(
      [&] {
        const auto flows = nlohmann::json::parse(ctl("flows").out).at("flows");
        return flows.size() == 1 && flows[0].at("bytes_down").get<std::uint64_t>() > first_down;
      },
      log_timeout, 100ms));
  const auto table = ctl("flows", false);
  EXPECT_NE(table.out.find("CLIENT"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(std::string{zone::v6_only} + ".:80"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\n1 flow\n"), std::string::npos) << table.out;

  const auto stats = nlohmann::json::parse(ctl("stats").out).at("stats");
  std::map<std::string, nlohmann::json> groups;
  for (const auto& g : stats.at("groups")) {
    groups[g.at("owner").get<std::string>()] = g.at("counters");
  }
  ASSERT_EQ(groups.size(), 3U) << stats;  // daemon, dns, socks
  EXPECT_EQ(groups.at("socks").at("active_flows"), 1) << stats;
  EXPECT_EQ(groups.at("socks").at("connections"), 1) << stats;
  EXPECT_TRUE(groups.at("dns").contains("upstream_queries")) << stats;
  EXPECT_TRUE(groups.at("daemon").contains("reloads_applied")) << stats;
  ASSERT_EQ(stats.at("pools").size(), 2U) << stats;
  EXPECT_EQ(stats.at("pools")[0].at("prefix"), "198.18.0.0/15");
  EXPECT_EQ(stats.at("pools")[0].at("size"), 131070);

  // The flow ends with its client: the table empties.
  ASSERT_TRUE(held.signal(SIGKILL));
  EXPECT_TRUE(
      wait_until([&] { return nlohmann::json::parse(ctl("flows").out).at("flows").empty(); }, log_timeout, 100ms));

  // Only root and the gate46 group may ask (the socket is gate46:gate46 0660).
  const auto outsider = run_command(
      {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", GATE46CTL_PATH, "status", "--socket", socket});
  EXPECT_EQ(outsider.status, 8) << outsider.out << outsider.err;
  EXPECT_NE(outsider.err.find("no permission"), std::string::npos) << outsider.err;

  // Not running: exit 8, saying so; the socket file went with the daemon.
  stop_gate46();
  EXPECT_FALSE(std::filesystem::exists(socket));
  const auto gone = ctl("status");
  EXPECT_EQ(gone.status, 8) << gone.out << gone.err;
  EXPECT_NE(gone.err.find("gate46d is not running"), std::string::npos) << gone.err;
}

}  // namespace
