#!/usr/bin/env bash
# deploy/install.sh into a temporary root (DESTDIR), then checks what landed there: every file
# and its mode, the units with systemd-analyze verify and security (exposure at most 2.0, the
# goal of issue 9), the sysusers and sysctl files, and that a second run changes nothing and
# keeps an edited configuration. Builds nothing: BUILD_DIR ($1, default build/release) must
# hold gate46d and gate46ctl. Changes nothing outside the temporary root.
set -euo pipefail

source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${1:-$source_dir/build/release}
max_exposure=2.0
units=(gate46.service gate46-dns.service gate46-gateway.service)

for tool in systemd-analyze systemd-sysusers sha256sum; do
  command -v "$tool" >/dev/null || {
    echo "install_test: $tool is missing (Debian package systemd / coreutils)" >&2
    exit 1
  }
done
if [[ ! -x $build_dir/gateway/gate46d || ! -x $build_dir/ctl/gate46ctl ]]; then
  echo "install_test: no gate46d/gate46ctl in $build_dir: build them first" \
    "(ninja -C $build_dir gate46d gate46ctl)" >&2
  exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/gate46-install-test.XXXXXX")
trap 'rm -rf "$root"' EXIT
failures=0
pass() { printf 'ok    %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*"
  failures=$((failures + 1))
}
# check DESCRIPTION COMMAND...: runs COMMAND, reports it.
check() {
  local description=$1
  shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}
run_install() {
  DESTDIR=$root PREFIX=/usr "$source_dir/deploy/install.sh" "$build_dir" 2>&1 | sed 's/^/      /'
  return "${PIPESTATUS[0]}"
}
# Path, type, mode, size, mtime and content hash of everything in the root.
snapshot() {
  (cd "$root" && find . -path ./run -prune -o -printf '%p %y %m %s %T@\n' | sort)
  (cd "$root" && find . -path ./run -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
}
mode_of() { stat -c %a "$root$1"; }

echo "== install into $root"
if run_install; then pass "install.sh exits 0"; else
  fail "install.sh exits 0"
  exit 1
fi

echo "== files and modes"
expect_file() { # PATH MODE [SOURCE: identical to it]
  local path=$1 mode=$2 source=${3:-}
  if [[ ! -f $root$path ]]; then
    fail "$path exists"
    return
  fi
  if [[ $(mode_of "$path") == "$mode" ]]; then pass "$path mode $mode"; else
    fail "$path mode $mode (is $(mode_of "$path"))"
  fi
  if [[ -n $source ]]; then check "$path is $source" cmp -s "$root$path" "$source"; fi
}
expect_dir() { # PATH MODE
  if [[ ! -d $root$1 ]]; then
    fail "$1/ exists"
  elif [[ $(mode_of "$1") == "$2" ]]; then pass "$1/ mode $2"; else
    fail "$1/ mode $2 (is $(mode_of "$1"))"
  fi
}
expect_file /usr/sbin/gate46d 755 "$build_dir/gateway/gate46d"
expect_file /usr/sbin/gate46ctl 755 "$build_dir/ctl/gate46ctl"
expect_dir /etc/gate46 750
expect_file /etc/gate46/gate46.toml 640 "$source_dir/deploy/gate46.toml.example"
expect_file /usr/share/doc/gate46/gate46.toml.example 644 "$source_dir/deploy/gate46.toml.example"
for unit in "${units[@]}"; do
  expect_file "/usr/lib/systemd/system/$unit" 644 "$source_dir/deploy/systemd/$unit"
done
expect_file /usr/lib/sysusers.d/gate46.conf 644 "$source_dir/deploy/sysusers.d/gate46.conf"
expect_file /usr/lib/sysctl.d/60-gate46.conf 644 "$source_dir/deploy/sysctl.d/60-gate46.conf"
expect_dir /var/lib/gate46 770
# keygen: 0640 with group gate46 when that group exists where it ran, 0600 otherwise.
key=$root/etc/gate46/pool.key
if [[ -f $key ]]; then
  check "/etc/gate46/pool.key is 16 bytes" test "$(stat -c %s "$key")" -eq 16
  check "/etc/gate46/pool.key mode 640 or 600 (is $(mode_of /etc/gate46/pool.key))" \
    test "$(mode_of /etc/gate46/pool.key)" = 640 -o "$(mode_of /etc/gate46/pool.key)" = 600
else
  fail "/etc/gate46/pool.key exists"
fi
for binary in gate46d gate46ctl; do
  if version=$("$root/usr/sbin/$binary" --version 2>&1); then pass "installed $binary runs ($version)"; else
    fail "installed $binary runs: $version"
  fi
done
check "nothing else was installed" test -z "$(cd "$root" && find . -type f \
  ! -path ./usr/sbin/gate46d ! -path ./usr/sbin/gate46ctl ! -path ./etc/gate46/gate46.toml \
  ! -path ./etc/gate46/pool.key ! -path ./usr/share/doc/gate46/gate46.toml.example \
  ! -path './usr/lib/systemd/system/gate46*.service' ! -path ./usr/lib/sysusers.d/gate46.conf \
  ! -path ./usr/lib/sysctl.d/60-gate46.conf)"

echo "== sysusers and sysctl files"
# --dry-run inside the temporary root: parses the file, writes nothing anywhere.
sysusers_out=$(systemd-sysusers --root="$root" --dry-run "$root/usr/lib/sysusers.d/gate46.conf" 2>&1) || true
printf '%s\n' "$sysusers_out" | sed 's/^/      /'
check "systemd-sysusers --dry-run reads gate46.conf: would create group gate46" \
  grep -q "Creating group 'gate46'" <<<"$sysusers_out"
check "systemd-sysusers --dry-run reads gate46.conf: would create user gate46" \
  grep -q "Creating user 'gate46'" <<<"$sysusers_out"
while read -r name _ value; do
  check "sysctl $name = $value is a key of this kernel" test -e "/proc/sys/${name//.//}"
done < <(grep -Ev '^[[:space:]]*(#|;|$)' "$root/usr/lib/sysctl.d/60-gate46.conf")

echo "== second install: nothing changes"
before=$(snapshot)
if run_install; then pass "second install.sh exits 0"; else fail "second install.sh exits 0"; fi
after=$(snapshot)
if [[ $before == "$after" ]]; then pass "no file, mode, time stamp or content changed"; else
  fail "the second install changed:"
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed 's/^/      /' || true
fi

echo "== an edited configuration is kept"
config=$root/etc/gate46/gate46.toml
printf '\n# edited by the admin\n' >>"$config"
edited=$(sha256sum <"$config")
key_before=$(sha256sum <"$key")
if run_install; then pass "third install.sh exits 0"; else fail "third install.sh exits 0"; fi
check "gate46.toml keeps the admin's edit" test "$(sha256sum <"$config")" = "$edited"
check "pool.key is not replaced" test "$(sha256sum <"$key")" = "$key_before"

echo "== systemd-analyze verify (in the root)"
# verify follows the units' default dependencies (sysinit.target, basic.target, ...), which a
# staging root does not hold: empty stand-ins under run/, left out of the snapshots above.
mkdir -p "$root/run/systemd/system"
for target in sysinit.target basic.target shutdown.target network.target multi-user.target; do
  printf '[Unit]\nDescription=stand-in for systemd-analyze verify\n' >"$root/run/systemd/system/$target"
done
for unit in "${units[@]}"; do
  # It exits 0 on unknown keys and bad values too (a warning, the line ignored): any output fails.
  if output=$(systemd-analyze verify --root="$root" "$unit" 2>&1) && [[ -z $output ]]; then
    pass "$unit verifies cleanly (ExecStart binaries found in the root)"
  else
    fail "$unit verifies cleanly:"
    printf '%s\n' "$output" | sed 's/^/      /'
  fi
done

echo "== systemd-analyze security --offline=true (exposure at most $max_exposure)"
for unit in "${units[@]}"; do
  output=$(systemd-analyze security --offline=true --root="$root" "$unit" 2>&1) || true
  exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$output")
  if [[ -z $exposure ]]; then
    fail "$unit: no exposure figure in systemd-analyze's output:"
    printf '%s\n' "$output" | sed 's/^/      /'
  elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    pass "$unit exposure $exposure"
  else
    fail "$unit exposure $exposure is above $max_exposure; what is exposed:"
    grep '✗' <<<"$output" | sed 's/^/      /'
  fi
done

echo
if ((failures > 0)); then
  echo "install_test: $failures check(s) failed"
  exit 1
fi
echo "install_test: all checks passed"
