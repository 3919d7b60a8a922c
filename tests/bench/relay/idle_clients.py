#!/usr/bin/python3
"""Idle-connection client for tests/bench/relay_bench.sh (issue 8, memory per flow).

Holds many TCP connections to one HTTP server (nginx with a long keepalive_timeout), either
straight to ADDR:PORT (the transparent relay: ADDR is a fake address) or through a SOCKS5
server (CONNECT to ADDR:PORT, no authentication). Each connection first exchanges one HTTP/1.1
keep-alive GET and its whole response, then stays open and silent.

Driven by commands on stdin, one per line; each is answered by exactly one line on stdout:
  open N      open connections until N are held (N >= the number held); answers
              "opened held=H ok=K failed=F secs=S [first error]"
  verify      one more GET on every held connection (all in flight at once); answers
              "verified ok=K failed=F secs=S [first error]" (failed connections are dropped)
  quit        close everything and exit; answers "bye"
Each phase has a deadline (--timeout seconds); whatever is unfinished then counts as failed.
Standard library only; run it with Debian's /usr/bin/python3.
"""

import argparse
import errno
import resource
import selectors
import socket
import sys
import time

CONNECTING, SOCKS_HELLO, SOCKS_REPLY, HTTP_RESPONSE, IDLE = range(5)


class Conn:
    __slots__ = ("sock", "state", "out", "inbuf", "need")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.out = b""
        self.inbuf = b""
        self.need = 0


def http_response_length(buf):
    """Length of the complete response at the start of buf, or 0 while incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = buf[:end].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1.1 200"):
        raise ValueError("status line %r" % head[0])
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "connection" and value.strip().lower() == "close":
            raise ValueError("server announced Connection: close")
    if length is None:
        raise ValueError("response without Content-Length")
    total = end + 4 + length
    return total if len(buf) >= total else 0


class Client:
    def __init__(self, args):
        self.args = args
        self.family = socket.AF_INET6 if ":" in args.connect_to else socket.AF_INET
        self.sel = selectors.DefaultSelector()
        self.idle = []
        host = args.target if ":" not in args.target else "[%s]" % args.target
        self.request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gate46-relay-bench\r\n\r\n" %
                        (args.path, host)).encode()
        if args.socks:
            a = socket.inet_pton(socket.AF_INET6 if ":" in args.target else socket.AF_INET, args.target)
            atyp = b"\x04" if len(a) == 16 else b"\x01"
            self.socks_connect = b"\x05\x01\x00" + atyp + a + args.port.to_bytes(2, "big")

    # -- one connection's state machine; returns False when the connection failed ----------------
    def start_request(self, c):
        c.state = HTTP_RESPONSE
        c.out = self.request
        c.inbuf = b""

    def on_event(self, c, mask):
        s = c.sock
        if c.state == CONNECTING:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect: " + errno.errorcode.get(err, str(err)))
            if self.args.socks:
                c.state = SOCKS_HELLO
                c.out = b"\x05\x01\x00"
                c.need = 2
            else:
                self.start_request(c)
        if c.out and mask & selectors.EVENT_WRITE:
            n = s.send(c.out)
            c.out = c.out[n:]
        if mask & selectors.EVENT_READ:
            data = s.recv(65536)
            if not data:
                raise OSError(0, "closed by the peer in state %d" % c.state)
            c.inbuf += data
        if c.state == SOCKS_HELLO and len(c.inbuf) >= 2:
            if c.inbuf[:2] != b"\x05\x00":
                raise OSError(0, "SOCKS method reply %r" % c.inbuf[:2])
            c.inbuf = c.inbuf[2:]
            c.state = SOCKS_REPLY
            c.out = self.socks_connect
        if c.state == SOCKS_REPLY and len(c.inbuf) >= 5:
            if c.inbuf[1] != 0:
                raise OSError(0, "SOCKS reply code %d" % c.inbuf[1])
            atyp = c.inbuf[3]
            size = {1: 10, 4: 22, 3: 7 + c.inbuf[4]}.get(atyp)
            if size is None:
                raise OSError(0, "SOCKS reply address type %d" % atyp)
            if len(c.inbuf) >= size:
                rest = c.inbuf[size:]
                self.start_request(c)
                c.inbuf = rest
        if c.state == HTTP_RESPONSE:
            total = http_response_length(c.inbuf)
            if total:
                if len(c.inbuf) != total:
                    raise OSError(0, "bytes after the response")
                c.state = IDLE
                c.inbuf = b""
        return c.state == IDLE

    def want(self, c):
        ev = selectors.EVENT_WRITE if (c.state == CONNECTING or c.out) else 0
        if c.state != CONNECTING:
            ev |= selectors.EVENT_READ
        return ev

    def run(self, pending, to_open):
        """Drives `pending` (already registered) plus `to_open` new connections to IDLE."""
        ok = failed = 0
        first_error = ""
        deadline = time.monotonic() + self.args.timeout
        active = {}
        for c in pending:
            active[c.sock.fileno()] = c
            self.sel.register(c.sock, self.want(c), c)

        def fail(c, e):
            nonlocal failed, first_error
            failed += 1
            if not first_error:
                first_error = str(e)
            self.sel.unregister(c.sock)
            del active[c.sock.fileno()]
            c.sock.close()

        while (active or to_open) and time.monotonic() < deadline:
            while to_open and len(active) < self.args.concurrency:
                to_open -= 1
                s = socket.socket(self.family, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect((self.args.connect_to, self.args.connect_port))
                except BlockingIOError:
                    pass
                except OSError as e:
                    failed += 1
                    first_error = first_error or "connect: %s" % e
                    s.close()
                    continue
                c = Conn(s)
                active[s.fileno()] = c
                self.sel.register(s, self.want(c), c)
            for key, mask in self.sel.select(timeout=0.5):
                c = key.data
                try:
                    done = self.on_event(c, mask)
                except (OSError, ValueError) as e:
                    fail(c, e)
                    continue
                if done:
                    self.sel.unregister(c.sock)
                    del active[c.sock.fileno()]
                    self.idle.append(c)
                    ok += 1
                else:
                    self.sel.modify(c.sock, self.want(c), c)
        for c in list(active.values()):
            fail(c, "deadline of %d s passed" % self.args.timeout)
        failed += to_open
        if to_open and not first_error:
            first_error = "%d never opened before the deadline" % to_open
        return ok, failed, first_error

    def open(self, n):
        t0 = time.monotonic()
        ok, failed, err = self.run([], max(0, n - len(self.idle)))
        return "opened held=%d ok=%d failed=%d secs=%.2f%s" % (len(self.idle), ok, failed, time.monotonic() - t0,
                                                               (" first error: " + err) if err else "")

    def verify(self):
        t0 = time.monotonic()
        held, self.idle = self.idle, []
        for c in held:
            self.start_request(c)
        ok, failed, err = self.run(held, 0)
        return "verified ok=%d failed=%d secs=%.2f%s" % (ok, failed, time.monotonic() - t0,
                                                         (" first error: " + err) if err else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HTTP server address (a fake address for the relay)")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--path", default="/")
    p.add_argument("--socks", help="SOCKS5 server ADDR:PORT: CONNECT to --target through it")
    p.add_argument("--concurrency", type=int, default=100, help="connections being opened at once")
    p.add_argument("--timeout", type=int, default=60, help="deadline of each phase, seconds")
    args = p.parse_args()
    if args.socks:
        host, _, port = args.socks.rpartition(":")
        args.connect_to, args.connect_port = host.strip("[]"), int(port)
    else:
        args.connect_to, args.connect_port = args.target, args.port
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = Client(args)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "open" and len(words) == 2:
            answer = client.open(int(words[1]))
        elif words[0] == "verify":
            answer = client.verify()
        elif words[0] == "quit":
            for c in client.idle:
                c.sock.close()
            print("bye", flush=True)
            return
        else:
            answer = "error unknown command %r" % line.strip()
        print(answer, flush=True)


if __name__ == "__main__":
    main()
