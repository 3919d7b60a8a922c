// The address types sit on every flow's path (original destination -> pool check -> lookup).
#include <benchmark/benchmark.h>

#include "gate46/common/address.hpp"
#include "gate46/common/config.hpp"

namespace {

void parse_ipv4(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(gate46::ip_address::parse("198.18.12.34"));
  }
}
BENCHMARK(parse_ipv4);

void parse_ipv6(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(gate46::ip_address::parse("2001:2:0:1234::abcd"));
  }
}
BENCHMARK(parse_ipv6);

void pool_contains(benchmark::State& state) {
  const auto pool = *gate46::cidr::parse("198.18.0.0/15");
  const auto inside = *gate46::ip_address::parse("198.19.1.2");
  for (auto _ : state) {
    benchmark::DoNotOptimize(pool.contains(inside));
  }
}
BENCHMARK(pool_contains);

void parse_example_config(benchmark::State& state) {
  constexpr std::string_view text = R"(
[lan]
interfaces = ["lan0"]
networks = ["192.0.2.0/24", "2001:db8:1::/64"]
[dns]
upstreams = ["198.51.100.53", "[2001:db8:53::53]:53"]
[[dns.rule]]
suffix = "corp.example"
mode = "never"
)";
  for (auto _ : state) {
    benchmark::DoNotOptimize(gate46::parse_config(text, "bench.toml"));
  }
}
BENCHMARK(parse_example_config);

}  // namespace
