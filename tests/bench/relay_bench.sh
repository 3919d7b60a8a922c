#!/usr/bin/env bash
# gate46 relay benchmark (issue 8: transparent relay + zero-copy splice): iperf3, wrk and idle
# flows through gate46d against the kernel forwarding the same traffic.
#
# How to run (as root; missing tools are apt-installed; gate46d and gate46ctl are built from this
# checkout into build/bench when they are missing or REBUILD=1):
#
#   tests/bench/relay_bench.sh
#   PAIRS=3 DURATION=5 TESTS="iperf1 memory" tests/bench/relay_bench.sh
#
# Environment knobs (defaults):
#   PAIRS=5          pairs per measurement and path (each: direct, then that gate46 path)
#   DURATION=10      seconds of each iperf3 and wrk run
#   TESTS="iperf1 iperf4 wrk-close wrk-keepalive memory"   which measurements, in this order
#   PATHS="same cross socks"   gate46 paths measured (wrk never goes through SOCKS)
#   TARGETS=fake     or "names": the client resolves the names itself through gate46's DNS
#   MEM_PATHS="same cross socks"   paths of the idle-flow memory measurement
#   FLOWS="1000 5000" IDLE=10   the two idle-flow counts, and the idle time before each reading
#   THREADS=2 NGINX_WORKERS=1   gate46d's daemon.threads, nginx's worker_processes
#   SOURCE_DIR=<this checkout>  BUILD_DIR=$SOURCE_DIR/build/bench  REBUILD=0
#   KEEP=0           the work directory in /tmp (configs, every log and raw output) is kept if
#                    KEEP=1 or on failure
# The script's environment reaches gate46d, e.g. GATE46_RELAY_ACCEPT=single (the relay's single
# acceptor instead of one listener per thread).
#
# Topology: three network namespaces made here and removed on exit (also on Ctrl-C or failure):
#   client  eth0 192.0.2.2/24 2001:db8:1::2/64   (iperf3 -c, wrk, curl, proxychains4, idle_clients.py)
#   gw      lan0 192.0.2.1/24 2001:db8:1::1/64, up0 203.0.113.1/24 2001:db8:2::1/64, forwarding on;
#           gate46d --components dns,socks,relay (DNS 192.0.2.1:53 mode "all", SOCKS 192.0.2.1:1080,
#           relay on tproxy.port); capture rules by `gate46ctl firewall apply|remove` only
#   server  eth0 203.0.113.2/24 2001:db8:2::2/64  (iperf3 -s, nginx on both addresses, knotd for
#           bench.test: v4only A 203.0.113.2, v6only AAAA 2001:db8:2::2)
# The client and server route 198.18.0.0/15 and each other's networks through gw.
#
# Paths: direct  = the client to 203.0.113.2, forwarded IPv4 -> IPv4 by gw's kernel, with no
#                  gate46 table (checked before every direct run);
#        same    = the client to the fake A of v4only.bench.test: TPROXY, gate46 relays over IPv4;
#        cross   = the client to the fake A of v6only.bench.test: gate46 relays over IPv6;
#        socks   = the client to 203.0.113.2 through gate46's SOCKS5 server (iperf3 under
#                  proxychains4; idle_clients.py speaks SOCKS5 itself).
# A pair is one direct run (no gate46 table), then the capture rules applied, one gate46 path, the
# rules removed; each pair's ratio is the path's figure / its direct figure; a result is the
# median of its PAIRS ratios, printed with gate46d's CPU time during its runs (median, % of one
# core). Goals (issue 8): iperf3 1 stream >= 0.8, 4 streams >= 0.6, wrk with "Connection: close"
# >= 0.6, keep-alive >= 0.8.
# Memory: per path, a fresh gate46d (capture rules applied for transparent paths); its VmRSS and
# descriptor count idle, then with FLOWS idle flows held by idle_clients.py (each did one HTTP/1.1
# keep-alive GET to nginx first, then IDLE s of silence); cost per flow = RSS slope between the
# two counts (goal <= 8 KiB); descriptors must stay within 2 per flow plus the idle count + 16.
# After the last reading every held flow must answer one more GET.
#
# Exit status: 0 done (whatever the figures), 1 something failed to start or a tool is missing,
# 3 a correctness check failed (a run failed, a flow was lost, a table left behind).
# Figures go into the issue notes, never into tests. Both cores are shared by every process:
# compare ratios within one run only.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=${SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
BUILD_DIR=${BUILD_DIR:-$SOURCE_DIR/build/bench}
REBUILD=${REBUILD:-0}
PAIRS=${PAIRS:-5}
DURATION=${DURATION:-10}
TESTS=${TESTS:-iperf1 iperf4 wrk-close wrk-keepalive memory}
PATHS=${PATHS:-same cross socks}
# fake: the gate46 paths aim at the fake addresses (asked of gate46's DNS once, by dig);
# names: iperf3, wrk and curl are given the names and resolve them themselves through gate46's
# DNS (the client's resolv.conf; A only, so "same" and "cross" stay IPv4 on the client side):
# the whole path, DNS + capture + relay (tests/bench/e2e_bench.sh).
TARGETS=${TARGETS:-fake}
MEM_PATHS=${MEM_PATHS:-same cross socks}
FLOWS=${FLOWS:-1000 5000}
IDLE=${IDLE:-10}
THREADS=${THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-1}
KEEP=${KEEP:-0}

PY=/usr/bin/python3
IDLE_PY=$HERE/relay/idle_clients.py
NGINX_TEMPLATE=$HERE/relay/nginx.conf.in
GATE46D=$BUILD_DIR/gateway/gate46d
GATE46CTL=$BUILD_DIR/ctl/gate46ctl

GW_LAN4=192.0.2.1
SERVER4=203.0.113.2
SERVER6=2001:db8:2::2
SOCKS=$GW_LAN4:1080
ZONE=bench.test.

TAG=g46rb$$
NS_C=${TAG}c
NS_G=${TAG}g
NS_S=${TAG}s
NAMESPACES=()
PIDS=()
WORK=
CHECKS_FAILED=0
GOALS_MISSED=()

# shellcheck source=tests/bench/lib/common.sh
source "$HERE/lib/common.sh"

# ---- preconditions ----------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (network namespaces, nftables)"
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "PAIRS must be a positive integer"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer"
[[ $IDLE =~ ^[0-9]+$ ]] || die "IDLE must be an integer"
read -r -a FLOW_COUNTS <<<"$FLOWS"
if ! ((${#FLOW_COUNTS[@]} == 2)) || ! [[ ${FLOW_COUNTS[0]} =~ ^[1-9][0-9]*$ && ${FLOW_COUNTS[1]} =~ ^[1-9][0-9]*$ ]] ||
  ((FLOW_COUNTS[0] >= FLOW_COUNTS[1])); then
  die "FLOWS must be two increasing counts (\"1000 5000\")"
fi
((FLOW_COUNTS[1] <= 9000)) || die "FLOWS: at most 9000 (20,000 descriptors per process, 2 per flow in gate46d)"
for t in $TESTS; do
  [[ $t =~ ^(iperf1|iperf4|wrk-close|wrk-keepalive|memory)$ ]] || die "unknown test '$t' in TESTS"
done
for p in $PATHS $MEM_PATHS; do
  [[ $p =~ ^(same|cross|socks)$ ]] || die "unknown path '$p' in PATHS/MEM_PATHS (same, cross, socks)"
done
[[ -x $PY ]] || die "$PY missing"
[[ -r $IDLE_PY && -r $NGINX_TEMPLATE ]] || die "$HERE/relay/ is incomplete"

# tool:package, installed with apt when the tool is missing.
install_tools relay_bench ip:iproute2 iperf3:iperf3 wrk:wrk nginx:nginx knotd:knot dig:dnsutils proxychains4:proxychains4 \
  nft:nftables ss:iproute2 curl:curl

build_gate46 relay_bench
WORK=$(mktemp -d /tmp/gate46-relaybench-XXXXXX)
chmod 0755 "$WORK"

# ---- namespaces -------------------------------------------------------------------------------
make_topology
# glibc 2.36: only A queries from the client's tools, as an IPv4-only host would ask.
[[ $TARGETS != names ]] || printf 'options no-aaaa\n' >>"/etc/netns/$NS_C/resolv.conf"

# ---- server: knotd, nginx ------------------------------------------------------------------------
start_knot

mkdir -p "$WORK/nginx/www"
# 600 bytes, about nginx's default page.
$PY -c 'print("<html><body>" + "gate46 relay bench " * 30 + "</body></html>")' | head -c 600 >"$WORK/nginx/www/index.html"
sed -e "s|@WORK@|$WORK|g" -e "s|@WORKERS@|$NGINX_WORKERS|g" -e "s|@ADDR4@|$SERVER4|g" -e "s|@ADDR6@|$SERVER6|g" \
  "$NGINX_TEMPLATE" >"$WORK/nginx/nginx.conf"
in_ns "$NS_S" nginx -t -q -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/check.log" 2>&1 ||
  die "nginx -t: $(cat "$WORK/nginx/check.log")"
start_bg "$NS_S" "$WORK/nginx/stderr.log" nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
NGINX_PID=$LAST_PID
wait_listen "$NS_S" 80 "$NGINX_PID" || die "nginx did not listen: $(tail -5 "$WORK/nginx/error.log" "$WORK/nginx/stderr.log")"
log "nginx up (pid $NGINX_PID, $NGINX_WORKERS worker(s))"

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
socks_listen = ["$SOCKS"]
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

TRANSPARENT=0
for p in $PATHS $MEM_PATHS; do
  [[ $p == socks ]] || TRANSPARENT=1
done
GATE46_RUNS=0
GATE46_PID=

start_gate46d() {
  GATE46_RUNS=$((GATE46_RUNS + 1))
  GATE46_LOG=$G/gate46d-$GATE46_RUNS.log
  start_bg "$NS_G" "$GATE46_LOG" "$GATE46D" --config "$CONF" --components dns,socks,relay
  GATE46_PID=$LAST_PID
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$GATE46_PID" 2>/dev/null || die "gate46d exited: $(tail -20 "$GATE46_LOG")"
    if grep -q 'gate46d running' "$GATE46_LOG"; then
      break
    fi
    sleep 0.1
  done
  ((i < 100)) || die "gate46d did not start within 10 s: $(tail -20 "$GATE46_LOG")"
  if grep -q 'component relay: not part of this build' "$GATE46_LOG"; then
    ((TRANSPARENT == 0)) || die "the relay component is not in this build ($REVISION): use PATHS=socks MEM_PATHS=socks"
    log "the relay component is not in this build: SOCKS paths only"
  elif ((TRANSPARENT)); then
    for ((i = 0; i < 100; i++)); do
      grep -q 'transparent relay on' "$GATE46_LOG" && break
      sleep 0.1
    done
    ((i < 100)) || die "no 'transparent relay on' in the log within 10 s: $(tail -20 "$GATE46_LOG")"
  fi
  wait_listen "$NS_G" 1080 "$GATE46_PID" || die "gate46d's SOCKS server did not listen: $(tail -20 "$GATE46_LOG")"
  log "gate46d up (pid $GATE46_PID, log $GATE46_LOG)"
}

# Stops gate46d, prints its counters and any warning/error lines of its log.
stop_gate46d() {
  [[ -n $GATE46_PID ]] || return 0
  stop_pid "$GATE46_PID"
  GATE46_PID=
  echo "  gate46d run $GATE46_RUNS counters (logged at stop):"
  grep -E 'counters:' "$GATE46_LOG" | sed -E 's/^.*\] //; s/^/    /' || echo "    (no counters logged)"
  local bad
  bad=$(grep -v 'counters:' "$GATE46_LOG" | grep -iE '\b(warn(ing)?|error|critical|abort)\b|sanitizer' || true)
  if [[ -n $bad ]]; then
    echo "  gate46d log has $(wc -l <<<"$bad") warning/error lines, the first ones:"
    head -8 <<<"$bad" | cut -c1-200 | sed 's/^/    /'
  fi
}

start_gate46d

ask_fakes

cat >"$WORK/proxychains.conf" <<EOF
# Everything through gate46's SOCKS5 server; names never resolved through it (no proxy_dns).
strict_chain
quiet_mode
tcp_read_time_out 15000
tcp_connect_time_out 8000
[ProxyList]
socks5 $GW_LAN4 1080
EOF
PROXY=(proxychains4 -q -f "$WORK/proxychains.conf")

# ---- the capture rules ---------------------------------------------------------------------------
# Before every direct run: gw forwards in the kernel with no gate46 table.
assert_direct() {
  if has_table; then
    check "no table inet gate46 before a direct run" no
    fw_remove
  fi
}

# ---- one run of each kind: sets RESULT (a number, or "fail") -------------------------------------
target_of() {
  case $1 in
    direct | socks) echo "$SERVER4" ;;
    same) if [[ $TARGETS == names ]]; then echo "v4only.$ZONE"; else echo "$FAKE_SAME"; fi ;;
    cross) if [[ $TARGETS == names ]]; then echo "v6only.$ZONE"; else echo "$FAKE_CROSS"; fi ;;
  esac
}

# iperf3 STREAMS PATH NAME: Gbit/s received by the server (a fresh `iperf3 -s -1` per run).
run_iperf() {
  local streams=$1 path=$2 name=$3 out=$WORK/runs/$3.json pid wrap=()
  start_bg "$NS_S" "$WORK/runs/$name.server.log" iperf3 -s -1
  pid=$LAST_PID
  wait_listen "$NS_S" 5201 "$pid" || die "iperf3 -s did not listen: $(tail -3 "$WORK/runs/$name.server.log")"
  [[ $path == socks ]] && wrap=("${PROXY[@]}")
  if in_ns "$NS_C" timeout $((DURATION + 30)) "${wrap[@]}" iperf3 -c "$(target_of "$path")" -P "$streams" \
    -t "$DURATION" -J --connect-timeout 5000 >"$out" 2>"$WORK/runs/$name.err"; then
    RESULT=$($PY -c 'import json,sys; bps = json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]; print("%.2f" % (bps / 1e9))' "$out" 2>/dev/null || echo fail)
  else
    RESULT=fail
  fi
  stop_pid "$pid"
  if [[ $RESULT == fail ]]; then
    log "iperf3 $name failed: $(tail -c 300 "$out" | tr '\n' ' ') $(tail -3 "$WORK/runs/$name.err" | tr '\n' ' ')"
    CHECKS_FAILED=1
  fi
}

# wrk CLOSE(0/1) PATH NAME: requests/s; socket errors and non-2xx answers are noted.
run_wrk() {
  local close=$1 path=$2 name=$3 out=$WORK/runs/$3.txt header=()
  if ((close)); then header=(-H 'Connection: close'); fi
  if in_ns "$NS_C" timeout $((DURATION + 30)) wrk -t1 -c50 -d"${DURATION}s" "${header[@]}" \
    "http://$(target_of "$path")/" >"$out" 2>&1; then
    RESULT=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    [[ -n $RESULT ]] || RESULT=fail
  else
    RESULT=fail
  fi
  local errors
  errors=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ';' || true)
  if [[ $RESULT == fail ]]; then
    log "wrk $name failed: $(tail -5 "$out" | tr '\n' ' ')"
    CHECKS_FAILED=1
  elif [[ -n $errors ]]; then
    WRK_ERRORS+=("$name: $errors")
  fi
}


ratio() { # A B: A/B with two decimals, "-" when either failed
  if [[ $1 == fail || $2 == fail ]]; then echo -; else $PY -c "print(f'{$1 / max($2, 1e-9):.2f}')"; fi
}
median() { # numbers (a "-" is left out): median with two decimals, "-" for none
  $PY -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x != "-"]; print(f"{statistics.median(v):.2f}" if v else "-")' "$@"
}

declare -A FIG
WRK_ERRORS=()
SUMMARY=()

# measure KEY TITLE UNIT GOAL PATHS...: PAIRS pairs per path, each a direct run then that path.
measure() {
  local key=$1 title=$2 unit=$3 goal=$4
  shift 4
  local paths=("$@") p path line d
  log "measuring $title: $PAIRS pairs of direct then each of ${paths[*]}"
  echo
  echo "== $title (goal gate46/direct >= $goal)"
  line=$(printf '  %-5s' pair)
  for path in "${paths[@]}"; do line+=$(printf ' | %12s %12s %5s' "direct $unit" "$path $unit" ratio); done
  echo "$line"
  for ((p = 1; p <= PAIRS; p++)); do
    line=$(printf '  %-5s' "$p")
    for path in "${paths[@]}"; do
      # A pair: direct (no gate46 table), then this path right after it.
      assert_direct
      run_one "$key" direct "$key-$p-$path-direct"
      d=$RESULT
      FIG[$key,direct,$path,$p]=$d
      fw_apply
      local t0 w0
      t0=$(cpu_ticks "$GATE46_PID")
      w0=$EPOCHREALTIME
      run_one "$key" "$path" "$key-$p-$path"
      FIG[$key,$path,cpu,$p]=$($PY -c "print(round(100 * ($(cpu_ticks "$GATE46_PID") - $t0) / $TICKS / ($EPOCHREALTIME - $w0)))")
      FIG[$key,$path,$p]=$RESULT
      FIG[$key,$path,ratio,$p]=$(ratio "$RESULT" "$d")
      fw_remove
      line+=$(printf ' | %12s %12s %5s' "$d" "${FIG[$key,$path,$p]}" "${FIG[$key,$path,ratio,$p]}")
    done
    echo "$line"
  done
  local ratios m verdict
  for path in "${paths[@]}"; do
    ratios=()
    for ((p = 1; p <= PAIRS; p++)); do ratios+=("${FIG[$key,$path,ratio,$p]}"); done
    m=$(median "${ratios[@]}")
    if [[ $m == - ]]; then
      verdict="no result"
    elif $PY -c "import sys; sys.exit(0 if $m >= $goal else 1)"; then
      verdict=met
    else
      verdict=MISSED
      GOALS_MISSED+=("$title, $path: $m < $goal")
    fi
    local cpus=()
    for ((p = 1; p <= PAIRS; p++)); do cpus+=("${FIG[$key,$path,cpu,$p]}"); done
    printf '  median ratio %-5s %5s  (goal >= %s: %s); gate46d CPU during the runs: %s%% of one core (median)\n' \
      "$path" "$m" "$goal" "$verdict" "$(median "${cpus[@]}" | cut -d. -f1)"
    SUMMARY+=("$(printf '%-38s %-5s %5s  goal >= %-4s %s' "$title" "$path" "$m" "$goal" "$verdict")")
  done
}

run_one() {
  local key=$1 path=$2 name=$3
  case $key in
    iperf1) run_iperf 1 "$path" "$name" ;;
    iperf4) run_iperf 4 "$path" "$name" ;;
    wrk-close) run_wrk 1 "$path" "$name" ;;
    wrk-keepalive) run_wrk 0 "$path" "$name" ;;
  esac
}

# ---- checks before measuring --------------------------------------------------------------------
mkdir -p "$WORK/runs"
http_code() { # PATH [curl options]: the HTTP status through that path ("000" when none)
  local path=$1
  shift
  in_ns "$NS_C" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://$(target_of "$path")/" || true
}
assert_direct
c=$(http_code direct)
check "direct: curl http://$SERVER4/ -> $c" "$([[ $c == 200 ]] && echo yes || echo no)"
fw_apply
has_table && ok=yes || ok=no
check "gate46ctl firewall apply: table inet gate46 present" "$ok"
declare -A SEEN
for path in $PATHS $MEM_PATHS; do
  [[ -z ${SEEN[$path]:-} ]] || continue
  SEEN[$path]=1
  case $path in
    same | cross) c=$(http_code "$path") via="" ;;
    socks) c=$(http_code socks --socks5 "$SOCKS") via=" via SOCKS5 $SOCKS" ;;
  esac
  check "$path: curl http://$(target_of "$path")/$via -> $c" "$([[ $c == 200 ]] && echo yes || echo no)"
done
if [[ " $PATHS " == *" socks "* ]]; then
  c=$(in_ns "$NS_C" "${PROXY[@]}" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$SERVER4/" || true)
  check "socks: proxychains4 curl http://$SERVER4/ -> $c" "$([[ $c == 200 ]] && echo yes || echo no)"
fi
fw_remove
has_table && ok=no || ok=yes
check "gate46ctl firewall remove: no table inet gate46 left" "$ok"
((CHECKS_FAILED == 0)) || die "a path does not work; nothing measured"

echo
echo "== gate46 relay benchmark ($(date -u +%FT%TZ), $(nproc) cores, load average at start: $LOAD_START)"
echo "  gate46d $REVISION ($BUILD_DIR), daemon.threads $THREADS, nginx workers $NGINX_WORKERS, $(uname -r)"
relay_line=$(grep -m1 -o 'transparent relay on.*' "$GATE46_LOG" || true)
[[ -z $relay_line ]] || echo "  gate46d: $relay_line"
echo "  PAIRS=$PAIRS DURATION=$DURATION s; paths: direct = kernel forwarding IPv4 -> IPv4 (no gate46 table),"
echo "  same = fake $FAKE_SAME -> $SERVER4, cross = fake $FAKE_CROSS -> $SERVER6, socks = SOCKS5 CONNECT $SERVER4"
[[ $TARGETS != names ]] ||
  echo "  targets: the names v4only.$ZONE / v6only.$ZONE, resolved by the client's tools through gate46's DNS"

# ---- throughput -----------------------------------------------------------------------------------
WRK_PATHS=()
for p in $PATHS; do [[ $p == socks ]] || WRK_PATHS+=("$p"); done
read -r -a IPERF_PATHS <<<"$PATHS"
for t in $TESTS; do
  case $t in
    iperf1) measure iperf1 "iperf3, 1 stream, $DURATION s" Gbit/s 0.8 "${IPERF_PATHS[@]}" ;;
    iperf4) measure iperf4 "iperf3, 4 streams, $DURATION s" Gbit/s 0.6 "${IPERF_PATHS[@]}" ;;
    wrk-close)
      if ((${#WRK_PATHS[@]})); then
        measure wrk-close "wrk -t1 -c50, Connection: close, $DURATION s" req/s 0.6 "${WRK_PATHS[@]}"
      fi
      ;;
    wrk-keepalive)
      if ((${#WRK_PATHS[@]})); then
        measure wrk-keepalive "wrk -t1 -c50, keep-alive, $DURATION s" req/s 0.8 "${WRK_PATHS[@]}"
      fi
      ;;
  esac
done
if ((${#WRK_ERRORS[@]})); then
  echo "  wrk reported errors:"
  printf '    %s\n' "${WRK_ERRORS[@]}"
fi

# ---- memory: idle flows -----------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# Sends one command to the idle client and reads its one-line answer (at most LIMIT s).
mem_cmd() {
  local cmd=$1 limit=$2
  printf '%s\n' "$cmd" >&"${MEMC[1]}" || die "idle client gone: $(tail -5 "$MEM_ERR")"
  MEM_REPLY=
  read -r -t "$limit" MEM_REPLY <&"${MEMC[0]}" || die "idle client: no answer to '$cmd' within $limit s: $(tail -5 "$MEM_ERR")"
  log "idle client: $cmd -> $MEM_REPLY"
}
field() { sed -nE "s/.*\\b$1=([0-9.]+).*/\\1/p" <<<"$2"; }

memory_path() {
  local path=$1 args=() n k rss fds
  if [[ $path == socks ]]; then
    args=(--target "$SERVER4" --socks "$SOCKS")
  else
    args=(--target "$(target_of "$path")")
  fi
  stop_gate46d >>"$WORK/gate46d-stops.txt"
  start_gate46d
  [[ $path == socks ]] || fw_apply
  sleep 2
  MEM[$path,0,rss]=$(rss_kib "$GATE46_PID")
  MEM[$path,0,fd]=$(fd_count "$GATE46_PID")
  MEM_ERR=$WORK/idle-$path.err
  coproc MEMC { exec ip netns exec "$NS_C" "$PY" "$IDLE_PY" "${args[@]}" --timeout 120 2>"$MEM_ERR"; }
  PIDS+=("$MEMC_PID")
  local memc_pid=$MEMC_PID
  for k in 1 2; do
    n=${FLOW_COUNTS[$((k - 1))]}
    mem_cmd "open $n" 150
    MEM[$path,$k,held]=$(field held "$MEM_REPLY")
    [[ ${MEM[$path,$k,held]} == "$n" ]] && ok=yes || ok=no
    check "$path: $n idle flows open (${MEM_REPLY#opened })" "$ok"
    sleep "$IDLE"
    MEM[$path,$k,rss]=$(rss_kib "$GATE46_PID")
    MEM[$path,$k,fd]=$(fd_count "$GATE46_PID")
  done
  mem_cmd verify 150
  MEM[$path,verify]=$MEM_REPLY
  [[ $(field ok "$MEM_REPLY") == "${FLOW_COUNTS[1]}" ]] && ok=yes || ok=no
  check "$path: every idle flow answers a second GET (${MEM_REPLY#verified })" "$ok"
  mem_cmd quit 60
  stop_pid "$memc_pid"
  [[ $path == socks ]] || fw_remove
}

declare -A MEM
if [[ " $TESTS " == *" memory "* ]]; then
  log "memory: ${FLOW_COUNTS[*]} idle flows on paths $MEM_PATHS, $IDLE s idle before each reading"
  for path in $MEM_PATHS; do
    memory_path "$path"
  done
  n1=${FLOW_COUNTS[0]}
  n2=${FLOW_COUNTS[1]}
  echo
  echo "== memory: gate46d with idle flows (each did one HTTP/1.1 keep-alive GET, then $IDLE s idle);"
  echo "   a fresh gate46d per path, VmRSS from /proc/PID/status, descriptors from /proc/PID/fd"
  printf '  %-5s %14s %14s %14s %12s  %s\n' path "idle RSS KiB" "$n1 flows" "$n2 flows" "KiB/flow" "descriptors idle / $n1 / $n2"
  for path in $MEM_PATHS; do
    per_flow=$($PY -c "print(f'{(${MEM[$path,2,rss]} - ${MEM[$path,1,rss]}) / ($n2 - $n1):.2f}')")
    printf '  %-5s %14s %14s %14s %12s  %s / %s / %s\n' "$path" "${MEM[$path,0,rss]}" "${MEM[$path,1,rss]}" \
      "${MEM[$path,2,rss]}" "$per_flow" "${MEM[$path,0,fd]}" "${MEM[$path,1,fd]}" "${MEM[$path,2,fd]}"
    if $PY -c "import sys; sys.exit(0 if $per_flow <= 8 else 1)"; then verdict=met; else
      verdict=MISSED
      GOALS_MISSED+=("memory, $path: $per_flow KiB per flow > 8")
    fi
    SUMMARY+=("$(printf '%-38s %-5s %5s  goal <= %-4s %s' "memory per idle flow, KiB" "$path" "$per_flow" 8 "$verdict")")
    echo "    $path: cost per flow (RSS slope $n1 -> $n2 flows) $per_flow KiB (goal <= 8 KiB: $verdict)"
    base=${MEM[$path,0,fd]}
    for k in 1 2; do
      n=${FLOW_COUNTS[$((k - 1))]}
      fds=${MEM[$path,$k,fd]}
      limit=$((2 * n + base + 16))
      if ((fds <= limit)); then verdict=ok; else
        verdict=EXCEEDED
        GOALS_MISSED+=("descriptors, $path: $fds with $n flows > $limit")
      fi
      echo "    $path: descriptors with $n flows: $fds <= 2 x $n + $base (idle) + 16 = $limit: $verdict"
    done
    echo "    $path: descriptors per flow (slope $n1 -> $n2): $($PY -c "print(f'{(${MEM[$path,2,fd]} - ${MEM[$path,1,fd]}) / ($n2 - $n1):.2f}')")"
    echo "    $path: second GET on every held flow: ${MEM[$path,verify]#verified }"
  done
fi

# ---- summary ---------------------------------------------------------------------------------------
echo
stop_gate46d >>"$WORK/gate46d-stops.txt"
echo "== gate46d runs (counters and log warnings)"
sed 's/^/  /' "$WORK/gate46d-stops.txt"
echo
echo "== summary (median of per-pair ratios gate46/direct; $PAIRS pairs per path)"
if ((${#SUMMARY[@]})); then printf '  %s\n' "${SUMMARY[@]}"; fi
if ((${#GOALS_MISSED[@]})); then
  echo "  goals missed: ${#GOALS_MISSED[@]}"
fi
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((CHECKS_FAILED)); then
  echo "Some correctness checks FAILED (see CHECK FAILED and 'failed' above)."
  exit 3
fi
