// The mapping store (LMDB) against raw C LMDB loops over the same data, in the same run: the
// figures that matter are the ratios (the *_pct counters, 100 x store rate / raw rate), since
// two shared cores make absolute rates move from run to run.
//
//   lookup      the gateway's per-flow lookup by fake address (find(ip_address): a pooled read
//               transaction renewed, addrs then names got, decoded, copied out, reset), uniformly
//               random keys over 100,000 IPv6 mappings. Raw loops: the same two gets with plain
//               mdb_* calls (renew, get, get, copy, reset), and a single get for transparency.
//   allocate    new names, each committed (visible to every process) before allocate()
//               returns, production sync settings (sync_interval 1000 ms), N concurrent
//               coroutines on one io_context thread: 500,000 names in the IPv6 pool (100,000 at
//               N = 1); the IPv4 pool (a /20 by default) from empty to full, then full with every
//               mapping expired (each allocation recycles one). Raw loops, 1,000 puts per
//               transaction: into the names table (the baseline; these names sort
//               nearly in insertion order, LMDB's best case), into the addrs table (random keys);
//               and the store's own three records per mapping (names, addrs, lru) at 1,000, 64
//               and 1 mappings per transaction (64 and 1: the group-commit batches of 64 and 1
//               concurrent allocations), and at 64 with MDB_WRITEMAP, a flag the store does not
//               set (what it would allow). allocs_per_commit: the store's average batch.
//   size        the store's size for 1,000,000 IPv6 mappings (and the raw tables' for the same
//               records).
// The raw loops run first (registration order) and the store benchmarks after them compute
// the ratios: run the whole binary, or filter with a pattern that keeps the raw loops too
// (--benchmark_filter='lookup', or 'raw|allocate'), or the ratios are missing.
//
// Store logging stays at the production level (info): recycling logs one line per recycled
// address on stderr. Run with 2>/dev/null, or 2>file, to keep the table readable.
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/clock.hpp"
#include "gate46/mapping/fake_pool.hpp"
#include "gate46/mapping/lmdb_store.hpp"
#include "gate46/mapping/record_codec.hpp"

namespace {

namespace asio = boost::asio;
using namespace gate46;
using namespace gate46::mapping;
using steady = std::chrono::steady_clock;

constexpr pool_key bench_key{0x62, 0x65, 0x6e, 0x63, 0x68, 0x2d, 0x6b, 0x65,
                             0x79, 0x2d, 0x67, 0x61, 0x74, 0x65, 0x34, 0x36};
constexpr std::uint64_t bench_map_size = std::uint64_t{4} << 30;
cidr pool_v6() {
  return cidr{*ip_address::parse("2001:2::"), 48};
}

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

// ---- scratch space and data --------------------------------------------------------------

class scratch_dir {
 public:
  scratch_dir() {
    std::string pattern = "/tmp/gate46-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error{errno, std::generic_category(), "mkdtemp"};
    }
    path_ = pattern;
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::filesystem::path operator/(const char* name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A wall clock the benchmark moves by hand (recycling needs expired mappings).
class manual_clock final : public gate46::clock {
 public:
  manual_clock() : now_{std::chrono::system_clock::now().time_since_epoch().count()} {}
  [[nodiscard]] time_point now() const noexcept override { return time_point{time_point::duration{now_.load()}}; }
  void advance(std::chrono::seconds by) { now_ += time_point::duration{by}.count(); }

 private:
  std::atomic<time_point::rep> now_;
};

// "n<i>.bench.example" for i in [first, first + count).
std::vector<dns_name> make_names(std::size_t first, std::size_t count, const char* tag = "bench") {
  std::vector<dns_name> names;
  names.reserve(count);
  for (std::size_t i = first; i < first + count; ++i) {
    names.push_back(*dns_name::parse("n" + std::to_string(i) + "." + tag + ".example"));
  }
  return names;
}

// The first n of the names every allocation benchmark uses (built once).
std::span<const dns_name> names(std::size_t n) {
  static std::vector<dns_name> all;
  if (all.size() < n) {
    auto more = make_names(all.size(), n - all.size());
    all.insert(all.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return {all.data(), n};
}

lmdb_store_options options_for(const std::filesystem::path& path) {
  lmdb_store_options o;
  o.path = path;
  o.map_size = bench_map_size;
  o.sync_interval = std::chrono::milliseconds{1000};  // production
  o.pool_v6 = pool_v6();
  o.key = bench_key;
  return o;
}

struct allocation_run {
  std::uint64_t allocated = 0;
  std::uint64_t failed = 0;
  std::error_code first_error;
  double seconds = 0;
};

// What the allocating coroutines share (all on one thread).
struct allocation_work {
  mapping_store& store;
  std::span<const dns_name> names;
  ip_family family;
  std::chrono::seconds ttl;
  bool stop_on_failure;
  std::size_t next = 0;
  allocation_run run;
};

// One allocating coroutine: takes the next name until there is none left.
asio::awaitable<void> allocate_names(allocation_work& work) {
  while (work.next < work.names.size()) {
    const auto m = co_await work.store.allocate(work.names[work.next++], work.family, work.ttl);
    if (m) {
      ++work.run.allocated;
      continue;
    }
    if (work.run.failed++ == 0) {
      work.run.first_error = m.error();
    }
    if (work.stop_on_failure) {
      work.next = work.names.size();
    }
  }
}

// Allocates every name with `concurrency` coroutines on one io_context thread; with
// `stop_on_failure`, stops handing out names at the first failure (pool full).
allocation_run allocate_all(mapping_store& store, std::span<const dns_name> to_allocate, ip_family family,
                            int concurrency, std::chrono::seconds ttl, bool stop_on_failure = false) {
  asio::io_context io;
  allocation_work work{store, to_allocate, family, ttl, stop_on_failure, 0, {}};
  const auto start = steady::now();
  for (int c = 0; c < concurrency; ++c) {
    asio::co_spawn(io, allocate_names(work), asio::detached);
  }
  io.run();
  work.run.seconds = seconds_since(start);
  return work.run;
}

// ---- raw LMDB ----------------------------------------------------------------------------

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) {
    throw std::runtime_error{std::string{what} + ": " + mdb_strerror(rc)};
  }
}

MDB_val to_val(const std::string& s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

// An environment opened as the store opens its own.
class raw_env {
 public:
  // `extra_flags`: MDB_WRITEMAP, to show what the store would gain with it.
  explicit raw_env(const std::filesystem::path& path, unsigned extra_flags = 0) {
    check(mdb_env_create(&env_), "mdb_env_create");
    check(mdb_env_set_maxdbs(env_, 4), "mdb_env_set_maxdbs");
    check(mdb_env_set_mapsize(env_, bench_map_size), "mdb_env_set_mapsize");
    check(mdb_env_open(env_, path.c_str(), MDB_NOSUBDIR | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | extra_flags, 0600),
          "mdb_env_open");
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "names", MDB_CREATE, &names), "mdb_dbi_open");
    check(mdb_dbi_open(txn, "addrs", MDB_CREATE, &addrs), "mdb_dbi_open");
    check(mdb_dbi_open(txn, "lru", MDB_CREATE, &lru), "mdb_dbi_open");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  raw_env(const raw_env&) = delete;
  raw_env& operator=(const raw_env&) = delete;
  ~raw_env() { mdb_env_close(env_); }
  [[nodiscard]] MDB_env* get() const noexcept { return env_; }

  MDB_dbi names = 0;
  MDB_dbi addrs = 0;
  MDB_dbi lru = 0;

 private:
  MDB_env* env_ = nullptr;
};

// The records the store writes for one new IPv6 mapping, encoded ahead of the timed loop.
struct raw_mapping {
  std::string name_key;
  std::string name_value;
  std::string address_key;
  std::string address_value;
  std::string lru_key;
};

std::vector<raw_mapping> encode_mappings(std::span<const dns_name> to_encode) {
  const fake_pool pool{pool_v6()};
  const auto now = std::chrono::system_clock::now();
  std::vector<raw_mapping> out;
  out.reserve(to_encode.size());
  for (const auto& name : to_encode) {
    const auto address = pool.address_at(pool.start_index(bench_key, name));
    const gate46::mapping::mapping m{name, std::nullopt, address, now, now, now + std::chrono::seconds{3900},
                                     {},   false};
    // The store's LRU keys grow with time, batch by batch: one millisecond per 64 mappings.
    const auto used = now + std::chrono::milliseconds{out.size() / 64};
    out.push_back({std::string{name.wire_view()}, codec::encode_name_value(m), codec::encode_address_key(address),
                   codec::encode_address_value({codec::address_entry::kind::mapped, {}, name}),
                   codec::encode_lru_key(address, used)});
  }
  return out;
}

enum class raw_records {
  names_only,  // names[wire name] = record: keys in nearly sequential order for these names
  addrs_only,  // addrs[address] = entry: uniformly random keys (the keyed hash places them)
  all,         // what the store writes per new mapping: names, addrs and lru
};

// Puts the mappings, `per_txn` to a transaction.
double raw_insert(const raw_env& env, const std::vector<raw_mapping>& mappings, std::size_t per_txn,
                  raw_records which) {
  const auto start = steady::now();
  for (std::size_t first = 0; first < mappings.size(); first += per_txn) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env.get(), nullptr, 0, &txn), "mdb_txn_begin");
    for (std::size_t i = first; i < std::min(first + per_txn, mappings.size()); ++i) {
      const auto& m = mappings[i];
      MDB_val k = to_val(m.name_key);
      MDB_val v = to_val(m.name_value);
      if (which != raw_records::addrs_only) {
        check(mdb_put(txn, env.names, &k, &v, 0), "mdb_put");
      }
      if (which != raw_records::names_only) {
        k = to_val(m.address_key);
        v = to_val(m.address_value);
        check(mdb_put(txn, env.addrs, &k, &v, 0), "mdb_put");
      }
      if (which == raw_records::all) {
        k = to_val(m.lru_key);
        v = MDB_val{0, nullptr};
        check(mdb_put(txn, env.lru, &k, &v, 0), "mdb_put");
      }
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  return seconds_since(start);
}

std::uint64_t apparent_size(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}
std::uint64_t allocated_bytes(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

// Rates of the raw loops, for the store benchmarks' vs_raw counters.
std::map<std::string, double>& raw_rates() {
  static std::map<std::string, double> rates;
  return rates;
}

void report_ratio(benchmark::State& state, const char* counter, const std::string& raw, double rate) {
  if (const auto it = raw_rates().find(raw); it != raw_rates().end()) {
    state.counters[counter] = 100.0 * rate / it->second;  // percent: the table prints small ratios as "550m"
  }
}

// ---- lookups -----------------------------------------------------------------------------

// 100,000 IPv6 mappings made by the store, closed again; the keys in random order.
struct lookup_data {
  scratch_dir dir;
  std::filesystem::path path = dir / "mappings.mdb";
  std::vector<ip_address> addresses;
  std::vector<std::array<std::uint8_t, 16>> keys;
  std::vector<std::uint32_t> order;  // uniformly random indices, 2^20 of them, cycled

  explicit lookup_data(std::size_t count) {
    const auto store = open_lmdb_store(options_for(path));
    const auto to_allocate = names(count);
    const auto run = allocate_all(*store, to_allocate, ip_family::v6, 64, std::chrono::seconds{300});
    if (run.failed != 0) {
      throw std::runtime_error{"lookup data: " + run.first_error.message()};
    }
    for (const auto& name : to_allocate) {
      addresses.push_back(*store->find(name)->v6);
      keys.push_back(addresses.back().v6_bytes());
    }
    std::mt19937 random{46};
    std::uniform_int_distribution<std::uint32_t> pick{0, static_cast<std::uint32_t>(count - 1)};
    order.resize(std::size_t{1} << 20);
    for (auto& i : order) {
      i = pick(random);
    }
  }
};

const lookup_data& lookups(std::size_t count) {
  static std::map<std::size_t, std::unique_ptr<lookup_data>> built;
  auto& data = built[count];
  if (!data) {
    data = std::make_unique<lookup_data>(count);
  }
  return *data;
}

// The raw loop: renew, get addrs[address], get names[owner], copy the record out, reset.
void raw_lookup(benchmark::State& state, bool both_gets) {
  const auto& data = lookups(static_cast<std::size_t>(state.range(0)));
  const raw_env env{data.path};  // the store is closed: one environment per process
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &txn), "mdb_txn_begin");
  mdb_txn_reset(txn);
  std::array<char, 256> out{};
  std::size_t i = 0;
  std::size_t found = 0;
  const auto start = steady::now();
  for ([[maybe_unused]] auto _ : state) {
    const auto& key = data.keys[data.order[i++ & (data.order.size() - 1)]];
    check(mdb_txn_renew(txn), "mdb_txn_renew");
    MDB_val k{key.size(), const_cast<std::uint8_t*>(key.data())};
    MDB_val v{};
    if (mdb_get(txn, env.addrs, &k, &v) == MDB_SUCCESS) {
      if (both_gets) {
        // addrs value: version | kind | until[8] | owner's wire name
        MDB_val name{v.mv_size - 10, static_cast<char*>(v.mv_data) + 10};
        if (mdb_get(txn, env.names, &name, &v) == MDB_SUCCESS) {
          std::memcpy(out.data(), v.mv_data, std::min(v.mv_size, out.size()));
          ++found;
        }
      } else {
        std::memcpy(out.data(), v.mv_data, std::min(v.mv_size, out.size()));
        ++found;
      }
    }
    benchmark::DoNotOptimize(out);
    mdb_txn_reset(txn);
  }
  const double rate = static_cast<double>(state.iterations()) / seconds_since(start);
  mdb_txn_abort(txn);
  if (found != static_cast<std::size_t>(state.iterations())) {
    state.SkipWithError("raw lookup missed keys");
    return;
  }
  raw_rates()[both_gets ? "lookup_two_gets" : "lookup_one_get"] = rate;
  state.counters["lookups_per_s"] = rate;
}

void raw_lookup_addrs_then_names(benchmark::State& state) {
  raw_lookup(state, true);
}
BENCHMARK(raw_lookup_addrs_then_names)->Arg(100'000)->Unit(benchmark::kNanosecond);

void raw_lookup_addrs_only(benchmark::State& state) {
  raw_lookup(state, false);
}
BENCHMARK(raw_lookup_addrs_only)->Arg(100'000)->Unit(benchmark::kNanosecond);

// What the gateway does per new flow: mapping_store::find(ip_address).
void store_lookup_by_address(benchmark::State& state) {
  const auto& data = lookups(static_cast<std::size_t>(state.range(0)));
  const auto store = open_lmdb_store(options_for(data.path));
  std::size_t i = 0;
  std::size_t found = 0;
  const auto start = steady::now();
  for ([[maybe_unused]] auto _ : state) {
    const auto m = store->find(data.addresses[data.order[i++ & (data.order.size() - 1)]]);
    found += m ? 1 : 0;
    benchmark::DoNotOptimize(m);
  }
  const double rate = static_cast<double>(state.iterations()) / seconds_since(start);
  if (found != static_cast<std::size_t>(state.iterations())) {
    state.SkipWithError("store lookup missed keys");
    return;
  }
  state.counters["lookups_per_s"] = rate;
  report_ratio(state, "vs_raw_pct", "lookup_two_gets", rate);
  report_ratio(state, "vs_raw_one_get_pct", "lookup_one_get", rate);
}
BENCHMARK(store_lookup_by_address)->Arg(100'000)->Unit(benchmark::kNanosecond);

// ---- allocations -------------------------------------------------------------------------

// Raw inserts of the records the IPv6 allocation benchmark makes: args mappings, per
// transaction, and optionally MDB_WRITEMAP (1). Each loop saves its rate under `key` + per
// transaction (+ "wm").
void raw_insert_loop(benchmark::State& state, raw_records which, const char* key) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto per_txn = static_cast<std::size_t>(state.range(1));
  const bool writemap = state.range(2) != 0;
  const auto mappings = encode_mappings(names(count));
  double rate = 0;
  for ([[maybe_unused]] auto _ : state) {
    const scratch_dir dir;
    const raw_env env{dir / "raw.mdb", writemap ? MDB_WRITEMAP : 0U};
    const double seconds = raw_insert(env, mappings, per_txn, which);
    state.SetIterationTime(seconds);
    rate = static_cast<double>(count) / seconds;
  }
  raw_rates()[key + std::to_string(per_txn) + (writemap ? "wm" : "")] = rate;
  state.counters[which == raw_records::all ? "mappings_per_s" : "puts_per_s"] = rate;
}

// The baseline: 1,000 puts per transaction, here into the names table.
void raw_insert_names(benchmark::State& state) {
  raw_insert_loop(state, raw_records::names_only, "names");
}
BENCHMARK(raw_insert_names)
    ->ArgNames({"puts", "per_txn", "writemap"})
    ->Args({500'000, 1000, 0})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The same with random keys: the addresses.
void raw_insert_addrs(benchmark::State& state) {
  raw_insert_loop(state, raw_records::addrs_only, "addrs");
}
BENCHMARK(raw_insert_addrs)
    ->ArgNames({"puts", "per_txn", "writemap"})
    ->Args({500'000, 1000, 0})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Everything the store writes per mapping, at 1,000 per transaction and at the group-commit
// sizes of 64 and 1 concurrent allocations; and at 64 with MDB_WRITEMAP (which the store does
// not use: the ceiling it would have with it).
void raw_insert_store_records(benchmark::State& state) {
  raw_insert_loop(state, raw_records::all, "records");
}
BENCHMARK(raw_insert_store_records)
    ->ArgNames({"mappings", "per_txn", "writemap"})
    ->Args({500'000, 1000, 0})
    ->Args({500'000, 64, 0})
    ->Args({100'000, 1, 0})
    ->Args({500'000, 64, 1})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// `concurrency` picks the raw loop committing as many mappings per transaction, if any.
void report_allocations(benchmark::State& state, const allocation_run& run, int concurrency) {
  const double rate = static_cast<double>(run.allocated) / run.seconds;
  state.counters["allocs_per_s"] = rate;
  report_ratio(state, "vs_raw_pct", "names1000", rate);
  report_ratio(state, "vs_raw_random_pct", "addrs1000", rate);
  report_ratio(state, "vs_records_1000_pct", "records1000", rate);
  report_ratio(state, "vs_records_same_batch_pct", "records" + std::to_string(concurrency), rate);
}

// Write transactions committed in the store's file so far (LMDB's last transaction id), read
// with the store closed.
std::uint64_t committed_transactions(const std::filesystem::path& path) {
  const raw_env env{path};
  MDB_envinfo info{};
  mdb_env_info(env.get(), &info);
  return info.me_last_txnid;
}

// New IPv6 names: args concurrency, names.
void store_allocate_v6(benchmark::State& state) {
  const auto concurrency = static_cast<int>(state.range(0));
  const auto to_allocate = names(static_cast<std::size_t>(state.range(1)));
  allocation_run run;
  std::uint64_t commits = 0;
  for ([[maybe_unused]] auto _ : state) {
    const scratch_dir dir;
    const auto path = dir / "mappings.mdb";
    open_lmdb_store(options_for(path)).reset();
    const auto before = committed_transactions(path) + 1;  // the next open commits once
    {
      const auto store = open_lmdb_store(options_for(path));
      run = allocate_all(*store, to_allocate, ip_family::v6, concurrency, std::chrono::seconds{300});
      state.SetIterationTime(run.seconds);
      // Spot check: committed, found by name and by address.
      const auto m = store->find(to_allocate.back());
      if (run.failed != 0 || !m || !store->find(*m->v6)) {
        state.SkipWithError(("allocation failed: " + run.first_error.message()).c_str());
        return;
      }
    }
    commits = committed_transactions(path) - before;
  }
  report_allocations(state, run, concurrency);
  state.counters["allocs_per_commit"] = static_cast<double>(run.allocated) / static_cast<double>(commits);
}
BENCHMARK(store_allocate_v6)
    ->ArgNames({"concurrency", "names"})
    ->Args({64, 500'000})
    ->Args({8, 500'000})
    ->Args({1, 100'000})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

lmdb_store_options v4_options(const std::filesystem::path& path, unsigned prefix_length, const manual_clock& clock) {
  auto o = options_for(path);
  o.pool_v4 = cidr{*ip_address::parse("198.18.0.0"), prefix_length};
  o.lease_grace = std::chrono::seconds{0};
  o.wall_clock = &clock;
  return o;
}

// New names into an IPv4 pool (arg: its prefix length) from empty until it is full.
void store_allocate_v4_until_full(benchmark::State& state) {
  const auto prefix_length = static_cast<unsigned>(state.range(0));
  const auto size = static_cast<std::size_t>(fake_pool{cidr{*ip_address::parse("198.18.0.0"), prefix_length}}.size());
  const auto to_allocate = names(size + 64);
  allocation_run run;
  for ([[maybe_unused]] auto _ : state) {
    const scratch_dir dir;
    const manual_clock clock;
    const auto store = open_lmdb_store(v4_options(dir / "mappings.mdb", prefix_length, clock));
    run = allocate_all(*store, to_allocate, ip_family::v4, 64, std::chrono::seconds{60}, true);
    state.SetIterationTime(run.seconds);
    if (run.allocated != size || run.first_error != store_errc::pool_exhausted) {
      state.SkipWithError(
          ("unexpected: " + std::to_string(run.allocated) + " allocated, " + run.first_error.message()).c_str());
      return;
    }
  }
  state.counters["pool_size"] = static_cast<double>(size);
  report_allocations(state, run, 64);
}
BENCHMARK(store_allocate_v4_until_full)->Arg(20)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

// The same pool full of expired mappings: every new name recycles the least recently used.
void store_allocate_v4_recycling(benchmark::State& state) {
  const auto prefix_length = static_cast<unsigned>(state.range(0));
  const auto size = static_cast<std::size_t>(fake_pool{cidr{*ip_address::parse("198.18.0.0"), prefix_length}}.size());
  const auto fill = names(size);
  const auto fresh = make_names(0, size, "recycled");
  allocation_run run;
  std::uint64_t recycled = 0;
  for ([[maybe_unused]] auto _ : state) {
    const scratch_dir dir;
    manual_clock clock;
    const auto store = open_lmdb_store(v4_options(dir / "mappings.mdb", prefix_length, clock));
    if (allocate_all(*store, fill, ip_family::v4, 64, std::chrono::seconds{60}).failed != 0) {
      state.SkipWithError("cannot fill the pool");
      return;
    }
    clock.advance(std::chrono::hours{1});  // every mapping has expired
    run = allocate_all(*store, fresh, ip_family::v4, 64, std::chrono::seconds{60});
    state.SetIterationTime(run.seconds);
    recycled = store->stats().v4.recycled;
    if (run.failed != 0 || recycled != size) {
      state.SkipWithError(
          ("unexpected: " + std::to_string(recycled) + " recycled, " + run.first_error.message()).c_str());
      return;
    }
  }
  state.counters["pool_size"] = static_cast<double>(size);
  report_allocations(state, run, 64);
}
BENCHMARK(store_allocate_v4_recycling)->Arg(20)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---- size on disk ------------------------------------------------------------------------

// The store after `names` IPv6 allocations (64 concurrent), and raw tables of the same records.
void store_size_v6(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto to_allocate = names(count);
  for ([[maybe_unused]] auto _ : state) {
    const scratch_dir dir;
    const auto path = dir / "mappings.mdb";
    {
      const auto store = open_lmdb_store(options_for(path));
      const auto run = allocate_all(*store, to_allocate, ip_family::v6, 64, std::chrono::seconds{300});
      state.SetIterationTime(run.seconds);
      const auto stats = store->stats();
      if (run.failed != 0 || stats.v6.used != count) {
        state.SkipWithError(("allocation failed: " + run.first_error.message()).c_str());
        return;
      }
      store->sync();
      state.counters["allocs_per_s"] = static_cast<double>(count) / run.seconds;
      state.counters["bytes_on_disk"] = static_cast<double>(stats.bytes_on_disk);
      state.counters["bytes_per_mapping"] = static_cast<double>(stats.bytes_on_disk) / static_cast<double>(count);
    }
    state.counters["file_size"] = static_cast<double>(apparent_size(path));
    state.counters["file_allocated"] = static_cast<double>(allocated_bytes(path));
    {
      const auto raw_path = dir / "raw.mdb";
      const raw_env env{raw_path};
      raw_insert(env, encode_mappings(to_allocate), 1000, raw_records::all);
      MDB_envinfo info{};
      MDB_stat st{};
      mdb_env_info(env.get(), &info);
      mdb_env_stat(env.get(), &st);
      state.counters["raw_bytes"] = static_cast<double>((info.me_last_pgno + 1) * st.ms_psize);
    }
  }
}
BENCHMARK(store_size_v6)->Arg(1'000'000)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
