#!/usr/bin/env bash
# gate46 whole-path benchmark (issue 10): the relay benchmark's definitions (iperf3 1 and 4
# streams, wrk with a new connection per request and with keep-alive; strict pairs against the
# kernel forwarding the same traffic), but the client's tools are given the names and resolve
# them themselves through gate46's DNS: DNS -> fake address -> capture -> relay, as a LAN host
# that knows nothing of gate46 does.
#
#   tests/bench/e2e_bench.sh                      (as root; see relay_bench.sh for every knob)
#   PAIRS=3 DURATION=5 tests/bench/e2e_bench.sh
#
# same  = `iperf3 -c v4only.bench.test`, `wrk http://v4only.bench.test/`: fake A, relayed over IPv4
# cross = the same with v6only.bench.test: fake A, relayed over IPv6 to an IPv6-only server
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export TARGETS=names
export PATHS=${PATHS:-same cross}
export TESTS=${TESTS:-iperf1 iperf4 wrk-close wrk-keepalive}
exec "$HERE/relay_bench.sh" "$@"
