#!/usr/bin/env bash
# gate46's main job, end to end, on one Debian 12 machine (as root): an IPv4-only host reaches an
# IPv6-only web server by name, and an IPv6-only host an IPv4-only one, through gate46d, with no
# change on either client: they only know the gateway as their router and resolver.
#
# It installs the dependencies (deploy/install-deps.sh), builds gate46d and gate46ctl into
# build/release, and builds this network of namespaces (ARCHITECTURE.md, "Test topology"):
#
#   [client4] 192.0.2.2     --- 192.0.2.1     [gw] 2001:db8:2::1 --- 2001:db8:2::2 [server6]
#   [client6] 2001:db8:1::2 --- 2001:db8:1::1 [gw] 203.0.113.1   --- 203.0.113.2   [server4]
#
# client4 and server4 have no IPv6, client6 and server6 no IPv4. gw does not route: whatever
# crosses it is relayed by gate46d (components dns, socks, relay, firewall). server6 and
# server4 run nginx; server4 also runs knotd, authoritative for gate46.test (deploy/demo/):
# gate46d's upstream. Only documentation addresses and gate46's fake pools are used: no packet
# leaves the machine. Everything it creates (namespaces, /etc/netns/<ns>, the work directory,
# the processes it started, by PID) is removed on exit, also on Ctrl-C or failure.
# Exit status: 0 when every step worked, otherwise the failing step is named.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=$top/deploy/demo
build=$top/build/release
gate46d=$build/gateway/gate46d
gate46ctl=$build/ctl/gate46ctl
python=/usr/bin/python3

tag=g46demo-$$
ns_client4=$tag-client4
ns_client6=$tag-client6
ns_gw=$tag-gw
ns_server6=$tag-server6
ns_server4=$tag-server4

work=
pids=()
namespaces=()
gate46d_pid=
step_no=0
step_name="starting"
interrupted=

# ---- output ------------------------------------------------------------------------------------
if [[ -t 1 ]]; then bold=$'\033[1m' dim=$'\033[2m' plain=$'\033[0m'; else bold='' dim='' plain=''; fi

# step TITLE WHAT-TO-LOOK-AT: one heading line and one sentence.
step() {
  step_no=$((step_no + 1))
  step_name=$1
  printf '\n%s== %d. %s%s\n' "$bold" "$step_no" "$1" "$plain"
  printf '%s   %s%s\n' "$dim" "$2" "$plain"
}
indent() { sed 's/^/    /'; }
fail() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

# ---- cleanup -------------------------------------------------------------------------------------
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i ns pid
  # Nothing stops the cleanup half-way (a second Ctrl-C, timeout's signal to the whole group).
  trap - EXIT
  trap '' INT TERM
  if [[ -n $interrupted ]]; then
    printf '\n%sdemo interrupted (%s) at step %d (%s), exit status %d.%s\n' "$bold" "$interrupted" "$step_no" "$step_name" "$rc" "$plain" >&2
  elif ((rc != 0)); then
    printf '\n%sdemo FAILED at step %d (%s), exit status %d.%s\n' "$bold" "$step_no" "$step_name" "$rc" "$plain" >&2
  fi
  if [[ -z $interrupted && $rc != 0 && -n $work && -s $work/gate46d.log ]]; then
    printf 'The last lines of gate46d'"'"'s log:\n' >&2
    tail -n 15 "$work/gate46d.log" | indent >&2
  fi
  # Processes first, newest first (the flow holders, gate46d, then the servers), by their PIDs.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${pids[i]}"
  done
  for ns in "${namespaces[@]}"; do
    # Anything else still in the namespace was started by one of ours (nginx's workers, or a
    # process whose PID a Ctrl-C kept from being recorded).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  [[ -z $work ]] || rm -rf "$work"
  if ((rc == 0)); then
    printf '\nRemoved everything the demo created: 5 namespaces, their /etc/netns entries, its processes, %s.\n' "$work"
  else
    printf 'Removed everything the demo created.\n' >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'interrupted=SIGINT; exit 130' INT
trap 'interrupted=SIGTERM; exit 143' TERM

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}
# start_bg NS LOG COMMAND...: a background process in NS, remembered for cleanup; sets last_pid.
start_bg() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
  last_pid=$!
  pids+=("$last_pid")
}
# forget_pid PID: it has been waited for; cleanup leaves it alone.
forget_pid() {
  local keep=() pid
  for pid in "${pids[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  pids=("${keep[@]}")
}
# wait_for WHAT PID COMMAND...: until COMMAND succeeds (10 s at most, PID alive).
wait_for() {
  local what=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 100; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || fail "$what: the process exited"
    sleep 0.1
  done
  fail "$what: not within 10 s"
}
log_has() { grep -qF -- "$2" "$1"; }
listens() { [[ -n $(in_ns "$1" ss -Hltn "sport = :$2") ]]; }

# =================================================================================================
[[ $(id -u) == 0 ]] || fail "run as root (network namespaces, nftables): sudo $0"
work=$(mktemp -d /tmp/gate46-demo.XXXXXX)
chmod 0755 "$work"

step "Installing dependencies (deploy/install-deps.sh)" \
  "Debian packages for the build and the demo's peers (knot, nginx, dig, curl): minutes on a fresh machine, instant after."
"$top/deploy/install-deps.sh" >"$work/install-deps.log" 2>&1 || {
  tail -n 20 "$work/install-deps.log"
  fail "deploy/install-deps.sh failed"
}
grep '^install-deps:' "$work/install-deps.log" | indent

step "Building gate46d and gate46ctl (RelWithDebInfo, $build)" \
  "Only what changed is rebuilt; a first build takes a few minutes."
started=$SECONDS
{ cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C "$build" gate46d gate46ctl; } \
  >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log"
  fail "the build failed"
}
printf '    %s (%d s)\n' "$(tail -n 1 "$work/build.log")" $((SECONDS - started))

step "Creating the network: five namespaces" \
  "client4 knows only IPv4 and client6 only IPv6; gw does not route, so every byte between them crosses gate46d."
make_ns() {
  local ns=$1 resolver=$2
  namespaces+=("$ns") # first: a Ctrl-C right after the add still finds it
  ip netns add "$ns"
  mkdir -p "/etc/netns/$ns"
  # Never the host's resolver: ip netns exec puts this file over /etc/resolv.conf.
  printf '# %s\nnameserver %s\n' "$3" "$resolver" >"/etc/netns/$ns/resolv.conf"
  ip -n "$ns" link set lo up
}
# addr_add NS DEV ADDRESS: IPv6 ones usable at once (no duplicate address detection on a private link).
addr_add() {
  if [[ $3 == *:* ]]; then ip -n "$1" addr add "$3" dev "$2" nodad; else ip -n "$1" addr add "$3" dev "$2"; fi
}
# link NS1 DEV1 ADDR1 NS2 DEV2 ADDR2 ID: a veth pair, made with names unique to this run.
link() {
  local tmp=g46d$$$7
  ip link add "${tmp}a" netns "$1" type veth peer name "${tmp}b" netns "$4"
  ip -n "$1" link set "${tmp}a" name "$2"
  ip -n "$4" link set "${tmp}b" name "$5"
  addr_add "$1" "$2" "$3"
  addr_add "$4" "$5" "$6"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}
no_ipv6() { in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }
make_ns "$ns_client4" 192.0.2.1 "gate46's DNS on the gateway"
make_ns "$ns_client6" 2001:db8:1::1 "gate46's DNS on the gateway"
make_ns "$ns_gw" 203.0.113.2 "knotd in server4 (gate46d itself asks only dns.upstreams)"
make_ns "$ns_server6" ::1 "nothing: server6 resolves no names"
make_ns "$ns_server4" 203.0.113.2 "its own knotd"
no_ipv6 "$ns_client4"
no_ipv6 "$ns_server4"
link "$ns_gw" lan0 192.0.2.1/24 "$ns_client4" eth0 192.0.2.2/24 1
link "$ns_gw" lan1 2001:db8:1::1/64 "$ns_client6" eth0 2001:db8:1::2/64 2
link "$ns_gw" up6 2001:db8:2::1/64 "$ns_server6" eth0 2001:db8:2::2/64 3
link "$ns_gw" up4 203.0.113.1/24 "$ns_server4" eth0 203.0.113.2/24 4
ip -n "$ns_client4" route add default via 192.0.2.1
ip -n "$ns_client6" -6 route add default via 2001:db8:1::1
cat <<EOF
    [client4] 192.0.2.2     --- 192.0.2.1 lan0     [gw] up6 2001:db8:2::1 --- 2001:db8:2::2 [server6] nginx
    [client6] 2001:db8:1::2 --- 2001:db8:1::1 lan1 [gw] up4 203.0.113.1   --- 203.0.113.2   [server4] nginx, knotd
    namespaces: $tag-{client4,client6,gw,server6,server4}
EOF

step "Starting the servers: nginx in server6 and server4, knotd (zone gate46.test) in server4" \
  "The zone gives each web server a name in its own family only: v6only has just an AAAA record, v4only just an A."
mkdir -p "$work/knot/run" "$work/knot/db" "$work/knot/zones"
cp "$data/gate46.test.zone" "$work/knot/zones/gate46.test.zone"
sed -e "s|@DIR@|$work/knot|g" -e "s|@ADDR@|203.0.113.2|g" "$data/knot.conf.in" >"$work/knot/knot.conf"
start_bg "$ns_server4" "$work/knot/knotd.log" knotd -c "$work/knot/knot.conf"
knot_pid=$last_pid
wait_for "knotd answering for gate46.test" "$knot_pid" \
  in_ns "$ns_gw" dig +short +time=1 +tries=1 @203.0.113.2 v4only.gate46.test A
grep -E '^(v6only|v4only) ' "$data/gate46.test.zone" | indent
start_nginx() {
  local name=$1 ns=$2 listen=$3 dir=$work/$1
  mkdir -p "$dir"
  sed -e "s|@DIR@|$dir|g" -e "s|@NAME@|$name|g" -e "s|@LISTEN@|$listen|g" "$data/nginx.conf.in" >"$dir/nginx.conf"
  start_bg "$ns" "$dir/stderr.log" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
  wait_for "nginx in $name listening" "$last_pid" listens "$ns" 80
}
start_nginx server6 "$ns_server6" '[2001:db8:2::2]:80'
start_nginx server4 "$ns_server4" '203.0.113.2:80'
echo "    nginx: server6 on [2001:db8:2::2]:80, server4 on 203.0.113.2:80; knotd on 203.0.113.2:53"

step "Starting gate46d in gw: components dns, socks, relay, firewall" \
  "It answers DNS on the LAN addresses, installs the capture rules, then runs as user gate46."
if ! getent passwd gate46 >/dev/null; then
  systemd-sysusers "$top/deploy/sysusers.d/gate46.conf"
fi
state=$work/state
mkdir -p "$state"
chgrp gate46 "$state"
chmod 02770 "$state"
cat >"$work/gate46.toml" <<EOF
[daemon]
components = ["dns", "socks", "relay", "firewall"]

[lan]
interfaces = ["lan0", "lan1"]
networks = ["192.0.2.0/24", "2001:db8:1::/64"]

[dns]
upstreams = ["203.0.113.2"]   # knotd in server4
mode = "translate"             # fake addresses only for names that lack the asked family

[gateway]
drain_timeout = 2

[store]
path = "$state/mappings.mdb"

[pools]
key_file = "$state/pool.key"

[control]
socket = "$state/control.sock"
EOF
"$gate46ctl" --config "$work/gate46.toml" keygen >"$work/keygen.log" 2>&1 || {
  cat "$work/keygen.log"
  fail "gate46ctl keygen failed"
}
start_bg "$ns_gw" "$work/gate46d.log" "$gate46d" --config "$work/gate46.toml"
gate46d_pid=$last_pid
wait_for "gate46d running" "$gate46d_pid" log_has "$work/gate46d.log" "gate46d running"
wait_for "gate46d's DNS on 192.0.2.1" "$gate46d_pid" log_has "$work/gate46d.log" "serving DNS on 192.0.2.1:53"
wait_for "gate46d's DNS on 2001:db8:1::1" "$gate46d_pid" log_has "$work/gate46d.log" "serving DNS on [2001:db8:1::1]:53"
grep -E 'serving DNS on|SOCKS5 on|transparent relay on|capture rules|gate46d running|running as' "$work/gate46d.log" |
  sed -E 's/^[^]]*\] *//' | cut -c1-110 | indent

step "The clients' resolver: gate46's DNS on the gateway" \
  "Like a DHCP or RA client, each client only knows the gateway's address as its DNS server."
for ns in "$ns_client4" "$ns_client6"; do
  printf '  %s: /etc/netns/%s/resolv.conf\n' "${ns#"$tag"-}" "$ns"
  indent <"/etc/netns/$ns/resolv.conf"
done

# ask NS NAME TYPE: dig in NS (through its resolv.conf), shown; sets answer to the answer's address.
ask() {
  local out
  printf '  %s$ dig +noall +answer +identify %s %s\n' "${1#"$tag"-}" "$2" "$3"
  out=$(in_ns "$1" dig +noall +answer +identify "$2" "$3")
  sed -e '/^$/d' -e 's/^/    /' <<<"$out"
  answer=$(awk -v type="$3" '$4 == type { address = $5 } END { print address }' <<<"$out")
}
# in_pool ADDRESS CIDR
in_pool() {
  "$python" -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))' \
    "$1" "$2" 2>/dev/null
}

step "DNS from IPv4-only client4: A for the IPv6-only name" \
  "v6only.gate46.test has no A record, so gate46 answers with a fake IPv4 address from 198.18.0.0/15."
ask "$ns_client4" v6only.gate46.test A
fake4=$answer
in_pool "$fake4" 198.18.0.0/15 || fail "A v6only.gate46.test gave '$fake4', not an address of 198.18.0.0/15"

step "DNS from IPv6-only client6: AAAA for the IPv4-only name" \
  "v4only.gate46.test has no AAAA record, so gate46 answers with a fake IPv6 address from 2001:2::/48."
ask "$ns_client6" v4only.gate46.test AAAA
fake6=$answer
in_pool "$fake6" 2001:2::/48 ||
  fail "AAAA v4only.gate46.test gave '$fake6', not an address of 2001:2::/48"

# curl_page NS HOST SERVER-DIR EXPECTED-CLIENT: the page by name, then the server's log line.
curl_page() {
  local ns=$1 host=$2 dir=$3 expected=$4 page seen
  printf '  %s$ curl http://%s/\n' "${ns#"$tag"-}" "$host"
  page=$(in_ns "$ns" curl -sS --fail --max-time 10 "http://$host/" 2>&1) || {
    printf '%s\n' "$page" | indent
    fail "curl http://$host/ from ${ns#"$tag"-} failed"
  }
  printf '%s\n' "$page" | indent
  seen=$(tail -n 1 "$work/$dir/access.log")
  printf '  %s'"'"'s nginx access log (client -> server):\n' "$dir"
  printf '%s\n' "$seen" | indent
  [[ $seen == "$expected "* ]] || fail "$dir's log shows '$seen', not a request from $expected"
}

step "client4 (IPv4 only) fetches http://v6only.gate46.test/ from the IPv6-only server6" \
  "Plain curl, by name: the page comes from server6, which saw the gateway's IPv6 address 2001:db8:2::1 as the client."
curl_page "$ns_client4" v6only.gate46.test server6 2001:db8:2::1

step "client6 (IPv6 only) fetches http://v4only.gate46.test/ from the IPv4-only server4" \
  "The reverse: server4 saw the gateway's IPv4 address 203.0.113.1."
curl_page "$ns_client6" v4only.gate46.test server4 203.0.113.1

step "The capture rules in gw (nft list table inet gate46, excerpt; ip rule)" \
  "LAN traffic to the fake pools is TPROXY'd to gate46d's port 7046; the fwmark rule delivers it locally."
in_ns "$ns_gw" nft list table inet gate46 >"$work/table.txt"
# Each set's elements and each chain's rules, one line each, named after their set or chain.
awk '$1 == "set" || $1 == "chain" { where = $1 " " $2; next }
  /elements = / { sub(/^[[:space:]]*elements = /, ""); print where ": " $0 }
  /tproxy|drop/ { sub(/^[[:space:]]*/, ""); print where ": " $0 }' "$work/table.txt" | indent
in_ns "$ns_gw" ip rule | grep -F 'lookup 46' | sed 's/^/ip rule:    /' | indent
in_ns "$ns_gw" ip -6 rule | grep -F 'lookup 46' | sed 's/^/ip -6 rule: /' | indent

step "The mapping table (gate46ctl map list)" \
  "The fake addresses gate46 handed out and the names they stand for, shared by every gate46 process through LMDB."
"$gate46ctl" --config "$work/gate46.toml" map list | indent

step "Live flows (gate46ctl flows), while each client holds a connection open" \
  "Each client did one GET and keeps its connection: client, fake address, name, real target, bytes each way."
# One HTTP/1.1 GET on a kept-alive connection, then silence for a while (the demo ends it).
hold_py='
import socket, sys, time
family = socket.AF_INET if sys.argv[1] == "4" else socket.AF_INET6
address = socket.getaddrinfo(sys.argv[2], 80, family, socket.SOCK_STREAM)[0][4]
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(address)
s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % sys.argv[2]).encode())
reply = b""
while not (b"saw your connection" in reply and reply.endswith(b"\n")):
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed before the whole page: %r" % reply)
    reply += chunk
print("holding", address[0], flush=True)
time.sleep(30)
'
start_bg "$ns_client4" "$work/hold4.log" "$python" -c "$hold_py" 4 v6only.gate46.test
hold4_pid=$last_pid
start_bg "$ns_client6" "$work/hold6.log" "$python" -c "$hold_py" 6 v4only.gate46.test
hold6_pid=$last_pid
wait_for "client4's held connection" "$hold4_pid" log_has "$work/hold4.log" "holding"
wait_for "client6's held connection" "$hold6_pid" log_has "$work/hold6.log" "holding"
"$gate46ctl" --config "$work/gate46.toml" flows >"$work/flows.txt"
indent <"$work/flows.txt"
for name in v6only.gate46.test v4only.gate46.test; do
  grep -qF "$name" "$work/flows.txt" || fail "gate46ctl flows does not list the held flow to $name"
done
for pid in "$hold4_pid" "$hold6_pid"; do
  stop_pid "$pid"
  forget_pid "$pid"
done

step "Counters (gate46ctl stats, the non-zero ones)" \
  "What each component did: DNS queries and fake answers, flows relayed and their bytes, failures by reason, pool use."
"$gate46ctl" --config "$work/gate46.toml" stats >"$work/stats.txt"
# "group" then "  counter value" lines, then the pools' table: one line per group, zeros left out.
awk 'function flush() { if (group != "") print group ": " (line == "" ? "(all zero)" : line); group = "" }
  in_pools { print "  " $0; next }
  $1 == "pools" && NF == 1 { flush(); in_pools = 1; print "pools:"; next }
  /^[^[:space:]]/ { flush(); group = $1; line = ""; next }
  NF == 2 && $2 != "0" { line = line (line == "" ? "" : ", ") $1 " " $2 }
  END { flush() }' "$work/stats.txt" | indent

step "The daemon (gate46ctl status)" \
  "gate46d's pid, the user it runs as (gate46, not root), its configuration, uptime and components."
"$gate46ctl" --config "$work/gate46.toml" status | indent

step "Stopping gate46d (SIGTERM)" \
  "It drains, removes its capture rules and routes, and exits 0: gw is left as it was."
kill -TERM "$gate46d_pid"
status=0
wait "$gate46d_pid" || status=$?
forget_pid "$gate46d_pid"
grep -F 'gate46d stopped' "$work/gate46d.log" | sed -E 's/^[^]]*\] *//' | indent
((status == 0)) || fail "gate46d exited with status $status"
if in_ns "$ns_gw" nft list table inet gate46 >/dev/null 2>&1; then fail "table inet gate46 is still there"; fi
if in_ns "$ns_gw" ip rule | grep -qF 'lookup 46' || in_ns "$ns_gw" ip -6 rule | grep -qF 'lookup 46'; then
  fail "gate46's policy rule is still there"
fi
printf '  gw$ nft list tables\n'
tables=$(in_ns "$ns_gw" nft list tables)
printf '%s\n' "${tables:-(none)}" | indent
printf '  gw$ ip rule; ip -6 rule   (no "fwmark 0x46/0xff lookup 46" left)\n'
in_ns "$ns_gw" ip rule | sed 's/^/ip rule:    /' | indent
in_ns "$ns_gw" ip -6 rule | sed 's/^/ip -6 rule: /' | indent

step_name="cleanup"
printf '\n%sDone: IPv4-only client4 reached IPv6-only server6 by name, and IPv6-only client6 reached IPv4-only server4, through gate46.%s\n' "$bold" "$plain"
