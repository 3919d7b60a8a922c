# shellcheck shell=bash disable=SC2034  # the variables it sets are the sourcing script's
# Shared by the whole-system benchmarks (relay_bench.sh, and e2e_bench.sh through it;
# udp_bench.sh): logging and failing, stopping processes by PID, the cleanup on exit (processes,
# namespaces, the work directory), installing missing tools, building gate46d, the
# three-namespace topology, knotd with the bench zone, the fake addresses, the capture rules and
# CPU accounting.
#
# Sourced after the caller has set: TAG (unique to the run), NS_C NS_G NS_S, NAMESPACES=() PIDS=()
# WORK= CHECKS_FAILED=0 KEEP, SOURCE_DIR BUILD_DIR REBUILD GATE46D GATE46CTL, GW_LAN4 SERVER4
# SERVER6 ZONE; the firewall functions use CONF (gate46d's configuration file) too. Sourcing
# installs the EXIT/INT/TERM traps.
#
# make_topology:
#   client  eth0 192.0.2.2/24 2001:db8:1::2/64   resolv.conf -> 192.0.2.1 (gate46's DNS)
#   gw      lan0 192.0.2.1/24 2001:db8:1::1/64, up0 203.0.113.1/24 2001:db8:2::1/64, forwarding on
#   server  eth0 203.0.113.2/24 2001:db8:2::2/64  (start_knot: v4only A 203.0.113.2, v6only AAAA
#           2001:db8:2::2)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null || true
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Waits at most LIMIT tenths of a second for PID to exit by itself, then stops it.
await_pid() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$pid"
}

cleanup() {
  local rc=$? pid ns
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid"
  done
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then
      log "work directory kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# install_tools LOGNAME TOOL:PACKAGE...: apt-get installs the packages of the tools not found.
install_tools() {
  local logfile=/tmp/$1-apt.log spec
  shift
  local missing=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >"$logfile" 2>&1 ||
    { apt-get update >>"$logfile" 2>&1 &&
      apt-get install -y --no-install-recommends "${missing[@]}" >>"$logfile" 2>&1; } ||
    die "apt-get install ${missing[*]} failed (see $logfile)"
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null || die "${spec%%:*} still missing after installing ${spec#*:}"
  done
}

# build_gate46 LOGNAME: gate46d and gate46ctl (Release) into BUILD_DIR when missing or REBUILD=1;
# sets REVISION and LOAD_START.
build_gate46() {
  local name=$1 tool
  if [[ $REBUILD == 1 || ! -x $GATE46D || ! -x $GATE46CTL ]]; then
    for tool in cmake ninja; do command -v "$tool" >/dev/null || die "$tool not found (deploy/install-deps.sh)"; done
    log "building gate46d and gate46ctl (Release) from $SOURCE_DIR into $BUILD_DIR"
    mkdir -p "$BUILD_DIR"
    cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$BUILD_DIR/$name-cmake.log" 2>&1 ||
      die "cmake failed: $(tail -5 "$BUILD_DIR/$name-cmake.log")"
    ninja -j2 -C "$BUILD_DIR" gate46d gate46ctl >"$BUILD_DIR/$name-ninja.log" 2>&1 ||
      die "build failed: $(tail -15 "$BUILD_DIR/$name-ninja.log")"
  fi
  [[ -x $GATE46D && -x $GATE46CTL ]] || die "no gate46d/gate46ctl in $BUILD_DIR"
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  REVISION=$(git -C "$SOURCE_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ $REVISION != unknown ]] && ! git -C "$SOURCE_DIR" diff --quiet HEAD -- . ':!tests/bench' 2>/dev/null; then
    REVISION+=" + uncommitted changes"
  fi
}

# ---- namespaces -------------------------------------------------------------------------------
make_ns() {
  local ns=$1 resolver=$2
  ip netns add "$ns" || die "ip netns add $ns"
  NAMESPACES+=("$ns")
  mkdir -p "/etc/netns/$ns"
  printf 'nameserver %s\n' "$resolver" >"/etc/netns/$ns/resolv.conf"
  ip -n "$ns" link set lo up
}
# veth pair made with names unique to this run, then renamed inside the namespaces.
link_ns() {
  local ns1=$1 dev1=$2 ns2=$3 dev2=$4 tmp=${TAG}$5
  ip link add "${tmp}a" netns "$ns1" type veth peer name "${tmp}b" netns "$ns2" || die "veth $ns1-$ns2"
  ip -n "$ns1" link set "${tmp}a" name "$dev1"
  ip -n "$ns2" link set "${tmp}b" name "$dev2"
  ip -n "$ns1" link set "$dev1" up
  ip -n "$ns2" link set "$dev2" up
}
in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

make_topology() {
  make_ns "$NS_C" "$GW_LAN4"
  make_ns "$NS_G" "$SERVER4"
  make_ns "$NS_S" "$SERVER4"
  link_ns "$NS_C" eth0 "$NS_G" lan0 l
  link_ns "$NS_G" up0 "$NS_S" eth0 u
  ip -n "$NS_C" addr add 192.0.2.2/24 dev eth0
  ip -n "$NS_C" addr add 2001:db8:1::2/64 dev eth0 nodad
  ip -n "$NS_G" addr add 192.0.2.1/24 dev lan0
  ip -n "$NS_G" addr add 2001:db8:1::1/64 dev lan0 nodad
  ip -n "$NS_G" addr add 203.0.113.1/24 dev up0
  ip -n "$NS_G" addr add 2001:db8:2::1/64 dev up0 nodad
  ip -n "$NS_S" addr add "$SERVER4/24" dev eth0
  ip -n "$NS_S" addr add "$SERVER6/64" dev eth0 nodad
  for net in 203.0.113.0/24 198.18.0.0/15; do
    ip -n "$NS_C" route add "$net" via "$GW_LAN4"
  done
  ip -n "$NS_C" -6 route add 2001:db8:2::/64 via 2001:db8:1::1
  ip -n "$NS_S" route add 192.0.2.0/24 via 203.0.113.1
  ip -n "$NS_S" -6 route add 2001:db8:1::/64 via 2001:db8:2::1
  in_ns "$NS_G" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

start_bg() {
  local ns=$1 logfile=$2
  shift 2
  ip netns exec "$ns" "$@" >"$logfile" 2>&1 </dev/null &
  PIDS+=($!)
  LAST_PID=$!
}

# Waits until NS has a TCP listener on PORT (ss), PID alive, at most 10 s.
wait_listen() {
  local ns=$1 port=$2 pid=$3 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -n $(in_ns "$ns" ss -Hltn "sport = :$port") ]] && return 0
    sleep 0.1
  done
  return 1
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

# ---- server: knotd for ZONE on SERVER4 ----------------------------------------------------------
# Sets KNOT_PID.
start_knot() {
  local i
  mkdir -p "$WORK/knot/run" "$WORK/knot/db" "$WORK/knot/zones"
  cat >"$WORK/knot/zones/$ZONE"zone <<EOF
\$ORIGIN $ZONE
\$TTL 3600
@ 3600 IN SOA ns hostmaster 1 3600 600 86400 3600
@ 3600 IN NS ns
ns 3600 IN A $SERVER4
v4only 3600 IN A $SERVER4
v6only 3600 IN AAAA $SERVER6
EOF
  cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot/run"
    pidfile: "$WORK/knot/run/knot.pid"
    listen: [ "$SERVER4@53" ]
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
  start_bg "$NS_S" "$WORK/knotd.log" knotd -c "$WORK/knot/knot.conf"
  KNOT_PID=$LAST_PID
  for ((i = 0; i < 100; i++)); do
    kill -0 "$KNOT_PID" 2>/dev/null || die "knotd exited: $(tail -5 "$WORK/knotd.log")"
    [[ -n $(in_ns "$NS_G" dig +short +time=1 +tries=1 "@$SERVER4" "v4only.$ZONE" A 2>/dev/null) ]] && break
    sleep 0.1
  done
  ((i < 100)) || die "knotd did not answer within 10 s: $(tail -5 "$WORK/knotd.log")"
  log "knotd up (pid $KNOT_PID)"
}

# ---- gate46d ------------------------------------------------------------------------------------
# make_state_dir DIR: gate46d's state directory with a pool key. Started as root, gate46d runs as
# the gate46 user when it exists (daemon.user): DIR is then its state directory, as
# /var/lib/gate46 is on a box (group gate46, 02770).
make_state_dir() {
  local dir=$1
  mkdir -p "$dir"
  printf '0123456789abcdef' >"$dir/pool.key"
  if getent group gate46 >/dev/null; then
    chgrp gate46 "$dir" "$dir/pool.key"
    chmod 02770 "$dir"
    chmod 0640 "$dir/pool.key"
  fi
}

# ---- gate46's answers and rules -----------------------------------------------------------------
ask_fake() {
  in_ns "$NS_C" dig +short +time=2 +tries=2 "@$GW_LAN4" "$1" A 2>/dev/null | tail -1 || true
}
in_pool_v4() { [[ $1 =~ ^198\.(18|19)\.[0-9]+\.[0-9]+$ ]]; }
# Sets FAKE_SAME (v4only's fake A) and FAKE_CROSS (v6only's), asked of gate46's DNS.
ask_fakes() {
  FAKE_SAME=$(ask_fake "v4only.$ZONE")
  FAKE_CROSS=$(ask_fake "v6only.$ZONE")
  in_pool_v4 "$FAKE_SAME" || die "gate46 A v4only.$ZONE -> '$FAKE_SAME', not a fake address"
  in_pool_v4 "$FAKE_CROSS" || die "gate46 A v6only.$ZONE -> '$FAKE_CROSS', not a fake address"
  log "fake addresses: v4only.$ZONE $FAKE_SAME (same family), v6only.$ZONE $FAKE_CROSS (cross family)"
}

has_table() { in_ns "$NS_G" nft list table inet gate46 >/dev/null 2>&1; }
fw_apply() {
  in_ns "$NS_G" "$GATE46CTL" --config "$CONF" firewall apply >>"$WORK/firewall.log" 2>&1 ||
    die "gate46ctl firewall apply: $(tail -5 "$WORK/firewall.log")"
}
fw_remove() {
  in_ns "$NS_G" "$GATE46CTL" --config "$CONF" firewall remove >>"$WORK/firewall.log" 2>&1 ||
    die "gate46ctl firewall remove: $(tail -5 "$WORK/firewall.log")"
}

# User + system CPU time of a process (all threads) in clock ticks.
cpu_ticks() {
  local stat f
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}
TICKS=$(getconf CLK_TCK)
