// Name resolution for the DNS proxy and the gateway: one interface, one upstream resolver with
// one cache. The DNS proxy asks for whole answers (query); the gateway asks for the real
// addresses of a name (resolve).
//
// Thread-safety: every member may be called from any thread; the coroutines run on the
// caller's executor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "gate46/common/address.hpp"
#include "gate46/dns/message.hpp"

namespace gate46::dns {

enum class resolve_errc {
  timeout = 1,  // no upstream answered in dns.upstream_timeout_ms x dns.upstream_tries
  nxdomain,     // the name does not exist
  nodata,       // the name exists, without records of that family
  servfail,     // the upstream answered with an error
};
const std::error_category& resolve_category() noexcept;
std::error_code make_error_code(resolve_errc e) noexcept;

template <typename T>
using result = boost::system::result<T, std::error_code>;

// The query bits that change what an upstream answers: CD (no validation) and DO (DNSSEC
// records wanted). Answers are cached per combination: an unvalidated CD answer must not reach
// a client that relies on validation, nor a DNSSEC-less one a client that asked for records.
struct query_flags {
  bool checking_disabled = false;
  bool dnssec_ok = false;
  friend bool operator==(const query_flags&, const query_flags&) = default;
};

class resolver {
 public:
  resolver() = default;
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;
  virtual ~resolver() = default;

  // The whole answer for `q`: every rcode is an answer; only `timeout` is an error.
  virtual boost::asio::awaitable<result<timed_answer>> query(question q, query_flags flags) = 0;
  // The real addresses of `name` in `family` (A or AAAA, after CNAMEs).
  virtual boost::asio::awaitable<result<std::vector<ip_address>>> resolve(dns_name name, ip_family family) = 0;
  // The answer for `q` if it can be had without waiting (from a cache), else nullopt.
  [[nodiscard]] virtual std::optional<timed_answer> cached(const question& /*q*/, query_flags /*flags*/) {
    return std::nullopt;
  }
};

// Real upstream answers, by question, for as long as their TTL allows. Bounded: the least
// recently used entry goes first. Thread-safe.
class answer_cache {
 public:
  explicit answer_cache(std::size_t max_entries, std::size_t max_bytes = std::size_t{64} << 20);

  [[nodiscard]] std::optional<timed_answer> get(const question& q, std::chrono::steady_clock::time_point now,
                                                query_flags flags = {});
  // Ignored when the answer's cache_ttl is zero. At most `max_bytes` of answers are kept.
  void put(const question& q, std::shared_ptr<const answer> a, std::chrono::steady_clock::time_point now,
           query_flags flags = {});
  [[nodiscard]] std::size_t size() const;

 private:
  struct entry {
    std::string key;
    std::shared_ptr<const answer> a;
    std::chrono::steady_clock::time_point stored;
    std::chrono::steady_clock::time_point expires;
    std::chrono::steady_clock::time_point moved;  // last moved to the front of the LRU list
  };
  static void key_of(const question& q, query_flags flags, std::string& key);

  std::size_t max_entries_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;  // of the answers held
  mutable std::mutex mutex_;
  std::list<entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<entry>::iterator> index_;
};

struct upstream_settings {
  std::vector<endpoint> upstreams;  // tried in turn, one per attempt
  std::chrono::milliseconds timeout{2000};
  unsigned tries = 2;
  friend bool operator==(const upstream_settings&, const upstream_settings&) = default;
};

// Forwards to dns.upstreams over UDP (TCP when truncated): a fresh socket per exchange, so
// source ports are the kernel's random ephemeral ports, and random IDs; answers that do not
// match the question, come from elsewhere (connected sockets) or carry another ID are ignored.
// Queries start at the upstreams in turn; one that timed out in the last 30 s is tried last.
class upstream_resolver final : public resolver {
 public:
  upstream_resolver(upstream_settings settings, std::size_t cache_entries);

  boost::asio::awaitable<result<timed_answer>> query(question q, query_flags flags) override;
  boost::asio::awaitable<result<std::vector<ip_address>>> resolve(dns_name name, ip_family family) override;
  [[nodiscard]] std::optional<timed_answer> cached(const question& q, query_flags flags) override;

  // dns.upstreams, dns.upstream_timeout_ms, dns.upstream_tries on SIGHUP.
  void reconfigure(upstream_settings settings);

  struct counters {
    std::uint64_t cache_hits = 0;
    std::uint64_t upstream_queries = 0;
    std::uint64_t upstream_timeouts = 0;
    std::uint64_t tcp_fallbacks = 0;
    std::uint64_t ignored_answers = 0;  // wrong ID, question or source
  };
  [[nodiscard]] counters stats() const;

 private:
  boost::asio::awaitable<result<std::shared_ptr<const answer>>> exchange(const question& q, query_flags flags);

  mutable std::mutex mutex_;  // guards settings_ and counters_
  std::shared_ptr<const upstream_settings> settings_;
  counters counters_;  // all but cache_hits
  std::atomic<std::uint64_t> cache_hits_{0};
  std::uint64_t next_upstream_ = 0;
  std::map<endpoint, std::chrono::steady_clock::time_point> failed_until_;  // recent timeouts
  answer_cache cache_;
};

}  // namespace gate46::dns

template <>
struct std::is_error_code_enum<gate46::dns::resolve_errc> : std::true_type {};
