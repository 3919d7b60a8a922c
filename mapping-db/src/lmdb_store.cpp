#include "gate46/mapping/lmdb_store.hpp"

#include <fcntl.h>
#include <grp.h>
#include <lmdb.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/log.hpp"
#include "gate46/mapping/record_codec.hpp"

namespace gate46::mapping {
namespace asio = boost::asio;
using std::chrono::seconds;

namespace {

// ---- LMDB in RAII -------------------------------------------------------------------------

// An LMDB failure that is not one of the store's expected outcomes.
class lmdb_failure : public std::runtime_error {
 public:
  lmdb_failure(const char* what, int rc) : std::runtime_error{std::string{what} + ": " + mdb_strerror(rc)}, rc_{rc} {}
  [[nodiscard]] int code() const noexcept { return rc_; }

 private:
  int rc_;
};

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) {
    throw lmdb_failure{what, rc};
  }
}

MDB_val to_val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};  // LMDB never writes through it
}

codec::byte_view view(const MDB_val& v) {
  return {static_cast<const std::uint8_t*>(v.mv_data), v.mv_size};
}

struct env_deleter {
  void operator()(MDB_env* env) const noexcept { mdb_env_close(env); }
};
using env_ptr = std::unique_ptr<MDB_env, env_deleter>;

struct databases {
  MDB_dbi names = 0;
  MDB_dbi addrs = 0;
  MDB_dbi lru = 0;
  MDB_dbi meta = 0;
};

// A read-write transaction that aborts unless committed.
class write_txn {
 public:
  explicit write_txn(MDB_env* env) { check(mdb_txn_begin(env, nullptr, 0, &txn_), "mdb_txn_begin"); }
  write_txn(const write_txn&) = delete;
  write_txn& operator=(const write_txn&) = delete;
  ~write_txn() {
    if (txn_ != nullptr) {
      mdb_txn_abort(txn_);
    }
  }
  void commit() {
    const int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    check(rc, "mdb_txn_commit");
  }
  [[nodiscard]] MDB_txn* get() const noexcept { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
};

// Read-only transactions are expensive to create and cheap to renew: a small pool of reset
// ones is shared by every thread (MDB_NOTLS makes that legal).
class reader_pool {
 public:
  explicit reader_pool(MDB_env* env) : env_{env} {}
  reader_pool(const reader_pool&) = delete;
  reader_pool& operator=(const reader_pool&) = delete;
  ~reader_pool() {
    for (auto* txn : idle_) {
      mdb_txn_abort(txn);
    }
  }

  // A live read transaction, reset and returned to the pool when the lease ends.
  class lease {
   public:
    lease(reader_pool& pool, MDB_txn* txn) : pool_{pool}, txn_{txn} {}
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() { pool_.release(txn_); }
    [[nodiscard]] MDB_txn* get() const noexcept { return txn_; }

   private:
    reader_pool& pool_;
    MDB_txn* txn_;
  };

  lease acquire() {
    MDB_txn* txn = nullptr;
    {
      const std::lock_guard lock{mutex_};
      if (!idle_.empty()) {
        txn = idle_.back();
        idle_.pop_back();
      }
    }
    if (txn != nullptr) {
      if (const int rc = mdb_txn_renew(txn); rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        throw lmdb_failure{"mdb_txn_renew", rc};
      }
    } else {
      check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin(read)");
    }
    return lease{*this, txn};
  }

 private:
  void release(MDB_txn* txn) noexcept {
    mdb_txn_reset(txn);
    const std::lock_guard lock{mutex_};
    idle_.push_back(txn);
  }

  MDB_env* env_;
  std::mutex mutex_;
  std::vector<MDB_txn*> idle_;
};

// ---- the table, inside one transaction -----------------------------------------------------

// Raised inside a write transaction for an expected outcome; the transaction's writes so far
// are kept or dropped by the caller.
struct store_failure {
  store_errc code;
  std::optional<ip_family> family{};  // pool_exhausted: which pool
};

constexpr std::string_view meta_pools = "pools";
constexpr std::string_view meta_schema = "schema";
constexpr std::uint64_t schema_version = 1;

std::string counter_key(std::string_view what, ip_family family) {
  return std::string{what} + (family == ip_family::v4 ? "4" : "6");
}

// Reads and writes of one transaction (read-only or read-write) over the four tables.
class table {
 public:
  table(MDB_txn* txn, const databases& db) : txn_{txn}, db_{db} {}

  std::optional<std::string> get(MDB_dbi dbi, std::string_view key) const {
    MDB_val k = to_val(key);
    MDB_val v{};
    const int rc = mdb_get(txn_, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
      return std::nullopt;
    }
    check(rc, "mdb_get");
    return std::string{static_cast<const char*>(v.mv_data), v.mv_size};
  }
  void put(MDB_dbi dbi, std::string_view key, std::string_view value) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    check(mdb_put(txn_, dbi, &k, &v, 0), "mdb_put");
  }
  void del(MDB_dbi dbi, std::string_view key) {
    MDB_val k = to_val(key);
    const int rc = mdb_del(txn_, dbi, &k, nullptr);
    if (rc != MDB_NOTFOUND) {
      check(rc, "mdb_del");
    }
  }

  std::optional<mapping> find_name(const dns_name& name) const {
    const auto value = get(db_.names, name.wire_view());
    if (!value) {
      return std::nullopt;
    }
    auto m = codec::decode_name_value(name, bytes(*value));
    if (!m) {
      throw store_failure{store_errc::corrupt};
    }
    return m;
  }

  std::optional<codec::address_entry> find_address(const ip_address& address) const {
    const auto value = get(db_.addrs, codec::encode_address_key(address));
    if (!value) {
      return std::nullopt;
    }
    auto entry = codec::decode_address_value(bytes(*value));
    if (!entry) {
      throw store_failure{store_errc::corrupt};
    }
    return entry;
  }

  std::optional<mapping> find_by_address(const ip_address& address) const {
    const auto entry = find_address(address);
    if (!entry || entry->state != codec::address_entry::kind::mapped) {
      return std::nullopt;
    }
    auto m = find_name(*entry->name);
    // Both tables change in one transaction: a dangling entry is corruption.
    if (!m || (m->v4 != address && m->v6 != address)) {
      throw store_failure{store_errc::corrupt};
    }
    return m;
  }

  // Writes `m` (new, or changed from `before`) with its address and LRU entries. Addresses are
  // only added here (detach() takes them away). Pinned mappings are not in the LRU index: they
  // are never recycled.
  void store(const mapping& m, const std::optional<mapping>& before) {
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      const auto old_address = before ? before->address(family) : std::optional<ip_address>{};
      const auto& new_address = m.address(family);
      if (old_address && !before->pinned) {
        del(db_.lru, codec::encode_lru_key(*old_address, before->last_used));
      }
      if (new_address && new_address != old_address) {
        put(db_.addrs, codec::encode_address_key(*new_address),
            codec::encode_address_value({codec::address_entry::kind::mapped, {}, m.name}));
        add_counter(counter_key("used", family), 1);
      }
      if (new_address && !m.pinned) {
        put(db_.lru, codec::encode_lru_key(*new_address, m.last_used), {});
      }
    }
    put(db_.names, m.name.wire_view(), codec::encode_name_value(m));
  }

  // Removes the mapping and frees (or quarantines until `quarantine_until`) its addresses.
  void erase(const mapping& m, time_point now) {
    const auto quarantine_until = std::max(m.expiry, m.held_until);
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      if (const auto& address = m.address(family)) {
        release_address(*address, m, quarantine_until > now && !m.pinned ? quarantine_until : time_point{});
      }
    }
    del(db_.names, m.name.wire_view());
  }

  // Detaches one address from its mapping (which keeps its other address, or goes).
  void detach(mapping m, ip_family family) {
    const auto before = m;
    const auto address = *m.address(family);
    (family == ip_family::v4 ? m.v4 : m.v6).reset();
    if (!before.pinned) {
      del(db_.lru, codec::encode_lru_key(address, before.last_used));
    }
    del(db_.addrs, codec::encode_address_key(address));
    add_counter(counter_key("used", family), -1);
    if (m.v4 || m.v6) {
      put(db_.names, m.name.wire_view(), codec::encode_name_value(m));
    } else {
      del(db_.names, m.name.wire_view());
    }
  }

  std::uint64_t counter(std::string_view key) const {
    const auto value = get(db_.meta, key);
    return value ? codec::decode_u64(bytes(*value)).value_or(0) : 0;
  }
  void add_counter(std::string_view key, std::int64_t delta) {
    const auto value = static_cast<std::int64_t>(counter(key)) + delta;
    put(db_.meta, key, codec::encode_u64(static_cast<std::uint64_t>(std::max<std::int64_t>(value, 0))));
  }

  [[nodiscard]] MDB_txn* txn() const noexcept { return txn_; }
  [[nodiscard]] const databases& dbs() const noexcept { return db_; }

  // Keeps `address` from every name until `until`. Indexed in the LRU table under that time,
  // so recycling finds it once the quarantine has passed.
  void quarantine(const ip_address& address, time_point until) {
    put(db_.addrs, codec::encode_address_key(address),
        codec::encode_address_value({codec::address_entry::kind::quarantined, until, std::nullopt}));
    put(db_.lru, codec::encode_lru_key(address, until), {});
  }

  // Frees a quarantined address (`entry` is its current entry).
  void end_quarantine(const ip_address& address, const codec::address_entry& entry) {
    del(db_.addrs, codec::encode_address_key(address));
    del(db_.lru, codec::encode_lru_key(address, entry.until));
    add_counter(counter_key("used", address.family()), -1);
  }

  static codec::byte_view bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

 private:
  void release_address(const ip_address& address, const mapping& m, time_point quarantine_until) {
    if (!m.pinned) {
      del(db_.lru, codec::encode_lru_key(address, m.last_used));
    }
    if (quarantine_until != time_point{}) {
      quarantine(address, quarantine_until);
    } else {
      del(db_.addrs, codec::encode_address_key(address));
      add_counter(counter_key("used", address.family()), -1);
    }
  }

  MDB_txn* txn_;
  const databases& db_;
};

// Walks every record of one table.
template <typename Fn>
void for_each(MDB_txn* txn, MDB_dbi dbi, Fn&& fn) {
  MDB_cursor* raw = nullptr;
  check(mdb_cursor_open(txn, dbi, &raw), "mdb_cursor_open");
  const std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> cursor{raw, &mdb_cursor_close};
  MDB_val k{};
  MDB_val v{};
  for (int rc = mdb_cursor_get(raw, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
       rc = mdb_cursor_get(raw, &k, &v, MDB_NEXT)) {
    check(rc, "mdb_cursor_get");
    if (!fn(view(k), view(v))) {
      break;
    }
  }
}

std::uint64_t saturate(pool_index v) {
  return v > std::numeric_limits<std::uint64_t>::max() ? std::numeric_limits<std::uint64_t>::max()
                                                       : static_cast<std::uint64_t>(v);
}

// strerror() is not thread-safe; the error category's message is.
std::string errno_text() {
  return std::generic_category().message(errno);
}

// ---- ownership ----------------------------------------------------------------------------

std::optional<gid_t> gate46_group() {
  std::vector<char> buffer(4096);
  group entry{};
  group* found = nullptr;
  if (getgrnam_r("gate46", &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->gr_gid;
  }
  return std::nullopt;
}

// Sets group and mode on a file or directory this process just created.
void set_ownership(const std::filesystem::path& path, std::optional<gid_t> group, mode_t shared, mode_t private_mode) {
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    throw store_open_error{"cannot give " + path.string() + " to group gate46: " + errno_text()};
  }
  if (::chmod(path.c_str(), group ? shared : private_mode) != 0) {
    throw store_open_error{"cannot set the mode of " + path.string() + ": " + errno_text()};
  }
}

// ---- completions --------------------------------------------------------------------------

class allocation_waiter {
 public:
  allocation_waiter() = default;
  allocation_waiter(const allocation_waiter&) = delete;
  allocation_waiter& operator=(const allocation_waiter&) = delete;
  virtual ~allocation_waiter() = default;
  // Where resume() must run; empty when any thread will do.
  [[nodiscard]] virtual asio::any_io_executor executor() const = 0;
  virtual void resume(result<mapping> outcome) = 0;
};

// An awaiting coroutine; resumed on its own executor.
template <typename Handler>
class handler_waiter final : public allocation_waiter {
 public:
  explicit handler_waiter(Handler handler)
      : handler_{std::move(handler)}, work_{asio::make_work_guard(asio::get_associated_executor(handler_))} {}
  [[nodiscard]] asio::any_io_executor executor() const override { return work_.get_executor(); }
  void resume(result<mapping> outcome) override {
    std::move(handler_)(std::move(outcome));
    work_.reset();
  }

 private:
  Handler handler_;
  asio::executor_work_guard<asio::associated_executor_t<Handler>> work_;
};

class promise_waiter final : public allocation_waiter {
 public:
  [[nodiscard]] asio::any_io_executor executor() const override { return {}; }
  void resume(result<mapping> outcome) override { promise_.set_value(std::move(outcome)); }
  std::future<result<mapping>> future() { return promise_.get_future(); }

 private:
  std::promise<result<mapping>> promise_;
};

// Resumes every waiter of a batch with one post per executor: a batch of 64 coroutines on one
// thread costs one wake-up of that thread, not 64.
void resume_all(std::vector<std::pair<std::unique_ptr<allocation_waiter>, result<mapping>>> done) {
  using group = std::vector<std::pair<std::unique_ptr<allocation_waiter>, result<mapping>>>;
  std::vector<std::pair<asio::any_io_executor, group>> by_executor;
  for (auto& item : done) {
    auto executor = item.first->executor();
    if (!executor) {
      item.first->resume(std::move(item.second));
      continue;
    }
    auto it = std::find_if(by_executor.begin(), by_executor.end(), [&](const auto& g) { return g.first == executor; });
    if (it == by_executor.end()) {
      by_executor.emplace_back(executor, group{});
      it = std::prev(by_executor.end());
    }
    it->second.push_back(std::move(item));
  }
  for (auto& [executor, items] : by_executor) {
    asio::post(executor, [items = std::move(items)]() mutable {
      for (auto& [waiter, outcome] : items) {
        waiter->resume(std::move(outcome));
      }
    });
  }
}

// ---- the store ----------------------------------------------------------------------------

class lmdb_store final : public mapping_store {
 public:
  explicit lmdb_store(const lmdb_store_options& options);
  ~lmdb_store() override;

  asio::awaitable<result<mapping>> allocate(dns_name name, ip_family family, seconds ttl) override;
  result<mapping> allocate_blocking(const dns_name& name, ip_family family, seconds ttl) override;
  [[nodiscard]] std::optional<mapping> find(const ip_address& fake) const override;
  [[nodiscard]] std::optional<mapping> find(const dns_name& name) const override;
  [[nodiscard]] result<mapping> get(const mapping_key& key) const override;
  void hold(const ip_address& fake, seconds ttl) override;
  void renew(const mapping& current, ip_family family, seconds ttl) override;
  result<mapping> add(const dns_name& name, std::optional<ip_address> v4, std::optional<ip_address> v6,
                      bool pin) override;
  result<mapping> remove(const mapping_key& key, bool force) override;
  result<mapping> set_pinned(const mapping_key& key, bool pinned) override;
  [[nodiscard]] std::vector<mapping> list(const list_filter& filter) const override;
  result<std::uint64_t> flush(bool expired_only) override;
  [[nodiscard]] store_stats stats() const override;
  void sync() override;
  void set_lease_policy(seconds lease_grace, seconds hold_refresh) override;

 private:
  struct request {
    dns_name name;
    ip_family family;
    seconds ttl;
    std::unique_ptr<allocation_waiter> waiter;
  };
  struct pending_hold {
    time_point at;
    seconds ttl;
  };
  struct pending_renewal {
    dns_name name;  // the address's mapping when the answer was given
    time_point at;
    seconds ttl;
  };

  void open_environment();
  void check_pools_at_open();
  void enqueue(request r);
  void writer_loop();
  void run_batch(std::vector<request>& batch);
  void flush_holds();
  // Runs `fn(table&, now)` in one write transaction and commits; expected failures become
  // error codes, LMDB failures are logged and become store_full / store_error.
  template <typename T, typename Fn>
  result<T> write(Fn&& fn);
  void count_failure(ip_family family);
  mapping place(table& t, const dns_name& name, ip_family family, seconds ttl, time_point now);
  ip_address free_address(table& t, const dns_name& name, ip_family family, time_point now);
  std::optional<ip_address> first_free(table& t, const fake_pool& p, pool_index start, std::uint64_t used,
                                       time_point now);
  std::optional<ip_address> recycle(table& t, ip_family family, time_point now);
  [[nodiscard]] const fake_pool& pool(ip_family family) const { return family == ip_family::v4 ? pool_v4_ : pool_v6_; }
  [[nodiscard]] bool held_here(const ip_address& address, time_point now) const;
  template <typename Fn>
  auto read(Fn&& fn) const;
  [[nodiscard]] std::optional<mapping> resolve_key(const table& t, const mapping_key& key) const;

  lmdb_store_options options_;
  fake_pool pool_v4_;
  fake_pool pool_v6_;
  env_ptr env_;
  databases db_;
  std::unique_ptr<reader_pool> readers_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  std::vector<request> queue_;
  std::unordered_map<ip_address, pending_hold> holds_;
  std::unordered_map<ip_address, pending_renewal> renewals_;
  std::unordered_set<ip_address> held_this_interval_;  // holds written since the last sync tick
  bool urgent_holds_ = false;
  seconds lease_grace_;
  // lease_grace_ for renew(), read without the lock on the DNS answer path.
  std::atomic<seconds::rep> renew_grace_;
  seconds hold_refresh_;
  std::condition_variable synced_;
  std::uint64_t sync_requested_ = 0;  // generations: sync() waits until done catches up
  std::uint64_t sync_done_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

lmdb_store::lmdb_store(const lmdb_store_options& options)
    : options_{options},
      pool_v4_{options.pool_v4},
      pool_v6_{options.pool_v6},
      lease_grace_{options.lease_grace},
      renew_grace_{options.lease_grace.count()},
      hold_refresh_{options.hold_refresh} {
  if (sodium_init() < 0) {
    throw store_open_error{"libsodium failed to initialise"};
  }
  open_environment();
  readers_ = std::make_unique<reader_pool>(env_.get());
  check_pools_at_open();
  writer_ = std::thread{[this] { writer_loop(); }};
}

lmdb_store::~lmdb_store() {
  {
    const std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void lmdb_store::open_environment() {
  const auto& path = options_.path;
  const auto directory = path.parent_path().empty() ? std::filesystem::path{"."} : path.parent_path();
  const auto group = gate46_group();
  const bool created = !std::filesystem::exists(path);
  if (created && !options_.create_if_missing) {
    throw store_missing{"no mapping store at " + path.string()};
  }
  if (!std::filesystem::exists(directory)) {
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) {
      throw store_open_error{"cannot create " + directory.string() + ": " + ec.message()};
    }
    set_ownership(directory, group, 02770, 0700);
  }
  if (created && !group) {
    logger("store")->warn("group gate46 does not exist: creating {} for the calling user only", path.string());
  }

  MDB_env* raw = nullptr;
  check(mdb_env_create(&raw), "mdb_env_create");
  env_.reset(raw);
  check(mdb_env_set_maxdbs(raw, 4), "mdb_env_set_maxdbs");
  check(mdb_env_set_mapsize(raw, options_.map_size), "mdb_env_set_mapsize");
  // NOSYNC/NOMETASYNC: commits are visible at once, the writer thread syncs on its interval.
  // NOTLS: read transactions are pooled across threads.
  // WRITEMAP: commits write into the shared map instead of pwrite()ing each dirty page, which
  // was a third of an allocation's cost. A killed process still loses nothing committed; the
  // price is a map writable from inside the process (a stray write could damage the store)
  // and a sparse file as large as store.map_size (stats() reports the pages in use).
  const unsigned flags = MDB_NOSUBDIR | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_WRITEMAP;
  if (const int rc = mdb_env_open(raw, path.c_str(), flags, group ? 0660 : 0600); rc != MDB_SUCCESS) {
    throw store_open_error{"cannot open the mapping store " + path.string() + ": " + mdb_strerror(rc)};
  }
  if (created) {
    set_ownership(path, group, 0660, 0600);
    set_ownership(path.string() + "-lock", group, 0660, 0600);
  }
  int dead = 0;
  check(mdb_reader_check(raw, &dead), "mdb_reader_check");
  if (dead > 0) {
    logger("store")->info("cleared {} reader slots left by dead processes", dead);
  }

  write_txn txn{raw};
  check(mdb_dbi_open(txn.get(), "names", MDB_CREATE, &db_.names), "mdb_dbi_open(names)");
  check(mdb_dbi_open(txn.get(), "addrs", MDB_CREATE, &db_.addrs), "mdb_dbi_open(addrs)");
  check(mdb_dbi_open(txn.get(), "lru", MDB_CREATE, &db_.lru), "mdb_dbi_open(lru)");
  check(mdb_dbi_open(txn.get(), "meta", MDB_CREATE, &db_.meta), "mdb_dbi_open(meta)");
  table t{txn.get(), db_};
  const auto schema = t.get(db_.meta, meta_schema);
  if (!schema) {
    t.put(db_.meta, meta_schema, codec::encode_u64(schema_version));
  } else if (codec::decode_u64(table::bytes(*schema)) != schema_version) {
    throw store_open_error{path.string() + ": unknown store schema version"};
  }
  txn.commit();
}

// Pools changed since the store was last opened: drop unpinned mappings outside the new
// pools, refuse to open if a pinned one is outside.
void lmdb_store::check_pools_at_open() {
  const std::string pools = options_.pool_v4.to_string() + ' ' + options_.pool_v6.to_string();
  write_txn txn{env_.get()};
  table t{txn.get(), db_};
  const auto stored = t.get(db_.meta, meta_pools);
  if (stored == pools) {
    return;
  }
  if (stored && options_.on_pool_change == lmdb_store_options::pool_change::refuse) {
    throw pool_change_refused{options_.path.string() + " was last opened with the pools " + *stored +
                              ", this configuration has " + pools +
                              "; gate46d applies a pool change at its start (check --config)"};
  }
  std::vector<mapping> outside;
  std::vector<std::string> pinned_outside;
  for_each(txn.get(), db_.names, [&](codec::byte_view k, codec::byte_view v) {
    const auto name = dns_name::from_wire(k);
    const auto m = name ? codec::decode_name_value(*name, v) : std::nullopt;
    if (!m) {
      throw store_open_error{options_.path.string() + ": corrupt record in the names table"};
    }
    if ((m->v4 && !pool_v4_.contains(*m->v4)) || (m->v6 && !pool_v6_.contains(*m->v6))) {
      (m->pinned ? pinned_outside.push_back(m->name.to_string()) : outside.push_back(*m));
    }
    return true;
  });
  if (!pinned_outside.empty()) {
    std::string list;
    for (const auto& n : pinned_outside) {
      list += (list.empty() ? "" : ", ") + n;
    }
    throw pool_change_refused{"pinned mappings lie outside the configured pools (" + pools +
                              "); unpin or delete them with gate46ctl, or restore the pools: " + list};
  }
  for (const auto& m : outside) {
    // Keep the half that is still inside a pool.
    auto kept = m;
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      if (kept.address(family) && !pool(family).contains(*kept.address(family))) {
        t.detach(kept, family);
        (family == ip_family::v4 ? kept.v4 : kept.v6).reset();
      }
    }
  }
  // Quarantined addresses outside the pools are simply forgotten.
  std::vector<std::pair<ip_address, codec::address_entry>> stale;
  for_each(txn.get(), db_.addrs, [&](codec::byte_view k, codec::byte_view v) {
    const auto address = codec::decode_address_key(k);
    const auto entry = codec::decode_address_value(v);
    if (address && entry && !pool_v4_.contains(*address) && !pool_v6_.contains(*address)) {
      stale.emplace_back(*address, *entry);
    }
    return true;
  });
  for (const auto& [address, entry] : stale) {
    t.end_quarantine(address, entry);
  }
  t.put(db_.meta, meta_pools, pools);
  txn.commit();
  if (stored) {
    logger("store")->warn("pools changed from {} to {}: dropped {} mappings outside them", *stored, pools,
                          outside.size());
  }
}

template <typename T, typename Fn>
result<T> lmdb_store::write(Fn&& fn) {
  try {
    write_txn txn{env_.get()};
    table t{txn.get(), db_};
    T value = fn(t, options_.wall_clock->now());
    txn.commit();
    return value;
  } catch (const store_failure& f) {
    if (f.code == store_errc::pool_exhausted && f.family) {
      count_failure(*f.family);  // the aborted transaction took its own count with it
    }
    return result<T>{boost::system::in_place_error, make_error_code(f.code)};
  } catch (const lmdb_failure& e) {
    if (e.code() == MDB_MAP_FULL) {
      logger("store")->error("mapping store {} is full (store.map_size {}): {}", options_.path.string(),
                             options_.map_size, e.what());
      return result<T>{boost::system::in_place_error, make_error_code(store_errc::store_full)};
    }
    logger("store")->error("mapping store {}: {}", options_.path.string(), e.what());
    return result<T>{boost::system::in_place_error, make_error_code(store_errc::store_error)};
  }
}

void lmdb_store::count_failure(ip_family family) {
  try {
    write_txn txn{env_.get()};
    table t{txn.get(), db_};
    t.add_counter(counter_key("failures", family), 1);
    txn.commit();
  } catch (const lmdb_failure& e) {
    logger("store")->error("mapping store {}: {}", options_.path.string(), e.what());
  }
}

template <typename Fn>
auto lmdb_store::read(Fn&& fn) const {
  const auto lease = readers_->acquire();
  const table t{lease.get(), db_};
  return fn(t);
}

bool lmdb_store::held_here(const ip_address& address, time_point now) const {
  const std::lock_guard lock{mutex_};
  const auto it = holds_.find(address);
  return it != holds_.end() && it->second.at + 2 * hold_refresh_ > now;
}

// The name's mapping in `family`, placing an address if it has none; renews the lease.
mapping lmdb_store::place(table& t, const dns_name& name, ip_family family, seconds ttl, time_point now) {
  const auto before = t.find_name(name);
  mapping m = before.value_or(mapping{name, std::nullopt, std::nullopt, now, now, now, time_point{}, false});
  seconds grace;
  {
    const std::lock_guard lock{mutex_};
    grace = lease_grace_;
  }
  if (!m.address(family)) {
    (family == ip_family::v4 ? m.v4 : m.v6) = free_address(t, name, family, now);
  }
  m.last_used = std::max(m.last_used, now);
  m.expiry = std::max(m.expiry, now + ttl + grace);
  t.store(m, before);
  return m;
}

// The first free address in probe order from the name's hash; when the pool is full, the
// least recently used eligible one.
ip_address lmdb_store::free_address(table& t, const dns_name& name, ip_family family, time_point now) {
  if (!options_.key) {
    throw store_failure{store_errc::no_pool_key};
  }
  const auto& p = pool(family);
  const auto used = t.counter(counter_key("used", family));
  if (used < p.size()) {
    if (auto address = first_free(t, p, p.start_index(*options_.key, name), used, now)) {
      return *address;
    }
  }
  if (auto recycled = recycle(t, family, now)) {
    return *recycled;
  }
  t.add_counter(counter_key("failures", family), 1);
  throw store_failure{store_errc::pool_exhausted, family};
}

// The first free address from `start` in probe order (upwards, wrapping), or one whose
// quarantine has ended. Pool order is address order, which is also the order of the addrs
// table: a cursor walks the taken addresses from `start`, and the first gap between
// consecutive keys is free. That is one cursor step per taken address, not a tree descent and
// a decode each. At most `used` + 1 steps: past that, the counters are wrong and the caller
// falls back to recycling.
std::optional<ip_address> lmdb_store::first_free(table& t, const fake_pool& p, pool_index start, std::uint64_t used,
                                                 time_point now) {
  MDB_cursor* raw = nullptr;
  check(mdb_cursor_open(t.txn(), t.dbs().addrs, &raw), "mdb_cursor_open(addrs)");
  std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> cursor{raw, &mdb_cursor_close};
  auto index = start;
  bool positioned = false;
  std::optional<std::pair<ip_address, codec::address_entry>> quarantine_over;
  for (pool_index walked = 0; walked <= used && walked < p.size(); ++walked) {
    const auto address = p.address_at(index);
    const auto expected = codec::encode_address_key(address);
    MDB_val k = to_val(expected);
    MDB_val v{};
    const int rc = mdb_cursor_get(raw, &k, &v, positioned ? MDB_NEXT : MDB_SET_RANGE);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
      check(rc, "mdb_cursor_get(addrs)");
    }
    if (rc == MDB_NOTFOUND || std::string_view{static_cast<const char*>(k.mv_data), k.mv_size} != expected) {
      return address;  // nobody has it
    }
    positioned = true;
    // Taken; a quarantine that has ended counts as free.
    const auto value = view(v);
    if (value.size() >= 2 && value[1] == static_cast<std::uint8_t>(codec::address_entry::kind::quarantined)) {
      const auto entry = codec::decode_address_value(value);
      if (!entry) {
        throw store_failure{store_errc::corrupt};
      }
      if (entry->until <= now) {
        quarantine_over.emplace(address, *entry);
        break;
      }
    }
    index = p.next_index(index);
    positioned = positioned && index != 0;  // wrapped: seek to the pool's first address
  }
  cursor.reset();
  if (quarantine_over) {
    t.end_quarantine(quarantine_over->first, quarantine_over->second);
    return quarantine_over->first;
  }
  return std::nullopt;
}

// Takes the least recently used mapping of the pool that is eligible: expired, not held (in
// the store or by this process's unflushed holds), not pinned (pinned ones are not indexed).
std::optional<ip_address> lmdb_store::recycle(table& t, ip_family family, time_point now) {
  MDB_cursor* raw = nullptr;
  check(mdb_cursor_open(t.txn(), t.dbs().lru, &raw), "mdb_cursor_open(lru)");
  std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> cursor{raw, &mdb_cursor_close};
  const auto start = codec::lru_range_start(family);
  MDB_val k = to_val(start);
  MDB_val v{};
  // Bounded: a pool whose oldest thousands are all held or unexpired is, for this purpose, full.
  constexpr int max_candidates = 4096;
  std::optional<std::pair<mapping, ip_address>> victim;
  std::optional<std::pair<ip_address, codec::address_entry>> quarantine_over;
  int rc = mdb_cursor_get(raw, &k, &v, MDB_SET_RANGE);
  for (int seen = 0; rc == MDB_SUCCESS && seen < max_candidates; ++seen, rc = mdb_cursor_get(raw, &k, &v, MDB_NEXT)) {
    const auto key = codec::decode_lru_key(view(k));
    if (!key) {
      throw store_failure{store_errc::corrupt};
    }
    if (key->address.family() != family || key->last_used > now) {
      break;
    }
    const auto entry = t.find_address(key->address);
    if (!entry) {
      throw store_failure{store_errc::corrupt};
    }
    if (entry->state == codec::address_entry::kind::quarantined) {
      // Its key time is the end of the quarantine, which has passed: free, no one loses it.
      quarantine_over.emplace(key->address, *entry);
      break;
    }
    auto m = t.find_by_address(key->address);
    if (!m) {
      throw store_failure{store_errc::corrupt};
    }
    if (m->eligible_for_recycling(now) && !held_here(key->address, now)) {
      victim.emplace(std::move(*m), key->address);
      break;
    }
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
    check(rc, "mdb_cursor_get(lru)");
  }
  cursor.reset();
  if (quarantine_over) {
    t.end_quarantine(quarantine_over->first, quarantine_over->second);
    return quarantine_over->first;
  }
  if (!victim) {
    return std::nullopt;
  }
  logger("store")->debug("recycling {} from {} (last used {} s ago)", victim->second.to_string(),
                         victim->first.name.to_string(),
                         std::chrono::duration_cast<seconds>(now - victim->first.last_used).count());
  t.detach(victim->first, family);
  t.add_counter(counter_key("recycled", family), 1);
  return victim->second;
}

void lmdb_store::enqueue(request r) {
  {
    const std::lock_guard lock{mutex_};
    queue_.push_back(std::move(r));
  }
  wake_.notify_one();
}

asio::awaitable<result<mapping>> lmdb_store::allocate(dns_name name, ip_family family, seconds ttl) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(result<mapping>)>(
      [this, &name, family, ttl](auto handler) {
        enqueue(request{std::move(name), family, ttl,
                        std::make_unique<handler_waiter<decltype(handler)>>(std::move(handler))});
      },
      asio::use_awaitable);
}

result<mapping> lmdb_store::allocate_blocking(const dns_name& name, ip_family family, seconds ttl) {
  auto waiter = std::make_unique<promise_waiter>();
  auto future = waiter->future();
  enqueue(request{name, family, ttl, std::move(waiter)});
  return future.get();
}

void lmdb_store::writer_loop() {
  // With store.sync_interval_ms = 0 every commit is synced and holds are written at once.
  const bool immediate = options_.sync_interval.count() == 0;
  auto next_sync = std::chrono::steady_clock::now() + options_.sync_interval;
  while (true) {
    std::vector<request> batch;
    bool stop = false;
    bool sync_now = false;
    bool urgent = false;
    std::uint64_t generation = 0;
    {
      std::unique_lock lock{mutex_};
      const auto ready = [&] {
        return stopping_ || sync_requested_ != sync_done_ || !queue_.empty() || urgent_holds_ ||
               (immediate && (!holds_.empty() || !renewals_.empty()));
      };
      if (immediate) {
        wake_.wait(lock, ready);
      } else {
        wake_.wait_until(lock, next_sync, ready);
      }
      batch.swap(queue_);
      stop = stopping_;
      urgent = std::exchange(urgent_holds_, false);
      generation = sync_requested_;
      sync_now = immediate || stop || generation != sync_done_ || std::chrono::steady_clock::now() >= next_sync;
    }
    if (!batch.empty()) {
      run_batch(batch);
    }
    if (urgent && !sync_now) {
      flush_holds();
    }
    if (sync_now) {
      // Reader slots of processes killed inside a read transaction pin old pages (the file
      // grows) until someone clears them: do it every interval, not only at open.
      int dead = 0;
      mdb_reader_check(env_.get(), &dead);
      flush_holds();
      {
        const std::lock_guard lock{mutex_};
        held_this_interval_.clear();
      }
      if (const int rc = mdb_env_sync(env_.get(), 1); rc != MDB_SUCCESS) {
        logger("store")->error("mapping store {}: sync failed: {}", options_.path.string(), mdb_strerror(rc));
      }
      next_sync = std::chrono::steady_clock::now() + options_.sync_interval;
      {
        const std::lock_guard lock{mutex_};
        sync_done_ = generation;
      }
      synced_.notify_all();
    }
    if (stop) {
      const std::lock_guard lock{mutex_};
      if (queue_.empty()) {
        return;
      }
    }
  }
}

// One transaction for the whole batch: that is the group commit.
void lmdb_store::run_batch(std::vector<request>& batch) {
  std::vector<result<mapping>> outcomes;
  outcomes.reserve(batch.size());
  try {
    write_txn txn{env_.get()};
    table t{txn.get(), db_};
    const auto now = options_.wall_clock->now();
    for (auto& r : batch) {
      try {
        outcomes.emplace_back(place(t, r.name, r.family, r.ttl, now));
      } catch (const store_failure& f) {
        outcomes.emplace_back(make_error_code(f.code));
      }
    }
    txn.commit();
  } catch (const lmdb_failure& e) {
    const bool full = e.code() == MDB_MAP_FULL;
    logger("store")->error("mapping store {}: allocation batch of {} failed: {}", options_.path.string(), batch.size(),
                           e.what());
    // Nothing was written. Names that already have their address keep working, unrenewed.
    outcomes.clear();
    for (auto& r : batch) {
      auto existing = find(r.name);
      if (existing && existing->address(r.family)) {
        outcomes.emplace_back(std::move(*existing));
      } else {
        outcomes.emplace_back(make_error_code(full ? store_errc::store_full : store_errc::store_error));
      }
    }
  }
  std::vector<std::pair<std::unique_ptr<allocation_waiter>, result<mapping>>> done;
  done.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    done.emplace_back(std::move(batch[i].waiter), std::move(outcomes[i]));
  }
  resume_all(std::move(done));
}

void lmdb_store::flush_holds() {
  std::unordered_map<ip_address, pending_hold> holds;
  std::unordered_map<ip_address, pending_renewal> renewals;
  seconds grace;
  seconds refresh;
  {
    const std::lock_guard lock{mutex_};
    holds.swap(holds_);
    renewals.swap(renewals_);
    grace = lease_grace_;
    refresh = hold_refresh_;
    for (const auto& [address, hold] : holds) {
      held_this_interval_.insert(address);
    }
  }
  if (holds.empty() && renewals.empty()) {
    return;
  }
  auto written = write<bool>([&](table& t, time_point) {
    for (const auto& [address, hold] : holds) {
      auto before = t.find_by_address(address);
      if (!before) {
        continue;  // deleted or recycled meanwhile
      }
      auto m = *before;
      m.last_used = std::max(m.last_used, hold.at);
      m.expiry = std::max(m.expiry, hold.at + hold.ttl + grace);
      m.held_until = std::max(m.held_until, hold.at + 2 * refresh);
      t.store(m, before);
    }
    for (const auto& [address, renewal] : renewals) {
      auto before = t.find_by_address(address);
      if (!before || before->name != renewal.name) {
        continue;  // deleted meanwhile: the renewal belongs to the old mapping
      }
      auto m = *before;
      m.last_used = std::max(m.last_used, renewal.at);
      m.expiry = std::max(m.expiry, renewal.at + renewal.ttl + grace);
      t.store(m, before);
    }
    return true;
  });
  if (!written) {
    // Keep them for the next interval rather than lose a hold.
    const std::lock_guard lock{mutex_};
    for (const auto& [address, hold] : holds) {
      holds_.try_emplace(address, hold);
    }
    for (auto& [address, renewal] : renewals) {
      renewals_.try_emplace(address, std::move(renewal));
    }
  }
}

std::optional<mapping> lmdb_store::find(const ip_address& fake) const {
  try {
    return read([&](const table& t) { return t.find_by_address(fake); });
  } catch (const store_failure&) {
    logger("store")->error("mapping store {}: corrupt record for {}", options_.path.string(), fake.to_string());
  } catch (const lmdb_failure& e) {
    logger("store")->error("mapping store {}: {}", options_.path.string(), e.what());
  }
  return std::nullopt;
}

std::optional<mapping> lmdb_store::find(const dns_name& name) const {
  try {
    return read([&](const table& t) { return t.find_name(name); });
  } catch (const store_failure&) {
    logger("store")->error("mapping store {}: corrupt record for {}", options_.path.string(), name.to_string());
  } catch (const lmdb_failure& e) {
    logger("store")->error("mapping store {}: {}", options_.path.string(), e.what());
  }
  return std::nullopt;
}

result<mapping> lmdb_store::get(const mapping_key& key) const {
  try {
    auto m = read([&](const table& t) { return resolve_key(t, key); });
    if (!m) {
      return make_error_code(store_errc::not_found);
    }
    return std::move(*m);
  } catch (const store_failure& f) {
    return make_error_code(f.code);
  } catch (const lmdb_failure& e) {
    logger("store")->error("mapping store {}: {}", options_.path.string(), e.what());
    return make_error_code(store_errc::store_error);
  }
}

void lmdb_store::hold(const ip_address& fake, seconds ttl) {
  const auto now = options_.wall_clock->now();
  bool urgent = false;
  {
    const std::lock_guard lock{mutex_};
    auto [it, inserted] = holds_.try_emplace(fake, pending_hold{now, ttl});
    it->second.at = std::max(it->second.at, now);
    it->second.ttl = std::max(it->second.ttl, ttl);
    // A flow that just started must be protected in the store at once (another process may
    // be about to delete or recycle the mapping); renewals can wait for the interval.
    urgent = inserted && !held_this_interval_.contains(fake);
    urgent_holds_ = urgent_holds_ || urgent;
  }
  if (urgent) {
    wake_.notify_one();
  }
}

void lmdb_store::renew(const mapping& current, ip_family family, seconds ttl) {
  const auto& fake = current.address(family);
  if (!fake) {
    return;
  }
  const auto now = options_.wall_clock->now();
  const seconds grace{renew_grace_.load(std::memory_order_relaxed)};
  if (current.expiry >= now + ttl + grace - grace / 4) {
    return;  // recently renewed: the lease has most of its grace left
  }
  {
    const std::lock_guard lock{mutex_};
    auto [it, inserted] = renewals_.try_emplace(*fake, pending_renewal{current.name, now, ttl});
    if (!inserted) {
      it->second.name = current.name;
      it->second.at = std::max(it->second.at, now);
      it->second.ttl = std::max(it->second.ttl, ttl);
    }
  }
  if (options_.sync_interval.count() == 0) {
    wake_.notify_one();  // every write is immediate in this mode
  }
}

std::optional<mapping> lmdb_store::resolve_key(const table& t, const mapping_key& key) const {
  if (const auto* name = std::get_if<dns_name>(&key)) {
    return t.find_name(*name);
  }
  const auto& address = std::get<ip_address>(key);
  if (!pool_v4_.contains(address) && !pool_v6_.contains(address)) {
    throw store_failure{store_errc::outside_pools};
  }
  return t.find_by_address(address);
}

result<mapping> lmdb_store::add(const dns_name& name, std::optional<ip_address> v4, std::optional<ip_address> v6,
                                bool pin) {
  for (const auto& [address, family] : {std::pair{v4, ip_family::v4}, std::pair{v6, ip_family::v6}}) {
    if (address && !pool(family).contains(*address)) {
      return make_error_code(store_errc::outside_pools);
    }
  }
  return write<mapping>([&](table& t, time_point now) {
    const auto before = t.find_name(name);
    mapping m = before.value_or(mapping{name, std::nullopt, std::nullopt, now, now, now, time_point{}, false});
    const bool place_both = !v4 && !v6;
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      const auto& wanted = family == ip_family::v4 ? v4 : v6;
      if (wanted) {
        if (m.address(family) == wanted) {
          continue;
        }
        const auto entry = t.find_address(*wanted);
        if (entry && !(entry->state == codec::address_entry::kind::quarantined && entry->until <= now)) {
          throw store_failure{store_errc::address_taken};
        }
        if (entry) {
          t.end_quarantine(*wanted, *entry);
        }
        if (m.address(family)) {
          // The name moves: its old address goes through quarantine like a delete.
          t.detach(m, family);
          const auto old = *m.address(family);
          if (m.expiry > now || m.held_until > now) {
            t.quarantine(old, std::max(m.expiry, m.held_until));
            t.add_counter(counter_key("used", family), 1);
          }
          (family == ip_family::v4 ? m.v4 : m.v6).reset();
        }
        (family == ip_family::v4 ? m.v4 : m.v6) = *wanted;
      } else if (place_both && !m.address(family)) {
        (family == ip_family::v4 ? m.v4 : m.v6) = free_address(t, name, family, now);
      }
    }
    // detach() may have rewritten or removed the record: store against what is there now.
    const auto current = t.find_name(name);
    m.pinned = m.pinned || pin;
    m.last_used = now;
    seconds grace;
    {
      const std::lock_guard lock{mutex_};
      grace = lease_grace_;
    }
    m.expiry = std::max(m.expiry, now + grace);
    t.store(m, current);
    return m;
  });
}

result<mapping> lmdb_store::remove(const mapping_key& key, bool force) {
  return write<mapping>([&](table& t, time_point now) {
    const auto m = resolve_key(t, key);
    if (!m) {
      throw store_failure{store_errc::not_found};
    }
    const bool held = m->held_until > now || (m->v4 && held_here(*m->v4, now)) || (m->v6 && held_here(*m->v6, now));
    if (held && !force) {
      throw store_failure{store_errc::held};
    }
    t.erase(*m, now);
    return *m;
  });
}

result<mapping> lmdb_store::set_pinned(const mapping_key& key, bool pinned) {
  return write<mapping>([&](table& t, time_point) {
    const auto before = resolve_key(t, key);
    if (!before) {
      throw store_failure{store_errc::not_found};
    }
    auto m = *before;
    m.pinned = pinned;
    t.store(m, before);
    return m;
  });
}

std::vector<mapping> lmdb_store::list(const list_filter& filter) const {
  const auto now = options_.wall_clock->now();
  return read([&](const table& t) {
    std::vector<mapping> out;
    for_each(t.txn(), db_.names, [&](codec::byte_view k, codec::byte_view v) {
      const auto name = dns_name::from_wire(k);
      auto m = name ? codec::decode_name_value(*name, v) : std::nullopt;
      if (!m) {
        logger("store")->error("mapping store {}: skipping a corrupt record", options_.path.string());
        return true;
      }
      if ((!filter.pool || m->address(*filter.pool)) && (!filter.expired_only || m->eligible_for_recycling(now))) {
        out.push_back(std::move(*m));
      }
      return true;
    });
    return out;
  });
}

result<std::uint64_t> lmdb_store::flush(bool expired_only) {
  return write<std::uint64_t>([&](table& t, time_point now) {
    std::vector<mapping> doomed;
    for_each(t.txn(), db_.names, [&](codec::byte_view k, codec::byte_view v) {
      const auto name = dns_name::from_wire(k);
      auto m = name ? codec::decode_name_value(*name, v) : std::nullopt;
      if (!m) {
        throw store_failure{store_errc::corrupt};
      }
      const bool held = m->held_until > now || (m->v4 && held_here(*m->v4, now)) || (m->v6 && held_here(*m->v6, now));
      if (!m->pinned && !held && (!expired_only || m->expiry <= now)) {
        doomed.push_back(std::move(*m));
      }
      return true;
    });
    for (const auto& m : doomed) {
      t.erase(m, now);
    }
    return static_cast<std::uint64_t>(doomed.size());
  });
}

store_stats lmdb_store::stats() const {
  const auto now = options_.wall_clock->now();
  store_stats s{{options_.pool_v4}, {options_.pool_v6}};
  s.v4.size = saturate(pool_v4_.size());
  s.v6.size = saturate(pool_v6_.size());
  read([&](const table& t) {
    for (auto* p : {&s.v4, &s.v6}) {
      const auto family = p == &s.v4 ? ip_family::v4 : ip_family::v6;
      p->recycled = t.counter(counter_key("recycled", family));
      p->allocation_failures = t.counter(counter_key("failures", family));
    }
    for_each(t.txn(), db_.names, [&](codec::byte_view k, codec::byte_view v) {
      const auto name = dns_name::from_wire(k);
      const auto m = name ? codec::decode_name_value(*name, v) : std::nullopt;
      if (!m) {
        return true;  // list() reports it
      }
      ++s.mappings;
      for (const auto family : {ip_family::v4, ip_family::v6}) {
        if (m->address(family)) {
          auto& p = family == ip_family::v4 ? s.v4 : s.v6;
          ++p.used;
          p.pinned += m->pinned ? 1 : 0;
          p.eligible += m->eligible_for_recycling(now) ? 1 : 0;
        }
      }
      return true;
    });
    for_each(t.txn(), db_.addrs, [&](codec::byte_view, codec::byte_view v) {
      const auto entry = codec::decode_address_value(v);
      s.quarantined += entry && entry->state == codec::address_entry::kind::quarantined ? 1 : 0;
      return true;
    });
    return 0;
  });
  MDB_envinfo info{};
  MDB_stat st{};
  check(mdb_env_info(env_.get(), &info), "mdb_env_info");
  check(mdb_env_stat(env_.get(), &st), "mdb_env_stat");
  s.bytes_on_disk = static_cast<std::uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
  s.map_size = info.me_mapsize;
  return s;
}

void lmdb_store::sync() {
  std::unique_lock lock{mutex_};
  const auto generation = ++sync_requested_;
  wake_.notify_one();
  synced_.wait(lock, [&] { return sync_done_ >= generation; });
}

void lmdb_store::set_lease_policy(seconds lease_grace, seconds hold_refresh) {
  const std::lock_guard lock{mutex_};
  lease_grace_ = lease_grace;
  renew_grace_ = lease_grace.count();
  hold_refresh_ = hold_refresh;
}

}  // namespace

lmdb_store_options lmdb_store_options::from_config(const config& cfg, std::optional<pool_key> key) {
  lmdb_store_options o;
  o.path = cfg.store.path;
  o.map_size = cfg.store.map_size;
  o.sync_interval = cfg.store.sync_interval;
  o.pool_v4 = cfg.pools.ipv4;
  o.pool_v6 = cfg.pools.ipv6;
  o.key = key;
  o.lease_grace = cfg.pools.lease_grace;
  o.hold_refresh = cfg.pools.hold_refresh;
  return o;
}

std::unique_ptr<mapping_store> open_lmdb_store(const lmdb_store_options& options) {
  try {
    return std::make_unique<lmdb_store>(options);
  } catch (const lmdb_failure& e) {
    throw store_open_error{"mapping store " + options.path.string() + ": " + e.what()};
  } catch (const store_failure&) {
    throw store_open_error{"mapping store " + options.path.string() + ": corrupt record"};
  }
}

pool_key load_pool_key(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    throw std::runtime_error{"cannot read the pool key " + path.string() + ": " + errno_text() +
                             " (gate46ctl keygen makes one)"};
  }
  pool_key key{};
  in.read(reinterpret_cast<char*>(key.data()), key.size());
  if (in.gcount() != static_cast<std::streamsize>(key.size()) || in.peek() != std::char_traits<char>::eof()) {
    throw std::runtime_error{"the pool key " + path.string() + " is not exactly 16 bytes"};
  }
  return key;
}

void write_pool_key(const std::filesystem::path& path, bool replace) {
  if (sodium_init() < 0) {
    throw std::runtime_error{"libsodium failed to initialise"};
  }
  pool_key key{};
  randombytes_buf(key.data(), key.size());
  const auto group = gate46_group();
  // Written whole beside the target (a name of this process's own), then moved into place:
  // rename() to replace, link() to refuse atomically when a key exists.
  const auto temporary = path.string() + ".new." + std::to_string(::getpid());
  ::unlink(temporary.c_str());  // left by an earlier, crashed run of this PID
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error{"cannot create " + temporary + ": " + errno_text()};
  }
  const bool written = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0 &&
                       (!group || ::fchown(fd, static_cast<uid_t>(-1), *group) == 0) &&
                       ::fchmod(fd, group ? 0640 : 0600) == 0;
  const auto write_error = errno_text();
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    throw std::runtime_error{"cannot write " + temporary + ": " + write_error};
  }
  const int moved = replace ? ::rename(temporary.c_str(), path.c_str()) : ::link(temporary.c_str(), path.c_str());
  const int move_errno = errno;
  ::unlink(temporary.c_str());  // after link(), or after a failed rename()
  if (moved != 0 && move_errno == EEXIST) {
    throw pool_key_exists{path.string() + " exists; replacing it moves every name's preferred address (--force)"};
  }
  if (moved != 0) {
    throw std::runtime_error{"cannot install " + path.string() + ": " + std::generic_category().message(move_errno)};
  }
}

}  // namespace gate46::mapping
