#!/usr/bin/env bash
# Installs gate46 from a build tree: binaries, configuration, systemd units, sysusers and
# sysctl files, pool key. See --help. Idempotent: files already in place are left untouched
# (same content and mode), and an existing /etc/gate46/gate46.toml or pool.key is never replaced.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: [DESTDIR=DIR] [PREFIX=/usr] deploy/install.sh [--apply-sysctl] [BUILD_DIR]

Installs gate46d and gate46ctl from BUILD_DIR (default: build/release in the source tree;
this script builds nothing) with their configuration, systemd units, sysusers and sysctl
files, and a new pool key:

  PREFIX/sbin/gate46d, PREFIX/sbin/gate46ctl               0755
  /etc/gate46/                                             0750 root:gate46
  /etc/gate46/gate46.toml    from the example, only if missing   0640 root:gate46
  /etc/gate46/pool.key       gate46ctl keygen, only if missing   0640 root:gate46
  PREFIX/share/doc/gate46/gate46.toml.example              0644
  PREFIX/lib/systemd/system/gate46{,-dns,-gateway}.service 0644
  PREFIX/lib/sysusers.d/gate46.conf                        0644
  PREFIX/lib/sysctl.d/60-gate46.conf                       0644
  /var/lib/gate46/                                         0770 gate46:gate46

Without DESTDIR (run as root) it also creates the user and group gate46 (systemd-sysusers)
before writing the key, so the key and /etc/gate46 get that group.
With DESTDIR everything goes under DIR and the host is not changed at all (no user, no
ownership, no sysctl); it works without root.

Options:
  --apply-sysctl  also apply 60-gate46.conf now (sysctl -p): it turns on forwarding, which
                  changes how this host treats traffic. Without it the file takes effect at
                  the next boot. Not allowed with DESTDIR.
  -h, --help      this text

Environment:
  DESTDIR   staging root (default: none, a real install)
  PREFIX    /usr (default) or e.g. /usr/local; the units' paths follow it
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

# ---- arguments --------------------------------------------------------------------------
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy_dir=$source_dir/deploy
build_dir=$source_dir/build/release
apply_sysctl=false
build_dir_given=false
for arg in "$@"; do
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
    --apply-sysctl) apply_sysctl=true ;;
    -*) die "unknown option $arg (see --help)" ;;
    *)
      $build_dir_given && die "one BUILD_DIR only (see --help)"
      build_dir=$arg
      build_dir_given=true
      ;;
  esac
done

destdir=${DESTDIR:-}
destdir=${destdir%/}
prefix=${PREFIX:-/usr}
prefix=${prefix%/}
[[ $prefix == /* ]] || die "PREFIX must be an absolute path, not '$prefix'"
if [[ -n $destdir ]]; then
  [[ $destdir == /* ]] || destdir=$PWD/$destdir
  $apply_sysctl && die "--apply-sysctl changes this host; it cannot go with DESTDIR"
  real_install=false
else
  [[ $(id -u) -eq 0 ]] || die "a real install needs root (or set DESTDIR=DIR to stage it)"
  real_install=true
fi

gate46d_built=$build_dir/gateway/gate46d
gate46ctl_built=$build_dir/ctl/gate46ctl
if [[ ! -x $gate46d_built || ! -x $gate46ctl_built ]]; then
  die "no gate46d/gate46ctl in $build_dir; build them first (from $source_dir):
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  ninja -C build/release gate46d gate46ctl"
fi

sbin=$prefix/sbin
unit_dir=$prefix/lib/systemd/system
sysusers_dir=$prefix/lib/sysusers.d
sysctl_dir=$prefix/lib/sysctl.d
doc_dir=$prefix/share/doc/gate46
config_dir=/etc/gate46
state_dir=/var/lib/gate46
units=(gate46.service gate46-dns.service gate46-gateway.service)

if $real_install; then
  say "installing into / (PREFIX=$prefix) from $build_dir"
else
  say "staging into $destdir (PREFIX=$prefix) from $build_dir; this host is not changed"
fi

# ---- helpers ----------------------------------------------------------------------------
# put SOURCE TARGET MODE: installs SOURCE as DESTDIR/TARGET with MODE unless it is there already
# with that content and mode (then nothing is touched, not even the time stamps).
put() {
  local source=$1 target=$destdir$2 mode=$3
  if [[ -f $target ]] && cmp -s "$source" "$target" && [[ $(stat -c %a "$target") == "${mode#0}" ]]; then
    say "unchanged  $2"
    return
  fi
  local verb="installed "
  [[ -e $target ]] && verb="updated   "
  install -D -m "$mode" "$source" "$target"
  say "$verb $2 ($mode)"
}

# directory PATH MODE [OWNER:GROUP]: creates DESTDIR/PATH with MODE (and, on a real install,
# that ownership), or brings an existing one to it.
directory() {
  local target=$destdir$1 mode=$2 owner=${3:-}
  if [[ ! -d $target ]]; then
    install -d -m "$mode" "$target"
    if $real_install && [[ -n $owner ]]; then
      chown "$owner" "$target"
      say "created    $1/ ($mode $owner)"
    else
      say "created    $1/ ($mode)"
    fi
  elif [[ $(stat -c %a "$target") != "${mode#0}" ]]; then
    chmod "$mode" "$target"
    say "mode       $1/ ($mode)"
  fi
  if [[ -n $owner ]] && $real_install && [[ $(stat -c %U:%G "$target") != "$owner" ]]; then
    chown "$owner" "$target"
    say "owner      $1/ ($owner)"
  fi
}

# readable_by_group PATH: on a real install, gives DESTDIR/PATH group gate46 and read access for
# it, the daemon's only way in; other bits of an admin's file are left as they are.
readable_by_group() {
  $real_install || return 0
  if [[ $(stat -c %G "$1") != gate46 ]]; then
    chgrp gate46 "$1"
    say "group      $1 (gate46)"
  fi
  if ((($(stat -c '0%a' "$1") & 8#040) == 0)); then
    chmod g+r "$1"
    say "mode       $1 (g+r)"
  fi
}

# ---- binaries and static files ------------------------------------------------------------
put "$gate46d_built" "$sbin/gate46d" 0755
put "$gate46ctl_built" "$sbin/gate46ctl" 0755
put "$deploy_dir/sysusers.d/gate46.conf" "$sysusers_dir/gate46.conf" 0644
put "$deploy_dir/sysctl.d/60-gate46.conf" "$sysctl_dir/60-gate46.conf" 0644
put "$deploy_dir/gate46.toml.example" "$doc_dir/gate46.toml.example" 0644

# The units name /usr/sbin/gate46d and /usr/share/doc/gate46; another PREFIX gets its own
# paths written in.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "${units[@]}"; do
  sed -e "s|/usr/sbin/gate46d|$sbin/gate46d|g" -e "s|/usr/share/doc/gate46|$doc_dir|g" \
    "$deploy_dir/systemd/$unit" >"$work/$unit"
  put "$work/$unit" "$unit_dir/$unit" 0644
done

# ---- the user and group -------------------------------------------------------------------
# Before anything gets group gate46: the key, /etc/gate46, the state directory.
if $real_install; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$sysusers_dir/gate46.conf"
  elif ! getent passwd gate46 >/dev/null; then
    # A system without systemd (a container, say): the same user by hand.
    getent group gate46 >/dev/null || groupadd --system gate46
    useradd --system --gid gate46 --home-dir "$state_dir" --no-create-home \
      --shell /usr/sbin/nologin --comment "gate46 IPv6/IPv4 gateway" gate46
  fi
  getent passwd gate46 >/dev/null || die "the user gate46 was not created"
  say "user       gate46 ($(id gate46))"
fi

# ---- configuration ------------------------------------------------------------------------
# 0750/0640 with group gate46: the daemon (as gate46) and members of the group read the file
# and the key; other users do not see SOCKS password hashes or the placement key.
directory "$config_dir" 0750 root:gate46
config=$destdir$config_dir/gate46.toml
if [[ -e $config ]]; then
  if cmp -s "$deploy_dir/gate46.toml.example" "$config"; then
    say "kept       $config_dir/gate46.toml (still the example: edit lan.*, dns.upstreams)"
  else
    say "kept       $config_dir/gate46.toml (yours; the new example is $doc_dir/gate46.toml.example)"
  fi
else
  install -m 0640 "$deploy_dir/gate46.toml.example" "$config"
  $real_install && chgrp gate46 "$config"
  say "installed  $config_dir/gate46.toml (0640, from the example: edit it)"
fi
readable_by_group "$config"

key=$destdir$config_dir/pool.key
if [[ -e $key ]]; then
  say "kept       $config_dir/pool.key (a new key would move every name's preferred address)"
else
  # keygen gives the key group gate46 and mode 0640 when the group exists, else 0600.
  if "$destdir$sbin/gate46ctl" keygen --key-file "$key" >/dev/null; then
    say "installed  $config_dir/pool.key ($(stat -c %04a "$key"), gate46ctl keygen)"
  elif ! $real_install; then
    # Staging without root on a host that has a gate46 group: keygen may not give the key that
    # group, and the host's group means nothing in the staged tree anyway. The same 16 random
    # bytes, owner-only; whoever installs the tree gives it group gate46 and mode 0640.
    (umask 077 && head -c 16 /dev/urandom >"$key")
    say "installed  $config_dir/pool.key (0600, 16 random bytes: keygen could not set its group)"
  else
    die "gate46ctl keygen failed"
  fi
fi
readable_by_group "$key"

# ---- state --------------------------------------------------------------------------------
# StateDirectory= makes it under the unit too; gate46d started by hand needs it in place.
directory "$state_dir" 0770 gate46:gate46

# ---- sysctl -------------------------------------------------------------------------------
if $apply_sysctl; then
  sysctl -p "$sysctl_dir/60-gate46.conf"
  say "applied    $sysctl_dir/60-gate46.conf"
fi

# ---- what next ----------------------------------------------------------------------------
if $real_install; then
  sysctl_when="applies at the next boot; now: sysctl -p $sysctl_dir/60-gate46.conf"
  $apply_sysctl && sysctl_when="is applied, and applies again at every boot"
  cat <<EOF
install.sh: done. Next:
  1. Edit $config_dir/gate46.toml (lan.interfaces, lan.networks, dns.upstreams), then check it:
     gate46d --check-config --config $config_dir/gate46.toml
  2. Forwarding: $sysctl_dir/60-gate46.conf $sysctl_when
  3. systemctl daemon-reload
     systemctl enable --now gate46.service
     (or the two-process split: systemctl enable --now gate46-dns.service gate46-gateway.service)
  4. gate46ctl status; journalctl -u gate46
EOF
else
  say "done: staged under $destdir"
fi
