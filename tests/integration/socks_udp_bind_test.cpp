// gate46d's SOCKS5 UDP ASSOCIATE and BIND (component socks, issue 11) with real clients between
// single-family clients and single-family servers: python3-socks, dante's socksify around kdig,
// socat, tnftp (`ftp -A`) and lftp, python's ftplib, against knotd, vsftpd and a UDP echo; and
// small hand-made clients (struct-built SOCKS5, no library) for what the real ones never send.
//
//   client4 ns (IPv4 only)              gw ns (gate46d)                      server4 ns (IPv4 only)
//   eth0 192.0.2.2/24          ---  lan0 192.0.2.1/24       up4 203.0.113.1/24   ---  eth0 203.0.113.2/24
//        192.0.2.130/24 (other)                                                           203.0.113.3/24 (other)
//                                                                                    knotd (gate46d's upstream),
//   client6 ns (IPv6 only)                                                           UDP echo :7007, vsftpd :21
//   eth0 2001:db8:1::2/64      ---  lan1 2001:db8:1::1/64   up6 2001:db8:2::1/64 ---  server6 ns (IPv6 only)
//        2001:db8:1::3/64 (other)                                                 eth0 2001:db8:2::2/64
//                                                                                      2001:db8:2::3/64 (other)
//                                                                                 knotd, UDP echo :7007, vsftpd :21
//
// The gateway namespace does not forward: a datagram or connection crosses only through gate46d,
// so whatever a server sees came from the gateway's up4/up6 address. The UDP echo logs each
// sender address once, and answers a payload that starts with "stranger" a second time from its
// port 7008 (a reply from an endpoint the client never sent to). vsftpd logs the FTP commands
// (PORT/EPRT) with the control connection's peer; by default it accepts only a data address equal
// to that peer, so an active transfer through BIND works only when the BIND address is the
// address gate46d's control connection came from.
//
// Client limits seen here (also with Debian's danted as the server): dante's client library
// (socksify) speaks to a SOCKS server over IPv4 only ("via:" takes no IPv6 address), and
// python3-socks 1.7.1 cannot make a UDP association from an AF_INET6 socket (its bind() unpacks
// getsockname() as a pair, and the control connection is always AF_INET): from client6, UDP
// ASSOCIATE and BIND are driven by the hand-made clients and python's ftplib.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
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

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
constexpr auto client_timeout = 20s;

// Debian's python3 (a python3 earlier in PATH may be another).
constexpr const char* python = "/usr/bin/python3";

constexpr std::string_view gw_lan_v4 = "192.0.2.1";
constexpr std::string_view gw_lan_v6 = "2001:db8:1::1";
constexpr std::string_view gw_up_v4 = "203.0.113.1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";
constexpr std::string_view server4 = "203.0.113.2";
constexpr std::string_view server4_other = "203.0.113.3";
constexpr std::string_view server6 = "2001:db8:2::2";
constexpr int echo_port = 7007;

// The zone both knotd serve (knotd on server4 is gate46d's upstream).
namespace zone {
constexpr std::string_view v6_only = "v6only.gate46.test";  // AAAA 2001:db8:2::2: server6
constexpr std::string_view v4_only = "v4only.gate46.test";  // A 203.0.113.2: server4

knot_zone records() {
  knot_zone z;
  z.records = {
      {"v6only", "AAAA", std::string{server6}},  //
      {"v4only", "A", std::string{server4}},     //
      {"textonly", "TXT", "\"a name without addresses\""},
  };
  return z;
}
}  // namespace zone

// The UDP echo (see the top): "ready", then "from ADDRESS" once per sender address.
constexpr std::string_view echo_py = R"py(
import socket, sys
address, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ':' in address else socket.AF_INET
echo = socket.socket(family, socket.SOCK_DGRAM)
echo.bind((address, port))
stranger = socket.socket(family, socket.SOCK_DGRAM)
stranger.bind((address, port + 1))
print('ready', flush=True)
seen = set()
while True:
    data, peer = echo.recvfrom(65535)
    if peer[0] not in seen:
        seen.add(peer[0])
        print('from', peer[0], flush=True)
    echo.sendto(data, peer)
    if data.startswith(b'stranger'):
        stranger.sendto(b'from a stranger', peer)
)py";

// python3-socks as an application uses it for UDP: set_proxy (rdns=True by default, so the
// name goes to the gateway, and the association asks for the name "0" as the client's address),
// sendto a name, recvfrom. Prints "reply PAYLOAD from HOST PORT" (the header's source).
constexpr std::string_view python3_socks_udp_py = R"py(
import socket, socks, sys
proxy, target, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, proxy, 1080)
s.settimeout(5)
s.sendto(payload, (target, port))
data, (host, port) = s.recvfrom(65535)
host = host.decode() if isinstance(host, bytes) else host  # a name (ATYP 3) comes as bytes
print('reply %s from %s %d' % (data.decode(errors='replace'), host, port), flush=True)
)py";

// A UDP ASSOCIATE client built from bytes. Arguments: GW OWN OTHER NAME LITERAL FAKE PORT MODE GO
// (OTHER/FAKE "-" for none). MODE "any" asks with the unspecified address and port 0 (the first
// datagram's source becomes the client), "exact" with OWN and the port of its socket. One line
// per step: "TAG atyp=N host=H port=P" for a reply (its header), "TAG none" for none within 3 s
// (1 s after the close), "unexpected ..."/"stray ..." for any datagram nobody should have got.
// After "holding" it waits for the file GO/close, closes the control connection ("closed"), waits
// for GO/send and sends once more to the old relay port.
constexpr std::string_view udp_associate_py = R"py(
import ipaddress, os, select, socket, struct, sys, time

gw, own, other, name, literal, fake, port, mode, go_dir = sys.argv[1:10]
port = int(port)
family = socket.AF_INET6 if ':' in gw else socket.AF_INET
loopback, unknown_fake = ('::1', '2001:2::ffff') if family == socket.AF_INET6 else ('127.0.0.1', '198.19.255.254')

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf

def address_bytes(host):                              # ATYP and DST.ADDR
    try:
        a = ipaddress.ip_address(host)
        return (b'\x01' if a.version == 4 else b'\x04') + a.packed
    except ValueError:
        raw = host.encode()
        return b'\x03' + bytes([len(raw)]) + raw

def header(host, frag=0):                             # RSV(2) FRAG ATYP DST.ADDR DST.PORT
    return b'\x00\x00' + bytes([frag]) + address_bytes(host) + struct.pack('!H', port)

def parse(data):                                      # -> (atyp, host, port, payload) or None
    if len(data) < 4 or data[:3] != b'\x00\x00\x00':
        return None
    atyp = data[3]
    if atyp == 1:
        host, at = str(ipaddress.ip_address(data[4:8])), 8
    elif atyp == 4:
        host, at = str(ipaddress.ip_address(data[4:20])), 20
    elif atyp == 3:
        host, at = data[5:5 + data[4]].decode(errors='replace'), 5 + data[4]
    else:
        return None
    if len(data) < at + 2:
        return None
    return atyp, host, struct.unpack('!H', data[at:at + 2])[0], data[at + 2:]

def udp(local):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((local, 0))
    return s

def wait_for_file(path):
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)

# From OWN: the control connection's peer address is the client's address.
control = socket.create_connection((gw, 1080), timeout=5, source_address=(own, 0))
control.sendall(b'\x05\x01\x00')                      # VER 5, one method: no authentication
if recv_exact(control, 2) != b'\x05\x00':
    print('method refused', flush=True)
    sys.exit(1)
main = udp(own)
sockets = {'main': main}
if mode == 'exact':
    dst = (own, main.getsockname()[1])
else:
    dst = ('::' if family == socket.AF_INET6 else '0.0.0.0', 0)
control.sendall(b'\x05\x03\x00' + address_bytes(dst[0]) + struct.pack('!H', dst[1]))  # UDP ASSOCIATE
head = recv_exact(control, 4)                         # VER REP RSV ATYP
length = {1: 4, 4: 16}.get(head[3] if len(head) == 4 else 0, 0)
rest = recv_exact(control, length + 2) if length else b''
if len(head) != 4 or length == 0 or len(rest) != length + 2:
    print('associate reply', (head + rest).hex(), flush=True)
    sys.exit(1)
relay = (str(ipaddress.ip_address(rest[:length])), struct.unpack('!H', rest[length:])[0])
print('associate rep=%d bnd=%s' % (head[1], relay[0]), flush=True)
if head[1] != 0:
    sys.exit(1)

def send(tag, host, sock=main, frag=0):
    sock.sendto(header(host, frag) + tag.encode(), relay)

def exchange(tag, host, wait=3):
    send(tag, host)
    deadline = time.monotonic() + wait
    while True:
        ready, _, _ = select.select([main], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            print(tag, 'none', flush=True)
            return
        data, source = main.recvfrom(65535)
        r = parse(data)
        if (source[0], source[1]) != relay:
            print('unexpected source', source, data[:40], flush=True)
        elif r is None:
            print('unexpected unparsable', data[:40].hex(), flush=True)
        elif r[3] != tag.encode():
            print('unexpected', r[3][:40].decode(errors='replace'), 'while waiting for', tag, flush=True)
        else:
            print('%s atyp=%d host=%s port=%d' % (tag, r[0], r[1], r[2]), flush=True)
            return

def strays(grace):
    time.sleep(grace)
    for label, s in sockets.items():
        s.setblocking(False)
        while True:
            try:
                data, source = s.recvfrom(65535)
            except (BlockingIOError, ConnectionRefusedError):
                break
            print('stray on', label, data[:60], flush=True)
        s.setblocking(True)

if mode == 'exact':
    sockets['early'] = udp(own)
    send('early', name, sockets['early'])             # the client's address, not its port
exchange('by-name', name)
send('fragment', name, frag=1)
exchange('after-fragment', name)
sockets['other-port'] = udp(own)
send('other-port', name, sockets['other-port'])
if other != '-':
    sockets['other-address'] = udp(other)
    send('other-address', name, sockets['other-address'])
main.sendto(b'\x00\x00\x00\x09junk', relay)          # ATYP 9
main.sendto(b'\x00\x00\x00\x01\xc0\x00', relay)       # ends inside the address
exchange('by-literal', literal)
if fake != '-':
    exchange('by-fake', fake)
for tag, host in (('loopback', loopback), ('gateway', gw), ('unknown-fake', unknown_fake),
                  ('nonexistent', 'nonexistent.gate46.test'), ('no-address', 'textonly.gate46.test')):
    send(tag, host)
exchange('stranger', name)
exchange('sync', name)
strays(0.3)
print('holding', flush=True)
wait_for_file(os.path.join(go_dir, 'close'))
control.close()
print('closed', flush=True)
wait_for_file(os.path.join(go_dir, 'send'))
exchange('after-close', name, wait=1)         # the port is closed: no need to wait long
strays(0.2)
print('done', flush=True)
)py";

// A BIND client built from bytes: GW PEER WAIT. Asks to BIND naming PEER (port 0); prints
// "first rep=N bnd=ENDPOINT", then waits at most WAIT seconds for the second reply: "second
// rep=N peer=ENDPOINT after=SECONDS". After a success it reads 9 bytes from the peer ("received
// ..."), sends "from-client", shuts down its side and prints "end eof" once the peer has closed;
// after a failure reply, "closed" if gate46d closed the connection.
constexpr std::string_view bind_py = R"py(
import ipaddress, socket, struct, sys, time
gw, peer, wait_s = sys.argv[1], sys.argv[2], float(sys.argv[3])

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf

def read_reply(s):                                    # -> (rep, host, port) or None
    head = recv_exact(s, 4)                           # VER REP RSV ATYP
    length = {1: 4, 4: 16}.get(head[3] if len(head) == 4 else 0, 0)
    rest = recv_exact(s, length + 2) if length else b''
    if len(head) != 4 or len(rest) != length + 2:
        return None
    return head[1], str(ipaddress.ip_address(rest[:length])), struct.unpack('!H', rest[length:])[0]

def endpoint(host, port):
    return ('[%s]:%d' if ':' in host else '%s:%d') % (host, port)

control = socket.create_connection((gw, 1080), timeout=5)
control.sendall(b'\x05\x01\x00')                      # VER 5, one method: no authentication
if recv_exact(control, 2) != b'\x05\x00':
    print('method refused', flush=True)
    sys.exit(1)
a = ipaddress.ip_address(peer)
control.sendall(b'\x05\x02\x00' + (b'\x01' if a.version == 4 else b'\x04') + a.packed + struct.pack('!H', 0))
first = read_reply(control)
if first is None:
    print('first none', flush=True)
    sys.exit(1)
print('first rep=%d bnd=%s' % (first[0], endpoint(first[1], first[2])), flush=True)
if first[0] != 0:
    sys.exit(1)
start = time.monotonic()
control.settimeout(wait_s)
try:
    second = read_reply(control)
except socket.timeout:
    print('second timeout', flush=True)
    sys.exit(1)
took = time.monotonic() - start
if second is None:
    print('second none after=%.1f' % took, flush=True)
    sys.exit(1)
print('second rep=%d peer=%s after=%.1f' % (second[0], endpoint(second[1], second[2]), took), flush=True)
control.settimeout(5)
if second[0] != 0:
    print('closed' if control.recv(1) == b'' else 'open', flush=True)
    sys.exit(0)
print('received', recv_exact(control, 9).decode(errors='replace'), flush=True)
control.sendall(b'from-client')
control.shutdown(socket.SHUT_WR)
print('end', 'eof' if control.recv(1) == b'' else 'more', flush=True)
)py";

// The peer of a BIND: HOST PORT SOURCE. Connects from SOURCE, sends "from-peer" and prints what
// came back until the end ("received TEXT", "received -" for nothing), or "reset", "refused",
// "timeout".
constexpr std::string_view bind_peer_py = R"py(
import socket, sys
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.bind((source, 0))
try:
    s.connect((host, port))
    s.sendall(b'from-peer')
    data = b''
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print('received', data.decode(errors='replace') if data else '-', flush=True)
except ConnectionRefusedError:
    print('refused', flush=True)
except (ConnectionResetError, BrokenPipeError):
    print('reset', flush=True)
except socket.timeout:
    print('timeout', flush=True)
)py";

// Active-mode FTP through SOCKS5 with python's ftplib: GW SERVER REMOTE LOCAL. The control
// connection is a SOCKS5 CONNECT, each data connection a BIND naming the server; EPRT carries
// the BIND address, and ftplib's accept() is BIND's second reply. Prints "bind HOST PORT" per
// data connection and "ok" at the end.
constexpr std::string_view ftp_via_socks_py = R"py(
import ftplib, ipaddress, socket, struct, sys
gw, server, remote, local = sys.argv[1:5]

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf

def read_reply(s):
    head = recv_exact(s, 4)
    length = {1: 4, 4: 16}.get(head[3] if len(head) == 4 else 0, 0)
    rest = recv_exact(s, length + 2) if length else b''
    if len(head) != 4 or head[1] != 0 or len(rest) != length + 2:
        raise OSError('SOCKS5 reply ' + (head + rest).hex())
    return str(ipaddress.ip_address(rest[:length])), struct.unpack('!H', rest[length:])[0]

def socks_request(command, host, port):
    s = socket.create_connection((gw, 1080), timeout=10)
    s.sendall(b'\x05\x01\x00')
    if recv_exact(s, 2) != b'\x05\x00':
        raise OSError('method refused')
    a = ipaddress.ip_address(host)
    s.sendall(b'\x05' + command + b'\x00' + (b'\x01' if a.version == 4 else b'\x04') + a.packed +
              struct.pack('!H', port))
    return s, read_reply(s)

class bound:                                          # what ftplib's makeport() returns
    def __init__(self, s):
        self.s = s
    def accept(self):
        return self.s, read_reply(self.s)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False

class socks_ftp(ftplib.FTP):
    def connect_via_socks(self):
        self.sock, _ = socks_request(b'\x01', server, 21)
        self.af = socket.AF_INET6 if ':' in server else socket.AF_INET
        self.file = self.sock.makefile('r', encoding=self.encoding)
        self.welcome = self.getresp()
    def makeport(self):
        s, (host, port) = socks_request(b'\x02', server, 0)
        print('bind', host, port, flush=True)
        self.sendeprt(host, port)
        return bound(s)

f = socks_ftp()
f.connect_via_socks()
f.login()
f.set_pasv(False)
with open(local, 'wb') as out:
    f.retrbinary('RETR ' + remote, out.write)
f.quit()
print('ok', flush=True)
)py";

struct daemon_options {
  int bind_timeout_s = 10;
  std::optional<unsigned> max_flows;
};

// Field by field: g++ warns of missing initializers even with designated ones.
daemon_options with_bind_timeout(int seconds) {
  daemon_options o;
  o.bind_timeout_s = seconds;
  return o;
}
daemon_options with_max_flows(unsigned flows) {
  daemon_options o;
  o.max_flows = flows;
  return o;
}

// "TAG atyp=N host=H port=P": a reply line of udp_associate_py.
std::string reply_line(std::string_view tag, int atyp, std::string_view host, int port = echo_port) {
  return std::string{tag} + " atyp=" + std::to_string(atyp) + " host=" + std::string{host} +
         " port=" + std::to_string(port);
}

class socks_udp_bind : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client4_.emplace("client4");
    client6_.emplace("client6");
    gw_.emplace("gw");
    server4_.emplace("server4");
    server6_.emplace("server6");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24"}}, *client4_, {"eth0", {"192.0.2.2/24", "192.0.2.130/24"}});
    connect_veth(*gw_, {"lan1", {"2001:db8:1::1/64"}}, *client6_, {"eth0", {"2001:db8:1::2/64", "2001:db8:1::3/64"}});
    connect_veth(*gw_, {"up4", {"203.0.113.1/24"}}, *server4_, {"eth0", {"203.0.113.2/24", "203.0.113.3/24"}});
    connect_veth(*gw_, {"up6", {"2001:db8:2::1/64"}}, *server6_, {"eth0", {"2001:db8:2::2/64", "2001:db8:2::3/64"}});
    // The IPv4-only ends have no IPv6 at all, not even link-local; the IPv6-only ends no IPv4 address.
    for (const auto* ns : {&*client4_, &*server4_}) {
      ns->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
      ns->run_checked({"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"});
    }
    knot4_.emplace(*server4_, knot_options{{std::string{server4}}, 53, zone::records(), false});
    knot6_.emplace(*server6_, knot_options{{std::string{server6}}, 53, zone::records(), false});
    const auto echo = dir_.write_file("echo.py", echo_py);
    for (auto [ns, address, slot] :
         {std::tuple{&*server4_, server4, &echo4_}, std::tuple{&*server6_, server6, &echo6_}}) {
      auto& e =
          slot->emplace(ns->command({python, "-u", echo.string(), std::string{address}, std::to_string(echo_port)}));
      ASSERT_TRUE(e.wait_for_log("ready", log_timeout)) << e.log_text();
    }
    // dante's client configuration, through SOCKS_CONF: everything to gate46d over IPv4.
    socks_conf_ = dir_.write_file("socks.conf",
                                  "route {\n"
                                  "  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 192.0.2.1 port = 1080\n"
                                  "  proxyprotocol: socks_v5\n"
                                  "  method: none\n"
                                  "}\n");
  }

  void TearDown() override {
    if (gate46_ && gate46_->running()) {
      stop_gate46();
    }
  }

  // ---- gate46d ---------------------------------------------------------------------------

  // gate46d with components dns and socks (the dns component makes the fake addresses), once it
  // serves SOCKS5 on both LAN addresses.
  void start_gate46(const daemon_options& o = {}) {
    const std::string text =
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
        "bind_timeout = " +
        std::to_string(o.bind_timeout_s) + "\n" +
        (o.max_flows ? "max_flows = " + std::to_string(*o.max_flows) + "\n" : std::string{}) +
        private_state_sections(dir_.path()) +
        "\n"
        "[log]\n"
        "level = \"info\"\n";
    config_ = dir_.write_file("gate46.toml", text);
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", "dns,socks"}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout)) << d.log_text();
    for (const char* at : {"SOCKS5 on 192.0.2.1:1080", "SOCKS5 on [2001:db8:1::1]:1080"}) {
      ASSERT_TRUE(d.wait_for_log(at, log_timeout)) << d.log_text();
    }
  }

  // SIGTERM, a clean exit, and the socks component's counters as it logged them at stop.
  std::map<std::string, std::uint64_t> stop_gate46() {
    const auto mark = gate46_->log_mark();
    EXPECT_TRUE(gate46_->signal(SIGTERM));
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    stop_log_ = gate46_->log_text(mark);
    EXPECT_NE(stop_log_.find("gate46d stopped"), std::string::npos) << stop_log_;
    auto counters = component_counters(stop_log_, "socks");
    EXPECT_FALSE(counters.empty()) << stop_log_;
    return counters;
  }

  // The counter `name`, 0 with a failure if gate46d did not log it.
  std::uint64_t counter(const std::map<std::string, std::uint64_t>& counters, const std::string& name) const {
    const auto at = counters.find(name);
    if (at == counters.end()) {
      ADD_FAILURE() << "no counter " << name << " in: " << stop_log_;
      return 0;
    }
    return at->second;
  }

  [[nodiscard]] nlohmann::json flows() const {
    const auto r =
        run_command({GATE46CTL_PATH, "flows", "--json", "--socket", (dir_.path() / "control.sock").string()});
    if (!r.ok()) {
      return nlohmann::json::array();
    }
    return nlohmann::json::parse(r.out).at("flows");
  }

  // ---- clients ---------------------------------------------------------------------------

  // argv under dante's socksify with this test's socks.conf.
  [[nodiscard]] std::vector<std::string> socksified(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"env", "SOCKS_CONF=" + socks_conf_.string(), "socksify"});
    return argv;
  }

  // `sh -c 'printf %s TEXT | exec ARGV...'`: argv with TEXT on its stdin.
  static std::vector<std::string> with_stdin(const std::string& text, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"sh", "-c", "printf %s \"$0\" | exec \"$@\"", text});
    return argv;
  }

  // The fake address gate46's DNS gives `name` in `type` (A from client4, AAAA from client6).
  [[nodiscard]] std::string fake_of(std::string_view name, std::string_view type) const {
    const bool v4 = type == "A";
    const auto& ns = v4 ? *client4_ : *client6_;
    const auto r = ns.run({"dig", "@" + std::string{v4 ? gw_lan_v4 : gw_lan_v6}, std::string{name}, std::string{type},
                           "+short", "+time=5", "+tries=1"},
                          15s);
    const auto lines = lines_of(r.out);
    std::string fake = r.ok() && !lines.empty() ? lines.front() : "";
    const auto parsed = ip_address::parse(fake);
    EXPECT_TRUE(parsed && cidr::parse(v4 ? "198.18.0.0/15" : "2001:2::/48")->contains(*parsed))
        << name << " " << type << ": '" << r.out << "' " << r.err;
    return fake;
  }

  std::filesystem::path script(std::string_view name, std::string_view text) const {
    return dir_.write_file(name, text);
  }

  [[nodiscard]] std::string sha256_of(const std::filesystem::path& file) const {
    const auto words = split_words(run_checked({"sha256sum", file.string()}, 30s));
    return words.empty() ? "" : words[0];
  }

  // 1 MiB of random bytes in a directory vsftpd serves (its anon_root: root's, 0755).
  void seed_ftp_root() {
    const auto root = dir_.path() / "ftp";
    std::filesystem::create_directories(root);
    std::filesystem::permissions(root, std::filesystem::perms{0755});
    std::string data(1U << 20U, '\0');
    std::mt19937_64 random{20240611};
    for (auto& c : data) {
      c = static_cast<char>(random() & 0xffU);
    }
    const auto file = dir_.write_file("ftp/file.bin", data);
    std::filesystem::permissions(file, std::filesystem::perms{0644});
    file_sha256_ = sha256_of(file);
  }

  // vsftpd on `address` in `ns` (anonymous download only, active mode only, the FTP commands
  // logged to its log file), in the foreground under the process harness.
  void start_vsftpd(const netns& ns, std::string_view address, std::optional<process>& slot,
                    std::filesystem::path& log) {
    const bool v6 = address.find(':') != std::string_view::npos;
    const std::string family = v6 ? "6" : "4";
    log = dir_.path() / ("vsftpd" + family + ".log");
    const auto conf = dir_.write_file("vsftpd" + family + ".conf",
                                      std::string{v6 ? "listen=NO\nlisten_ipv6=YES\nlisten_address6="
                                                     : "listen=YES\nlisten_ipv6=NO\nlisten_address="} +
                                          std::string{address} +
                                          "\n"
                                          "background=NO\n"
                                          "anonymous_enable=YES\n"
                                          "no_anon_password=YES\n"
                                          "local_enable=NO\n"
                                          "write_enable=NO\n"
                                          "anon_root=" +
                                          (dir_.path() / "ftp").string() +
                                          "\n"
                                          "ftp_username=ftp\n"
                                          // In a namespace: no seccomp sandbox, no namespaces of its own.
                                          "seccomp_sandbox=NO\n"
                                          "isolate=NO\n"
                                          "isolate_network=NO\n"
                                          // Active mode only: a transfer works through BIND or not at all.
                                          "pasv_enable=NO\n"
                                          "port_enable=YES\n"
                                          "connect_from_port_20=NO\n"
                                          "xferlog_enable=YES\n"
                                          "xferlog_std_format=NO\n"
                                          "log_ftp_protocol=YES\n"
                                          "syslog_enable=NO\n"
                                          "vsftpd_log_file=" +
                                          log.string() + "\n");
    auto& p = slot.emplace(ns.command({"vsftpd", conf.string()}));
    ASSERT_TRUE(wait_until(
        [&] {
          const auto r =
              ns.run({"ss", "-Hltn", "src", v6 ? "[" + std::string{address} + "]:21" : std::string{address} + ":21"});
          return r.ok() && !r.out.empty();
        },
        log_timeout, 20ms))
        << p.log_text();
  }

  // Runs udp_associate_py as `ns` with the arguments after GW (see there), holding the association
  // until gate46ctl has listed it and closing it before the last datagram. Returns its lines.
  std::vector<std::string> run_udp_associate(const netns& ns, const std::vector<std::string>& args,
                                             std::string_view client_prefix) {
    const auto tool = script("udp_associate.py", udp_associate_py);
    const auto go = dir_.path() / "go";
    std::filesystem::create_directories(go);
    std::vector<std::string> argv{python, "-u", tool.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(go.string());
    process client{ns.command(argv)};
    if (!client.wait_for_log("holding", client_timeout)) {
      ADD_FAILURE() << "the client did not get to hold its association: " << client.log_text() << gate46_->log_text();
      client.wait_exit(client_timeout);
      return lines_of(client.log_text());
    }
    // While the control connection lives, gate46ctl lists the association.
    nlohmann::json listed;
    EXPECT_TRUE(wait_until(
        [&] {
          listed = flows();
          return listed.size() == 1;
        },
        log_timeout, 50ms))
        << listed;
    if (listed.size() == 1) {
      EXPECT_EQ(listed[0].value("component", ""), "socks") << listed;
      EXPECT_EQ(listed[0].value("client", "").rfind(client_prefix, 0), 0U) << listed;
    }
    dir_.write_file("go/close", "");
    EXPECT_TRUE(client.wait_for_log("closed", client_timeout)) << client.log_text();
    // The association ends with its control connection: gone from the list before the last datagram.
    EXPECT_TRUE(wait_until([&] { return flows().empty(); }, log_timeout, 50ms)) << flows();
    dir_.write_file("go/send", "");
    EXPECT_EQ(client.wait_exit(client_timeout), std::optional<int>{0}) << client.log_text();
    return lines_of(client.log_text());
  }

  temp_dir dir_{"gate46-socks-udp-bind"};
  std::filesystem::path config_;
  std::filesystem::path socks_conf_;
  std::string stop_log_;
  std::string file_sha256_;
  std::optional<netns> client4_;
  std::optional<netns> client6_;
  std::optional<netns> gw_;
  std::optional<netns> server4_;
  std::optional<netns> server6_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot4_;
  std::optional<knot_server> knot6_;
  std::optional<process> echo4_;
  std::optional<process> echo6_;
  std::optional<process> vsftpd_;
  std::optional<process> gate46_;
};

// ---- UDP ASSOCIATE with real clients --------------------------------------------------------------

TEST_F(socks_udp_bind, python3_socks_reaches_an_ipv6_only_udp_echo_by_name) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto tool = script("python3_socks_udp.py", python3_socks_udp_py);
  const auto r = client4_->run(
      {python, "-u", tool.string(), std::string{gw_lan_v4}, std::string{zone::v6_only}, "7007", "hello-over-udp"},
      client_timeout);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  // The reply's header names the destination as the client wrote it: the name, which an IPv4
  // client can take, not the IPv6 address it stands for.
  EXPECT_EQ(lines_of(r.out),
            std::vector<std::string>{"reply hello-over-udp from " + std::string{zone::v6_only} + " 7007"});
  EXPECT_EQ(lines_of(echo6_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v6}}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "udp_associations"), 1U);
  EXPECT_EQ(counter(counters, "udp_to_target"), 1U);
  EXPECT_EQ(counter(counters, "udp_to_client"), 1U);
  EXPECT_EQ(counter(counters, "udp_foreign_client"), 0U);
}

TEST_F(socks_udp_bind, socksify_kdig_and_socat_over_udp_associate_to_addresses_and_fake_addresses) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_of(zone::v6_only, "A");  // the IPv6-only server (knotd, echo)
  ASSERT_FALSE(fake.empty());
  const std::vector<std::string> kdig{"kdig", "+notcp", "+time=3", "+retry=0"};

  // The IPv4-only knotd by its address, then the IPv6-only one by its fake A. kdig checks that
  // the reply comes from the address it asked ("unexpected source" otherwise).
  const auto udp4_before = knot4_->queries_over("udp4");
  auto argv = socksified(kdig);
  argv.insert(argv.end(), {"@" + std::string{server4}, std::string{zone::v6_only}, "AAAA"});
  const auto by_address = client4_->run(argv, client_timeout);
  ASSERT_TRUE(by_address.ok()) << by_address.out << by_address.err << gate46_->log_text();
  EXPECT_NE(by_address.out.find("status: NOERROR"), std::string::npos) << by_address.out;
  EXPECT_EQ(answer_lines(by_address.out),
            (std::vector<std::vector<std::string>>{
                {std::string{zone::v6_only} + ".", "300", "IN", "AAAA", std::string{server6}}}))
      << by_address.out;
  EXPECT_NE(by_address.out.find("From " + std::string{server4} + "@53(UDP)"), std::string::npos) << by_address.out;
  // At least kdig's query (gate46d asks this knotd too, as its upstream).
  EXPECT_GE(knot4_->queries_over("udp4"), udp4_before + 1);
  EXPECT_EQ(knot4_->queries_over("tcp4"), 0U);

  const auto udp6_before = knot6_->queries_over("udp6");
  argv = socksified(kdig);
  argv.insert(argv.end(), {"@" + fake, std::string{zone::v4_only}, "A"});
  const auto by_fake = client4_->run(argv, client_timeout);
  ASSERT_TRUE(by_fake.ok()) << by_fake.out << by_fake.err << gate46_->log_text();
  EXPECT_NE(by_fake.out.find("status: NOERROR"), std::string::npos) << by_fake.out;
  EXPECT_EQ(answer_lines(by_fake.out), (std::vector<std::vector<std::string>>{
                                           {std::string{zone::v4_only} + ".", "300", "IN", "A", std::string{server4}}}))
      << by_fake.out;
  EXPECT_NE(by_fake.out.find("From " + fake + "@53(UDP)"), std::string::npos) << by_fake.out;
  // It reached the IPv6-only server over UDP (nothing else routes there).
  EXPECT_EQ(knot6_->queries_over("udp6"), udp6_before + 1);
  EXPECT_EQ(knot6_->queries_over("tcp6"), 0U);

  // socat's echo round trip, to the IPv4-only echo and through the fake to the IPv6-only one.
  for (const auto& to : {std::string{server4}, fake}) {
    const auto text = "echo via socat to " + to + "\n";
    const auto r = client4_->run(
        with_stdin(text, socksified({"socat", "-t", "1", "-", "UDP4:" + to + ":" + std::to_string(echo_port)})),
        client_timeout);
    ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
    EXPECT_EQ(r.out, text);
  }
  EXPECT_EQ(lines_of(echo4_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v4}}));
  EXPECT_EQ(lines_of(echo6_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v6}}));

  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "udp_associations"), 4U);
  EXPECT_EQ(counter(counters, "udp_to_target"), 4U);
  EXPECT_EQ(counter(counters, "udp_to_client"), 4U);
  EXPECT_EQ(counter(counters, "udp_denied"), 0U);
}

// ---- UDP ASSOCIATE, every rule, with a client built from bytes ----------------------------------

TEST_F(socks_udp_bind, udp_associate_rules_from_the_ipv4_client) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_of(zone::v6_only, "A");
  ASSERT_FALSE(fake.empty());
  // Asks with 0.0.0.0:0: the first datagram (from 192.0.2.2) makes the client's address.
  const auto lines = run_udp_associate(*client4_,
                                       {std::string{gw_lan_v4}, "192.0.2.2", "192.0.2.130", std::string{zone::v6_only},
                                        std::string{server6}, fake, std::to_string(echo_port), "any"},
                                       "192.0.2.2:");
  const auto name = std::string{zone::v6_only};
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "associate rep=0 bnd=192.0.2.1",  // the address the control connection reached
                       reply_line("by-name", 3, name),   // the name as written
                       reply_line("after-fragment", 3, name),
                       reply_line("by-literal", 4, server6),
                       reply_line("by-fake", 1, fake),
                       reply_line("stranger", 3, name),
                       reply_line("sync", 3, name),
                       "holding",
                       "closed",
                       "after-close none",
                       "done",
                   }))
      << gate46_->log_text();
  EXPECT_EQ(lines_of(echo6_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v6}}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "udp_associations"), 1U);
  EXPECT_EQ(counter(counters, "udp_foreign_client"), 2U);  // another port, another address
  EXPECT_EQ(counter(counters, "udp_fragments"), 1U);
  EXPECT_EQ(counter(counters, "udp_malformed"), 2U);
  EXPECT_EQ(counter(counters, "udp_denied"), 3U);      // 127.0.0.1, the gateway, an unmapped fake
  EXPECT_EQ(counter(counters, "udp_unresolved"), 2U);  // NXDOMAIN, no address
  EXPECT_EQ(counter(counters, "udp_foreign_target"), 1U);
  EXPECT_EQ(counter(counters, "udp_to_target"), 6U);
  EXPECT_EQ(counter(counters, "udp_to_client"), 6U);
}

TEST_F(socks_udp_bind, udp_associate_rules_from_the_ipv6_client) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto fake = fake_of(zone::v4_only, "AAAA");
  ASSERT_FALSE(fake.empty());
  // Asks with its own address and port: a datagram from another port is not the client's, even
  // before the right one has sent anything.
  const auto lines =
      run_udp_associate(*client6_,
                        {std::string{gw_lan_v6}, "2001:db8:1::2", "2001:db8:1::3", std::string{zone::v4_only},
                         std::string{server4}, fake, std::to_string(echo_port), "exact"},
                        "[2001:db8:1::2]:");
  const auto name = std::string{zone::v4_only};
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "associate rep=0 bnd=2001:db8:1::1",
                       reply_line("by-name", 3, name),
                       reply_line("after-fragment", 3, name),
                       reply_line("by-literal", 1, server4),
                       reply_line("by-fake", 4, fake),
                       reply_line("stranger", 3, name),
                       reply_line("sync", 3, name),
                       "holding",
                       "closed",
                       "after-close none",
                       "done",
                   }))
      << gate46_->log_text();
  EXPECT_EQ(lines_of(echo4_->log_text()), (std::vector<std::string>{"ready", "from " + std::string{gw_up_v4}}));
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "udp_associations"), 1U);
  EXPECT_EQ(counter(counters, "udp_foreign_client"), 3U);  // early, another port, another address
  EXPECT_EQ(counter(counters, "udp_fragments"), 1U);
  EXPECT_EQ(counter(counters, "udp_malformed"), 2U);
  EXPECT_EQ(counter(counters, "udp_denied"), 3U);
  EXPECT_EQ(counter(counters, "udp_unresolved"), 2U);
  EXPECT_EQ(counter(counters, "udp_foreign_target"), 1U);
  EXPECT_EQ(counter(counters, "udp_to_target"), 6U);
  EXPECT_EQ(counter(counters, "udp_to_client"), 6U);
}

// ---- BIND: active-mode FTP --------------------------------------------------------------------

TEST_F(socks_udp_bind, active_ftp_through_bind_with_socksify_ftp_and_lftp) {
  ASSERT_NO_FATAL_FAILURE(seed_ftp_root());
  std::filesystem::path ftp_log;
  ASSERT_NO_FATAL_FAILURE(start_vsftpd(*server4_, server4, vsftpd_, ftp_log));
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto url = "ftp://" + std::string{server4} + "/file.bin";

  // tnftp in active mode (-A: EPRT, then PORT), fetching a URL.
  const auto by_ftp = dir_.path() / "by-ftp.bin";
  const auto ftp = client4_->run(socksified({"ftp", "-A", "-V", "-o", by_ftp.string(), url}), client_timeout);
  ASSERT_TRUE(ftp.ok()) << ftp.out << ftp.err << read_file(ftp_log) << gate46_->log_text();
  EXPECT_EQ(sha256_of(by_ftp), file_sha256_);

  // lftp with passive mode off (PORT). HOME: lftp keeps its state there.
  const auto by_lftp = dir_.path() / "by-lftp.bin";
  const auto lftp =
      client4_->run(socksified({"env", "HOME=" + dir_.path().string(), "lftp", "-e",
                                "set ftp:passive-mode off; set net:max-retries 1; set net:timeout 5; get file.bin -o " +
                                    by_lftp.string() + "; bye",
                                "ftp://" + std::string{server4}}),
                    client_timeout);
  ASSERT_TRUE(lftp.ok()) << lftp.out << lftp.err << read_file(ftp_log) << gate46_->log_text();
  EXPECT_EQ(sha256_of(by_lftp), file_sha256_);

  // vsftpd took the BIND address as the data address: the gateway's up4 address, the same peer as
  // the control connection's.
  const auto log = read_file(ftp_log);
  EXPECT_NE(log.find("\"EPRT |1|" + std::string{gw_up_v4} + "|"), std::string::npos) << log;
  EXPECT_NE(log.find("\"PORT 203,0,113,1,"), std::string::npos) << log;
  const auto log_lines = lines_of(log);
  const auto downloads = std::count_if(log_lines.begin(), log_lines.end(), [](const std::string& line) {
    return line.find("OK DOWNLOAD: Client \"203.0.113.1\", \"/file.bin\", 1048576 bytes") != std::string::npos;
  });
  EXPECT_EQ(downloads, 2) << log;
  EXPECT_EQ(log.find(", \"PASV"), std::string::npos) << log;  // never asked for passive mode
  EXPECT_EQ(log.find(", \"EPSV"), std::string::npos) << log;

  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "binds"), 2U);
  EXPECT_EQ(counter(counters, "bind_timeouts"), 0U);
  EXPECT_EQ(counter(counters, "bind_unexpected_peers"), 0U);
}

TEST_F(socks_udp_bind, active_ftp_through_bind_from_the_ipv6_client) {
  ASSERT_NO_FATAL_FAILURE(seed_ftp_root());
  std::filesystem::path ftp_log;
  ASSERT_NO_FATAL_FAILURE(start_vsftpd(*server6_, server6, vsftpd_, ftp_log));
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto tool = script("ftp_via_socks.py", ftp_via_socks_py);
  const auto out = dir_.path() / "by-ftplib.bin";
  const auto r = client6_->run(
      {python, "-u", tool.string(), std::string{gw_lan_v6}, std::string{server6}, "file.bin", out.string()},
      client_timeout);
  ASSERT_TRUE(r.ok()) << r.out << r.err << read_file(ftp_log) << gate46_->log_text();
  EXPECT_EQ(sha256_of(out), file_sha256_);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2U) << r.out;
  EXPECT_EQ(lines[0].rfind("bind " + std::string{gw_up_v6} + " ", 0), 0U) << r.out;  // the up6 address
  const auto log = read_file(ftp_log);
  EXPECT_NE(log.find("\"EPRT |2|" + std::string{gw_up_v6} + "|"), std::string::npos) << log;
  EXPECT_NE(log.find("OK DOWNLOAD: Client \"" + std::string{gw_up_v6} + "\", \"/file.bin\", 1048576 bytes"),
            std::string::npos)
      << log;
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "binds"), 1U);
}

// ---- BIND, raw: the expected peer only, and the timeout ------------------------------------------

TEST_F(socks_udp_bind, bind_accepts_only_the_named_peer_then_relays_both_ways) {
  ASSERT_NO_FATAL_FAILURE(start_gate46());
  const auto tool = script("bind.py", bind_py);
  const auto peer_tool = script("bind_peer.py", bind_peer_py);
  process client{client4_->command({python, "-u", tool.string(), std::string{gw_lan_v4}, std::string{server4}, "10"})};
  ASSERT_TRUE(client.wait_for_log("first rep=", client_timeout)) << client.log_text() << gate46_->log_text();
  const auto first = lines_of(client.log_text()).at(0);
  // The listening address in the family, and on the interface, of the way to the peer.
  const std::string prefix = "first rep=0 bnd=" + std::string{gw_up_v4} + ":";
  ASSERT_EQ(first.rfind(prefix, 0), 0U) << first;
  const auto port = first.substr(prefix.size());

  // From the server's other address: not the peer named, reset; the wait goes on.
  const auto stranger =
      server4_->run({python, "-u", peer_tool.string(), std::string{gw_up_v4}, port, std::string{server4_other}}, 15s);
  EXPECT_EQ(stranger.out, "reset\n") << stranger.err;
  // The named peer: the second reply names it, then bytes go both ways.
  const auto peer =
      server4_->run({python, "-u", peer_tool.string(), std::string{gw_up_v4}, port, std::string{server4}}, 15s);
  EXPECT_EQ(peer.out, "received from-client\n") << peer.err << client.log_text();
  ASSERT_EQ(client.wait_exit(client_timeout), std::optional<int>{0}) << client.log_text();
  const auto lines = lines_of(client.log_text());
  ASSERT_EQ(lines.size(), 4U) << client.log_text();
  EXPECT_EQ(lines[1].rfind("second rep=0 peer=" + std::string{server4} + ":", 0), 0U) << lines[1];
  EXPECT_EQ(lines[2], "received from-peer");
  EXPECT_EQ(lines[3], "end eof");

  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "binds"), 1U);
  EXPECT_EQ(counter(counters, "bind_unexpected_peers"), 1U);
  EXPECT_EQ(counter(counters, "bind_timeouts"), 0U);
}

TEST_F(socks_udp_bind, bind_without_a_peer_within_bind_timeout_gets_a_second_reply_06) {
  constexpr int bind_timeout_s = 2;
  ASSERT_NO_FATAL_FAILURE(start_gate46(with_bind_timeout(bind_timeout_s)));
  const auto tool = script("bind.py", bind_py);
  const auto r =
      client6_->run({python, "-u", tool.string(), std::string{gw_lan_v6}, std::string{server6}, "10"}, client_timeout);
  ASSERT_TRUE(r.ok()) << r.out << r.err << gate46_->log_text();
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3U) << r.out;
  EXPECT_EQ(lines[0].rfind("first rep=0 bnd=[" + std::string{gw_up_v6} + "]:", 0), 0U) << lines[0];
  const std::string second = "second rep=6 peer=";
  ASSERT_EQ(lines[1].rfind(second, 0), 0U) << lines[1];
  const auto after = std::stod(lines[1].substr(lines[1].rfind("after=") + 6));
  EXPECT_GE(after, bind_timeout_s - 0.2) << lines[1];
  EXPECT_LT(after, bind_timeout_s + 2.0) << lines[1];
  EXPECT_EQ(lines[2], "closed");
  // Nothing listens there any more.
  const auto port = lines[0].substr(lines[0].rfind(':') + 1);
  const auto peer_tool = script("bind_peer.py", bind_peer_py);
  const auto late =
      server6_->run({python, "-u", peer_tool.string(), std::string{gw_up_v6}, port, std::string{server6}}, 15s);
  EXPECT_EQ(late.out, "refused\n") << late.err;
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "binds"), 1U);
  EXPECT_EQ(counter(counters, "bind_timeouts"), 1U);
}

// An association holds four descriptors where gateway.max_flows budgets two a flow: it takes a
// second place. With max_flows = 1 the control connection is accepted and the association is
// refused (01); a CONNECT, one place, still works.
constexpr std::string_view associate_once_py = R"py(
import socket, sys
s = socket.create_connection((sys.argv[1], 1080), timeout=5)
s.sendall(b'\x05\x01\x00')
assert s.recv(2) == b'\x05\x00'
s.sendall(b'\x05\x03\x00\x01' + b'\x00' * 6)
reply = s.recv(10)
print('associate rep=%d' % reply[1], flush=True)
)py";

TEST_F(socks_udp_bind, an_association_takes_two_places_in_max_flows) {
  ASSERT_NO_FATAL_FAILURE(start_gate46(with_max_flows(1)));
  const auto tool = script("associate_once.py", associate_once_py);
  const auto refused = client4_->run({python, "-u", tool.string(), std::string{gw_lan_v4}}, client_timeout);
  ASSERT_TRUE(refused.ok()) << refused.out << refused.err;
  EXPECT_EQ(lines_of(refused.out), std::vector<std::string>{"associate rep=1"});
  const auto counters = stop_gate46();
  EXPECT_EQ(counter(counters, "refused_max_flows"), 1U);
  EXPECT_EQ(counter(counters, "udp_associations"), 0U);
  // With room for it, the same request is granted.
  ASSERT_NO_FATAL_FAILURE(start_gate46(with_max_flows(2)));
  const auto granted = client4_->run({python, "-u", tool.string(), std::string{gw_lan_v4}}, client_timeout);
  ASSERT_TRUE(granted.ok()) << granted.out << granted.err;
  EXPECT_EQ(lines_of(granted.out), std::vector<std::string>{"associate rep=0"});
  EXPECT_EQ(counter(stop_gate46(), "udp_associations"), 1U);
}

}  // namespace
