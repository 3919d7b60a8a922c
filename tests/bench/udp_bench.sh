#!/usr/bin/env bash
# gate46 UDP benchmark (issue 11 item 5): iperf3 -u through gate46's transparent UDP relay against
# the kernel forwarding the same traffic, in one run.
#
# How to run (as root; missing tools are apt-installed; gate46d and gate46ctl are built from this
# checkout into build/bench when they are missing or REBUILD=1):
#
#   tests/bench/udp_bench.sh
#   BUILD_DIR=$PWD/build/release DURATION=3 tests/bench/udp_bench.sh
#
# The measure (issue 11, not to be bent): iperf3 -u -l 1200 at a fixed rate per probe. Starting at
# 1 Gbit/s, the rate is doubled until direct loses more than 0.1 % of its datagrams, then the
# interval between the last clean rate and the first lossy one is bisected until it is within 5 %:
# the lower end is direct's highest clean rate. gate46 (each path) is then probed at that rate
# (its loss and throughput are reported), and its own highest clean rate is found the same way
# (halving instead of doubling while 1 Gbit/s is already lossy). Goal: gate46's clean rate >= 0.5x
# direct's.
# A probe's loss and throughput are the receiver's (`iperf3 -s -1 -J` on the server: end.sum_received,
# lost_percent as the server saw it). A probe is clean when that loss is <= LOSS_LIMIT % and the
# sender managed at least 90 % of the asked rate (a rate the client cannot even send is no clean
# rate; such probes are marked "short").
#
# Environment knobs (defaults):
#   DURATION=3        seconds of each probe (iperf3 -t)
#   PATHS="same cross"   gate46 paths measured after direct
#   START=1000        first rate, Mbit/s        LOSS_LIMIT=0.1   % lost that still counts as clean
#   PRECISION=5       % the bisection stops at  LENGTH=1200      datagram payload (iperf3 -l)
#   WINDOW=4M         iperf3 -w on both ends (socket buffers of the load generator and the receiver,
#                     the same for every path; empty: iperf3's default)
#   MAX_DOUBLINGS=6 MAX_HALVINGS=8 MAX_BISECTIONS=8   bounds of each search
#   THREADS=2         gate46d's daemon.threads
#   PERF=0            1: `perf record -g` on gate46d during each gate46 path's probe at direct's clean
#                     rate; the top of `perf report` is printed and perf-PATH.data kept in the work
#                     directory (KEEP=1 to read it afterwards)
#   SOURCE_DIR=<this checkout>  BUILD_DIR=$SOURCE_DIR/build/bench  REBUILD=0
#   KEEP=0            the work directory in /tmp (configs, logs, every probe's JSON) is kept if
#                     KEEP=1 or on failure
#
# Topology (as relay_bench.sh): three network namespaces made here and removed on exit:
#   client  eth0 192.0.2.2/24 2001:db8:1::2/64   (iperf3 -c; an IPv4 client: it aims at 203.0.113.2
#                                                  or at fake A addresses)
#   gw      lan0 192.0.2.1/24 2001:db8:1::1/64, up0 203.0.113.1/24 2001:db8:2::1/64, forwarding on;
#           gate46d --components dns,relay (DNS 192.0.2.1:53 mode "all", relay on tproxy.port);
#           capture rules by `gate46ctl firewall apply|remove` only
#   server  eth0 203.0.113.2/24 2001:db8:2::2/64  (iperf3 -s, knotd for bench.test:
#           v4only A 203.0.113.2, v6only AAAA 2001:db8:2::2)
# Paths: direct = the client to 203.0.113.2, forwarded IPv4 -> IPv4 by gw's kernel, no gate46 table
#                 (checked before direct's search);
#        same   = the client to the fake A of v4only.bench.test: TPROXY, gate46 relays over IPv4;
#        cross  = the client to the fake A of v6only.bench.test: gate46 relays over IPv6.
# iperf3's control connection (TCP, same address and port) takes the TCP relay on the gate46 paths:
# that is the real path. Each probe uses a new client port, so a new UDP session.
# Each probe line also shows where datagrams were dropped: the UDP receive-buffer errors of gw's
# and the server's kernels (/proc/net/snmp{,6}, both families) and, for gate46 paths, the change in
# gate46d's udp_dropped_* counters and its CPU time (% of one core).
#
# Exit status: 0 done (whatever the figures), 1 something failed to start or a tool is missing,
# 3 a correctness check failed (a probe failed, a table left behind).
# Both cores are shared by iperf3's two ends, gate46d and whatever else runs on the machine:
# compare figures within one run only; a single probe per rate, so expect noise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=${SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
BUILD_DIR=${BUILD_DIR:-$SOURCE_DIR/build/bench}
REBUILD=${REBUILD:-0}
DURATION=${DURATION:-3}
PATHS=${PATHS:-same cross}
START=${START:-1000}
LOSS_LIMIT=${LOSS_LIMIT:-0.1}
PRECISION=${PRECISION:-5}
LENGTH=${LENGTH:-1200}
WINDOW=${WINDOW-4M}
MAX_DOUBLINGS=${MAX_DOUBLINGS:-6}
MAX_HALVINGS=${MAX_HALVINGS:-8}
MAX_BISECTIONS=${MAX_BISECTIONS:-8}
THREADS=${THREADS:-2}
PERF=${PERF:-0}
PROFILE=
KEEP=${KEEP:-0}

PY=/usr/bin/python3
GATE46D=$BUILD_DIR/gateway/gate46d
GATE46CTL=$BUILD_DIR/ctl/gate46ctl

GW_LAN4=192.0.2.1
SERVER4=203.0.113.2
SERVER6=2001:db8:2::2
ZONE=bench.test.
IPERF_PORT=5201

TAG=g46ub$$
NS_C=${TAG}c
NS_G=${TAG}g
NS_S=${TAG}s
NAMESPACES=()
PIDS=()
WORK=
CHECKS_FAILED=0

# shellcheck source=tests/bench/lib/common.sh
source "$HERE/lib/common.sh"

# ---- preconditions ----------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (network namespaces, nftables)"
for knob in DURATION START LENGTH MAX_DOUBLINGS MAX_HALVINGS MAX_BISECTIONS THREADS; do
  positive "${!knob}" || die "$knob must be a positive integer"
done
number "$LOSS_LIMIT" || die "LOSS_LIMIT must be a number (percent)"
number "$PRECISION" || die "PRECISION must be a number (percent)"
((LENGTH <= 65507)) || die "LENGTH: at most 65507 bytes"
[[ -z $WINDOW || $WINDOW =~ ^[0-9]+[KM]?$ ]] || die "WINDOW must be like 4M, 512K or empty"
for p in $PATHS; do
  [[ $p =~ ^(same|cross)$ ]] || die "unknown path '$p' in PATHS (same, cross)"
done
[[ -x $PY ]] || die "$PY missing"
[[ $PERF != 1 ]] || command -v perf >/dev/null || die "PERF=1: no perf (linux-perf)"

# tool:package, installed with apt when the tool is missing.
install_tools udp_bench ip:iproute2 iperf3:iperf3 knotd:knot dig:dnsutils nft:nftables ss:iproute2

build_gate46 udp_bench
WORK=$(mktemp -d /tmp/gate46-udpbench-XXXXXX)
chmod 0755 "$WORK"
mkdir -p "$WORK/probes"

# ---- namespaces -------------------------------------------------------------------------------
make_topology


# ---- server: knotd -------------------------------------------------------------------------------
start_knot

# ---- gate46d ----------------------------------------------------------------------------------
G=$WORK/gate46
make_state_dir "$G"
CONF=$G/gate46.toml
cat >"$CONF" <<EOF
[daemon]
threads = $THREADS

[lan]
interfaces = ["lan0"]
networks = ["192.0.2.0/24", "2001:db8:1::/64"]

[dns]
listen = ["$GW_LAN4:53"]
upstreams = ["$SERVER4"]
# Every name with an address gets a fake one: v4only -> fake A relayed over IPv4.
mode = "all"

[gateway]
prefer_family = "ipv4"

[store]
path = "$G/mappings.mdb"

[pools]
key_file = "$G/pool.key"

[control]
socket = "$G/control.sock"

[log]
level = "info"
EOF
"$GATE46D" --config "$CONF" --check-config >"$G/check.log" 2>&1 || die "gate46d --check-config: $(cat "$G/check.log")"

GATE46_PID=
GATE46_LOG=$G/gate46d.log
start_bg "$NS_G" "$GATE46_LOG" "$GATE46D" --config "$CONF" --components dns,relay
GATE46_PID=$LAST_PID
for ((i = 0; i < 100; i++)); do
  kill -0 "$GATE46_PID" 2>/dev/null || die "gate46d exited: $(tail -20 "$GATE46_LOG")"
  grep -q 'transparent UDP relay on' "$GATE46_LOG" && break
  sleep 0.1
done
((i < 100)) || die "no 'transparent UDP relay on' in gate46d's log within 10 s: $(tail -20 "$GATE46_LOG")"
log "gate46d up (pid $GATE46_PID, log $GATE46_LOG)"

ask_fakes

# ---- the capture rules ---------------------------------------------------------------------------

target_of() {
  case $1 in
    direct) echo "$SERVER4" ;;
    same) echo "$FAKE_SAME" ;;
    cross) echo "$FAKE_CROSS" ;;
  esac
}

# ---- what a probe reads besides iperf3 -------------------------------------------------------------
# UDP receive-buffer errors of a namespace's kernel, IPv4 + IPv6 (datagrams dropped because a
# socket's receive queue was full).
rcvbuf_errors() {
  in_ns "$1" cat /proc/net/snmp /proc/net/snmp6 | awk '
    /^Udp: / { if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next } v4 = $col["RcvbufErrors"] }
    $1 == "Udp6RcvbufErrors" { v6 = $2 }
    END { print v4 + v6 }'
}
# gate46d's udp_dropped_* counters summed, and udp_datagrams_up, as "dropped up".
gate46_udp_counters() {
  in_ns "$NS_G" "$GATE46CTL" --config "$CONF" stats --json 2>/dev/null | $PY -c '
import json, sys
found = {}
def walk(node):
    if isinstance(node, dict):
        name, value = node.get("name"), node.get("value")
        if isinstance(name, str) and isinstance(value, int):
            found[name] = value
        for k, v in node.items():
            if isinstance(v, int) and k.startswith("udp_"):
                found[k] = v
            else:
                walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
try:
    walk(json.load(sys.stdin))
except ValueError:
    pass
dropped = sum(v for k, v in found.items() if k.startswith("udp_dropped_"))
print(dropped, found.get("udp_datagrams_up", 0))' || echo "0 0"
}

# ---- one probe -------------------------------------------------------------------------------------
# probe PATH RATE (Mbit/s): one iperf3 -u run; sets P_LOSS (receiver's %), P_RECV (received Mbit/s),
# P_SENT (sent Mbit/s), P_CLEAN (yes/no/short) and prints one line. A failed run: P_CLEAN=fail.
declare -A CACHE
PROBES=0
probe() {
  local path=$1 rate=$2 name pid srv cli window=() t0 w0 g0 g1 s0 s1 c0 c1 extra=
  if [[ -n ${CACHE[$path,$rate]:-} ]]; then
    read -r P_LOSS P_RECV P_SENT P_CLEAN <<<"${CACHE[$path,$rate]}"
    return 0
  fi
  PROBES=$((PROBES + 1))
  name=$(printf '%03d-%s-%s' "$PROBES" "$path" "$rate")
  srv=$WORK/probes/$name.server.json
  cli=$WORK/probes/$name.client.json
  [[ -z $WINDOW ]] || window=(-w "$WINDOW")
  start_bg "$NS_S" "$srv" iperf3 -s -1 -J -p "$IPERF_PORT"
  pid=$LAST_PID
  wait_listen "$NS_S" "$IPERF_PORT" "$pid" || die "iperf3 -s did not listen: $(tail -3 "$srv")"
  g0=$(rcvbuf_errors "$NS_G")
  s0=$(rcvbuf_errors "$NS_S")
  if [[ $path != direct ]]; then
    read -r c0 _ <<<"$(gate46_udp_counters)"
    t0=$(cpu_ticks "$GATE46_PID")
  fi
  w0=$EPOCHREALTIME
  local ok=yes perf_pid=
  if [[ -n ${PROFILE:-} && $path != direct ]]; then
    perf record -q -g -p "$GATE46_PID" -o "$WORK/perf-$path.data" -- sleep "$DURATION" >"$WORK/perf-$path.log" 2>&1 &
    perf_pid=$!
  fi
  in_ns "$NS_C" timeout $((DURATION + 30)) iperf3 -c "$(target_of "$path")" -p "$IPERF_PORT" -u -l "$LENGTH" \
    -b "${rate}M" -t "$DURATION" "${window[@]}" -J --connect-timeout 5000 >"$cli" 2>"$cli.err" || ok=no
  if [[ $path != direct ]]; then
    extra=$($PY -c "print(round(100 * ($(cpu_ticks "$GATE46_PID") - $t0) / $TICKS / ($EPOCHREALTIME - $w0)))")
  fi
  # The server writes its JSON as it exits, right after the client's end.
  await_pid "$pid" 50
  if [[ -n $perf_pid ]]; then
    await_pid "$perf_pid" 100
    echo "    perf record -g on gate46d during this probe, top of perf report --no-children:"
    perf report -q -i "$WORK/perf-$path.data" --stdio --no-children --percent-limit 1 -g none 2>/dev/null |
      grep -v '^$' | head -25 | cut -c1-150 | sed 's/^/      /' || true
  fi
  g1=$(rcvbuf_errors "$NS_G")
  s1=$(rcvbuf_errors "$NS_S")
  local figures
  figures=$($PY - "$srv" "$cli" <<'EOF' 2>/dev/null || echo fail
import json, sys
server = json.load(open(sys.argv[1]))["end"]["sum_received"]
client = json.load(open(sys.argv[2]))["end"]["sum_sent"]
print("%.3f %.0f %.0f" % (server["lost_percent"], server["bits_per_second"] / 1e6, client["bits_per_second"] / 1e6))
EOF
)
  if [[ $ok == no || $figures == fail ]]; then
    P_LOSS=- P_RECV=- P_SENT=- P_CLEAN=fail
    log "probe $name failed: $(tail -c 300 "$cli" | tr '\n' ' ') $(tail -3 "$cli.err" | tr '\n' ' ')"
    CHECKS_FAILED=1
  else
    read -r P_LOSS P_RECV P_SENT <<<"$figures"
    P_CLEAN=$($PY -c "
loss, sent, rate = $P_LOSS, $P_SENT, $rate
print('short' if sent < 0.9 * rate else 'yes' if loss <= $LOSS_LIMIT else 'no')")
  fi
  local drops="gw rcvbuf drops $((g1 - g0)), server rcvbuf drops $((s1 - s0))"
  if [[ $path != direct ]]; then
    read -r c1 _ <<<"$(gate46_udp_counters)"
    drops+=", gate46d udp_dropped_* +$((c1 - c0)), gate46d CPU $extra%"
  fi
  printf '  %-6s %7s Mbit/s asked: sent %7s, received %7s Mbit/s, loss %7s %%  %-5s  (%s)\n' \
    "$path" "$rate" "$P_SENT" "$P_RECV" "$P_LOSS" "$P_CLEAN" "$drops"
  CACHE[$path,$rate]="$P_LOSS $P_RECV $P_SENT $P_CLEAN"
}

# ---- the search ----------------------------------------------------------------------------------
# search PATH: the highest clean rate, as the issue defines it; sets CLEAN_RATE (0 when even the
# lowest rate tried was not clean) and SEARCH_NOTE.
search() {
  local path=$1 rate=$START lo=0 hi=0 n mid
  SEARCH_NOTE=
  log "searching $path's highest clean rate from $START Mbit/s"
  probe "$path" "$rate"
  if [[ $P_CLEAN == yes ]]; then
    lo=$rate
    for ((n = 0; n < MAX_DOUBLINGS; n++)); do
      rate=$((rate * 2))
      probe "$path" "$rate"
      if [[ $P_CLEAN == yes ]]; then lo=$rate; else
        hi=$rate
        break
      fi
    done
    if ((hi == 0)); then
      SEARCH_NOTE="clean up to $lo Mbit/s, the highest rate tried (MAX_DOUBLINGS)"
      CLEAN_RATE=$lo
      return 0
    fi
  else
    hi=$rate
    for ((n = 0; n < MAX_HALVINGS; n++)); do
      rate=$((rate / 2))
      ((rate > 0)) || break
      probe "$path" "$rate"
      if [[ $P_CLEAN == yes ]]; then
        lo=$rate
        break
      fi
      hi=$rate
    done
    if ((lo == 0)); then
      SEARCH_NOTE="not clean even at $hi Mbit/s (MAX_HALVINGS)"
      CLEAN_RATE=0
      return 0
    fi
  fi
  for ((n = 0; n < MAX_BISECTIONS; n++)); do
    $PY -c "import sys; sys.exit(0 if $hi - $lo > $lo * $PRECISION / 100 else 1)" || break
    mid=$(((lo + hi) / 2))
    ((mid > lo && mid < hi)) || break
    probe "$path" "$mid"
    if [[ $P_CLEAN == yes ]]; then lo=$mid; else hi=$mid; fi
  done
  CLEAN_RATE=$lo
  SEARCH_NOTE="clean at $lo, not at $hi Mbit/s"
}

# ---- checks before measuring --------------------------------------------------------------------
if has_table; then fw_remove; fi
has_table && ok=no || ok=yes
check "direct: no table inet gate46" "$ok"
fw_apply
has_table && ok=yes || ok=no
check "gate46ctl firewall apply: table inet gate46 present" "$ok"
for path in $PATHS; do
  before=$(gate46_udp_counters)
  start_bg "$NS_S" "$WORK/check-$path.json" iperf3 -s -1 -J -p "$IPERF_PORT"
  pid=$LAST_PID
  wait_listen "$NS_S" "$IPERF_PORT" "$pid" || die "iperf3 -s did not listen"
  in_ns "$NS_C" timeout 30 iperf3 -c "$(target_of "$path")" -p "$IPERF_PORT" -u -l "$LENGTH" -b 10M -t 1 -J \
    --connect-timeout 5000 >"$WORK/check-$path.client.json" 2>&1 || true
  await_pid "$pid" 50
  received=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"])' \
    "$WORK/check-$path.json" 2>/dev/null || echo 0)
  after=$(gate46_udp_counters)
  check "$path: iperf3 -u 10 Mbit/s 1 s to $(target_of "$path") received $received bytes; gate46d udp_datagrams_up ${before#* } -> ${after#* }" \
    "$([[ $received -gt 0 && ${after#* } -gt ${before#* } ]] && echo yes || echo no)"
done
fw_remove
has_table && ok=no || ok=yes
check "gate46ctl firewall remove: no table inet gate46 left" "$ok"
((CHECKS_FAILED == 0)) || die "a path does not work; nothing measured"

echo
echo "== gate46 UDP benchmark ($(date -u +%FT%TZ), $(nproc) cores, load average at start: $LOAD_START)"
echo "  gate46d $REVISION ($BUILD_DIR), daemon.threads $THREADS, $(uname -r), $(iperf3 --version | head -1)"
udp_line=$(grep -m1 -o 'transparent UDP relay on.*' "$GATE46_LOG" || true)
[[ -z $udp_line ]] || echo "  gate46d: $udp_line"
echo "  iperf3 -u -l $LENGTH -t $DURATION${WINDOW:+ -w $WINDOW}; clean = receiver's loss <= $LOSS_LIMIT % and sent >= 90 % of the rate;"
echo "  from $START Mbit/s, doubling (halving) then bisecting to within $PRECISION %"
echo "  paths: direct = kernel forwarding IPv4 -> IPv4 (no gate46 table), same = fake $FAKE_SAME -> $SERVER4,"
echo "  cross = fake $FAKE_CROSS -> [$SERVER6]"
echo

# ---- measuring --------------------------------------------------------------------------------------
declare -A CLEAN NOTE AT_LOSS AT_RECV AT_CLEAN
if has_table; then
  check "no table inet gate46 before direct's search" no
  fw_remove
fi
echo "== direct"
search direct
CLEAN[direct]=$CLEAN_RATE
NOTE[direct]=$SEARCH_NOTE
D=$CLEAN_RATE
for path in $PATHS; do
  echo "== $path"
  fw_apply
  if ((D > 0)); then
    log "$path at direct's clean rate $D Mbit/s"
    [[ $PERF != 1 ]] || PROFILE=1
    probe "$path" "$D"
    PROFILE=
    AT_LOSS[$path]=$P_LOSS AT_RECV[$path]=$P_RECV AT_CLEAN[$path]=$P_CLEAN
  fi
  search "$path"
  CLEAN[$path]=$CLEAN_RATE
  NOTE[$path]=$SEARCH_NOTE
  fw_remove
done

# ---- summary ---------------------------------------------------------------------------------------
GATE46_COUNTERS=$(in_ns "$NS_G" "$GATE46CTL" --config "$CONF" stats 2>/dev/null | grep -E '\budp_' | sed 's/^ */    /' || true)
stop_pid "$GATE46_PID"
bad=$(grep -v 'counters:' "$GATE46_LOG" | grep -iE '\b(warn(ing)?|error|critical|abort)\b|sanitizer' || true)
echo
echo "== summary ($PROBES probes of $DURATION s; one probe per rate: noisy, compare within this run only)"
printf '  %-6s %18s %8s  %s\n' path "clean rate Mbit/s" "x direct" "search"
for path in direct $PATHS; do
  r=-
  [[ $path == direct ]] || r=$($PY -c "print(f'{${CLEAN[$path]} / max($D, 1e-9):.2f}')")
  printf '  %-6s %18s %8s  %s\n' "$path" "${CLEAN[$path]}" "$r" "${NOTE[$path]}"
done
GOALS_MISSED=0
for path in $PATHS; do
  if ((D > 0)); then
    echo "  $path at direct's clean rate $D Mbit/s: loss ${AT_LOSS[$path]} %, received ${AT_RECV[$path]} Mbit/s (${AT_CLEAN[$path]})"
  fi
  if ((D > 0)) && $PY -c "import sys; sys.exit(0 if ${CLEAN[$path]} >= 0.5 * $D else 1)"; then verdict=met; else
    verdict=MISSED
    GOALS_MISSED=$((GOALS_MISSED + 1))
  fi
  echo "  goal $path clean rate >= 0.5 x direct's: $verdict"
done
if [[ -n $GATE46_COUNTERS ]]; then
  echo "  gate46d udp counters at the end:"
  echo "$GATE46_COUNTERS"
fi
if [[ -n $bad ]]; then
  echo "  gate46d log has $(wc -l <<<"$bad") warning/error lines, the first ones:"
  head -8 <<<"$bad" | cut -c1-200 | sed 's/^/    /'
fi
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((CHECKS_FAILED)); then
  echo "Some correctness checks FAILED (see CHECK FAILED and 'failed' above)."
  exit 3
fi
