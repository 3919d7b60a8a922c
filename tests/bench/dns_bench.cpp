// The DNS proxy's per-query work, in process, piece by piece: what one A query for an
// AAAA-only name that is already mapped costs (the whole-system figure is
// tests/bench/dns_policy_bench.sh). Upstream answers come from memory, as from a warm cache;
// the mapping store is a real LMDB store in a temporary directory.
//
//   parse_query     the client's bytes to a query (ldns underneath)
//   policy_steps    the policy's three decisions over cached answers (no I/O)
//   fake_reply      the reply bytes
//   store_find      the mapping lookup by name
//   answer          the whole responder coroutine: policy, cache, store lookup, renewal, reply
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/dns/message.hpp"
#include "gate46/dns/policy.hpp"
#include "gate46/dns/responder.hpp"
#include "gate46/mapping/lmdb_store.hpp"

namespace {

using namespace gate46;
using namespace gate46::dns;
namespace asio = boost::asio;

constexpr int name_count = 10000;

void put_u16(bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put_name(bytes& out, const dns_name& name) {
  const auto wire = name.wire();
  out.insert(out.end(), wire.begin(), wire.end());
}

dns_name name_of(int i) {
  return *dns_name::parse("host" + std::to_string(i) + ".v6only.bench.");
}

// A query as dnsperf sends it: RD, EDNS0 with a 1232-byte buffer.
bytes query_wire(const dns_name& name, std::uint16_t type, std::uint16_t id) {
  bytes out;
  put_u16(out, id);
  put_u16(out, 0x0100);
  for (const std::uint16_t count : {1, 0, 0, 1}) {
    put_u16(out, count);
  }
  put_name(out, name);
  put_u16(out, type);
  put_u16(out, class_in);
  out.push_back(0);
  put_u16(out, rr_type::opt);
  put_u16(out, 1232);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, 0);
  return out;
}

// The authoritative answer: an AAAA record, or NODATA with the SOA.
std::shared_ptr<const answer> upstream_answer(const dns_name& name, std::uint16_t type, std::uint16_t id, int i) {
  bytes out;
  put_u16(out, id);
  put_u16(out, 0x8580);  // QR AA RD RA
  put_u16(out, 1);
  put_u16(out, type == rr_type::aaaa ? 1 : 0);
  put_u16(out, type == rr_type::aaaa ? 0 : 1);
  put_u16(out, 0);
  put_name(out, name);
  put_u16(out, type);
  put_u16(out, class_in);
  if (type == rr_type::aaaa) {
    put_u16(out, 0xc00c);
    put_u16(out, rr_type::aaaa);
    put_u16(out, class_in);
    put_u16(out, 0);
    put_u16(out, 3600);
    put_u16(out, 16);
    const auto a = ip_address::parse("2001:db8:2::").value().v6_bytes();
    out.insert(out.end(), a.begin(), a.end() - 2);
    put_u16(out, static_cast<std::uint16_t>(i));
  } else {
    put_name(out, *dns_name::parse("bench."));
    put_u16(out, rr_type::soa);
    put_u16(out, class_in);
    put_u16(out, 0);
    put_u16(out, 3600);
    bytes rdata;
    put_name(rdata, *dns_name::parse("ns.bench."));
    put_name(rdata, *dns_name::parse("hostmaster.bench."));
    for (int k = 0; k < 5; ++k) {
      put_u16(rdata, 0);
      put_u16(rdata, 3600);
    }
    put_u16(out, static_cast<std::uint16_t>(rdata.size()));
    out.insert(out.end(), rdata.begin(), rdata.end());
  }
  auto a = accept_upstream_answer(out, id, question{name, type, class_in});
  if (!a) {
    throw std::runtime_error{"bench: bad upstream answer"};
  }
  return std::make_shared<const answer>(std::move(*a));
}

// Answers from memory, as a warm cache would.
class memory_resolver final : public resolver {
 public:
  void add(const question& q, std::shared_ptr<const answer> a) { answers_[key(q)] = std::move(a); }
  [[nodiscard]] std::shared_ptr<const answer> find(const question& q) const { return answers_.at(key(q)); }
  asio::awaitable<result<timed_answer>> query(question q, query_flags /*flags*/) override {
    co_return timed_answer{find(q), std::chrono::seconds{0}};
  }
  asio::awaitable<result<std::vector<ip_address>>> resolve(dns_name /*name*/, ip_family /*family*/) override {
    co_return std::vector<ip_address>{};
  }

 private:
  static std::string key(const question& q) { return std::string{q.name.wire_view()} + std::to_string(q.type); }
  std::map<std::string, std::shared_ptr<const answer>> answers_;
};

struct fixture {
  std::filesystem::path dir;
  std::unique_ptr<mapping::mapping_store> store;
  memory_resolver upstream;
  std::vector<bytes> queries;
  std::vector<query> parsed;

  fixture() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gate46-dns-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error{"bench: mkdtemp"};
    }
    dir = pattern;
    mapping::lmdb_store_options options;
    options.path = dir / "mappings.mdb";
    options.key = mapping::pool_key{};
    store = mapping::open_lmdb_store(options);
    for (int i = 0; i < name_count; ++i) {
      const auto name = name_of(i);
      upstream.add({name, rr_type::a, class_in}, upstream_answer(name, rr_type::a, 1, i));
      upstream.add({name, rr_type::aaaa, class_in}, upstream_answer(name, rr_type::aaaa, 1, i));
      (void)store->allocate_blocking(name, ip_family::v4, std::chrono::seconds{60});
      queries.push_back(query_wire(name, rr_type::a, static_cast<std::uint16_t>(i)));
      parsed.push_back(std::get<query>(parse_query(queries.back())));
    }
  }
  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;
  ~fixture() {
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

fixture& shared_fixture() {
  static fixture f;
  return f;
}

void parse(benchmark::State& state) {
  auto& f = shared_fixture();
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(parse_query(f.queries[i++ % f.queries.size()]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(parse)->Name("parse_query");

void decide(benchmark::State& state) {
  auto& f = shared_fixture();
  const policy p{policy_settings{}};
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    const auto& q = f.parsed[i++ % f.parsed.size()];
    lookups known;
    auto d = p.decide(q, known, 1232);
    while (const auto* ask = std::get_if<ask_upstream>(&d)) {
      known.add(ask->q, timed_answer{f.upstream.find(ask->q), {}});
      d = p.decide(q, known, 1232);
    }
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(decide)->Name("policy_decide");

// The upstream cache with both answers of every name, as in the whole-system run.
void cache(benchmark::State& state) {
  auto& f = shared_fixture();
  answer_cache c{100000};
  const auto now = std::chrono::steady_clock::now();
  for (const auto& q : f.parsed) {
    for (const auto type : {rr_type::a, rr_type::aaaa}) {
      const question asked{q.q.name, type, class_in};
      c.put(asked, f.upstream.find(asked), now);
    }
  }
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(c.get(f.parsed[i++ % f.parsed.size()].q, now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(cache)->Name("cache_get");

void rules(benchmark::State& state) {
  auto& f = shared_fixture();
  const policy p{policy_settings{}};
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(p.mode_for(f.parsed[i++ % f.parsed.size()].q.name));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(rules)->Name("rule_lookup");

void reply(benchmark::State& state) {
  auto& f = shared_fixture();
  const policy p{policy_settings{}};
  const auto fake = *ip_address::parse("198.18.0.7");
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(p.fake_reply(f.parsed[i++ % f.parsed.size()], fake));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(reply)->Name("fake_reply");

void find(benchmark::State& state) {
  auto& f = shared_fixture();
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    benchmark::DoNotOptimize(f.store->find(f.parsed[i++ % f.parsed.size()].q.name));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(find)->Name("store_find");

// The responder coroutine as the UDP server runs it: one co_spawn per query on one thread.
void answer_all(benchmark::State& state) {
  auto& f = shared_fixture();
  delegating_responder responder{f.upstream, *f.store, policy_settings{}};
  asio::io_context io;
  std::size_t i = 0;
  std::size_t bytes_out = 0;
  for ([[maybe_unused]] auto _ : state) {
    const auto& q = f.parsed[i++ % f.parsed.size()];
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { bytes_out += (co_await responder.answer(q, 1232)).size(); },
        asio::detached);
    io.run();
    io.restart();
  }
  if (bytes_out == 0) {
    state.SkipWithError("no replies");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(answer_all)->Name("answer");

void parse_and_answer(benchmark::State& state) {
  auto& f = shared_fixture();
  delegating_responder responder{f.upstream, *f.store, policy_settings{}};
  asio::io_context io;
  std::size_t i = 0;
  for ([[maybe_unused]] auto _ : state) {
    auto parsed = parse_query(f.queries[i++ % f.queries.size()]);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          benchmark::DoNotOptimize(co_await responder.answer(std::get<query>(parsed), 1232));
        },
        asio::detached);
    io.run();
    io.restart();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(parse_and_answer)->Name("parse_and_answer");

}  // namespace

BENCHMARK_MAIN();
