#!/usr/bin/env python3
"""Summarise one dnsperf 2.10 output file (run with -v) as shell-readable key=value lines.

Usage: dnsperf_stats.py FILE

dnsperf 2.10 prints no percentiles; with -v it prints one line per answered query,
"> RCODE NAME TYPE LATENCY_SECONDS" ("> T ..." for a timeout), which gives p50/p99 here.
Prints: sent completed lost qps runtime avg_ms p50_ms p99_ms max_ms noerror other_rcodes
(response codes from dnsperf's summary, plus T/I counts from the -v lines).
"""
import re
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    latencies = []
    rcodes = {}  # from the -v lines: also timeouts (T) and interrupted queries (I)
    summary_rcodes = {}
    stats = {}
    patterns = {
        "sent": r"^\s*Queries sent:\s+(\d+)",
        "completed": r"^\s*Queries completed:\s+(\d+)",
        "lost": r"^\s*Queries lost:\s+(\d+)",
        "runtime": r"^\s*Run time \(s\):\s+([0-9.]+)",
        "qps": r"^\s*Queries per second:\s+([0-9.]+)",
        "avg_s": r"^\s*Average Latency \(s\):\s+([0-9.]+)",
    }
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                parts = line.split()
                if len(parts) >= 5:
                    rcodes[parts[1]] = rcodes.get(parts[1], 0) + 1
                    if parts[1] not in ("T", "I"):
                        try:
                            latencies.append(float(parts[-1]))
                        except ValueError:
                            pass
                continue
            m = re.match(r"^\s*Response codes:\s+(.*)$", line)
            if m:
                # "NOERROR 2 (50.00%), NXDOMAIN 2 (50.00%)": the totals, with or without -v.
                for code, count in re.findall(r"([A-Z]+) (\d+) \(", m.group(1)):
                    summary_rcodes[code] = int(count)
            for key, pattern in patterns.items():
                m = re.match(pattern, line)
                if m:
                    stats[key] = m.group(1)
    if "sent" not in stats or "qps" not in stats:
        print("error=no-dnsperf-statistics")
        return 1
    latencies.sort()

    def pct(p: float) -> str:
        if not latencies:
            return "NA"
        i = min(len(latencies) - 1, max(0, int(round(p / 100.0 * len(latencies))) - 1))
        return f"{latencies[i] * 1000:.3f}"

    print(f"sent={stats['sent']}")
    print(f"completed={stats.get('completed', '0')}")
    print(f"lost={stats.get('lost', '0')}")
    print(f"qps={float(stats['qps']):.0f}")
    print(f"runtime={float(stats.get('runtime', '0')):.3f}")
    print(f"avg_ms={float(stats.get('avg_s', '0')) * 1000:.3f}")
    print(f"p50_ms={pct(50)}")
    print(f"p99_ms={pct(99)}")
    print(f"max_ms={f'{latencies[-1] * 1000:.3f}' if latencies else 'NA'}")
    for code, count in rcodes.items():
        if code in ("T", "I"):
            summary_rcodes[code] = count
    print(f"noerror={summary_rcodes.get('NOERROR', 0)}")
    other = ",".join(f"{k}:{v}" for k, v in sorted(summary_rcodes.items()) if k != "NOERROR")
    print(f"other_rcodes={other or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
