#include "gate46/dns/responder.hpp"

#include "gate46/common/log.hpp"

namespace gate46::dns {
namespace asio = boost::asio;

namespace {

// Steps one query may take before it is given up as SERVFAIL: the policy asks for at most
// policy::max_lookups lookups; this only guards against a policy that never finishes.
constexpr std::size_t max_steps = policy::max_lookups + 4;

}  // namespace

delegating_responder::delegating_responder(resolver& upstream, mapping::mapping_store& store, policy_settings settings,
                                           const clock& wall)
    : upstream_{upstream}, store_{store}, wall_{wall}, policy_{std::make_shared<const policy>(std::move(settings))} {}

std::shared_ptr<const policy> delegating_responder::current() const {
  const std::lock_guard lock{mutex_};
  return policy_;
}

void delegating_responder::reconfigure(policy_settings settings) {
  auto next = std::make_shared<const policy>(std::move(settings));
  const std::lock_guard lock{mutex_};
  policy_ = std::move(next);
}

void delegating_responder::add_mapping(lookups& known, const ip_address& fake) const {
  const auto m = store_.find(fake);
  known.add_mapping(fake, m ? std::optional<dns_name>{m->name} : std::nullopt);
}

bytes delegating_responder::finish(send_reply& reply) {
  switch (reply.kind) {
    case reply_kind::forwarded:
      ++forwarded_;
      break;
    case reply_kind::reverse:
      ++reverse_answers_;
      break;
    case reply_kind::any_minimal:
      ++any_minimal_;
      break;
    case reply_kind::upstream_failed:
      ++servfail_upstream_;
      break;
  }
  hints_removed_ += reply.hints_removed;
  records_removed_ += reply.records_removed;
  bytes wire;
  wire.swap(reply.wire);
  return wire;
}

std::optional<bytes> delegating_responder::answer_now(const query& q, std::size_t limit) {
  const auto p = current();
  lookups known;
  for (std::size_t step = 0; step < max_steps; ++step) {
    auto next = p->decide(q, known, limit);
    if (auto* ask = std::get_if<ask_upstream>(&next)) {
      auto hit = upstream_.cached(ask->q, {q.checking_disabled, q.dnssec_ok});
      if (!hit) {
        return std::nullopt;
      }
      known.add(ask->q, std::move(hit));
    } else if (auto* find = std::get_if<find_mapping>(&next)) {
      add_mapping(known, find->fake);
    } else if (auto* fake = std::get_if<allocate_fake>(&next)) {
      return reuse_mapping(*p, q, fake->family);
    } else {
      return finish(std::get<send_reply>(next));
    }
  }
  return std::nullopt;
}

asio::awaitable<bytes> delegating_responder::answer(const query& q, std::size_t limit) {
  // One policy for the whole query, even if a reload swaps it meanwhile.
  const auto p = current();
  lookups known;
  for (std::size_t step = 0; step < max_steps; ++step) {
    auto next = p->decide(q, known, limit);
    if (auto* ask = std::get_if<ask_upstream>(&next)) {
      auto r = co_await upstream_.query(ask->q, {q.checking_disabled, q.dnssec_ok});
      known.add(ask->q, r ? std::optional<timed_answer>{std::move(*r)} : std::nullopt);
    } else if (auto* find = std::get_if<find_mapping>(&next)) {
      add_mapping(known, find->fake);
    } else if (auto* fake = std::get_if<allocate_fake>(&next)) {
      co_return co_await fake_answer(*p, q, fake->family);
    } else {
      co_return finish(std::get<send_reply>(next));
    }
  }
  logger("dns")->error("policy for {} type {} did not finish in {} steps", q.q.name.to_string(), q.q.type, max_steps);
  co_return make_error_reply(q, rcode::servfail);
}

std::optional<bytes> delegating_responder::reuse_mapping(const policy& p, const query& q, ip_family family) {
  const auto ttl = p.settings().fake_ttl;
  // Most answers give out a mapping that exists: when its lease already outlasts this answer,
  // renew it in memory (the store writes it later) instead of waiting for a commit.
  const auto m = store_.find(q.q.name);
  if (!m) {
    return std::nullopt;
  }
  const auto& address = m->address(family);
  if (!address || m->expiry <= wall_.now() + ttl) {
    return std::nullopt;
  }
  store_.renew(*m, family, ttl);
  ++fake_answers_;
  return p.fake_reply(q, *address);
}

asio::awaitable<bytes> delegating_responder::fake_answer(const policy& p, const query& q, ip_family family) {
  if (auto reused = reuse_mapping(p, q, family)) {
    co_return std::move(*reused);
  }
  const auto ttl = p.settings().fake_ttl;
  auto allocated = co_await store_.allocate(q.q.name, family, ttl);
  if (!allocated) {
    const auto& error = allocated.error();
    if (error == mapping::store_errc::pool_exhausted) {
      ++pool_exhausted_;
    } else {
      ++store_errors_;
    }
    // Once per error condition a second at most: a full pool under load would flood the log.
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_error_log_.load();
    if (now - last > std::chrono::steady_clock::duration{std::chrono::seconds{1}}.count() &&
        last_error_log_.compare_exchange_strong(last, now)) {
      logger("dns")->error("no fake {} address for {}: {}", family == ip_family::v4 ? "IPv4" : "IPv6",
                           q.q.name.to_string(), error.message());
    }
    co_return make_error_reply(q, rcode::servfail);
  }
  ++fake_answers_;
  ++fake_allocations_;
  co_return p.fake_reply(q, *allocated->address(family));
}

std::vector<counter> delegating_responder::counters() const {
  return {{"fake_answers", fake_answers_.load()},       {"fake_allocations", fake_allocations_.load()},
          {"reverse_answers", reverse_answers_.load()}, {"forwarded_answers", forwarded_.load()},
          {"any_minimal_answers", any_minimal_.load()}, {"hints_removed", hints_removed_.load()},
          {"records_removed", records_removed_.load()}, {"servfail_upstream", servfail_upstream_.load()},
          {"pool_exhausted", pool_exhausted_.load()},   {"store_errors", store_errors_.load()}};
}

}  // namespace gate46::dns
