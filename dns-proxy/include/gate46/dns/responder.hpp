// What the DNS servers answer a parsed query with. The delegating responder is the thin shell
// around the policy (policy.hpp): it asks the upstream resolver and the mapping store what the
// policy wants to know and allocates the fake addresses it decides on.
//
// Thread-safety: answer() runs on any worker thread, concurrently; reconfigure() and
// counters() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/clock.hpp"
#include "gate46/common/component.hpp"
#include "gate46/dns/message.hpp"
#include "gate46/dns/policy.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::dns {

class responder {
 public:
  responder() = default;
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  virtual ~responder() = default;

  // The reply to `q`, at most `limit` bytes (TC set past it). Never fails: errors are SERVFAIL.
  virtual boost::asio::awaitable<bytes> answer(const query& q, std::size_t limit) = 0;
  // The same reply when it can be made without waiting for anything (cached upstream answers,
  // a mapping that exists); nullopt when answer() must run. Most queries of a busy network end
  // here, without a coroutine of their own.
  virtual std::optional<bytes> answer_now(const query& /*q*/, std::size_t /*limit*/) { return std::nullopt; }
  [[nodiscard]] virtual std::vector<counter> counters() const = 0;
};

class delegating_responder final : public responder {
 public:
  delegating_responder(resolver& upstream, mapping::mapping_store& store, policy_settings settings,
                       const clock& wall = system_wall_clock());

  boost::asio::awaitable<bytes> answer(const query& q, std::size_t limit) override;
  std::optional<bytes> answer_now(const query& q, std::size_t limit) override;
  [[nodiscard]] std::vector<counter> counters() const override;

  // dns.mode, dns.rule and dns.fake_ttl on SIGHUP (the pools are restart keys).
  void reconfigure(policy_settings settings);

 private:
  [[nodiscard]] std::shared_ptr<const policy> current() const;
  // The fake answer from the name's existing mapping, if its lease outlasts the answer.
  std::optional<bytes> reuse_mapping(const policy& p, const query& q, ip_family family);
  boost::asio::awaitable<bytes> fake_answer(const policy& p, const query& q, ip_family family);
  bytes finish(send_reply& reply);
  void add_mapping(lookups& known, const ip_address& fake) const;

  resolver& upstream_;
  mapping::mapping_store& store_;
  const clock& wall_;
  mutable std::mutex mutex_;  // guards policy_
  std::shared_ptr<const policy> policy_;

  std::atomic<std::uint64_t> fake_answers_{0};
  std::atomic<std::uint64_t> fake_allocations_{0};  // answers that waited for a commit
  std::atomic<std::uint64_t> reverse_answers_{0};
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<std::uint64_t> any_minimal_{0};
  std::atomic<std::uint64_t> hints_removed_{0};
  std::atomic<std::uint64_t> records_removed_{0};
  std::atomic<std::uint64_t> servfail_upstream_{0};
  std::atomic<std::uint64_t> pool_exhausted_{0};
  std::atomic<std::uint64_t> store_errors_{0};
  std::atomic<std::chrono::steady_clock::rep> last_error_log_{0};
};

}  // namespace gate46::dns
