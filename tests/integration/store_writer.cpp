// A second process using the mapping store while gate46ctl reads and writes it (ctl_map_test).
// It opens the store as gate46d does (open_lmdb_store with the configuration's options and
// key) and reports on stdout, one flushed line per event, only after the store call returned:
//
//   store_writer CONFIG allocate STOP_FILE [COUNT]
//       Allocates w<i>.writer.test. in both pools, i = 0, 1, ..., every 2 ms, until STOP_FILE
//       exists or COUNT names are done. After each name:
//         "allocated NAME V4 V6"    ("-" for a family whose allocation failed)
//         "failed NAME v4|v6 MESSAGE"  before it, for each failed family
//       then "done N" and it waits for a signal.
//   store_writer CONFIG hold NAME
//       Allocates NAME in both pools, holds its IPv4 address as a new flow would, writes the
//       hold (sync), prints "held NAME V4 V6" and waits for a signal.
//
// Exit 1 with a message on stderr if the configuration, key or store cannot be used. It never
// exits by itself otherwise: the test's process object ends it (SIGTERM), so the store stays in
// use by another process for as long as the test looks at it.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>

#include "gate46/common/config.hpp"
#include "gate46/mapping/lmdb_store.hpp"

namespace {

using namespace gate46;
using namespace std::chrono_literals;

[[noreturn]] void wait_for_signal() {
  std::fflush(stdout);
  for (;;) {
    ::pause();
  }
}

std::string address_text(const mapping::result<mapping::mapping>& outcome, ip_family family) {
  return outcome && outcome->address(family) ? outcome->address(family)->to_string() : "-";
}

int allocate(mapping::mapping_store& store, const std::filesystem::path& stop_file, unsigned long count) {
  unsigned long done = 0;
  for (; done < count && !std::filesystem::exists(stop_file); ++done) {
    const auto text = "w" + std::to_string(done) + ".writer.test.";
    const auto name = *dns_name::parse(text);
    const auto v4 = store.allocate_blocking(name, ip_family::v4, 60s);
    const auto v6 = store.allocate_blocking(name, ip_family::v6, 60s);
    for (const auto* outcome : {&v4, &v6}) {
      if (!*outcome) {
        std::printf("failed %s %s %s\n", text.c_str(), outcome == &v4 ? "v4" : "v6",
                    outcome->error().message().c_str());
      }
    }
    std::printf("allocated %s %s %s\n", text.c_str(), address_text(v4, ip_family::v4).c_str(),
                address_text(v6, ip_family::v6).c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(2ms);
  }
  std::printf("done %lu\n", done);
  wait_for_signal();
}

int hold(mapping::mapping_store& store, const std::string& text) {
  const auto name = dns_name::parse(text);
  if (!name) {
    std::fprintf(stderr, "store_writer: bad name %s\n", text.c_str());
    return 1;
  }
  const auto v4 = store.allocate_blocking(*name, ip_family::v4, 60s);
  const auto v6 = store.allocate_blocking(*name, ip_family::v6, 60s);
  if (!v4 || !v6) {
    std::fprintf(stderr, "store_writer: cannot allocate %s\n", text.c_str());
    return 1;
  }
  store.hold(*v4->v4, 60s);
  store.sync();
  std::printf("held %s %s %s\n", name->to_string().c_str(), v4->v4->to_string().c_str(), v6->v6->to_string().c_str());
  wait_for_signal();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc >= 3 ? argv[2] : "";
  if (argc < 4 || (mode != "allocate" && mode != "hold")) {
    std::fprintf(stderr, "usage: store_writer CONFIG allocate STOP_FILE [COUNT] | CONFIG hold NAME\n");
    return 1;
  }
  try {
    const auto cfg = load_config(argv[1]);
    const auto store = mapping::open_lmdb_store(
        mapping::lmdb_store_options::from_config(cfg, mapping::load_pool_key(cfg.pools.key_file)));
    if (mode == "allocate") {
      return allocate(*store, argv[3], argc >= 5 ? std::stoul(argv[4]) : 100'000);
    }
    return hold(*store, argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_writer: %s\n", e.what());
    return 1;
  }
}
