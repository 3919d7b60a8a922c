// The mapping store on LMDB: one file shared by every process on the gateway (gate46d's
// components and gate46ctl), crash-safe, with lock-free readers.
//
// Durability: allocations are committed (visible to every process) before they complete; the
// commits skip the disk sync (MDB_NOSYNC | MDB_NOMETASYNC), which a writer thread does every
// store.sync_interval_ms. A killed process loses nothing it committed; a power loss may lose
// the last interval's mappings.
// Ownership: a store created by this code belongs to the group gate46 (directory 0770, files
// 0660) when that group exists; otherwise to the calling user only (0700/0600), with a warning.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>

#include "gate46/common/clock.hpp"
#include "gate46/common/config.hpp"
#include "gate46/mapping/fake_pool.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::mapping {

struct lmdb_store_options {
  std::filesystem::path path;  // the data file; the lock file is path + "-lock"
  std::uint64_t map_size = std::uint64_t{1} << 30;
  std::chrono::milliseconds sync_interval{1000};
  cidr pool_v4{*ip_address::parse("198.18.0.0"), 15};
  cidr pool_v6{*ip_address::parse("2001:2::"), 48};
  std::optional<pool_key> key;  // without it, placing new addresses fails with no_pool_key
  std::chrono::seconds lease_grace{3600};
  std::chrono::seconds hold_refresh{60};
  const clock* wall_clock = &system_wall_clock();
  // false: a missing store is an error (store_missing) instead of being created.
  bool create_if_missing = true;
  // What opening does when the pools differ from those the store was last opened with:
  // gate46d applies the change (see open_lmdb_store); gate46ctl refuses (pool_change_refused),
  // so that a stale or default configuration never drops anyone's mappings.
  enum class pool_change : std::uint8_t { apply, refuse };
  pool_change on_pool_change = pool_change::apply;

  static lmdb_store_options from_config(const config& cfg, std::optional<pool_key> key);
};

// The store cannot be opened: unreadable or corrupt file, wrong permissions.
class store_open_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// There is no store and create_if_missing is false.
class store_missing : public store_open_error {
 public:
  using store_open_error::store_open_error;
};
// The configured pools differ from the store's and the change cannot be applied: pinned
// mappings lie outside the new pools (the message lists them), or on_pool_change is refuse.
class pool_change_refused : public store_open_error {
 public:
  using store_open_error::store_open_error;
};

// Opens (creating if needed) the store. At open: stale reader slots of dead processes are
// cleared, and if the pools changed since the last open, unpinned mappings outside the new
// pools are dropped (logged with their count) while pinned ones stop the open.
std::unique_ptr<mapping_store> open_lmdb_store(const lmdb_store_options& options);

// pools.key_file: exactly 16 bytes. Throws std::runtime_error naming the file.
pool_key load_pool_key(const std::filesystem::path& path);
// gate46ctl keygen: 16 random bytes, mode 0640, group gate46 if it exists. Throws
// pool_key_exists for an existing key unless `replace` (a new key moves every name's preferred
// address), std::runtime_error for anything else. The key appears whole or not at all.
class pool_key_exists : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
void write_pool_key(const std::filesystem::path& path, bool replace);

}  // namespace gate46::mapping
