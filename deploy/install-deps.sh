#!/usr/bin/env bash
# Installs every Debian 12 package that gate46's builds, tests, demo and benchmarks need.
# Idempotent: packages already present are skipped, and apt-get runs only when something is
# missing. Never installs libboost-dev (it pulls Boost 1.74, which conflicts with 1.81).
set -euo pipefail

packages=(
  # toolchain and build
  build-essential cmake pkg-config ninja-build clang libclang-rt-14-dev clang-format clang-tidy
  # libraries
  libboost1.81-dev libldns-dev libnetfilter-queue-dev liblmdb-dev lmdb-utils
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libnftables-dev libmnl-dev libsystemd-dev
  libcap-dev libsodium-dev libseccomp-dev libhiredis-dev
  # network tools and real peers for the tests, the demo and the benchmarks
  nftables iptables iproute2 iputils-ping dnsutils knot-dnsutils knot nsd dnsdist unbound
  dnsperf nginx wrk iperf3 curl socat netcat-openbsd vsftpd ftp lftp dante-server
  dante-client python3 python3-socks python3-dnspython systemd procps psmisc
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Servers installed here must not start on the host: tests start their own peers.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
