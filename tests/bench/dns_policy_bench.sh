#!/usr/bin/env bash
# gate46 DNS policy benchmark (issue 5, item 7): dnsperf against gate46d, dnsdist and unbound.
#
# How to run (as root, on a machine with dnsperf, dnsdist, unbound, knot, knot-dnsutils,
# python3 and an existing build; the script builds nothing):
#
#   tests/bench/dns_policy_bench.sh [BUILD_DIR]        # default BUILD_DIR: /work/main/build/release
#
# It uses BUILD_DIR/gateway/gate46d and BUILD_DIR/ctl/gate46ctl. Environment knobs (defaults):
#   NAMES=10000 NEW_NAMES=20000 DURATION=10 CLIENTS=10
#   KEEP=0 (the work directory in /tmp, with every log and dnsperf output, is kept if KEEP=1 or on failure)
#   PERF=0 (PERF=1: `perf record $PERF_ARGS` gate46d during its figure-1 run, print its top symbols;
#          e.g. PERF_ARGS="--call-graph dwarf -F 300" KEEP=1, then perf report -i WORK/gate46.perf)
#   LATENCY=1 (dnsperf -v, one line per query, for p50/p99; LATENCY=0 leaves -v out: no percentiles)
#
# Topology: three network namespaces made here and removed on exit (also on Ctrl-C or failure):
#   client  (dnsperf, 192.0.2.2)
#     -- server  (gate46d 192.0.2.11, dnsdist 192.0.2.12, unbound 192.0.2.13; 203.0.113.1)
#     -- upstream (knotd 203.0.113.53: the zone bench.test. of AAAA-only names)
# Each server under test has one worker thread and, with all its threads, is pinned (taskset) to the
# last core; dnsperf to core 0; knotd is not pinned.
#
# Figure 1, answers/s for already-mapped names: gate46d (translate mode, upstream knotd) is
# warmed with A and AAAA queries for NAMES AAAA-only names (so each has a fake IPv4 mapping and
# the upstream cache holds both answers; TTLs are 3600 s), then `dnsperf -c CLIENTS -l DURATION`
# unthrottled (dnsperf's default of 100 outstanding queries) with A queries for those names, against gate46d, dnsdist (SpoofAction for every A)
# and unbound (local-data for the same names), one after the other. The ratio is
# gate46 / max(dnsdist, unbound). Latency percentiles come from dnsperf -v (one line per query).
# The CPU time each server used during its run (/proc/PID/stat, all its threads) is reported too,
# as answers per CPU-second: the machine's two cores are shared, so it is steadier than answers/s.
# Figure 2, new names/s: a fresh gate46d (empty store, cold cache) gets one A query for each of
# NEW_NAMES never-seen AAAA-only names (`dnsperf -c CLIENTS -n 1`); `gate46ctl map stats` must then
# count NEW_NAMES used IPv4 addresses.
#
# Exit status: 0 done (whatever the figures), 1 something failed to start or a tool is missing,
# 3 a correctness check failed (wrong answer, mapping count). Figures go into the issue notes.
set -euo pipefail

BUILD=${1:-/work/main/build/release}
NAMES=${NAMES:-10000}
NEW_NAMES=${NEW_NAMES:-20000}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
KEEP=${KEEP:-0}
PERF=${PERF:-0}
PERF_ARGS=${PERF_ARGS:-}
LATENCY=${LATENCY:-1}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATS_PY=$HERE/dns_policy/dnsperf_stats.py
GATE46D=$BUILD/gateway/gate46d
GATE46CTL=$BUILD/ctl/gate46ctl

ZONE=bench.test.
GW_ADDR=192.0.2.11
DNSDIST_ADDR=192.0.2.12
UNBOUND_ADDR=192.0.2.13
CLIENT_ADDR=192.0.2.2
UPSTREAM_ADDR=203.0.113.53
SPOOF_ADDR=203.0.113.200

TAG=g46dp$$
NS_C=${TAG}c
NS_S=${TAG}s
NS_U=${TAG}u
NAMESPACES=()
PIDS=()
WORK=
CHECKS_FAILED=0

# shellcheck source=tests/bench/lib/common.sh
source "$HERE/lib/common.sh"

# ---- preconditions ----------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (network namespaces)"
for tool in ip taskset dnsperf dnsdist unbound knotd kdig python3; do
  command -v "$tool" >/dev/null || die "$tool not found (deploy/install-deps.sh installs it)"
done
[[ -x $GATE46D ]] || die "$GATE46D missing: build gate46d first (this script builds nothing)"
[[ -x $GATE46CTL ]] || die "$GATE46CTL missing: build gate46ctl first"
[[ -r $STATS_PY ]] || die "$STATS_PY missing"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
CPUS=$(nproc)
if ((CPUS >= 2)); then
  SERVER_PIN=(taskset -c "$((CPUS - 1))")
  CLIENT_PIN=(taskset -c 0)
else
  SERVER_PIN=()
  CLIENT_PIN=()
fi

WORK=$(mktemp -d /tmp/gate46-dnsbench-XXXXXX)
chmod 0755 "$WORK"

# ---- namespaces -------------------------------------------------------------------------------
make_ns() {
  local ns=$1 resolver=$2
  ip netns add "$ns" || die "ip netns add $ns"
  NAMESPACES+=("$ns")
  mkdir -p "/etc/netns/$ns"
  printf 'nameserver %s\n' "$resolver" >"/etc/netns/$ns/resolv.conf"
  ip -n "$ns" link set lo up
}
make_ns "$NS_C" "$GW_ADDR"
make_ns "$NS_S" "$UPSTREAM_ADDR"
make_ns "$NS_U" "$UPSTREAM_ADDR"
ip link add c0 netns "$NS_C" type veth peer name s0 netns "$NS_S" || die "veth client-server"
ip link add s1 netns "$NS_S" type veth peer name u0 netns "$NS_U" || die "veth server-upstream"
ip -n "$NS_C" addr add "$CLIENT_ADDR/24" dev c0
for a in 192.0.2.1 "$GW_ADDR" "$DNSDIST_ADDR" "$UNBOUND_ADDR"; do
  ip -n "$NS_S" addr add "$a/24" dev s0
done
ip -n "$NS_S" addr add 203.0.113.1/24 dev s1
ip -n "$NS_U" addr add "$UPSTREAM_ADDR/24" dev u0
for spec in "$NS_C c0" "$NS_S s0" "$NS_S s1" "$NS_U u0"; do
  read -r ns dev <<<"$spec"
  ip -n "$ns" link set "$dev" up
done

# Runs in a namespace in the background; prints the pid (ip netns exec and taskset exec, so it is
# the server's own pid).
start_bg() {
  local ns=$1 logfile=$2
  shift 2
  ip netns exec "$ns" "$@" >"$logfile" 2>&1 </dev/null &
  PIDS+=($!)
  LAST_PID=$!
}

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# kdig +short from NS to SERVER for NAME TYPE (empty output when nothing answers).
ask() {
  in_ns "$1" kdig "@$2" +short +timeout=1 +retry=0 "$3" "$4" 2>/dev/null || true
}

wait_answer() {
  local ns=$1 server=$2 name=$3 type=$4 pid=$5 what=$6 i out
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    out=$(ask "$ns" "$server" "$name" "$type")
    if [[ -n $out ]]; then
      return 0
    fi
    sleep 0.1
  done
  log "$what: no answer for $name $type within 10 s"
  return 1
}

# ---- the zone and knotd ----------------------------------------------------------------------
name_of() { printf 'h%05d.%s' "$1" "$ZONE"; }
mkdir -p "$WORK/knot/run" "$WORK/knot/db" "$WORK/knot/zones"
log "zone $ZONE: $NAMES mapped names + $NEW_NAMES new names, AAAA only"
awk -v n="$NAMES" -v m="$NEW_NAMES" -v up="$UPSTREAM_ADDR" 'BEGIN {
  print "$ORIGIN bench.test."
  print "$TTL 3600"
  print "@ 3600 IN SOA ns hostmaster 1 3600 600 86400 3600"
  print "@ 3600 IN NS ns"
  print "ns 3600 IN A " up
  for (i = 0; i < n; i++) printf "h%05d 3600 IN AAAA 2001:db8:100::%x\n", i, i + 1
  for (i = 0; i < m; i++) printf "new%05d 3600 IN AAAA 2001:db8:200::%x\n", i, i + 1
}' >"$WORK/knot/zones/bench.test.zone"
awk -v z="$ZONE" '/^h[0-9]/ { print $1 "." z " A" }' "$WORK/knot/zones/bench.test.zone" >"$WORK/queries-a.txt"
awk -v z="$ZONE" '/^h[0-9]/ { print $1 "." z " AAAA" }' "$WORK/knot/zones/bench.test.zone" >"$WORK/queries-aaaa.txt"
awk -v z="$ZONE" '/^new[0-9]/ { print $1 "." z " A" }' "$WORK/knot/zones/bench.test.zone" >"$WORK/queries-new.txt"

cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot/run"
    pidfile: "$WORK/knot/run/knot.pid"
    listen: [ "$UPSTREAM_ADDR@53" ]
    udp-max-payload: 1232
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$WORK/knot/db"
control:
    listen: "$WORK/knot/run/knot.sock"
log:
  - target: stderr
    any: notice
template:
  - id: default
    storage: "$WORK/knot/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: "$ZONE"
EOF
start_bg "$NS_U" "$WORK/knotd.log" knotd -c "$WORK/knot/knot.conf"
KNOT_PID=$LAST_PID
wait_answer "$NS_S" "$UPSTREAM_ADDR" "$(name_of 0)" AAAA "$KNOT_PID" knotd ||
  die "knotd did not serve $ZONE; log: $(tail -5 "$WORK/knotd.log")"
log "knotd up (pid $KNOT_PID)"

# ---- gate46d ----------------------------------------------------------------------------------
# A private store, pool key and control socket (like tests/lib's private_state_sections).
write_gate46_config() {
  local dir=$1
  make_state_dir "$dir"
  cat >"$dir/gate46.toml" <<EOF
[daemon]
threads = 1

[lan]
interfaces = ["s0"]
networks = ["192.0.2.0/24"]

[dns]
listen = ["$GW_ADDR:53"]
upstreams = ["$UPSTREAM_ADDR"]
mode = "translate"

[store]
path = "$dir/mappings.mdb"

[pools]
key_file = "$dir/pool.key"

[control]
socket = "$dir/control.sock"

[log]
level = "info"
EOF
}

start_gate46d() {
  local dir=$1
  "$GATE46D" --config "$dir/gate46.toml" --check-config >"$dir/check.log" 2>&1 ||
    die "gate46d --check-config: $(cat "$dir/check.log")"
  start_bg "$NS_S" "$dir/gate46d.log" "${SERVER_PIN[@]}" "$GATE46D" --config "$dir/gate46.toml" --components dns
  GATE46_PID=$LAST_PID
  wait_answer "$NS_C" "$GW_ADDR" "$(name_of 0)" AAAA "$GATE46_PID" gate46d ||
    die "gate46d did not answer; log: $(tail -20 "$dir/gate46d.log")"
  log "gate46d up (pid $GATE46_PID, store $dir/mappings.mdb)"
}

# Stops gate46d and prints its counter lines (logged at shutdown).
stop_gate46d() {
  local dir=$1
  stop_pid "$GATE46_PID"
  grep -E 'counters:' "$dir/gate46d.log" | sed -E 's/^.*\] //; s/^/    /' || echo "    (no counters logged)"
  if grep -v 'counters:' "$dir/gate46d.log" | grep -qiE '\b(error|critical|abort)|sanitizer'; then
    echo "    gate46d log has error lines:"
    grep -v 'counters:' "$dir/gate46d.log" | grep -iE '\b(error|critical|abort)|sanitizer' | head -5 | sed 's/^/      /'
  fi
}

v4_used() {
  in_ns "$NS_S" "$GATE46CTL" --config "$1/gate46.toml" map stats --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["pools"]["v4"]["used"])'
}

# dnsperf from the client namespace; the output file feeds dnsperf_stats.py.
run_dnsperf() {
  local server=$1 out=$2
  shift 2
  local verbose=()
  [[ $LATENCY == 1 ]] && verbose=(-v)
  in_ns "$NS_C" "${CLIENT_PIN[@]}" dnsperf -s "$server" -c "$CLIENTS" "${verbose[@]}" "$@" >"$out" 2>&1 ||
    die "dnsperf against $server failed: $(tail -5 "$out")"
}

# Loads dnsperf_stats.py's key=value lines into variables PREFIX_key.
load_stats() {
  local prefix=$1 file=$2 line
  while IFS= read -r line; do
    [[ $line == *=* ]] || continue
    printf -v "${prefix}_${line%%=*}" '%s' "${line#*=}"
  done < <(python3 "$STATS_PY" "$file")
}

check() {
  local what=$1 ok=$2
  if [[ $ok == yes ]]; then
    log "check ok: $what"
  else
    log "CHECK FAILED: $what"
    CHECKS_FAILED=1
  fi
}

# User + system CPU time of a process (all threads) in clock ticks.
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}
TICKS=$(getconf CLK_TCK)

# "busy idle" jiffies of the whole machine (all cores), for the busy share during a run.
machine_ticks() {
  local cpu user nice system idle iowait irq softirq steal
  read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((idle + iowait))"
}
busy_percent() { # "busy0 idle0" "busy1 idle1"
  local b0 i0 b1 i1
  read -r b0 i0 <<<"$1"
  read -r b1 i1 <<<"$2"
  echo $((100 * (b1 - b0) / ((b1 - b0) + (i1 - i0) > 0 ? (b1 - b0) + (i1 - i0) : 1)))
}

in_pool_v4() { [[ $1 =~ ^198\.(18|19)\.[0-9]+\.[0-9]+$ ]]; }

GW1=$WORK/gate46-mapped
write_gate46_config "$GW1"
start_gate46d "$GW1"

# ---- dnsdist and unbound ------------------------------------------------------------------------
cat >"$WORK/dnsdist.conf" <<EOF
setSecurityPollSuffix("")
setLocal("$DNSDIST_ADDR:53", { reusePort = false })
setACL({"192.0.2.0/24"})
addAction(QTypeRule(DNSQType.A), SpoofAction("$SPOOF_ADDR"))
addAction(AllRule(), RCodeAction(DNSRCode.REFUSED))
EOF
start_bg "$NS_S" "$WORK/dnsdist.log" "${SERVER_PIN[@]}" dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf"
DNSDIST_PID=$LAST_PID

{
  cat <<EOF
server:
  interface: $UNBOUND_ADDR
  port: 53
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: "$WORK/unbound.pid"
  use-syslog: no
  logfile: ""
  do-ip6: no
  access-control: 192.0.2.0/24 allow
  module-config: "iterator"
  local-zone: "$ZONE" static
EOF
  awk -v s="$SPOOF_ADDR" '{ print "  local-data: \"" $1 " 3600 IN A " s "\"" }' "$WORK/queries-a.txt"
  printf 'remote-control:\n  control-enable: no\n'
} >"$WORK/unbound.conf"
start_bg "$NS_S" "$WORK/unbound.log" "${SERVER_PIN[@]}" unbound -d -c "$WORK/unbound.conf"
UNBOUND_PID=$LAST_PID

wait_answer "$NS_C" "$DNSDIST_ADDR" "$(name_of 0)" A "$DNSDIST_PID" dnsdist ||
  die "dnsdist did not answer; log: $(tail -10 "$WORK/dnsdist.log")"
wait_answer "$NS_C" "$UNBOUND_ADDR" "$(name_of 0)" A "$UNBOUND_PID" unbound ||
  die "unbound did not answer; log: $(tail -10 "$WORK/unbound.log")"
log "dnsdist up (pid $DNSDIST_PID), unbound up (pid $UNBOUND_PID)"

# ---- checks before measuring --------------------------------------------------------------------
probe=$(name_of 1)
a1=$(ask "$NS_C" "$GW_ADDR" "$probe" A)
a2=$(ask "$NS_C" "$GW_ADDR" "$probe" A)
aaaa=$(ask "$NS_C" "$GW_ADDR" "$probe" AAAA)
in_pool_v4 "$a1" && ok=yes || ok=no
check "gate46 A $probe -> '$a1' in 198.18.0.0/15" "$ok"
[[ $a1 == "$a2" ]] && ok=yes || ok=no
check "gate46 same name -> same fake address ('$a2')" "$ok"
[[ $aaaa == 2001:db8:100::2 ]] && ok=yes || ok=no
check "gate46 AAAA $probe -> '$aaaa' (the real record)" "$ok"
d=$(ask "$NS_C" "$DNSDIST_ADDR" "$probe" A)
[[ $d == "$SPOOF_ADDR" ]] && ok=yes || ok=no
check "dnsdist A $probe -> '$d'" "$ok"
u=$(ask "$NS_C" "$UNBOUND_ADDR" "$probe" A)
[[ $u == "$SPOOF_ADDR" ]] && ok=yes || ok=no
check "unbound A $probe -> '$u'" "$ok"

# ---- figure 1: answers/s for already-mapped names ----------------------------------------------
log "warming gate46d: A then AAAA for $NAMES names"
run_dnsperf "$GW_ADDR" "$WORK/warm-a.out" -d "$WORK/queries-a.txt" -n 1
run_dnsperf "$GW_ADDR" "$WORK/warm-aaaa.out" -d "$WORK/queries-aaaa.txt" -n 1
load_stats WA "$WORK/warm-a.out"
load_stats WAAAA "$WORK/warm-aaaa.out"
log "warm A: sent $WA_sent completed $WA_completed lost $WA_lost (${WA_qps}/s, rcodes other than NOERROR: $WA_other_rcodes)"
log "warm AAAA: sent $WAAAA_sent completed $WAAAA_completed lost $WAAAA_lost (rcodes other than NOERROR: $WAAAA_other_rcodes)"
MAPPED=$(v4_used "$GW1")
[[ $MAPPED == "$NAMES" ]] && ok=yes || ok=no
check "after warming, v4 pool used = $MAPPED (want $NAMES)" "$ok"
if [[ $WA_lost != 0 || $WA_noerror != "$NAMES" ]]; then
  log "warm-up lost or failed queries: re-sending A queries once more"
  run_dnsperf "$GW_ADDR" "$WORK/warm-a2.out" -d "$WORK/queries-a.txt" -n 1
fi

for srv in gate46 dnsdist unbound; do
  case $srv in
    gate46) addr=$GW_ADDR ;;
    dnsdist) addr=$DNSDIST_ADDR ;;
    unbound) addr=$UNBOUND_ADDR ;;
  esac
  pid_var=${srv^^}_PID
  pid=${!pid_var}
  log "measuring $srv ($addr): dnsperf -c $CLIENTS -l $DURATION, A queries for $NAMES names"
  perf_pid=
  if [[ $PERF == 1 && $srv == gate46 ]]; then
    # shellcheck disable=SC2086 # PERF_ARGS is a list of options
    perf record $PERF_ARGS -o "$WORK/gate46.perf" -p "$pid" -- sleep "$DURATION" >"$WORK/perf-record.log" 2>&1 &
    perf_pid=$!
  fi
  t0=$(cpu_ticks "$pid")
  m0=$(machine_ticks)
  run_dnsperf "$addr" "$WORK/main-$srv.out" -d "$WORK/queries-a.txt" -l "$DURATION"
  t1=$(cpu_ticks "$pid")
  printf -v "M_${srv}_busy" '%s' "$(busy_percent "$m0" "$(machine_ticks)")"
  [[ -n $perf_pid ]] && { wait "$perf_pid" || log "perf record failed: $(tail -3 "$WORK/perf-record.log")"; }
  load_stats "M_$srv" "$WORK/main-$srv.out"
  printf -v "M_${srv}_cpu" '%s' "$(python3 -c "print(f'{($t1 - $t0) / $TICKS:.2f}')")"
  cpu_var=M_${srv}_cpu
  completed_var=M_${srv}_completed
  printf -v "M_${srv}_per_cpu" '%s' "$(python3 -c "print(f'{${!completed_var} / max(0.01, ${!cpu_var}):.0f}')")"
done
MAPPED_AFTER=$(v4_used "$GW1")
[[ $MAPPED_AFTER == "$NAMES" ]] && ok=yes || ok=no
check "after the measurement, v4 pool used = $MAPPED_AFTER (want $NAMES: no new mapping)" "$ok"

echo
echo "gate46d counters (figure 1 instance, logged at stop):"
stop_gate46d "$GW1"
stop_pid "$DNSDIST_PID"
stop_pid "$UNBOUND_PID"

# ---- figure 2: new names per second --------------------------------------------------------------
GW2=$WORK/gate46-new
write_gate46_config "$GW2"
start_gate46d "$GW2"
# The readiness probe asked for h00000 AAAA (no mapping). Nothing else has touched new*.
log "new names: one A query for each of $NEW_NAMES new names, cold cache, empty store"
t0=$(cpu_ticks "$GATE46_PID")
k0=$(cpu_ticks "$KNOT_PID")
run_dnsperf "$GW_ADDR" "$WORK/new.out" -d "$WORK/queries-new.txt" -n 1
t1=$(cpu_ticks "$GATE46_PID")
k1=$(cpu_ticks "$KNOT_PID")
load_stats N "$WORK/new.out"
N_cpu=$(python3 -c "print(f'{($t1 - $t0) / $TICKS:.2f}')")
N_knot_cpu=$(python3 -c "print(f'{($k1 - $k0) / $TICKS:.2f}')")
NEW_MAPPED=$(v4_used "$GW2")
[[ $NEW_MAPPED == "$NEW_NAMES" ]] && ok=yes || ok=no
check "after the new-names run, v4 pool used = $NEW_MAPPED (want $NEW_NAMES)" "$ok"
[[ $N_noerror == "$NEW_NAMES" ]] && ok=yes || ok=no
check "new names: $N_noerror NOERROR answers (want $NEW_NAMES; other rcodes: $N_other_rcodes)" "$ok"
echo
echo "gate46d counters (figure 2 instance, logged at stop):"
stop_gate46d "$GW2"

# ---- summary -------------------------------------------------------------------------------------
best=$((M_dnsdist_qps > M_unbound_qps ? M_dnsdist_qps : M_unbound_qps))
ratio=$(python3 -c "print(f'{$M_gate46_qps / max(1, $best):.2f}')")
new_rate=$(python3 -c "print(f'{$N_completed / max(1e-9, $N_runtime):.0f}')")
echo
echo "== gate46 DNS policy benchmark ($(date -u +%FT%TZ), $(nproc) cores, load average at start: $LOAD_START)"
echo "Figure 1: answers/s, A queries for $NAMES already-mapped AAAA-only names (translate mode,"
echo "          upstream cache warm), dnsperf -c $CLIENTS -l $DURATION unthrottled, one worker each"
printf '  %-8s %8s %9s %5s %9s %7s %7s %7s %6s %9s %6s  %s\n' server sent completed lost 'answers/s' \
  'avg ms' 'p50 ms' 'p99 ms' 'CPU s' 'ans/CPU-s' 'busy' 'other rcodes'
for srv in gate46 dnsdist unbound; do
  v() { local n="M_${srv}_$1"; printf '%s' "${!n}"; }
  printf '  %-8s %8s %9s %5s %9s %7s %7s %7s %6s %9s %5s%%  %s\n' "$srv" "$(v sent)" "$(v completed)" "$(v lost)" \
    "$(v qps)" "$(v avg_ms)" "$(v p50_ms)" "$(v p99_ms)" "$(v cpu)" "$(v per_cpu)" "$(v busy)" "$(v other_rcodes)"
done
echo "  (CPU s: the server's user+system time during its run; busy: both cores, every process)"
best_cpu=$(python3 -c "print(max($M_dnsdist_per_cpu, $M_unbound_per_cpu))")
cpu_ratio=$(python3 -c "print(f'{$M_gate46_per_cpu / max(1, $best_cpu):.2f}')")
echo "  ratio gate46 / max(dnsdist, unbound): answers/s $ratio, answers per CPU-second $cpu_ratio"
echo "Figure 2: new names/s, one A query for each of $NEW_NAMES new AAAA-only names, cold cache,"
echo "          empty store, upstream knotd, dnsperf -c $CLIENTS -n 1"
printf '  sent %s completed %s lost %s in %s s: %s names/s (p50 %s ms, p99 %s ms); v4 mappings %s\n' \
  "$N_sent" "$N_completed" "$N_lost" "$N_runtime" "$new_rate" "$N_p50_ms" "$N_p99_ms" "$NEW_MAPPED"
printf '  gate46d CPU %s s (%s names per CPU-second); knotd CPU %s s\n' "$N_cpu" \
  "$(python3 -c "print(f'{$N_completed / max(0.01, $N_cpu):.0f}')")" "$N_knot_cpu"
if [[ $PERF == 1 && -s $WORK/gate46.perf ]]; then
  echo "perf profile of gate46d during its figure-1 run (self time by library, then top 25 symbols):"
  perf report -i "$WORK/gate46.perf" --no-children --stdio --sort dso >"$WORK/perf-dso.txt" 2>/dev/null || true
  perf report -i "$WORK/gate46.perf" --no-children --stdio --sort dso,symbol >"$WORK/perf-sym.txt" 2>/dev/null || true
  grep -E '^ +[0-9.]+%' "$WORK/perf-dso.txt" | sed -E 's/ +$//; s/^/  /' | awk 'NR <= 8'
  grep -E '^ +[0-9.]+%' "$WORK/perf-sym.txt" | sed -E 's/ +$//; s/^/  /' | cut -c1-150 | awk 'NR <= 25'
fi
if ((CHECKS_FAILED)); then
  echo "Some correctness checks FAILED (see CHECK FAILED above)."
  exit 3
fi
