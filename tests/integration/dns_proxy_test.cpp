// gate46d's DNS proxy (component dns) between a client namespace and a real authoritative
// server, queried with real dig, kdig and small dnspython clients, over UDP and TCP, with IPv4
// and with IPv6 transport on both sides (TEST_P):
//
//   client ns                    gw ns (gate46d)                       auth ns
//   eth0 192.0.2.2/24     ---    lan0 192.0.2.1/24         up0 203.0.113.1/24  --- eth0 203.0.113.2/24
//        2001:db8:1::2/64             2001:db8:1::1/64         2001:db8:2::1/64        2001:db8:2::2/64
//        198.51.100.2/24              198.51.100.1/24      knotd (gate46.test.) or a fake upstream
//        2001:db8:3::2/64             2001:db8:3::1/64
//
// lan.networks holds only 192.0.2.0/24 and 2001:db8:1::/64: the client's second addresses are
// outside it. gate46d listens on 192.0.2.1:53 and [2001:db8:1::1]:53 and forwards to the
// upstream address of the transport family under test. The fake upstream (python, in the auth
// namespace on the same address) misbehaves on purpose: forged answers, silence, slowness.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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
namespace tz = gate46::testing::test_zone;
using steady = std::chrono::steady_clock;

constexpr auto log_timeout = 10s;
constexpr auto exit_timeout = 15s;
// dig and kdig give up after this: every "answered in time" bound below is well inside it.
constexpr int client_timeout_s = 5;
// [dns] upstream_timeout_ms x upstream_tries as configured below.
constexpr auto upstream_timeout = 300ms;
constexpr unsigned upstream_tries = 2;
constexpr int tcp_idle_timeout_s = 2;

// Debian's python3, which has python3-dnspython (a python3 earlier in PATH may not).
constexpr const char* python = "/usr/bin/python3";

// Raw DNS clients and a misbehaving upstream, for what dig and kdig cannot do.
constexpr std::string_view tools_py = R"py(
import select, socket, struct, sys, threading, time
import dns.flags, dns.message, dns.name, dns.rcode, dns.rrset

def family(addr):
    return socket.AF_INET6 if ':' in addr else socket.AF_INET

def raw_qname(wire):
    # The question name exactly as on the wire (letter case included), uncompressed.
    at, labels = 12, []
    while wire[at] != 0:
        labels.append(wire[at + 1:at + 1 + wire[at]].decode('ascii'))
        at += 1 + wire[at]
    return '.'.join(labels) + '.'

def summary(wire):
    m = dns.message.from_wire(wire)
    rdatas = sorted(rd.to_text() for rrset in m.answer for rd in rrset)
    return '%d %s %s %s' % (m.id, raw_qname(wire), dns.rcode.to_text(m.rcode()), ','.join(rdatas) or '-')

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError('closed after %d of %d bytes' % (len(buf), n))
        buf += chunk
    return buf

def framed(wire):
    return struct.pack('!H', len(wire)) + wire

def tcp_connect(server, port):
    s = socket.socket(family(server), socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((server, port))
    return s

# pipeline SERVER PORT NAME/TYPE/ID...: one TCP connection, every query written before any
# answer is read; prints one summary per answer in arrival order.
def pipeline(server, port, specs):
    s = tcp_connect(server, port)
    out = b''
    for spec in specs:
        name, rdtype, qid = spec.split('/')
        q = dns.message.make_query(name, rdtype, use_edns=False)
        q.id = int(qid)
        out += framed(q.to_wire())
    s.sendall(out)
    for _ in specs:
        (n,) = struct.unpack('!H', recv_exact(s, 2))
        print(summary(recv_exact(s, n)), flush=True)
    s.close()

# echo SERVER PORT udp|tcp NAME ID edns|noedns: RD and CD set; prints what came back.
def echo(server, port, transport, name, qid, edns):
    q = dns.message.make_query(name, 'A', use_edns=(0 if edns == 'edns' else False))
    q.id = int(qid)
    q.flags |= dns.flags.CD
    if transport == 'udp':
        s = socket.socket(family(server), socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q.to_wire(), (server, port))
        r = s.recv(65535)
    else:
        s = tcp_connect(server, port)
        s.sendall(framed(q.to_wire()))
        (n,) = struct.unpack('!H', recv_exact(s, 2))
        r = recv_exact(s, n)
    m = dns.message.from_wire(r)
    flags = [f for f in ('QR', 'RD', 'CD', 'TC') if m.flags & getattr(dns.flags, f)]
    print('id=%d qname=%s flags=%s opt=%d rcode=%s answers=%s' % (
        m.id, raw_qname(r), ','.join(flags), 1 if m.edns >= 0 else 0, dns.rcode.to_text(m.rcode()),
        ','.join(sorted(rd.to_text() for rrset in m.answer for rd in rrset)) or '-'), flush=True)

def header(qid, flags, qd, an=0, ns=0, ar=0):
    return struct.pack('!HHHHHH', qid, flags, qd, an, ns, ar)

def question(name, qtype=1):
    return dns.name.from_text(name).to_wire() + struct.pack('!HH', qtype, 1)

MALFORMED = [
    ('short-header', bytes.fromhex('abcd010000')),
    ('qdcount-0', header(0x1111, 0x0100, 0)),
    ('qdcount-2', header(0x2222, 0x0100, 2) + question('www.gate46.test.') + question('v4only.gate46.test.')),
    ('compression-loop', header(0x3333, 0x0100, 1) + b'\xc0\x0c' + struct.pack('!HH', 1, 1)),
    ('label-too-long', header(0x4444, 0x0100, 1) + bytes([64]) + b'a' * 64 + b'\x00' + struct.pack('!HH', 1, 1)),
    ('name-past-end', header(0x5555, 0x0100, 1) + bytes([10]) + b'abc'),
    ('response', header(0x6666, 0x8180, 1) + question('www.gate46.test.')),
]

def describe(r):
    if r is None:
        return 'none'
    if len(r) < 12:
        return 'short'
    return 'id=%d qr=%d rcode=%d' % (struct.unpack('!H', r[:2])[0], r[2] >> 7, r[3] & 0x0f)

# malformed-udp SERVER PORT: each case on a socket of its own; prints "CASE RESULT".
def malformed_udp(server, port):
    for name, wire in MALFORMED:
        s = socket.socket(family(server), socket.SOCK_DGRAM)
        s.settimeout(0.5)
        s.sendto(wire, (server, port))
        try:
            r = s.recv(65535)
        except socket.timeout:
            r = None
        print(name, describe(r), flush=True)
        s.close()

# malformed-tcp SERVER PORT: on one connection, QDCOUNT=2 then a good query; then, on another,
# a zero length.
def malformed_tcp(server, port):
    s = tcp_connect(server, port)
    s.sendall(framed(header(0x2222, 0x0100, 2) + question('www.gate46.test.') + question('v4only.gate46.test.')))
    (n,) = struct.unpack('!H', recv_exact(s, 2))
    print('qdcount-2', describe(recv_exact(s, n)), flush=True)
    q = dns.message.make_query('v4only.gate46.test.', 'A', use_edns=False)
    q.id = 0x7777
    s.sendall(framed(q.to_wire()))
    (n,) = struct.unpack('!H', recv_exact(s, 2))
    print('then', summary(recv_exact(s, n)), flush=True)
    s.close()
    s = tcp_connect(server, port)
    s.sendall(b'\x00\x00')
    try:
        data = s.recv(100)
        print('zero-length', 'closed' if not data else 'data', flush=True)
    except ConnectionResetError:
        print('zero-length closed', flush=True)
    except socket.timeout:
        print('zero-length open', flush=True)

# halfclose SERVER PORT N DELAY: N queries for the large TXT written on one connection, the
# write side shut, the answers read only DELAY seconds later (with a small receive buffer, so
# gate46's replies back up); prints how many whole answers came before EOF.
def halfclose(server, port, n, delay):
    s = socket.socket(family(server), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((server, port))
    out = b''
    for i in range(n):
        q = dns.message.make_query('big.gate46.test.', 'TXT', use_edns=False)
        q.id = i
        out += framed(q.to_wire())
    s.sendall(out)
    s.shutdown(socket.SHUT_WR)
    time.sleep(delay)
    buf = b''
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
    except OSError as e:
        print('error', e, flush=True)
    ids = set()
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack('!H', buf[:2])[0]:
        (length,) = struct.unpack('!H', buf[:2])
        m = dns.message.from_wire(buf[2:2 + length])
        if len(m.answer) == 1 and len(m.answer[0]) == 8:
            ids.add(m.id)
        buf = buf[2 + length:]
    print('answers %d of %d, partial bytes %d' % (len(ids), n, len(buf)), flush=True)

# noread SERVER PORT N LIMIT: writes N queries for the large TXT and never reads an answer,
# with small socket buffers so that little can wait in the kernels; prints how many queries it
# got written within LIMIT seconds, and how it ended.
def noread(server, port, n, limit):
    s = socket.socket(family(server), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((server, port))
    q = dns.message.make_query('big.gate46.test.', 'TXT', use_edns=False)
    batch = framed(q.to_wire()) * 100
    start, sent, how = time.monotonic(), 0, 'done'
    s.settimeout(0.2)
    pending = b''
    while sent < n:
        if time.monotonic() - start > limit:
            how = 'stalled'
            break
        if not pending:
            pending = batch
        try:
            written = s.send(pending)
        except socket.timeout:
            continue
        except OSError as e:
            how = 'closed (errno %d)' % e.errno
            break
        pending = pending[written:]
        if not pending:
            sent += 100
    print('sent %d of %d: %s' % (sent, n, how), flush=True)

# trickle SERVER PORT LIMIT: one byte of a query per second; prints when the server cuts us.
def trickle(server, port, limit):
    s = tcp_connect(server, port)
    start = time.monotonic()
    print('connected', flush=True)
    q = dns.message.make_query('www.gate46.test.', 'A', use_edns=False).to_wire()
    message = framed(q) + b'\x00' * 64  # longer than the whole trickle
    i = 0
    while time.monotonic() - start < limit:
        try:
            s.send(message[i:i + 1])
            i += 1
        except OSError as e:
            print('cut %.2f send-error %d bytes=%d' % (time.monotonic() - start, e.errno, i), flush=True)
            return
        readable, _, _ = select.select([s], [], [], 1.0)
        if readable:
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b''
            if not data:
                print('cut %.2f bytes=%d' % (time.monotonic() - start, i), flush=True)
                return
            print('unexpected data', flush=True)
    print('not cut after %.2f bytes=%d' % (time.monotonic() - start, i), flush=True)

# fake-upstream ADDR PORT: answers A queries over UDP with 203.0.113.99, misbehaving by how the
# first label starts: forged (forgeries first, then the answer), onlyforged (wrong IDs only),
# silent (nothing), slow (after 0.2 s). Logs every query it gets.
def fake_upstream(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    other = socket.socket(family(addr), socket.SOCK_DGRAM)
    other.bind((addr, 0))
    lock = threading.Lock()

    def reply(q, address, qid=None, name=None, rdtype=None):
        base = q
        if name is not None or rdtype is not None:
            base = dns.message.make_query(name or q.question[0].name, rdtype or q.question[0].rdtype, use_edns=False)
            base.flags = q.flags
        r = dns.message.make_response(base)
        r.id = q.id if qid is None else qid
        r.answer.append(dns.rrset.from_text(r.question[0].name, 60, 'IN', 'A', address))
        return r.to_wire()

    def handle(wire, peer):
        q = dns.message.from_wire(wire)
        name = q.question[0].name
        mode = name.labels[0].decode().lower()
        with lock:
            print('query %s id=%d port=%d' % (name.to_text(), q.id, peer[1]), flush=True)
        if mode.startswith('silent'):
            return
        if mode.startswith('onlyforged'):
            for k in range(3):
                s.sendto(reply(q, '203.0.113.66', qid=(q.id + 1 + k) % 65536), peer)
            return
        if mode.startswith('forged'):
            s.sendto(reply(q, '203.0.113.66', qid=(q.id + 1) % 65536), peer)           # wrong ID
            other.sendto(reply(q, '203.0.113.67'), peer)                               # wrong source port
            s.sendto(reply(q, '203.0.113.68', name='other.gate46.test.'), peer)        # wrong name
            s.sendto(reply(q, '203.0.113.69', rdtype='AAAA'), peer)                    # wrong type
            time.sleep(0.1)
        if mode.startswith('slow'):
            time.sleep(0.2)  # within dns.upstream_timeout_ms (300)
        s.sendto(reply(q, '203.0.113.99'), peer)

    print('fake upstream ready on %s port %d' % (addr, port), flush=True)
    while True:
        wire, peer = s.recvfrom(65535)
        threading.Thread(target=handle, args=(wire, peer), daemon=True).start()

cmd = sys.argv[1]
if cmd == 'pipeline':
    pipeline(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
elif cmd == 'echo':
    echo(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7])
elif cmd == 'malformed-udp':
    malformed_udp(sys.argv[2], int(sys.argv[3]))
elif cmd == 'malformed-tcp':
    malformed_tcp(sys.argv[2], int(sys.argv[3]))
elif cmd == 'halfclose':
    halfclose(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
elif cmd == 'noread':
    noread(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
elif cmd == 'trickle':
    trickle(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif cmd == 'fake-upstream':
    fake_upstream(sys.argv[2], int(sys.argv[3]))
else:
    sys.exit('unknown command ' + cmd)
)py";

enum class transport { udp, tcp };

std::string to_string(transport t) {
  return t == transport::udp ? "UDP" : "TCP";
}

// ---- the parameter: the transport family, on the LAN side and upstream ------------------------

struct addressing {
  const char* name;                // for test names
  const char* gw;                  // gate46d's listen address
  const char* client;              // the client, inside lan.networks
  const char* outsider;            // the client's other address, outside lan.networks
  const char* upstream;            // knotd or the fake upstream
  const char* upstream_conf;       // as dns.upstreams writes it
  const char* dead_upstream_conf;  // an address on the upstream link where nothing lives
  const char* udp_counter;         // knot's mod-stats transport names for this family
  const char* tcp_counter;
};

constexpr addressing ipv4{"ipv4",        "192.0.2.1",   "192.0.2.2", "198.51.100.2", "203.0.113.2",
                          "203.0.113.2", "203.0.113.3", "udp4",      "tcp4"};
constexpr addressing ipv6{"ipv6",          "2001:db8:1::1",   "2001:db8:1::2",   "2001:db8:3::2",
                          "2001:db8:2::2", "[2001:db8:2::2]", "[2001:db8:2::3]", "udp6",
                          "tcp6"};

// For gtest's messages: the family, not the bytes.
void PrintTo(const addressing& a, std::ostream* os) {
  *os << a.name;
}

class dns_proxy : public ::testing::TestWithParam<addressing> {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    client_.emplace("client");
    gw_.emplace("gw");
    auth_.emplace("auth");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "2001:db8:1::1/64", "198.51.100.1/24", "2001:db8:3::1/64"}},  //
                 *client_, {"eth0", {"192.0.2.2/24", "2001:db8:1::2/64", "198.51.100.2/24", "2001:db8:3::2/64"}});
    connect_veth(*gw_, {"up0", {"203.0.113.1/24", "2001:db8:2::1/64"}},  //
                 *auth_, {"eth0", {"203.0.113.2/24", "2001:db8:2::2/64"}});
    tools_ = dir_.write_file("dns_tools.py", tools_py);
    write_config({net().upstream_conf});
  }

  void write_config(const std::vector<std::string>& upstreams) {
    config_ = dir_.write_file("gate46.toml", config_text(upstreams));
  }

  void TearDown() override {
    // Every test ends with a clean stop of whatever gate46d it left running.
    if (gate46_ && gate46_->running()) {
      expect_clean_stop();
    }
  }

  [[nodiscard]] const addressing& net() const { return GetParam(); }

  [[nodiscard]] std::string config_text(const std::vector<std::string>& upstreams) const {
    std::string upstream_list;
    for (const auto& u : upstreams) {
      upstream_list += (upstream_list.empty() ? "\"" : ", \"") + u + "\"";
    }
    return "[daemon]\n"
           "threads = 2\n"
           "\n"
           "[lan]\n"
           "interfaces = [\"lan0\"]\n"
           "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
           "\n"
           "[dns]\n"
           "listen = [\"192.0.2.1:53\", \"[2001:db8:1::1]:53\"]\n"
           "upstreams = [" +
           upstream_list +
           "]\n"
           "upstream_timeout_ms = " +
           std::to_string(upstream_timeout.count()) +
           "\n"
           "upstream_tries = " +
           std::to_string(upstream_tries) +
           "\n"
           "tcp_idle_timeout = " +
           std::to_string(tcp_idle_timeout_s) +
           "\n"
           "\n" +
           private_state_sections(dir_.path()) +
           "\n"
           "[log]\n"
           "level = \"info\"\n";
  }

  knot_server& start_knot(bool dnssec = false) {
    return knot_.emplace(*auth_, knot_options{{"203.0.113.2", "2001:db8:2::2"}, 53, standard_test_zone(), dnssec});
  }

  void start_fake_upstream() {
    auto& fake = fake_.emplace(auth_->command({python, "-u", tools_.string(), "fake-upstream", net().upstream, "53"}));
    ASSERT_TRUE(fake.wait_for_log("fake upstream ready", log_timeout)) << fake.log_text();
  }

  void start_gate46() {
    auto& d = gate46_.emplace(gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", "dns"}));
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [dns]", log_timeout)) << d.log_text();
    const auto log = d.log_text();
    EXPECT_NE(log.find("serving DNS on 192.0.2.1:53"), std::string::npos) << log;
    EXPECT_NE(log.find("serving DNS on [2001:db8:1::1]:53"), std::string::npos) << log;
  }

  void expect_clean_stop() {
    const auto mark = gate46_->log_mark();
    ASSERT_TRUE(gate46_->signal(SIGTERM));
    const auto sent = steady::now();
    EXPECT_EQ(gate46_->wait_exit(exit_timeout), std::optional<int>{0}) << gate46_->log_text(mark);
    EXPECT_LT(steady::now() - sent, 5s) << "DNS sessions should end at once";
    EXPECT_NE(gate46_->log_text(mark).find("gate46d stopped"), std::string::npos) << gate46_->log_text(mark);
  }

  // dig at `server`: run it in the client namespace for gate46d, in the auth namespace for knotd.
  [[nodiscard]] static std::vector<std::string> dig_argv(const std::string& server, std::string_view name,
                                                         const std::string& type, transport t,
                                                         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{"dig",
                                  "@" + server,
                                  std::string{name},
                                  type,
                                  "+time=" + std::to_string(client_timeout_s),
                                  "+tries=1",
                                  "+noall",
                                  "+comments",
                                  "+question",
                                  "+answer",
                                  "+authority",
                                  t == transport::tcp ? "+tcp" : "+notcp"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  dig_reply dig_via_gate46(std::string_view name, const std::string& type, transport t,
                           const std::vector<std::string>& extra = {}) {
    const auto r = client_->run(dig_argv(net().gw, name, type, t, extra), 15s);
    return parse_dig(r.out + r.err);
  }

  dig_reply dig_direct(std::string_view name, const std::string& type, transport t,
                       const std::vector<std::string>& extra = {}) {
    const auto r = auth_->run(dig_argv(net().upstream, name, type, t, extra), 15s);
    return parse_dig(r.out + r.err);
  }

  // How long a query through gate46d took (dig's own start-up included) and its reply.
  std::pair<dig_reply, std::chrono::milliseconds> timed_dig(std::string_view name, const std::string& type,
                                                            transport t) {
    const auto start = steady::now();
    auto reply = dig_via_gate46(name, type, t);
    return {std::move(reply), std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start)};
  }

  command_result tool(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 15s) {
    std::vector<std::string> argv{python, "-u", tools_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return client_->run(argv, timeout);
  }

  [[nodiscard]] std::uint64_t knot_queries() const {
    std::uint64_t total = 0;
    for (const char* t : {"udp4", "tcp4", "udp6", "tcp6"}) {
      total += knot_->queries_over(t);
    }
    return total;
  }

  temp_dir dir_{"gate46-dns"};
  std::filesystem::path tools_;
  std::filesystem::path config_;
  std::optional<netns> client_;
  std::optional<netns> gw_;
  std::optional<netns> auth_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<process> fake_;
  std::optional<process> gate46_;
};

// ---- 1. faithful forwarding ----------------------------------------------------------------

struct lookup {
  std::string_view name;
  std::string type;
  std::string status;
  std::size_t answers;  // how many answer records the zone gives
};

TEST_P(dns_proxy, answers_equal_the_authoritative_ones) {
  start_knot();
  start_gate46();
  const std::vector<lookup> lookups{
      {tz::dual, "A", "NOERROR", 1},
      {tz::dual, "AAAA", "NOERROR", 1},
      {tz::v4_only, "A", "NOERROR", 1},
      {tz::v6_only, "AAAA", "NOERROR", 1},
      {tz::cname_chain, "A", "NOERROR", 3},     // alias -> alias2 -> www A
      {tz::cname_chain, "AAAA", "NOERROR", 3},  // alias -> alias2 -> www AAAA
      {tz::text_only, "TXT", "NOERROR", 1},
      {tz::origin, "SOA", "NOERROR", 1},
      {tz::nonexistent, "A", "NXDOMAIN", 0},
      {tz::text_only, "A", "NOERROR", 0},  // NODATA (no address of either family: never faked)
                                           // v4only AAAA and v6only A get fake addresses: dns_policy_test.cpp.
  };
  // UDP first: the TCP round is then served from gate46's cache, which must change nothing but
  // the TTLs.
  for (const auto t : {transport::udp, transport::tcp}) {
    for (const auto& l : lookups) {
      SCOPED_TRACE(std::string{l.name} + " " + l.type + " over " + to_string(t));
      const auto via = dig_via_gate46(l.name, l.type, t);
      const auto direct = dig_direct(l.name, l.type, t);
      ASSERT_TRUE(via.got) << via.raw;
      ASSERT_TRUE(direct.got) << direct.raw;
      EXPECT_EQ(direct.status, l.status) << "the zone itself: " << direct.raw;
      EXPECT_EQ(direct.answer.size(), l.answers) << direct.raw;
      EXPECT_EQ(via.status, direct.status) << via.raw;
      EXPECT_EQ(via.answer_texts(), direct.answer_texts()) << "via gate46:\n" << via.raw << "direct:\n" << direct.raw;
      EXPECT_EQ(via.authority_texts(), direct.authority_texts()) << "via gate46:\n"
                                                                 << via.raw << "direct:\n"
                                                                 << direct.raw;
      // Negative answers carry the SOA (RFC 2308), so a resolver behind us can cache them too.
      if (l.answers == 0) {
        ASSERT_EQ(via.authority.size(), 1U) << via.raw;
        EXPECT_NE(via.authority[0].text.find(" SOA "), std::string::npos) << via.raw;
      }
      // TTLs never exceed the authoritative ones (they count down in the cache).
      for (std::size_t i = 0; i < std::min(via.answer.size(), direct.answer.size()); ++i) {
        EXPECT_LE(via.answer[i].ttl, direct.answer[i].ttl) << via.raw;
      }
      EXPECT_TRUE(via.flags.contains("qr") && via.flags.contains("rd") && via.flags.contains("ra")) << via.raw;
      EXPECT_FALSE(via.flags.contains("tc")) << via.raw;
    }
  }
}

TEST_P(dns_proxy, echoes_id_question_case_and_flags) {
  start_knot();
  start_gate46();
  // The first query of each transport fills the cache, the second is answered from it: the
  // question is echoed as each client wrote it either way.
  for (const auto* t : {"udp", "tcp"}) {
    for (const auto& [name, id] : std::vector<std::pair<std::string, std::string>>{
             {"WwW.GaTe46.TeSt.", "48879"}, {"www.GATE46.test.", "4660"}, {"WWW.gate46.TEST.", "1"}}) {
      SCOPED_TRACE(std::string{t} + " " + name);
      for (const auto* edns : {"noedns", "edns"}) {
        const auto r = tool({"echo", net().gw, "53", t, name, id, edns});
        ASSERT_TRUE(r.ok()) << r.out << r.err;
        std::string expected = "id=" + id;
        expected += " qname=" + name;
        expected += " flags=QR,RD,CD opt=";
        expected += edns == std::string_view{"edns"} ? "1" : "0";
        expected += " rcode=NOERROR answers=";
        expected += tz::dual_v4_address;
        EXPECT_EQ(r.out, expected + "\n");
      }
    }
  }
  // And as real clients see it. dig sends the name as typed, prints the question section of
  // the reply, and checks the ID (it ignores replies with another one and would time out).
  // kdig lower-cases names before sending them: its question is echoed in lower case.
  for (const auto t : {transport::udp, transport::tcp}) {
    const auto kdig = client_->run({"kdig", std::string{"@"} + net().gw, "WwW.GaTe46.TeSt", "A",
                                    t == transport::tcp ? "+tcp" : "+notcp",
                                    "+time=" + std::to_string(client_timeout_s), "+retry=0"});
    ASSERT_TRUE(kdig.ok()) << kdig.out << kdig.err;
    EXPECT_NE(kdig.out.find(";; www.gate46.test."), std::string::npos) << kdig.out;
    EXPECT_NE(kdig.out.find("status: NOERROR"), std::string::npos) << kdig.out;
    EXPECT_NE(kdig.out.find(std::string{tz::dual_v4_address}), std::string::npos) << kdig.out;
    const auto dig = dig_via_gate46("WwW.GaTe46.TeSt", "A", t);
    ASSERT_TRUE(dig.got) << dig.raw;
    ASSERT_EQ(dig.question.size(), 1U) << dig.raw;
    EXPECT_EQ(split_words(dig.question[0]), (std::vector<std::string>{"WwW.GaTe46.TeSt.", "IN", "A"})) << dig.raw;
    EXPECT_EQ(dig.raw.find("WARNING"), std::string::npos) << dig.raw;
    EXPECT_EQ(dig.raw.find("mismatch"), std::string::npos) << dig.raw;
  }
}

TEST_P(dns_proxy, dnssec_records_reach_the_clients_that_ask_for_them) {
  // Knot signs the zone. A client setting DO gets the RRSIGs the authoritative server gives; a
  // client without DO does not, whichever of the two asked first (and filled the cache).
  start_knot(true);
  start_gate46();
  struct order {
    std::string_view name;
    std::string type;
    bool do_first;
  };
  for (const auto& o : {order{tz::v4_only, "A", true}, order{tz::dual, "A", false}, order{tz::v6_only, "AAAA", true},
                        order{tz::nonexistent, "A", false}}) {
    for (const bool with_do : {o.do_first, !o.do_first}) {
      for (const auto t : {transport::udp, transport::tcp}) {
        SCOPED_TRACE(std::string{o.name} + " " + o.type + (with_do ? " +dnssec" : " +nodnssec") + " over " +
                     to_string(t));
        const std::vector<std::string> extra{with_do ? "+dnssec" : "+nodnssec"};
        const auto via = dig_via_gate46(o.name, o.type, t, extra);
        const auto direct = dig_direct(o.name, o.type, t, extra);
        ASSERT_TRUE(via.got) << via.raw;
        ASSERT_TRUE(direct.got) << direct.raw;
        const auto is_rrsig = [](const record_line& r) { return r.text.find(" IN RRSIG ") != std::string::npos; };
        const bool direct_signed = std::any_of(direct.answer.begin(), direct.answer.end(), is_rrsig) ||
                                   std::any_of(direct.authority.begin(), direct.authority.end(), is_rrsig);
        EXPECT_EQ(direct_signed, with_do) << "the zone itself: " << direct.raw;
        EXPECT_EQ(via.status, direct.status) << via.raw;
        EXPECT_EQ(via.answer_texts(), direct.answer_texts()) << "via gate46:\n" << via.raw << "direct:\n" << direct.raw;
        EXPECT_EQ(via.authority_texts(), direct.authority_texts()) << "via gate46:\n"
                                                                   << via.raw << "direct:\n"
                                                                   << direct.raw;
      }
    }
  }
}

// ---- 2. truncation ---------------------------------------------------------------------------

TEST_P(dns_proxy, large_txt_is_truncated_over_udp_and_whole_over_tcp) {
  auto& knot = start_knot();
  start_gate46();
  // The fixture forces it: knot itself truncates this answer over UDP.
  const auto direct_udp = dig_direct(tz::large_txt, "TXT", transport::udp, {"+bufsize=1232", "+ignore"});
  ASSERT_TRUE(direct_udp.flags.contains("tc")) << direct_udp.raw;

  const auto tcp_before = knot.queries_over(net().tcp_counter);
  const auto udp_before = knot.queries_over(net().udp_counter);
  const auto truncated = dig_via_gate46(tz::large_txt, "TXT", transport::udp, {"+bufsize=1232", "+ignore"});
  ASSERT_TRUE(truncated.got) << truncated.raw;
  EXPECT_EQ(truncated.status, "NOERROR") << truncated.raw;
  EXPECT_TRUE(truncated.flags.contains("tc")) << truncated.raw;
  EXPECT_TRUE(truncated.answer.empty()) << truncated.raw;
  // gate46 asked knot over UDP, got TC, and asked again over TCP.
  EXPECT_EQ(knot.queries_over(net().udp_counter), udp_before + 1);
  EXPECT_EQ(knot.queries_over(net().tcp_counter), tcp_before + 1);

  // A client offering more than 1232 bytes still gets no more over UDP (flag day 2020).
  const auto big_buffer = dig_via_gate46(tz::large_txt, "TXT", transport::udp, {"+bufsize=4096", "+ignore"});
  EXPECT_TRUE(big_buffer.flags.contains("tc")) << big_buffer.raw;

  // dig without +ignore retries over TCP and gets every record, as knot has them.
  const auto retried = dig_via_gate46(tz::large_txt, "TXT", transport::udp, {"+bufsize=1232"});
  const auto direct_tcp = dig_direct(tz::large_txt, "TXT", transport::tcp);
  ASSERT_TRUE(retried.got) << retried.raw;
  EXPECT_FALSE(retried.flags.contains("tc")) << retried.raw;
  EXPECT_EQ(retried.answer.size(), tz::large_txt_count) << retried.raw;
  EXPECT_EQ(retried.answer_texts(), direct_tcp.answer_texts()) << retried.raw << direct_tcp.raw;
  // The same over TCP from the start.
  const auto over_tcp = dig_via_gate46(tz::large_txt, "TXT", transport::tcp);
  EXPECT_EQ(over_tcp.answer_texts(), direct_tcp.answer_texts()) << over_tcp.raw;
  // Without EDNS0 a client gets at most 512 bytes: a small answer fits, this one does not.
  const auto plain = dig_via_gate46(tz::large_txt, "TXT", transport::udp, {"+noedns", "+ignore"});
  EXPECT_TRUE(plain.flags.contains("tc")) << plain.raw;
  const auto small = dig_via_gate46(tz::dual, "A", transport::udp, {"+noedns"});
  EXPECT_FALSE(small.flags.contains("tc")) << small.raw;
  EXPECT_EQ(small.answer.size(), 1U) << small.raw;
}

// ---- 3. pipelined TCP ------------------------------------------------------------------------

TEST_P(dns_proxy, pipelined_tcp_queries_on_one_connection) {
  start_knot();
  start_gate46();
  // Five queries written back to back on one connection before any answer is read.
  const auto r = tool({"pipeline", net().gw, "53", "www.gate46.test./A/101", "www.gate46.test./AAAA/102",
                       "v4only.gate46.test./A/103", "alias.gate46.test./A/104", "nonexistent.gate46.test./A/105"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  auto answers = lines_of(r.out);
  std::sort(answers.begin(), answers.end());  // they may come in any order
  EXPECT_EQ(answers, (std::vector<std::string>{
                         "101 www.gate46.test. NOERROR 203.0.113.20",
                         "102 www.gate46.test. NOERROR 2001:db8:2::20",
                         "103 v4only.gate46.test. NOERROR 203.0.113.10",
                         "104 alias.gate46.test. NOERROR 203.0.113.20,alias2.gate46.test.,www.gate46.test.",
                         "105 nonexistent.gate46.test. NXDOMAIN -",
                     }))
      << r.out;

  // kdig: several queries in one invocation over TCP, connection kept open between them.
  const auto k = client_->run({"kdig", std::string{"@"} + net().gw, "+tcp", "+keepopen", "+noall", "+answer",
                               "+time=" + std::to_string(client_timeout_s), "+retry=0", "www.gate46.test", "A",
                               "v6only.gate46.test", "AAAA", "alias.gate46.test", "AAAA"});
  ASSERT_TRUE(k.ok()) << k.out << k.err;
  EXPECT_NE(k.out.find(std::string{tz::dual_v4_address}), std::string::npos) << k.out;
  EXPECT_NE(k.out.find(std::string{tz::v6_only_address}), std::string::npos) << k.out;
  EXPECT_NE(k.out.find("alias2.gate46.test."), std::string::npos) << k.out;
  EXPECT_NE(k.out.find(std::string{tz::dual_v6_address}), std::string::npos) << k.out;
}

TEST_P(dns_proxy, pipelined_tcp_answers_come_as_they_are_ready) {
  // RFC 7766 §6.2.1.1: a slow upstream answer does not hold back a later fast one.
  start_fake_upstream();
  start_gate46();
  const auto r = tool({"pipeline", net().gw, "53", "slow.gate46.test./A/201", "fast.gate46.test./A/202"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_EQ(r.out,
            "202 fast.gate46.test. NOERROR 203.0.113.99\n"
            "201 slow.gate46.test. NOERROR 203.0.113.99\n");
}

TEST_P(dns_proxy, pipelined_answers_all_arrive_after_the_client_half_closes) {
  // A client may shut its write side once it has sent its queries: every query read is still
  // answered, even when the answers back up because the client starts reading 0.2 s late
  // (knotd itself passes this: all 300 answers).
  start_knot();
  start_gate46();
  ASSERT_EQ(dig_via_gate46(tz::large_txt, "TXT", transport::tcp).answer.size(), tz::large_txt_count);  // cached
  const auto r = tool({"halfclose", net().gw, "53", "300", "0.2"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_EQ(r.out, "answers 300 of 300, partial bytes 0\n");
}

// ---- 4. upstream failures --------------------------------------------------------------------

TEST_P(dns_proxy, fails_over_to_the_next_upstream) {
  // The first upstream is an address where nothing answers (neighbour discovery fails).
  write_config({net().dead_upstream_conf, net().upstream_conf});
  start_knot();
  start_gate46();
  const std::vector<std::pair<std::string_view, std::string>> lookups{
      {tz::dual, "A"}, {tz::dual, "AAAA"}, {tz::v4_only, "A"}, {tz::v6_only, "AAAA"}};
  std::chrono::milliseconds slowest{0};
  for (const auto& [name, type] : lookups) {
    SCOPED_TRACE(std::string{name} + " " + type);
    const auto [reply, took] = timed_dig(name, type, transport::udp);
    ASSERT_TRUE(reply.got) << reply.raw;
    EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
    EXPECT_EQ(reply.answer.size(), 1U) << reply.raw;
    EXPECT_LT(took, upstream_timeout * upstream_tries + 1500ms);
    slowest = std::max(slowest, took);
  }
  // Upstreams are taken in turn: some query went to the dead one first and waited it out.
  EXPECT_GE(slowest, upstream_timeout - 20ms);
}

TEST_P(dns_proxy, upstream_killed_gives_servfail_within_the_timeout) {
  auto& knot = start_knot();
  start_gate46();
  const auto cached = dig_via_gate46(tz::dual, "A", transport::udp);
  ASSERT_EQ(cached.status, "NOERROR") << cached.raw;

  knot.stop();
  ASSERT_FALSE(knot.running());
  const auto budget = upstream_timeout * upstream_tries;
  for (const auto t : {transport::udp, transport::tcp}) {
    SCOPED_TRACE(to_string(t));
    const auto [reply, took] = timed_dig(t == transport::udp ? tz::v4_only : tz::v6_only, "A", t);
    ASSERT_TRUE(reply.got) << reply.raw;
    EXPECT_EQ(reply.status, "SERVFAIL") << reply.raw;
    EXPECT_LT(took, budget + 1500ms) << "dig itself would wait " << client_timeout_s << " s";
  }
  // What is cached is still answered.
  const auto still = dig_via_gate46(tz::dual, "A", transport::udp);
  EXPECT_EQ(still.status, "NOERROR") << still.raw;
  EXPECT_EQ(still.answer_texts(), cached.answer_texts()) << still.raw;
}

TEST_P(dns_proxy, silent_upstream_gives_servfail_after_every_try) {
  start_fake_upstream();
  start_gate46();
  const auto budget = upstream_timeout * upstream_tries;
  for (const auto t : {transport::udp, transport::tcp}) {
    SCOPED_TRACE(to_string(t));
    const auto mark = fake_->log_mark();
    const auto name = std::string{"silent-"} + (t == transport::udp ? "u" : "t") + ".gate46.test";
    const auto [reply, took] = timed_dig(name, "A", t);
    ASSERT_TRUE(reply.got) << reply.raw;
    EXPECT_EQ(reply.status, "SERVFAIL") << reply.raw;
    EXPECT_GE(took, budget - 50ms) << "both tries are waited for";
    EXPECT_LT(took, budget + 1500ms) << "dig itself would wait " << client_timeout_s << " s";
    // Each try is a new query: a new ID and a new source port.
    std::vector<std::vector<std::string>> queries;
    for (const auto& line : lines_of(fake_->log_text(mark))) {
      if (line.starts_with("query ")) {
        queries.push_back(split_words(line));
      }
    }
    ASSERT_EQ(queries.size(), upstream_tries) << fake_->log_text(mark);
    EXPECT_NE(queries[0][3], queries[1][3]) << "source ports: " << fake_->log_text(mark);
  }
}

// ---- 5. forged answers -----------------------------------------------------------------------

TEST_P(dns_proxy, forged_answers_are_ignored) {
  start_fake_upstream();
  start_gate46();
  for (const auto t : {transport::udp, transport::tcp}) {
    SCOPED_TRACE(to_string(t));
    // A wrong ID, a wrong source port, a wrong name and a wrong type come before the answer.
    const auto name = std::string{"forged-"} + (t == transport::udp ? "u" : "t") + ".gate46.test";
    const auto reply = dig_via_gate46(name, "A", t);
    ASSERT_TRUE(reply.got) << reply.raw;
    EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
    EXPECT_EQ(reply.answer_texts(), std::vector<std::string>{name + ". IN A 203.0.113.99"}) << reply.raw;
  }
  // Nothing but wrong IDs: no answer at all, SERVFAIL after the tries.
  const auto [reply, took] = timed_dig("onlyforged.gate46.test", "A", transport::udp);
  ASSERT_TRUE(reply.got) << reply.raw;
  EXPECT_EQ(reply.status, "SERVFAIL") << reply.raw;
  EXPECT_TRUE(reply.answer.empty()) << reply.raw;
  EXPECT_LT(took, upstream_timeout * upstream_tries + 1500ms);
}

// ---- 6. clients outside lan.networks ---------------------------------------------------------

TEST_P(dns_proxy, clients_outside_lan_networks_are_refused) {
  start_knot();
  start_gate46();
  const auto before = knot_queries();
  for (const auto t : {transport::udp, transport::tcp}) {
    SCOPED_TRACE(to_string(t));
    const auto reply = dig_via_gate46(tz::v4_only, "A", t, {"-b", net().outsider});
    ASSERT_TRUE(reply.got) << reply.raw;
    EXPECT_EQ(reply.status, "REFUSED") << reply.raw;
    EXPECT_TRUE(reply.answer.empty()) << reply.raw;
    ASSERT_EQ(reply.question.size(), 1U) << reply.raw;
    EXPECT_EQ(split_words(reply.question[0])[0], std::string{tz::v4_only}) << reply.raw;
  }
  EXPECT_EQ(knot_queries(), before) << "nothing was forwarded for an outsider: never an open resolver";
  // The same client from its LAN address is served.
  const auto inside = dig_via_gate46(tz::v4_only, "A", transport::udp, {"-b", net().client});
  EXPECT_EQ(inside.status, "NOERROR") << inside.raw;
  EXPECT_EQ(inside.answer.size(), 1U) << inside.raw;
}

// ---- 7. slow TCP clients ---------------------------------------------------------------------

TEST_P(dns_proxy, slow_tcp_client_is_cut_at_the_idle_timeout_while_others_are_served) {
  start_knot();
  start_gate46();
  process trickler{client_->command({python, "-u", tools_.string(), "trickle", net().gw, "53", "8"})};
  ASSERT_TRUE(trickler.wait_for_log("connected", log_timeout)) << trickler.log_text();
  const auto connected = steady::now();
  // Meanwhile other clients are answered, over both transports, promptly.
  unsigned served = 0;
  while (steady::now() - connected < 1500ms) {
    for (const auto t : {transport::udp, transport::tcp}) {
      const auto [reply, took] = timed_dig(tz::dual, "AAAA", t);
      EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
      EXPECT_LT(took, 1s) << to_string(t);
      ++served;
    }
  }
  EXPECT_GE(served, 2U);
  ASSERT_TRUE(trickler.wait_exit(12s).has_value()) << trickler.log_text();
  const auto out = trickler.log_text();
  const auto at = out.find("cut ");
  ASSERT_NE(at, std::string::npos) << out;
  const double cut_after = std::stod(out.substr(at + 4));
  EXPECT_GE(cut_after, tcp_idle_timeout_s - 0.5) << out;
  EXPECT_LE(cut_after, tcp_idle_timeout_s + 2.0) << out;
  // And after the cut as well.
  const auto after = dig_via_gate46(tz::v4_only, "A", transport::tcp);
  EXPECT_EQ(after.status, "NOERROR") << after.raw;
}

// ---- 8. malformed input ----------------------------------------------------------------------

// "id=8738 qr=1 rcode=1" -> the fields; "none" -> nullopt.
std::optional<std::map<std::string, unsigned>> fields_of(const std::string& text) {
  if (text == "none") {
    return std::nullopt;
  }
  std::map<std::string, unsigned> out;
  for (const auto& w : split_words(text)) {
    const auto eq = w.find('=');
    if (eq != std::string::npos) {
      out[w.substr(0, eq)] = static_cast<unsigned>(std::stoul(w.substr(eq + 1)));
    }
  }
  return out;
}

TEST_P(dns_proxy, malformed_udp_gets_formerr_or_nothing_and_service_goes_on) {
  start_knot();
  start_gate46();
  const auto r = tool({"malformed-udp", net().gw, "53"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  std::map<std::string, std::string> results;
  for (const auto& line : lines_of(r.out)) {
    const auto space = line.find(' ');
    results[line.substr(0, space)] = line.substr(space + 1);
  }
  ASSERT_EQ(results.size(), 7U) << r.out;
  // No header to answer, and never an answer to an answer (reflection loops).
  EXPECT_EQ(results["short-header"], "none") << r.out;
  EXPECT_EQ(results["response"], "none") << r.out;
  // The others: FORMERR with the ID echoed, or nothing.
  const std::map<std::string, unsigned> ids{{"qdcount-0", 0x1111},
                                            {"qdcount-2", 0x2222},
                                            {"compression-loop", 0x3333},
                                            {"label-too-long", 0x4444},
                                            {"name-past-end", 0x5555}};
  for (const auto& [name, id] : ids) {
    SCOPED_TRACE(name);
    const auto fields = fields_of(results[name]);
    if (fields) {
      EXPECT_EQ((*fields).at("id"), id) << r.out;
      EXPECT_EQ((*fields).at("qr"), 1U) << r.out;
      EXPECT_EQ((*fields).at("rcode"), 1U) << "FORMERR expected: " << r.out;
    }
  }
  // A query with two questions is well-formed enough to answer: FORMERR, not silence.
  EXPECT_EQ(results["qdcount-2"], "id=8738 qr=1 rcode=1") << r.out;
  // gate46d still answers.
  for (const auto t : {transport::udp, transport::tcp}) {
    const auto reply = dig_via_gate46(tz::dual, "A", t);
    EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
    EXPECT_EQ(reply.answer.size(), 1U) << reply.raw;
  }
}

TEST_P(dns_proxy, malformed_tcp_gets_formerr_and_the_connection_goes_on) {
  start_knot();
  start_gate46();
  const auto r = tool({"malformed-tcp", net().gw, "53"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_EQ(r.out,
            "qdcount-2 id=8738 qr=1 rcode=1\n"
            "then 30583 v4only.gate46.test. NOERROR 203.0.113.10\n"
            "zero-length closed\n");
  const auto reply = dig_via_gate46(tz::dual, "A", transport::tcp);
  EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
}

TEST_P(dns_proxy, tcp_client_that_never_reads_is_held_back) {
  // Each 35-byte query asks for a 1,800-byte answer. A client that never reads its answers
  // must meet back-pressure (or be disconnected) long before 30,000 queries: otherwise gate46
  // reads them all and queues some 54 MB of answers for it, and more without bound. (knotd
  // resets such a client after about 4,000 queries.)
  start_knot();
  start_gate46();
  ASSERT_EQ(dig_via_gate46(tz::large_txt, "TXT", transport::tcp).answer.size(), tz::large_txt_count);  // cached
  const auto r = tool({"noread", net().gw, "53", "30000", "3"});
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_EQ(r.out.find("sent 30000 of 30000"), std::string::npos) << r.out;
  // Others are served all along.
  const auto reply = dig_via_gate46(tz::dual, "A", transport::tcp);
  EXPECT_EQ(reply.status, "NOERROR") << reply.raw;
}

// ---- stop --------------------------------------------------------------------------------------

TEST_P(dns_proxy, stops_cleanly_with_connections_open_and_queries_in_flight) {
  start_fake_upstream();
  start_gate46();
  // An idle TCP client and a query to a silent upstream are in progress at SIGTERM.
  process idle{client_->command({python, "-u", tools_.string(), "trickle", net().gw, "53", "8"})};
  ASSERT_TRUE(idle.wait_for_log("connected", log_timeout)) << idle.log_text();
  process pending{client_->command(dig_argv(net().gw, "silent.gate46.test", "A", transport::udp))};
  ASSERT_TRUE(fake_->wait_for_log("query silent.gate46.test.", log_timeout)) << fake_->log_text();
  expect_clean_stop();
  // The idle client was cut by the stop, well before its idle timeout could have.
  ASSERT_TRUE(idle.wait_exit(5s).has_value()) << idle.log_text();
  const auto out = idle.log_text();
  const auto at = out.find("cut ");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_LT(std::stod(out.substr(at + 4)), tcp_idle_timeout_s - 0.3) << out;
}

INSTANTIATE_TEST_SUITE_P(families, dns_proxy, ::testing::Values(ipv4, ipv6),
                         [](const ::testing::TestParamInfo<addressing>& p) { return p.param.name; });

}  // namespace
