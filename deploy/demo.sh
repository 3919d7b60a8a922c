#!/usr/bin/env bash
# gate46's main job on a fresh Debian 12 machine, as root. At this stage of the project it
# installs the dependencies, builds gate46, validates the example configuration, and runs
# gate46d inside a network namespace: start, the shared mapping table edited and read with
# gate46ctl while it runs, reload (SIGHUP) and a clean stop (SIGTERM).
# Everything it creates (namespace, temporary files, the daemon) is removed on exit, also on
# Ctrl-C or failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build/release"
ns="gate46-demo-$$"
work=$(mktemp -d /tmp/gate46-demo.XXXXXX)
daemon_pid=""

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits up to 10 s for TEXT in the daemon's log.
wait_for_log() {
  for _ in $(seq 100); do
    grep -q -- "$1" "$work/gate46d.log" && return 0
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/gate46d.log"; echo "gate46d exited"; return 1; }
    sleep 0.1
  done
  cat "$work/gate46d.log"
  echo "timed out waiting for: $1"
  return 1
}

say "Installing build and test dependencies (Debian packages)"
"$top/deploy/install-deps.sh"

say "Building gate46 (g++, RelWithDebInfo) in $build"
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" gate46d gate46ctl

say "Validating the example configuration"
"$build/gateway/gate46d" --check-config --config "$top/deploy/gate46.toml.example"
"$build/ctl/gate46ctl" config check "$top/deploy/gate46.toml.example"

say "Creating network namespace $ns with a LAN interface (192.0.2.1/24, 2001:db8:1::1/64)"
ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" > "/etc/netns/$ns/resolv.conf"
ip -n "$ns" link set lo up
ip -n "$ns" link add lan0 type veth peer name lan0-peer
ip -n "$ns" link set lan0-peer up
ip -n "$ns" addr add 192.0.2.1/24 dev lan0
ip -n "$ns" addr add 2001:db8:1::1/64 dev lan0 nodad
ip -n "$ns" link set lan0 up

cat > "$work/gate46.toml" <<TOML
[lan]
interfaces = ["lan0"]
networks = ["192.0.2.0/24", "2001:db8:1::/64"]
[dns]
upstreams = ["198.51.100.53"]
[store]
path = "$work/mappings.mdb"
[pools]
key_file = "$work/pool.key"
[control]
socket = "$work/control.sock"
TOML

say "Making the pool key (gate46ctl keygen)"
"$build/ctl/gate46ctl" --config "$work/gate46.toml" keygen

say "Starting gate46d in $ns"
ip netns exec "$ns" "$build/gateway/gate46d" --config "$work/gate46.toml" >"$work/gate46d.log" 2>&1 &
daemon_pid=$!
wait_for_log "gate46d running"
cat "$work/gate46d.log"

say "Adding two mappings by hand while gate46d runs, and reading the shared table"
"$build/ctl/gate46ctl" --config "$work/gate46.toml" map add v6only.gate46.test
"$build/ctl/gate46ctl" --config "$work/gate46.toml" map add printer.gate46.test --v4 198.18.0.9 --pin
"$build/ctl/gate46ctl" --config "$work/gate46.toml" map list
"$build/ctl/gate46ctl" --config "$work/gate46.toml" map stats

say "Changing log.level and reloading (SIGHUP)"
printf '[log]\nlevel = "debug"\n' >> "$work/gate46.toml"
kill -HUP "$daemon_pid"
wait_for_log "reload: applied"
grep "reload" "$work/gate46d.log"

say "Stopping gate46d (SIGTERM)"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
tail -n 4 "$work/gate46d.log"
[ "$status" -eq 0 ] || { echo "gate46d exited with status $status"; exit 1; }

say "Done: gate46d started, reloaded and stopped cleanly; everything created has been removed"
