// The mapping store: the table of fake address <-> name shared by the DNS proxy, the gateway
// and gate46ctl, across processes and restarts. This is the seam a second backend (several
// gateways sharing one table) sits behind; open_lmdb_store() is the first.
//
// Contract, for every backend:
// - allocate() completes only after the mapping is committed: every process sees it.
// - The same name keeps its addresses while its mapping lives; an address a client may still
//   use (unexpired lease, held by a flow, pinned) is never given to another name.
// - Lookups never block on writers.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"
#include "gate46/mapping/mapping.hpp"

namespace gate46::mapping {

enum class store_errc {
  pool_exhausted = 1,  // the pool is full and nothing is eligible for recycling
  store_full,          // the store file reached store.map_size
  no_pool_key,         // allocation needs pools.key_file
  not_found,           // no mapping for that name or address
  outside_pools,       // an address that is in neither pool
  address_taken,       // add: the address belongs to another name (or is quarantined)
  held,                // del: a flow holds the mapping (use force)
  corrupt,             // a record failed to decode
  store_error,         // LMDB reported something else (logged with its text)
};
const std::error_category& store_category() noexcept;
std::error_code make_error_code(store_errc e) noexcept;

template <typename T>
using result = boost::system::result<T, std::error_code>;

// Either key of the table.
using mapping_key = std::variant<dns_name, ip_address>;

struct list_filter {
  std::optional<ip_family> pool;  // only mappings with an address in this pool
  bool expired_only = false;      // only mappings eligible for recycling now
};

struct pool_stats {
  cidr prefix;
  std::uint64_t size = 0;  // usable addresses, saturated at 2^64-1
  std::uint64_t used = 0;
  std::uint64_t pinned = 0;
  std::uint64_t eligible = 0;             // expired, not held, not pinned
  std::uint64_t recycled = 0;             // since the store was created
  std::uint64_t allocation_failures = 0;  // pool_exhausted, since the store was created
};

struct store_stats {
  pool_stats v4;
  pool_stats v6;
  std::uint64_t mappings = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t bytes_on_disk = 0;
  std::uint64_t map_size = 0;
};

class mapping_store {
 public:
  mapping_store() = default;
  mapping_store(const mapping_store&) = delete;
  mapping_store& operator=(const mapping_store&) = delete;
  virtual ~mapping_store() = default;

  // The name's mapping with an address in `family`'s pool, placing one if it has none, and
  // renewing its lease: last_used = now, expiry = max(expiry, now + ttl + pools.lease_grace).
  // Completes after the commit. Concurrent calls are committed together.
  virtual boost::asio::awaitable<result<mapping>> allocate(dns_name name, ip_family family,
                                                           std::chrono::seconds ttl) = 0;
  // The same, blocking the calling thread (for the CLI and tests; never on a worker thread).
  virtual result<mapping> allocate_blocking(const dns_name& name, ip_family family, std::chrono::seconds ttl) = 0;

  // Lookups, for the relay path: one read transaction, no write. A store failure (logged) is
  // reported as no mapping.
  [[nodiscard]] virtual std::optional<mapping> find(const ip_address& fake) const = 0;
  [[nodiscard]] virtual std::optional<mapping> find(const dns_name& name) const = 0;
  // The same lookup for administration, telling not_found, outside_pools, corrupt and
  // store_error apart.
  [[nodiscard]] virtual result<mapping> get(const mapping_key& key) const = 0;

  // A flow uses the mapping of `fake`: renews its last use and lease (as a DNS answer with
  // `ttl` would) and holds it for 2 x pools.hold_refresh. The first hold of a mapping in an
  // interval is written at once (without waiting for a commit); later ones are coalesced in
  // memory and written at most once per mapping per store.sync_interval_ms. Call it at flow
  // start and every hold_refresh.
  virtual void hold(const ip_address& fake, std::chrono::seconds ttl) = 0;

  // A DNS answer gave out `current`'s address in `family` again: renews its last use and lease
  // as allocate() would, without waiting for a commit (coalesced, written within
  // store.sync_interval_ms), and not at all while the lease still has three quarters of
  // pools.lease_grace beyond the answer's TTL: a name answered all day is written a few times
  // an hour, not at every answer. Only for a mapping whose lease already outlasts the answer,
  // so the answer stays safe if the renewal is never written.
  virtual void renew(const mapping& current, ip_family family, std::chrono::seconds ttl) = 0;

  // Administration (gate46ctl). add() places missing addresses like allocate() unless given.
  virtual result<mapping> add(const dns_name& name, std::optional<ip_address> v4, std::optional<ip_address> v6,
                              bool pin) = 0;
  // Refused with `held` while a flow holds it, unless forced. Addresses whose lease or hold
  // still runs are quarantined until both have passed, so no other name gets an address a
  // client may still use; the others are free at once.
  virtual result<mapping> remove(const mapping_key& key, bool force) = 0;
  virtual result<mapping> set_pinned(const mapping_key& key, bool pinned) = 0;
  [[nodiscard]] virtual std::vector<mapping> list(const list_filter& filter) const = 0;
  // Removes every unpinned, unheld mapping (only those whose lease has expired if
  // expired_only), with the quarantine rule of remove(); returns how many.
  virtual result<std::uint64_t> flush(bool expired_only) = 0;
  [[nodiscard]] virtual store_stats stats() const = 0;

  // Writes pending holds and syncs to disk now (also done every store.sync_interval_ms).
  virtual void sync() = 0;

  // The live keys pools.lease_grace and pools.hold_refresh (SIGHUP).
  virtual void set_lease_policy(std::chrono::seconds lease_grace, std::chrono::seconds hold_refresh) = 0;
};

}  // namespace gate46::mapping

template <>
struct std::is_error_code_enum<gate46::mapping::store_errc> : std::true_type {};
